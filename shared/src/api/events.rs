//! A call's history for people: `GET /api/v1/vapi/calls/{id}/events` (the timeline of what the
//! record says happened, every kept webhook and every pushed event with its attempts),
//! `POST /api/v1/vapi/calls/{id}/replay` (rebuild the record from its kept webhooks) and
//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver` (send a pushed event again).

use http::{HeaderMap, StatusCode};
use tracing::warn;

use super::wire::{Moment, Push, ReplayAccepted, Timeline, WebhookCounts};
use super::{error, ok_typed, require_operator_token, Code, Response, CALLS_PATH};
use crate::config::ApiAuth;
use crate::domain::CallId;
use crate::ports::{CallStore, PushStore, WebhookArchive, WebhookLog};
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
        Ok(r) => r.map(|v| v.record),
        Err(e) => return unavailable(e),
    };
    if let Some(at) = record.as_ref().and_then(|r| r.book.erased_at.clone()) {
        // Erased: its history went with it; the erase is the one moment left.
        return ok_typed(
            StatusCode::OK,
            &Timeline {
                call_id: id.as_str().to_owned(),
                data_status: None,
                pushes: Vec::new(),
                webhooks: WebhookCounts {
                    kept: 0,
                    not_kept: 0,
                },
                timeline: vec![Moment::Erased { at }],
            },
        );
    }
    let record = record.map(|r| r.result);
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
    let mut timeline: Vec<Moment> = Vec::new();
    if let Some(r) = &record {
        timeline.push(Moment::RecordCreated {
            at: r.created_at.clone(),
        });
        if let Some(at) = &r.webhook_received_at {
            timeline.push(Moment::FirstWebhook { at: at.clone() });
        }
        if let Some(at) = &r.fetched_at {
            timeline.push(Moment::Fetched {
                at: at.clone(),
                fetch_attempts: r.fetch_attempts,
                fetch_error: r.fetch_error.clone(),
            });
        }
        timeline.push(Moment::Updated {
            at: r.updated_at.clone(),
            data_status: r.data_status,
        });
    }
    for w in kept {
        timeline.push(Moment::WebhookReceived {
            at: w.received_at.clone(),
            message_type: w.message_type.clone(),
            auth: w.auth.clone(),
            outcome: w.outcome.clone(),
            bytes: w.bytes,
        });
    }
    for p in &pushes {
        timeline.push(Moment::PushMade {
            at: p.event.timestamp.clone(),
            event_id: p.event.id.clone(),
            kind: p.event.kind,
        });
        timeline.extend(p.attempts.iter().map(|a| Moment::PushAttempt {
            at: a.at.clone(),
            event_id: p.event.id.clone(),
            attempt: a.attempt,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
        }));
    }
    timeline.sort_by(|a, b| a.at().cmp(b.at()));
    ok_typed(
        StatusCode::OK,
        &Timeline {
            call_id: id.as_str().to_owned(),
            data_status: record.as_ref().map(|r| r.data_status),
            pushes: pushes.iter().map(Push::from).collect(),
            webhooks: WebhookCounts {
                kept: kept.len(),
                not_kept: log.not_kept,
            },
            timeline,
        },
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
        Ok(r) => ok_typed(
            StatusCode::ACCEPTED,
            &ReplayAccepted {
                poll_url: format!("{CALLS_PATH}/{}", r.call_id),
                call_id: r.call_id,
                replayed_events: r.events,
                data_status: r.data_status,
            },
        ),
        Err(e @ ReplayError::NotFound(_)) => error(Code::NotFound, e.to_string()),
        Err(e @ ReplayError::Busy(..)) => error(Code::Conflict, e.to_string()),
        Err(e @ ReplayError::Erased(..)) => error(Code::Gone, e.to_string()),
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
        Ok(p) => ok_typed(StatusCode::ACCEPTED, &Push::from(&p)),
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
