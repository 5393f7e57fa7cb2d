//! The webhook Lambda: Vapi server messages in, partial call records and enrichment jobs out.

use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let svc = wiring::webhook_service(&Env::from_process()).await?;
    let svc = &svc;
    run(service_fn(move |req: Request| {
        async move {
            let resp = api::post_webhook(svc, req.headers(), lambda::body(&req)).await;
            Ok::<_, Error>(lambda::response(resp))
        }
        .instrument(request_span!("webhook"))
    }))
    .await
}
