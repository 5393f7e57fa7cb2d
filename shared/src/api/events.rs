//! A call's history for people: `GET /api/v1/vapi/calls/{id}/events` (the timeline of what the
//! record says happened, every kept webhook and every pushed event with its attempts),
//! `POST /api/v1/vapi/calls/{id}/replay` (rebuild the record from its kept webhooks) and
//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver` (send a pushed event again).

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tracing::warn;

use super::{error, ok, require_operator_token, Code, Response, CALLS_PATH};
use crate::config::ApiAuth;
use crate::domain::CallId;
use crate::ports::{CallStore, PushRecord, PushStore, WebhookArchive, WebhookLog};
use crate::service::redeliver::{RedeliverError, Redelivery};
use crate::service::replay::{ReplayError, ReplayService};

pub const CALLBACKS_PATH: &str = "/api/v1/vapi/callbacks";

/// `/api/v1/vapi/calls/{id}/{action}` → `(id, action)`.
pub fn call_action(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix(CALLS_PATH)?.strip_prefix('/')?;
    let (id, action) = rest.trim_end_matches('/').rsplit_once('/')?;
    (!id.is_empty() && !id.contains('/')).then(|| (super::percent_decode(id), action))
}

/// `/api/v1/vapi/callbacks/{eventId}/redeliver` → the event id.
pub fn redeliver_target(path: &str) -> Option<String> {
    let rest = path.strip_prefix(CALLBACKS_PATH)?.strip_prefix('/')?;
    let id = rest.trim_end_matches('/').strip_suffix("/redeliver")?;
    (!id.is_empty() && !id.contains('/')).then(|| super::percent_decode(id))
}

fn push_json(p: &PushRecord) -> Value {
    json!({
        "eventId": p.event.id,
        "callId": p.event.data.call_id,
        "type": p.event.kind.as_str(),
        "createdAt": p.event.timestamp,
        "url": p.url,
        "state": p.state.as_str(),
        "nextAttemptAt": p.next_attempt_at,
        "attempts": p.attempts,
    })
}

/// The timeline: the record's milestones (while it lives), then each event and attempt, by time.
pub async fn get_events(
    calls: &dyn CallStore,
    events: Option<&dyn PushStore>,
    webhooks: Option<&dyn WebhookArchive>,
    auth: &ApiAuth,
    headers: &HeaderMap,
    raw_id: &str,
) -> Response {
    if let Some(denied) = require_operator_token(auth, headers) {
        return denied;
    }
    let Ok(id) = CallId::parse(raw_id) else {
        return error(Code::NotFound, format!("no call {raw_id}"));
    };
    let record = match calls.get(id.as_str()).await {
        Ok(r) => r.map(|v| v.record.result),
        Err(e) => return unavailable(e),
    };
    let pushes = match events {
        // An event kept only to fix what the bus gets (no callback URL) is no delivery to list.
        Some(store) => match store.list(id.as_str()).await {
            Ok(p) => p
                .into_iter()
                .filter(|p| !p.url.is_empty())
                .collect::<Vec<_>>(),
            Err(e) => return unavailable(e),
        },
        None => Vec::new(),
    };
    // What each delivery was, never its body: the timeline decompresses nothing it does not show.
    let log = match webhooks {
        Some(archive) => match archive.log(id.as_str()).await {
            Ok(k) => k,
            Err(e) => return unavailable(e),
        },
        None => WebhookLog::default(),
    };
    let kept = &log.kept;
    if record.is_none() && pushes.is_empty() && kept.is_empty() {
        return error(
            Code::NotFound,
            format!("no call {raw_id}, or its record and events have expired"),
        );
    }
    let mut timeline: Vec<Value> = Vec::new();
    if let Some(r) = &record {
        let mut mark = |at: &Option<String>, what: &str, extra: Value| {
            if let Some(at) = at {
                let mut e = json!({"at": at, "what": what});
                if let (Some(e), Value::Object(x)) = (e.as_object_mut(), extra) {
                    e.extend(x);
                }
                timeline.push(e);
            }
        };
        mark(&Some(r.created_at.clone()), "record.created", json!({}));
        mark(&r.webhook_received_at, "record.first_webhook", json!({}));
        mark(
            &r.fetched_at,
            "record.fetched",
            json!({"fetchAttempts": r.fetch_attempts, "fetchError": r.fetch_error}),
        );
        mark(
            &Some(r.updated_at.clone()),
            "record.updated",
            json!({"dataStatus": r.data_status.as_str()}),
        );
    }
    for w in kept {
        timeline.push(json!({"at": w.received_at, "what": "webhook.received",
            "messageType": w.message_type, "auth": w.auth, "outcome": w.outcome,
            "bytes": w.bytes}));
    }
    for p in &pushes {
        timeline.push(json!({"at": p.event.timestamp, "what": "push.made",
            "eventId": p.event.id, "type": p.event.kind.as_str()}));
        for a in &p.attempts {
            timeline.push(json!({"at": a.at, "what": "push.attempt", "eventId": p.event.id,
                "attempt": a.attempt, "status": a.status, "latencyMs": a.latency_ms, "error": a.error}));
        }
    }
    timeline.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
    ok(
        StatusCode::OK,
        json!({
            "callId": id.as_str(),
            "dataStatus": record.as_ref().map(|r| r.data_status.as_str()),
            "pushes": pushes.iter().map(push_json).collect::<Vec<_>>(),
            "webhooks": {"kept": kept.len(), "notKept": log.not_kept},
            "timeline": timeline,
        }),
    )
}

pub async fn post_replay(
    replay: Option<&ReplayService>,
    auth: &ApiAuth,
    headers: &HeaderMap,
    call_id: &str,
) -> Response {
    if let Some(denied) = require_operator_token(auth, headers) {
        return denied;
    }
    let Some(replay) = replay else {
        return error(
            Code::NotFound,
            "webhooks are not kept on this deployment (EVENTS_TABLE), so there is nothing to replay",
        );
    };
    match replay.replay(call_id).await {
        Ok(r) => ok(
            StatusCode::ACCEPTED,
            json!({"callId": r.call_id, "replayedEvents": r.events,
                "dataStatus": r.data_status.as_str(), "pollUrl": format!("{CALLS_PATH}/{}", r.call_id)}),
        ),
        Err(e @ ReplayError::NotFound(_)) => error(Code::NotFound, e.to_string()),
        Err(e @ ReplayError::Busy(..)) => error(Code::Conflict, e.to_string()),
        Err(ReplayError::Unavailable(e)) => unavailable(e),
    }
}

pub async fn post_redeliver(
    push: Option<&Redelivery>,
    auth: &ApiAuth,
    headers: &HeaderMap,
    event_id: &str,
) -> Response {
    if let Some(denied) = require_operator_token(auth, headers) {
        return denied;
    }
    let Some(push) = push else {
        return error(
            Code::NotFound,
            "pushed events are not configured on this deployment (CALLBACK_SIGNING_SECRET)",
        );
    };
    if !crate::domain::push::is_event_id(event_id) {
        // Named as given (the CLI and people search for it), but never echoed whole.
        let mut shown: String = event_id.chars().take(40).collect();
        if shown.len() < event_id.len() {
            shown.push('…');
        }
        return error(
            Code::NotFound,
            format!("no event {shown}: event ids are evt_ and 32 hex digits"),
        );
    }
    match push.redeliver(event_id).await {
        Ok(p) => ok(StatusCode::ACCEPTED, push_json(&p)),
        Err(RedeliverError::NotFound(id)) => error(
            Code::NotFound,
            format!("no event {id}: unknown, or past EVENT_RETENTION_DAYS"),
        ),
        Err(RedeliverError::Pending(id)) => error(
            Code::Conflict,
            format!("event {id} is still being delivered; redeliver it once it is delivered, gone or failed"),
        ),
        Err(e @ RedeliverError::BusOnly(_)) => error(Code::Conflict, e.to_string()),
        Err(e @ RedeliverError::NotQueued(_)) => error(Code::Unavailable, e.to_string()),
        Err(RedeliverError::Unavailable(e)) => unavailable(e),
    }
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    warn!(error = %e, "events unavailable");
    error(Code::Unavailable, "storage unavailable; retry later")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_client_auth_off_the_operator_routes_still_need_the_token() {
        let none = HeaderMap::new();
        let mut bearer = HeaderMap::new();
        bearer.insert("authorization", "Bearer t".parse().unwrap());
        let evt = "evt_0123456789abcdef0123456789abcdef";
        for auth in [ApiAuth::Authorizer("t".into()), ApiAuth::Off] {
            let statuses = [
                post_redeliver(None, &auth, &none, evt).await.status(),
                post_replay(None, &auth, &none, "c").await.status(),
                super::super::list_calls(None, &auth, &none, None)
                    .await
                    .status(),
            ];
            assert_eq!(statuses, [StatusCode::UNAUTHORIZED; 3], "{auth:?}");
        }
        // With the token they go on (here: to say the feature is not configured).
        let auth = ApiAuth::Authorizer("t".into());
        let statuses = [
            post_redeliver(None, &auth, &bearer, evt).await.status(),
            post_replay(None, &auth, &bearer, "c").await.status(),
            super::super::list_calls(None, &auth, &bearer, None)
                .await
                .status(),
        ];
        assert_eq!(statuses, [StatusCode::NOT_FOUND; 3]);
    }

    #[test]
    fn paths() {
        assert_eq!(
            call_action("/api/v1/vapi/calls/abc/events"),
            Some(("abc".to_owned(), "events"))
        );
        assert_eq!(
            call_action("/api/v1/vapi/calls/a%20b/replay/"),
            Some(("a b".to_owned(), "replay"))
        );
        assert_eq!(call_action("/api/v1/vapi/calls/abc"), None);
        assert_eq!(call_action("/api/v1/vapi/calls/a/b/events"), None);
        assert_eq!(
            redeliver_target("/api/v1/vapi/callbacks/evt_1/redeliver").as_deref(),
            Some("evt_1")
        );
        assert_eq!(redeliver_target("/api/v1/vapi/callbacks/evt_1"), None);
        assert_eq!(redeliver_target("/api/v1/vapi/callbacks//redeliver"), None);
    }
}
