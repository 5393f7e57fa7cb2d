//! The call-initiator Lambda: `POST /api/v1/vapi/calls` places a call and answers 202 with its id;
//! `POST /api/v1/vapi/calls/{callId}/replay` rebuilds a call from its kept webhooks;
//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver` sends a pushed event again.

use lambda_http::{run, service_fn, Error, Request};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let routes = wiring::initiator_service(&Env::from_process()).await?;
    let (svc, push, replay, auth) = (
        &routes.initiator,
        routes.push.as_deref(),
        routes.replay.as_ref(),
        &routes.auth,
    );
    run(service_fn(move |req: Request| {
        async move {
            let path = req.uri().path();
            let replayed = match api::call_action(path) {
                Some((id, "replay")) => Some(lambda::path_param(&req, "callId").unwrap_or(id)),
                _ => None,
            };
            let resp = if let Some(id) = replayed {
                api::post_replay(replay, auth, req.headers(), &id).await
            } else if let Some(event_id) =
                lambda::path_param(&req, "eventId").or_else(|| api::redeliver_target(path))
            {
                api::post_redeliver(push, auth, req.headers(), &event_id).await
            } else {
                api::post_call(svc, auth, req.headers(), lambda::body(&req)).await
            };
            Ok::<_, Error>(lambda::response(resp))
        }
        .instrument(request_span!("call_initiator"))
    }))
    .await
}
