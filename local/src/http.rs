//! One HTTP server for every route of api.md §2, calling the same handlers as the Lambda functions.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Method;
use ringback::api::{self, Code};
use ringback::config::ApiAuth;
use ringback::ports::{CallStore, PushStore, WebhookArchive};
use ringback::search::SearchService;
use ringback::service::erase::EraseService;
use ringback::service::initiate::InitiatorService;
use ringback::service::redeliver::Redelivery;
use ringback::service::replay::ReplayService;
use ringback::service::status::StatusService;
use ringback::service::webhook::WebhookService;
use ringback::stats::StatsService;
use tracing::Instrument;

use crate::durability::GroupSync;
use crate::reference;

pub struct Routes {
    pub webhook: WebhookService,
    pub status: StatusService,
    /// `GET /api/v1/vapi/calls`; `None` without `CALL_INDEX_TABLE`.
    pub search: Option<SearchService>,
    pub initiator: InitiatorService,
    pub api_auth: ApiAuth,
    /// Awaited before a write is acknowledged (see `durability`).
    pub durability: GroupSync,
    pub calls: Arc<dyn CallStore>,
    /// Pushed events (read side), when pushes are on.
    pub events: Option<Arc<dyn PushStore>>,
    pub redelivery: Option<Redelivery>,
    pub webhooks: Option<Arc<dyn WebhookArchive>>,
    pub replay: Option<ReplayService>,
    /// `/dev/callbacks`: a receiver for pushed events, to see the loop offline.
    pub receiver: crate::receiver::DevReceiver,
    /// `/console`: what the operator console is told about this runner.
    pub console: crate::console::ConsoleConfig,
    /// `DELETE /api/v1/vapi/calls/{id}`.
    pub erase: Arc<EraseService>,
    /// `GET /api/v1/vapi/stats`; `None` without `CALL_INDEX_TABLE`.
    pub stats: Option<StatsService>,
}

pub fn router(routes: Arc<Routes>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(routes)
}

async fn dispatch(State(r): State<Arc<Routes>>, req: Request) -> Response {
    let span =
        tracing::info_span!("request", method = %req.method(), call_id = tracing::field::Empty);
    let resp = route(&r, req).instrument(span).await;
    let (parts, bytes) = resp.into_parts();
    Response::from_parts(parts, Body::from(bytes)).into_response()
}

async fn route(r: &Routes, req: Request) -> api::Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/health") => api::health(),
        (&Method::GET, reference::OPENAPI_PATH) => reference::openapi(),
        (&Method::GET, p) if p == reference::DOCS_PATH || p.starts_with("/docs/") => {
            reference::docs(p)
        }
        (&Method::GET, p) if is_console(p) => crate::console::serve(p, &parts.headers, &r.console),
        (&Method::GET, crate::receiver::PATH) => r.receiver.list(),
        (&Method::POST, crate::receiver::PATH) => match read_limited(body, 1 << 20).await {
            Ok(bytes) => r.receiver.receive(&parts.headers, &bytes),
            Err(()) => api::error(Code::PayloadTooLarge, "an event is at most 1 MiB here"),
        },
        (&Method::POST, api::WEBHOOK_PATH) => {
            // One byte past the limit is enough to know it is too large, without buffering the rest.
            let limit = r.webhook.max_bytes;
            match read_limited(body, limit).await {
                Ok(bytes) => {
                    let resp = api::post_webhook(&r.webhook, &parts.headers, &bytes).await;
                    durable(r, resp).await
                }
                Err(()) => api::error(
                    Code::PayloadTooLarge,
                    format!("body exceeds the limit of {limit} bytes"),
                ),
            }
        }
        (&Method::POST, api::CALLS_PATH) => match read_limited(body, 64 * 1024).await {
            Ok(bytes) => {
                let resp = api::post_call(&r.initiator, &r.api_auth, &parts.headers, &bytes).await;
                durable(r, resp).await
            }
            Err(()) => api::error(Code::PayloadTooLarge, "a call request is at most 64 KiB"),
        },
        (&Method::GET, api::CALLS_PATH) => {
            let search = r.search.as_ref();
            api::list_calls(search, &r.api_auth, &parts.headers, parts.uri.query()).await
        }
        (&Method::GET, api::STATS_PATH) => match &r.stats {
            Some(stats) => {
                api::get_stats(stats, &r.api_auth, &parts.headers, parts.uri.query()).await
            }
            None => api::error(
                Code::NotFound,
                "this runner has no call index (CALL_INDEX_TABLE): nothing to count from",
            ),
        },
        (&Method::DELETE, p) if api::call_id_from_path(p).is_some() => {
            let id = api::call_id_from_path(p).unwrap_or_default();
            tracing::Span::current().record("call_id", id.as_str());
            let query = parts.uri.query();
            let resp = api::delete_call(&r.erase, &r.api_auth, &parts.headers, &id, query).await;
            durable(r, resp).await
        }
        (&Method::GET, p) if api::call_id_from_path(p).is_some() => {
            let id = api::call_id_from_path(p).unwrap_or_default();
            tracing::Span::current().record("call_id", id.as_str());
            api::get_call(&r.status, &r.api_auth, &parts.headers, &id).await
        }
        (&Method::GET, p) if api::call_action(p).is_some_and(|(_, a)| a == "events") => {
            let (id, _) = api::call_action(p).unwrap_or_default();
            tracing::Span::current().record("call_id", id.as_str());
            let (events, kept) = (r.events.as_deref(), r.webhooks.as_deref());
            api::get_events(
                r.calls.as_ref(),
                events,
                kept,
                &r.api_auth,
                &parts.headers,
                &id,
            )
            .await
        }
        (&Method::POST, p) if api::call_action(p).is_some_and(|(_, a)| a == "replay") => {
            let (id, _) = api::call_action(p).unwrap_or_default();
            tracing::Span::current().record("call_id", id.as_str());
            let resp = api::post_replay(r.replay.as_ref(), &r.api_auth, &parts.headers, &id).await;
            durable(r, resp).await
        }
        (&Method::POST, p) if api::redeliver_target(p).is_some() => {
            let id = api::redeliver_target(p).unwrap_or_default();
            let resp =
                api::post_redeliver(r.redelivery.as_ref(), &r.api_auth, &parts.headers, &id).await;
            durable(r, resp).await
        }
        _ => match allowed_methods(&path) {
            Some(allow) => {
                let mut r = api::error(
                    Code::MethodNotAllowed,
                    format!("{} is not allowed here: {allow}", parts.method),
                );
                r.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
                r
            }
            None => api::error(
                Code::NotFound,
                format!("no route for {} {path}", parts.method),
            ),
        },
    }
}

/// The methods a path's routes take (a path served with another method is 405 and says these).
fn allowed_methods(p: &str) -> Option<&'static str> {
    let action = api::call_action(p);
    Some(match p {
        api::WEBHOOK_PATH => "POST",
        api::CALLS_PATH | crate::receiver::PATH => "GET, POST",
        "/health" | reference::OPENAPI_PATH | reference::DOCS_PATH | api::STATS_PATH => "GET",
        _ if api::call_id_from_path(p).is_some() => "GET, DELETE",
        _ if p.starts_with("/docs/") || is_console(p) => "GET",
        _ if action.as_ref().is_some_and(|(_, a)| *a == "events") => "GET",
        _ if action.as_ref().is_some_and(|(_, a)| *a == "replay") => "POST",
        _ if api::redeliver_target(p).is_some() => "POST",
        _ => return None,
    })
}

fn is_console(p: &str) -> bool {
    p == crate::console::PATH || p.starts_with("/console/")
}

/// Answers only once what the request wrote is on disk; if it cannot be, the caller retries (503).
async fn durable(r: &Routes, resp: api::Response) -> api::Response {
    match r.durability.durable().await {
        Ok(()) => resp,
        Err(why) => {
            tracing::error!(error = %why, "the store could not make a write durable");
            api::error(Code::Unavailable, "storage is unavailable; retry")
        }
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ()> {
    to_bytes(body, limit).await.map_err(|_| ())
}
