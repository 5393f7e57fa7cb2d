//! The call-initiator Lambda: `POST /api/v1/vapi/calls` places a call and answers 202 with its id;
//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver` sends a pushed event again.

use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let routes = wiring::initiator_service(&Env::from_process()).await?;
    let (svc, redelivery, auth) = (&routes.initiator, routes.redelivery.as_ref(), &routes.auth);
    run(service_fn(move |req: Request| {
        async move {
            let path = req.uri().path();
            let resp =
                match lambda::path_param(&req, "eventId").or_else(|| api::redeliver_target(path)) {
                    Some(event_id) => {
                        api::post_redeliver(redelivery, auth, req.headers(), &event_id).await
                    }
                    None => api::post_call(svc, auth, req.headers(), lambda::body(&req)).await,
                };
            Ok::<_, Error>(lambda::response(resp))
        }
        .instrument(request_span!("call_initiator"))
    }))
    .await
}
