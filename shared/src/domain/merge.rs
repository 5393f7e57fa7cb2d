//! Merging never loses information (api.md §3): the longer transcript wins, analysis merges key by
//! key, and a later value never replaces a present one with an empty one.

use serde_json::{Map, Value};

use super::{
    duration_minutes, outcome_from_ended_reason, to_iso, CallResult, CallSnapshot, CallStatus,
};

/// Vapi's data is complete when the call ended, the transcript says something (> 50 characters)
/// and the analysis ran (a summary or structured data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    /// The call is over but Vapi's post-processing has not landed yet.
    Incomplete,
    /// The call has not ended.
    Running,
}

pub fn is_complete(s: &CallSnapshot) -> Completeness {
    if s.call_status != Some(CallStatus::Ended) {
        return Completeness::Running;
    }
    let transcript_ok = s
        .transcript
        .as_deref()
        .is_some_and(|t| t.chars().count() > 50);
    let analysis_ok = non_empty(&s.analysis.summary).is_some()
        || s.analysis
            .structured_data
            .as_ref()
            .is_some_and(|m| !m.is_empty());
    if transcript_ok && analysis_ok {
        Completeness::Complete
    } else {
        Completeness::Incomplete
    }
}

/// Folds what `snap` says into `rec`. Returns whether anything a client can see changed.
pub fn merge_snapshot(rec: &mut CallResult, snap: &CallSnapshot) -> bool {
    let before = rec.clone();

    if let Some(s) = snap.call_status {
        rec.call_status = rec.call_status.max(s);
    }
    if let Some(reason) = non_empty(&snap.ended_reason) {
        rec.ended_reason = Some(reason.to_owned());
    }
    if let Some(reason) = rec.ended_reason.as_deref() {
        rec.status = Some(outcome_from_ended_reason(reason));
    }

    take_longer(&mut rec.transcript, &snap.transcript);
    if snap.messages.len() > rec.messages.len() {
        rec.messages = snap.messages.clone();
    }

    let a = &snap.analysis;
    if let Some(s) = non_empty(&a.summary) {
        rec.analysis.summary = Some(s.to_owned());
    }
    if let Some(s) = non_empty(&a.success_evaluation) {
        rec.analysis.success_evaluation = Some(s.to_owned());
    }
    if let Some(incoming) = &a.structured_data {
        merge_map(
            rec.analysis.structured_data.get_or_insert_with(Map::new),
            incoming,
        );
    }

    if snap.cost.is_some() {
        rec.cost = snap.cost;
    }
    if let Some(url) = non_empty(&snap.recording_url) {
        rec.recording_url = Some(url.to_owned());
    }

    if let Some(t) = snap.started_at {
        rec.started_at = Some(to_iso(t));
    }
    if let Some(t) = snap.ended_at {
        rec.ended_at = Some(to_iso(t));
    }
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| super::parse_timestamp(&Value::String(s.to_owned())))
    };
    match duration_minutes(parse(&rec.started_at), parse(&rec.ended_at)) {
        Some(d) => rec.duration = Some(d),
        None => {
            if let Some(secs) = snap.duration_seconds.filter(|s| s.is_finite() && *s >= 0.0) {
                rec.duration = Some(secs / 60.0);
            }
        }
    }

    fill_metadata(rec, snap);
    *rec != before
}

/// The initiator's data is authoritative: metadata only fills what the record lacks.
fn fill_metadata(rec: &mut CallResult, snap: &CallSnapshot) {
    let m = &snap.metadata;
    fill(&mut rec.provider_id, &m.provider_id);
    fill(&mut rec.service_request_id, &m.service_request_id);
    fill(&mut rec.provider.name, &m.provider_name);
    fill(&mut rec.provider.phone, &m.provider_phone);
    fill(&mut rec.provider.phone, &snap.customer_number);
    fill(&mut rec.provider.service, &m.service_needed);
    fill(&mut rec.provider.location, &m.location);
    fill(&mut rec.request.criteria, &m.user_criteria);
    fill(&mut rec.request.urgency, &m.urgency);
    fill(&mut rec.callback_url, &m.callback_url);
    if let Some(method) = m.call_method {
        rec.call_method = method;
    }
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if non_empty(slot).is_none() {
        if let Some(v) = non_empty(value) {
            *slot = Some(v.to_owned());
        }
    }
}

/// What a call's durable rows (provider row, interaction log) already hold, read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prior {
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub structured_data: Option<Map<String, Value>>,
    pub duration: Option<f64>,
    pub cost: Option<f64>,
}

/// Folds what the rows already hold under the record being saved, so that a save never takes
/// data away from them (a record rebuilt from Vapi after the first one expired may know less):
/// the record wins wherever it has a value; the longer transcript, every structured-data key, a
/// summary, the duration and the cost the rows had are kept.
pub fn keep_prior(r: &mut CallResult, prior: &Prior) {
    take_longer(&mut r.transcript, &prior.transcript);
    if non_empty(&r.analysis.summary).is_none() {
        if let Some(s) = non_empty(&prior.summary) {
            r.analysis.summary = Some(s.to_owned());
        }
    }
    if let Some(old) = &prior.structured_data {
        let mut merged = old.clone();
        if let Some(new) = &r.analysis.structured_data {
            merge_map(&mut merged, new);
        }
        r.analysis.structured_data = Some(merged);
    }
    r.duration = r.duration.or(prior.duration);
    r.cost = r.cost.or(prior.cost);
}

fn take_longer(slot: &mut Option<String>, value: &Option<String>) {
    if let Some(v) = non_empty(value) {
        let current = slot.as_deref().map_or(0, |s| s.chars().count());
        if v.chars().count() > current {
            *slot = Some(v.to_owned());
        }
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn merge_map(into: &mut Map<String, Value>, incoming: &Map<String, Value>) {
    for (k, v) in incoming {
        match (into.get_mut(k), v) {
            (Some(Value::Object(cur)), Value::Object(new)) => merge_map(cur, new),
            (Some(cur), new) if is_empty_value(new) && !is_empty_value(cur) => {}
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{parse_timestamp, Analysis, CallMetadata, Outcome};
    use serde_json::json;

    const LONG: &str = "AI: Hello, is this Acme Plumbing?\nUser: Yes, how can I help you today?";

    fn snap() -> CallSnapshot {
        CallSnapshot {
            call_id: "c1".into(),
            ..Default::default()
        }
    }

    fn ended(transcript: &str, summary: Option<&str>, data: Option<Value>) -> CallSnapshot {
        CallSnapshot {
            call_status: Some(CallStatus::Ended),
            transcript: Some(transcript.into()),
            analysis: Analysis {
                summary: summary.map(Into::into),
                structured_data: data.and_then(|v| v.as_object().cloned()),
                success_evaluation: None,
            },
            ..snap()
        }
    }

    #[test]
    fn completeness_rules() {
        use Completeness::*;
        let cases = [
            (ended(LONG, Some("Booked"), None), Complete),
            (
                ended(LONG, None, Some(json!({"availability": "available"}))),
                Complete,
            ),
            (ended(LONG, None, Some(json!({}))), Incomplete),
            (ended(LONG, Some("  "), None), Incomplete),
            (ended(&"x".repeat(50), Some("s"), None), Incomplete),
            (ended(&"x".repeat(51), Some("s"), None), Complete),
            (ended(&"é".repeat(51), Some("s"), None), Complete),
            (
                CallSnapshot {
                    call_status: Some(CallStatus::InProgress),
                    ..ended(LONG, Some("s"), None)
                },
                Running,
            ),
            (
                CallSnapshot {
                    call_status: None,
                    ..ended(LONG, Some("s"), None)
                },
                Running,
            ),
        ];
        for (i, (s, want)) in cases.into_iter().enumerate() {
            assert_eq!(is_complete(&s), want, "case {i}");
        }
    }

    #[test]
    fn longer_transcript_wins_and_empty_never_erases() {
        let mut rec = CallResult::new("c1", "t0");
        merge_snapshot(
            &mut rec,
            &ended(
                LONG,
                Some("first"),
                Some(json!({"a": 1, "nested": {"x": 1}})),
            ),
        );
        let shorter = CallSnapshot {
            transcript: Some("AI: Hi".into()),
            analysis: Analysis {
                summary: Some("".into()),
                structured_data: json!({"a": null, "b": 2, "nested": {"y": 2}})
                    .as_object()
                    .cloned(),
                success_evaluation: Some("true".into()),
            },
            ..snap()
        };
        merge_snapshot(&mut rec, &shorter);
        assert_eq!(rec.transcript.as_deref(), Some(LONG));
        assert_eq!(rec.analysis.summary.as_deref(), Some("first"));
        assert_eq!(rec.analysis.success_evaluation.as_deref(), Some("true"));
        assert_eq!(
            Value::Object(rec.analysis.structured_data.clone().unwrap()),
            json!({"a": 1, "b": 2, "nested": {"x": 1, "y": 2}})
        );
    }

    #[test]
    fn call_status_never_moves_backwards() {
        let mut rec = CallResult::new("c1", "t0");
        for (incoming, want) in [
            (CallStatus::Ringing, CallStatus::Ringing),
            (CallStatus::Ended, CallStatus::Ended),
            (CallStatus::InProgress, CallStatus::Ended),
            (CallStatus::Queued, CallStatus::Ended),
        ] {
            merge_snapshot(
                &mut rec,
                &CallSnapshot {
                    call_status: Some(incoming),
                    ..snap()
                },
            );
            assert_eq!(rec.call_status, want);
        }
    }

    #[test]
    fn outcome_duration_cost_and_zero_cost() {
        let mut rec = CallResult::new("c1", "t0");
        let s = CallSnapshot {
            ended_reason: Some("customer-did-not-answer".into()),
            started_at: parse_timestamp(&json!("2026-03-02T15:04:11.004Z")),
            ended_at: parse_timestamp(&json!("2026-03-02T15:05:12.240Z")),
            duration_seconds: Some(999.0),
            cost: Some(0.0),
            ..snap()
        };
        assert!(merge_snapshot(&mut rec, &s));
        assert_eq!(rec.status, Some(Outcome::NoAnswer));
        assert!((rec.duration.unwrap() - 1.0206).abs() < 1e-3);
        assert_eq!(rec.cost, Some(0.0));
        // No cost in a later source keeps the known one.
        merge_snapshot(&mut rec, &snap());
        assert_eq!(rec.cost, Some(0.0));
    }

    #[test]
    fn legacy_duration_is_only_a_fallback() {
        let mut rec = CallResult::new("c1", "t0");
        merge_snapshot(
            &mut rec,
            &CallSnapshot {
                started_at: parse_timestamp(&json!("garbage")),
                duration_seconds: Some(90.0),
                ..snap()
            },
        );
        assert_eq!(rec.duration, Some(1.5));
    }

    #[test]
    fn metadata_fills_but_never_overrides_the_initiator() {
        let mut rec = CallResult::new("c1", "t0");
        rec.provider.name = Some("Acme".into());
        let s = CallSnapshot {
            metadata: CallMetadata {
                provider_name: Some("Other".into()),
                provider_id: Some("p1".into()),
                urgency: Some("flexible".into()),
                ..Default::default()
            },
            customer_number: Some("+14155550123".into()),
            ..snap()
        };
        merge_snapshot(&mut rec, &s);
        assert_eq!(rec.provider.name.as_deref(), Some("Acme"));
        assert_eq!(rec.provider_id.as_deref(), Some("p1"));
        assert_eq!(rec.provider.phone.as_deref(), Some("+14155550123"));
        assert_eq!(rec.request.urgency.as_deref(), Some("flexible"));
    }

    #[test]
    fn merging_the_same_snapshot_twice_changes_nothing() {
        let mut rec = CallResult::new("c1", "t0");
        let s = ended(LONG, Some("sum"), Some(json!({"k": "v"})));
        assert!(merge_snapshot(&mut rec, &s));
        assert!(!merge_snapshot(&mut rec, &s));
    }
}

#[cfg(test)]
mod prior_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_save_never_takes_data_away_from_the_rows() {
        let prior = Prior {
            transcript: Some("AI: Hello there, is this Acme?\nUser: It is.".into()),
            summary: Some("Available Monday.".into()),
            structured_data: json!({"available": true, "price": 120})
                .as_object()
                .cloned(),
            duration: Some(2.5),
            cost: Some(0.0),
        };
        // A record rebuilt from Vapi alone: a cut transcript, no analysis.
        let mut rebuilt = CallResult::new("c1", "t");
        rebuilt.transcript = Some("AI: Hello".into());
        rebuilt.analysis.structured_data = json!({"price": 130}).as_object().cloned();
        keep_prior(&mut rebuilt, &prior);
        assert_eq!(rebuilt.transcript, prior.transcript);
        assert_eq!(rebuilt.analysis.summary, prior.summary);
        assert_eq!(
            rebuilt.analysis.structured_data,
            json!({"available": true, "price": 130})
                .as_object()
                .cloned(),
            "every key kept, the newer value wins"
        );
        assert_eq!((rebuilt.duration, rebuilt.cost), (Some(2.5), Some(0.0)));
        // The record's own values win where it has them.
        let mut fuller = CallResult::new("c1", "t");
        fuller.analysis.summary = Some("Booked Friday.".into());
        fuller.cost = Some(0.3);
        keep_prior(&mut fuller, &prior);
        assert_eq!(fuller.analysis.summary.as_deref(), Some("Booked Friday."));
        assert_eq!(fuller.cost, Some(0.3));
    }
}
