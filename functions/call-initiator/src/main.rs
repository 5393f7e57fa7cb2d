//! The call-initiator Lambda: `POST /api/v1/vapi/calls` places a call and answers 202 with its id.

use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let (svc, auth) = wiring::initiator_service(&Env::from_process()).await?;
    let (svc, auth) = (&svc, &auth);
    run(service_fn(move |req: Request| {
        async move {
            let resp = api::post_call(svc, auth, req.headers(), lambda::body(&req)).await;
            Ok::<_, Error>(lambda::response(resp))
        }
        .instrument(request_span!("call_initiator"))
    }))
    .await
}
