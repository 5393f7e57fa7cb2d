//! The webhook Lambda: Vapi server messages in (`POST /api/v1/vapi/webhook`), partial call
//! records and enrichment jobs out; and `POST /api/v1/vapi/calls/{callId}/replay`, an operator
//! re-applying a call's kept webhooks (client API, API token).

use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let routes = wiring::webhook_service(&Env::from_process()).await?;
    let routes = &routes;
    run(service_fn(move |req: Request| {
        async move {
            let replayed = match api::call_action(req.uri().path()) {
                Some((id, "replay")) => Some(lambda::path_param(&req, "callId").unwrap_or(id)),
                _ => None,
            };
            let resp = match replayed {
                Some(id) => {
                    let replay = routes.replay.as_ref();
                    api::post_replay(replay, &routes.auth, req.headers(), &id).await
                }
                None => api::post_webhook(&routes.webhook, req.headers(), lambda::body(&req)).await,
            };
            Ok::<_, Error>(lambda::response(resp))
        }
        .instrument(request_span!("webhook"))
    }))
    .await
}
