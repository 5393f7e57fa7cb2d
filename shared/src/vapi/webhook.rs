//! Vapi server messages (api.md §2): only the envelope is strict; everything else is read leniently.

use serde_json::Value;

use super::read::{at, metadata, snapshot, text};
use crate::domain::{CallId, CallSnapshot, CallStatus, EventKey, InvalidCallId};

#[derive(Debug, Clone, PartialEq)]
pub enum CallEventKind {
    EndOfCallReport,
    StatusUpdate { status: Option<String> },
}

impl CallEventKind {
    /// Vapi's `message.type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EndOfCallReport => "end-of-call-report",
            Self::StatusUpdate { .. } => "status-update",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookMessage {
    /// `status-update` or `end-of-call-report`: something to record.
    Call {
        kind: CallEventKind,
        snapshot: Box<CallSnapshot>,
    },
    /// Any other type, known or not: answered 200 and not stored.
    Ignored { message_type: String },
}

impl WebhookMessage {
    pub fn event_key(&self) -> Option<EventKey> {
        match self {
            Self::Call {
                kind: CallEventKind::EndOfCallReport,
                ..
            } => Some(EventKey::end_of_call_report()),
            Self::Call {
                kind: CallEventKind::StatusUpdate { status },
                ..
            } => Some(EventKey::status_update(
                status.as_deref().unwrap_or("unknown"),
            )),
            Self::Ignored { .. } => None,
        }
    }
}

/// Why a body is not a Vapi server message; the text names the JSON path at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("$.message must be an object")]
    NoMessage,
    #[error("$.message.type must be a string")]
    NoType,
    #[error("$.message.call.id must be a non-empty string for {0}")]
    NoCallId(String),
    #[error("$.message.call.id is invalid: {0}")]
    BadCallId(InvalidCallId),
}

pub fn parse_webhook(body: &[u8]) -> Result<WebhookMessage, PayloadError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let root = root.as_object().ok_or(PayloadError::NotObject)?;
    let msg = root
        .get("message")
        .filter(|m| m.is_object())
        .ok_or(PayloadError::NoMessage)?;
    let kind = match msg
        .get("type")
        .and_then(Value::as_str)
        .ok_or(PayloadError::NoType)?
    {
        "end-of-call-report" => CallEventKind::EndOfCallReport,
        "status-update" => CallEventKind::StatusUpdate {
            status: msg.get("status").and_then(text),
        },
        other => {
            return Ok(WebhookMessage::Ignored {
                message_type: other.to_owned(),
            })
        }
    };
    let call_id = at(msg, "call.id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            PayloadError::NoCallId(match &kind {
                CallEventKind::EndOfCallReport => "end-of-call-report".into(),
                CallEventKind::StatusUpdate { .. } => "status-update".into(),
            })
        })?;
    let call_id = CallId::parse(call_id)
        .map_err(PayloadError::BadCallId)?
        .as_str()
        .to_owned();

    let call = msg.get("call").unwrap_or(&Value::Null);
    // Message level first, then the embedded call; the old top-level duplicates live on the message too,
    // so they are read last through `legacy`.
    let mut snap = snapshot(call_id, &[msg, call], Some(msg));
    snap.call_status = match &kind {
        CallEventKind::EndOfCallReport => Some(CallStatus::Ended),
        CallEventKind::StatusUpdate { status } => {
            status.as_deref().and_then(CallStatus::parse).or_else(|| {
                call.get("status")
                    .and_then(Value::as_str)
                    .and_then(CallStatus::parse)
            })
        }
    };
    snap.metadata = metadata(&[
        call.get("metadata"),
        at(call, "assistantOverrides.metadata"),
        at(msg, "assistant.metadata"),
    ]);
    Ok(WebhookMessage::Call {
        kind,
        snapshot: Box::new(snap),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallMethod;
    use serde_json::json;

    fn sample(name: &str) -> Vec<u8> {
        let path = format!("{}/../fixtures/vapi/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).expect(&path)
    }

    fn call(body: Value) -> CallSnapshot {
        match parse_webhook(body.to_string().as_bytes()).unwrap() {
            WebhookMessage::Call { snapshot, .. } => *snapshot,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn end_of_call_report_sample() {
        let WebhookMessage::Call { kind, snapshot: s } =
            parse_webhook(&sample("end-of-call-report.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!(kind, CallEventKind::EndOfCallReport);
        assert_eq!(s.call_id, "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34");
        assert_eq!(s.call_status, Some(CallStatus::Ended));
        assert_eq!(s.ended_reason.as_deref(), Some("customer-ended-call"));
        assert_eq!(s.cost, Some(0.1372));
        assert_eq!(s.messages.len(), 7);
        assert_eq!(s.messages[1].role, "bot");
        assert!(s
            .analysis
            .summary
            .unwrap()
            .starts_with("Bayside Plumbing can come"));
        assert!(s.started_at.is_some() && s.ended_at.is_some());
        assert_eq!(
            s.recording_url.as_deref(),
            Some("https://storage.vapi.ai/5e2b7c91-mono.wav")
        );
    }

    #[test]
    fn legacy_report_sample_reads_the_top_level_fields() {
        let WebhookMessage::Call { snapshot: s, .. } =
            parse_webhook(&sample("end-of-call-report-legacy.json")).unwrap()
        else {
            panic!()
        };
        assert!(s.transcript.unwrap().starts_with("AI: Hi, this is Riley"));
        assert!(s
            .analysis
            .summary
            .unwrap()
            .starts_with("Bayside Plumbing can come"));
        assert_eq!(s.messages.len(), 7);
        assert_eq!(s.cost, Some(0.1372));
        assert_eq!(
            s.recording_url.as_deref(),
            Some("https://storage.vapi.ai/5e2b7c91-mono.wav")
        );
        assert!(s.started_at.is_some() && s.ended_at.is_some());
    }

    #[test]
    fn status_update_samples_follow_the_lifecycle() {
        for (file, status) in [
            ("status-update-queued.json", CallStatus::Queued),
            ("status-update-ringing.json", CallStatus::Ringing),
            ("status-update-in-progress.json", CallStatus::InProgress),
            ("status-update-ended.json", CallStatus::Ended),
        ] {
            let msg = parse_webhook(&sample(file)).unwrap();
            assert_eq!(
                msg.event_key(),
                Some(EventKey::status_update(status.as_str())),
                "{file}"
            );
            let WebhookMessage::Call { snapshot, .. } = msg else {
                panic!("{file}")
            };
            assert_eq!(snapshot.call_status, Some(status), "{file}");
            assert_eq!(
                snapshot.metadata.provider_id.as_deref(),
                Some("prov_bayside_plumbing")
            );
        }
    }

    #[test]
    fn live_message_sample_is_ignored() {
        assert_eq!(
            parse_webhook(&sample("conversation-update.json")).unwrap(),
            WebhookMessage::Ignored {
                message_type: "conversation-update".into()
            }
        );
    }

    #[test]
    fn envelope_errors_name_the_path() {
        let cases: Vec<(&[u8], PayloadError)> = vec![
            (b"not json", PayloadError::NotJson(String::new())),
            (b"[1]", PayloadError::NotObject),
            (b"{}", PayloadError::NoMessage),
            (br#"{"message": null}"#, PayloadError::NoMessage),
            (br#"{"message": {"type": 5}}"#, PayloadError::NoType),
            (
                br#"{"message": {"type": "status-update"}}"#,
                PayloadError::NoCallId(String::new()),
            ),
            (
                br#"{"message": {"type": "end-of-call-report", "call": {"id": ""}}}"#,
                PayloadError::NoCallId(String::new()),
            ),
            (
                br#"{"message": {"type": "end-of-call-report", "call": {"id": 7}}}"#,
                PayloadError::NoCallId(String::new()),
            ),
        ];
        for (body, want) in cases {
            let got = parse_webhook(body).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(parse_webhook(b"{}")
            .unwrap_err()
            .to_string()
            .contains("$.message"));
    }

    #[test]
    fn other_types_are_ignored_not_rejected() {
        for t in [
            "tool-calls",
            "assistant.started",
            "conversation-update",
            "brand-new-type",
        ] {
            let body = json!({"message": {"type": t}}).to_string();
            assert_eq!(
                parse_webhook(body.as_bytes()).unwrap(),
                WebhookMessage::Ignored {
                    message_type: t.into()
                }
            );
        }
    }

    #[test]
    fn message_level_wins_then_call_then_legacy() {
        let s = call(json!({"message": {
            "type": "end-of-call-report",
            "endedReason": "voicemail",
            "analysis": {"summary": "message level"},
            "summary": "legacy",
            "transcript": "legacy transcript",
            "durationSeconds": "61.5",
            "costBreakdown": {"total": "0.2"},
            "call": {"id": "c1", "endedReason": "customer-ended-call", "analysis": {"summary": "call level"},
                     "metadata": {"providerId": "from-call"},
                     "assistantOverrides": {"metadata": {"providerId": "overrides", "serviceRequestId": "sr"}}},
            "assistant": {"metadata": {"callMethod": "kestra"}}
        }}));
        assert_eq!(s.ended_reason.as_deref(), Some("voicemail"));
        assert_eq!(s.analysis.summary.as_deref(), Some("message level"));
        assert_eq!(s.transcript.as_deref(), Some("legacy transcript"));
        assert_eq!(s.duration_seconds, Some(61.5));
        assert_eq!(s.cost, Some(0.2));
        assert_eq!(s.metadata.provider_id.as_deref(), Some("from-call"));
        assert_eq!(s.metadata.service_request_id.as_deref(), Some("sr"));
        assert_eq!(s.metadata.call_method, Some(CallMethod::Kestra));
    }

    #[test]
    fn call_level_used_when_message_level_is_missing() {
        let s = call(
            json!({"message": {"type": "end-of-call-report", "timestamp": "2026-03-02T15:05:18Z",
            "call": {"id": "c1", "endedReason": "customer-busy", "cost": 0,
                     "artifact": {"transcript": "AI: from call"}}}}),
        );
        assert_eq!(s.ended_reason.as_deref(), Some("customer-busy"));
        assert_eq!(s.cost, Some(0.0));
        assert_eq!(s.transcript.as_deref(), Some("AI: from call"));
    }

    #[test]
    fn status_update_status_from_message_then_call() {
        let s = call(
            json!({"message": {"type": "status-update", "call": {"id": "c1", "status": "ringing"}}}),
        );
        assert_eq!(s.call_status, Some(CallStatus::Ringing));
        let s = call(
            json!({"message": {"type": "status-update", "status": "in-progress", "call": {"id": "c1", "status": "queued"}}}),
        );
        assert_eq!(s.call_status, Some(CallStatus::InProgress));
    }
}
