//! The call-status Lambda (read-only): `GET /api/v1/vapi/calls/{callId}`,
//! `GET /api/v1/vapi/calls/{callId}/events` (the call's timeline: kept webhooks and pushed events,
//! when `EVENTS_TABLE` is set), `GET /api/v1/vapi/calls` (the listing, with `CALL_INDEX_TABLE`)
//! `GET /api/v1/vapi/stats` (how the system is doing, with `CALL_INDEX_TABLE`),
//! `GET /openapi.json` (the API's description) and `GET /health`.

use lambda_http::{run, service_fn, Error, Request};
use ringback::ports::{PushStore, WebhookArchive};
use ringback::{api, config::Env, lambda, request_span, telemetry, wiring};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let routes = wiring::status_service(&Env::from_process()).await?;
    let (svc, search, auth) = (&routes.status, routes.search.as_ref(), &routes.auth);
    let stats = routes.stats.as_ref();
    let pushes = routes.events.as_deref().map(|e| e as &dyn PushStore);
    let kept = routes.events.as_deref().map(|e| e as &dyn WebhookArchive);
    run(service_fn(move |req: Request| {
        let span = request_span!("call_status");
        async move {
            let path = req.uri().path();
            if path == "/health" {
                return Ok::<_, Error>(lambda::response(api::health()));
            }
            if path == "/openapi.json" {
                return Ok(lambda::response(api::openapi_json(auth, req.headers())));
            }
            if path.trim_end_matches('/') == api::STATS_PATH {
                let resp = match stats {
                    Some(stats) => {
                        api::get_stats(stats, auth, req.headers(), req.uri().query()).await
                    }
                    None => api::error(
                        api::Code::NotFound,
                        "this deployment has no call index (CALL_INDEX_TABLE): nothing to count from",
                    ),
                };
                return Ok(lambda::response(resp));
            }
            if path.trim_end_matches('/') == api::CALLS_PATH {
                let resp = api::list_calls(search, auth, req.headers(), req.uri().query()).await;
                return Ok(lambda::response(resp));
            }
            // Both call routes carry {callId}: the matched route tells them apart (a call may be
            // named "events"), else the path's last segment.
            let action = api::call_action(path);
            let timeline = match lambda::route_key(&req) {
                Some(route) if route.contains("{callId}") => route.ends_with("/events"),
                _ => action.as_ref().is_some_and(|(_, a)| *a == "events"),
            };
            let id = lambda::path_param(&req, "callId").or_else(|| match action {
                Some((id, "events")) if timeline => Some(id),
                _ => api::call_id_from_path(path),
            });
            let resp = match id {
                Some(id) => {
                    tracing::Span::current().record("call_id", id.as_str());
                    if timeline {
                        let calls = svc.store.as_ref();
                        api::get_events(calls, pushes, kept, auth, req.headers(), &id).await
                    } else {
                        api::get_call(svc, auth, req.headers(), &id).await
                    }
                }
                None => api::error(api::Code::NotFound, "no such route"),
            };
            Ok(lambda::response(resp))
        }
        .instrument(span)
    }))
    .await
}
