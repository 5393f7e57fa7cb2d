//! The call-initiator Lambda: `POST /api/v1/vapi/calls` places a call and answers 202 with its id;
//! `DELETE /api/v1/vapi/calls/{callId}` erases one (and, with `?vapi=true`, Vapi's copy);
//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver` sends a pushed event again.

use lambda_http::http::Method;
use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let routes = wiring::initiator_service(&Env::from_process()).await?;
    let (svc, redelivery, auth) = (&routes.initiator, routes.redelivery.as_ref(), &routes.auth);
    let erase = &routes.erase;
    run(service_fn(move |req: Request| {
        async move {
            let path = req.uri().path();
            let erasing = (req.method() == Method::DELETE)
                .then(|| {
                    lambda::path_param(&req, "callId").or_else(|| api::call_id_from_path(path))
                })
                .flatten();
            let resp = match erasing {
                Some(id) => {
                    tracing::Span::current().record("call_id", id.as_str());
                    api::delete_call(erase, auth, req.headers(), &id, req.uri().query()).await
                }
                None => match lambda::path_param(&req, "eventId")
                    .or_else(|| api::redeliver_target(path))
                {
                    Some(event_id) => {
                        api::post_redeliver(redelivery, auth, req.headers(), &event_id).await
                    }
                    None => api::post_call(svc, auth, req.headers(), lambda::body(&req)).await,
                },
            };
            Ok::<_, Error>(lambda::response(resp))
        }
        .instrument(request_span!("call_initiator"))
    }))
    .await
}
