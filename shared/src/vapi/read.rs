//! Lenient reading of Vapi JSON: unknown fields ignored, every field optional, numbers may be
//! strings, roles are free strings. Used for webhook messages and for `GET /call/{id}` answers.

use serde_json::{Map, Value};

use crate::domain::{
    parse_timestamp, Analysis, CallMetadata, CallMethod, CallSnapshot, CallStatus,
    ConversationMessage,
};

/// The value at a dotted path, if it is not null.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |cur, key| cur.get(key))
        .filter(|v| !v.is_null())
}

/// Text from a string, or a number/bool written out (Vapi's successEvaluation can be `true` or `8`).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn number(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// The first of `paths` (each tried on each root in order) that `read` accepts.
pub(crate) fn first<T>(
    roots: &[&Value],
    paths: &[&str],
    read: impl Fn(&Value) -> Option<T>,
) -> Option<T> {
    paths
        .iter()
        .flat_map(|p| roots.iter().map(move |r| (r, p)))
        .find_map(|(r, p)| at(r, p).and_then(&read))
}

pub(crate) fn messages(v: &Value) -> Option<Vec<ConversationMessage>> {
    let items = v.as_array()?;
    let out: Vec<_> = items
        .iter()
        .filter_map(|m| {
            Some(ConversationMessage {
                role: m
                    .get("role")
                    .and_then(text)
                    .unwrap_or_else(|| "unknown".into()),
                message: m.get("message").and_then(Value::as_str)?.to_owned(),
                time: m.get("time").and_then(number),
                seconds_from_start: m.get("secondsFromStart").and_then(number),
            })
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Correlation ids: `call.metadata`, then `call.assistantOverrides.metadata`, then
/// `assistant.metadata`, key by key, so a partial map in one place does not hide the others.
pub(crate) fn metadata(sources: &[Option<&Value>]) -> CallMetadata {
    let maps: Vec<&Map<String, Value>> = sources
        .iter()
        .flatten()
        .filter_map(|v| v.as_object())
        .collect();
    let get = |key: &str| maps.iter().find_map(|m| m.get(key).and_then(text));
    CallMetadata {
        provider_id: get("providerId"),
        service_request_id: get("serviceRequestId"),
        provider_name: get("providerName"),
        provider_phone: get("providerPhone"),
        service_needed: get("serviceNeeded"),
        user_criteria: get("userCriteria"),
        location: get("location"),
        urgency: get("urgency"),
        callback_url: get("callbackUrl"),
        call_method: get("callMethod").and_then(|m| match m.trim().to_ascii_lowercase().as_str() {
            "kestra" => Some(CallMethod::Kestra),
            "direct_vapi" => Some(CallMethod::DirectVapi),
            _ => None,
        }),
    }
}

/// Everything a source can say about a call, reading `roots` in order of precedence for each
/// field; `legacy` holds the old top-level duplicates, read last.
pub(crate) fn snapshot(call_id: String, roots: &[&Value], legacy: Option<&Value>) -> CallSnapshot {
    let with_legacy: Vec<&Value> = roots.iter().copied().chain(legacy).collect();
    let all = with_legacy.as_slice();
    let structured = first(roots, &["analysis.structuredData"], |v| {
        v.as_object().cloned()
    });
    let duration_seconds = first(all, &["durationSeconds"], number)
        .or_else(|| first(all, &["durationMs"], number).map(|ms| ms / 1000.0));
    CallSnapshot {
        call_id,
        call_status: first(roots, &["status"], |v| {
            v.as_str().and_then(CallStatus::parse)
        }),
        ended_reason: first(roots, &["endedReason"], text),
        created_at: first(roots, &["createdAt"], parse_timestamp),
        started_at: first(roots, &["startedAt"], parse_timestamp),
        ended_at: first(roots, &["endedAt"], parse_timestamp),
        duration_seconds,
        transcript: first(roots, &["artifact.transcript"], text)
            .or_else(|| first(all, &["transcript"], text)),
        messages: first(roots, &["artifact.messages", "messages"], messages)
            .or_else(|| legacy.and_then(|l| at(l, "messages")).and_then(messages))
            .unwrap_or_default(),
        analysis: Analysis {
            summary: first(roots, &["analysis.summary"], text)
                .or_else(|| first(all, &["summary"], text)),
            structured_data: structured,
            success_evaluation: first(roots, &["analysis.successEvaluation"], text),
        },
        cost: first(roots, &["cost"], number)
            .or_else(|| first(all, &["costBreakdown.total"], number)),
        recording_url: first(
            roots,
            &[
                "artifact.recording.mono.combinedUrl",
                "artifact.recordingUrl",
                "artifact.recording.stereoUrl",
            ],
            text,
        )
        .or_else(|| first(all, &["recordingUrl"], text)),
        metadata: CallMetadata::default(),
        customer_number: first(roots, &["customer.number"], text),
    }
}

/// Reads a `GET /call/{id}` answer.
pub fn snapshot_from_call(call: &Value) -> CallSnapshot {
    let id = call.get("id").and_then(text).unwrap_or_default();
    let mut s = snapshot(id, &[call], None);
    s.metadata = metadata(&[
        call.get("metadata"),
        at(call, "assistantOverrides.metadata"),
        at(call, "assistant.metadata"),
    ]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(name: &str) -> Value {
        let path = format!("{}/../fixtures/vapi/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn complete_get_call_sample() {
        let s = snapshot_from_call(&sample("get-call-complete.json"));
        assert_eq!(s.call_id, "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34");
        assert_eq!(s.call_status, Some(CallStatus::Ended));
        assert_eq!(s.ended_reason.as_deref(), Some("customer-ended-call"));
        assert!(s.transcript.unwrap().starts_with("AI: Hi, this is Riley"));
        assert_eq!(s.cost, Some(0.1372));
        assert_eq!(
            s.analysis.structured_data.unwrap()["available"],
            json!(true)
        );
        assert_eq!(
            s.recording_url.as_deref(),
            Some("https://storage.vapi.ai/5e2b7c91-mono.wav")
        );
        assert_eq!(s.customer_number.as_deref(), Some("+14155550123"));
        assert_eq!(s.messages.len(), 7);
        assert_eq!(
            s.metadata.provider_id.as_deref(),
            Some("prov_bayside_plumbing")
        );
    }

    #[test]
    fn running_get_call_sample_has_no_ending_yet() {
        let s = snapshot_from_call(&sample("get-call-in-progress.json"));
        assert_eq!(s.call_status, Some(CallStatus::InProgress));
        assert!(s.started_at.is_some() && s.ended_at.is_none());
        assert_eq!((s.ended_reason, s.transcript, s.cost), (None, None, None));
        assert_eq!(
            s.metadata.service_request_id.as_deref(),
            Some("sr_20261118_0042")
        );
    }

    #[test]
    fn numbers_as_strings_and_cost_fallback() {
        let s = snapshot_from_call(&json!({
            "id": "c1", "status": "ended", "costBreakdown": {"total": "0.61"},
            "analysis": {"successEvaluation": 8}, "durationMs": "90000",
            "assistantOverrides": {"metadata": {"providerId": "p", "callMethod": "kestra"}},
            "assistant": {"metadata": {"providerId": "ignored", "urgency": "flexible"}}
        }));
        assert_eq!(s.cost, Some(0.61));
        assert_eq!(s.analysis.success_evaluation.as_deref(), Some("8"));
        assert_eq!(s.duration_seconds, Some(90.0));
        assert_eq!(s.metadata.provider_id.as_deref(), Some("p"));
        assert_eq!(s.metadata.urgency.as_deref(), Some("flexible"));
        assert_eq!(s.metadata.call_method, Some(CallMethod::Kestra));
    }

    #[test]
    fn zero_cost_is_a_value() {
        let s = snapshot_from_call(&json!({"id": "c1", "cost": 0, "costBreakdown": {"total": 5}}));
        assert_eq!(s.cost, Some(0.0));
    }

    #[test]
    fn garbage_in_every_field_is_unknown_not_an_error() {
        let s = snapshot_from_call(&json!({
            "id": 42, "status": "teleporting", "startedAt": "yesterday", "cost": "cheap",
            "artifact": {"transcript": 7, "messages": "none"}, "analysis": []
        }));
        assert_eq!(s.call_id, "42");
        assert_eq!(s.call_status, None);
        assert_eq!(s.started_at, None);
        assert_eq!(s.cost, None);
        assert_eq!(s.transcript.as_deref(), Some("7"));
        assert!(s.messages.is_empty());
    }
}
