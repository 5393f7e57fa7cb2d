//! Property tests for everything that reads untrusted input: no input makes a parser panic, and
//! what the parsers promise holds for all inputs, not just the examples.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use ringback::domain::{
    parse_call_request, parse_timestamp, parse_transcript, CallStatus, DataStatus,
};
use ringback::vapi::{parse_webhook, snapshot_from_call, WebhookAuth, WebhookMessage};
use serde_json::{json, Value};

/// Arbitrary JSON, a few levels deep, with the keys Vapi payloads use, so the readers' paths get hit.
fn arb_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "message",
        "type",
        "call",
        "id",
        "status",
        "endedReason",
        "artifact",
        "transcript",
        "messages",
        "analysis",
        "summary",
        "structuredData",
        "cost",
        "costBreakdown",
        "total",
        "startedAt",
        "endedAt",
        "metadata",
        "assistantOverrides",
        "assistant",
        "customer",
        "number",
        "role",
        "time",
        "durationSeconds",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "end-of-call-report",
            "status-update",
            "ended",
            "2026-03-02T15:04:11Z",
            "1772463918811"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn webhook_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_webhook(&bytes);
    }

    #[test]
    fn webhook_json_never_panics_and_call_events_keep_their_id(v in arb_json(), kind in prop::sample::select(vec!["end-of-call-report", "status-update"]), id in "[a-z0-9-]{1,20}") {
        let mut body = json!({"message": v});
        if body["message"].is_object() {
            body["message"]["type"] = json!(kind);
            body["message"]["call"] = json!({"id": id});
        }
        match parse_webhook(body.to_string().as_bytes()) {
            Ok(WebhookMessage::Call { snapshot, .. }) => {
                prop_assert_eq!(&snapshot.call_id, &id);
                if kind == "end-of-call-report" {
                    prop_assert_eq!(snapshot.call_status, Some(CallStatus::Ended));
                }
                if let Some(c) = snapshot.cost { prop_assert!(c.is_finite()); }
            }
            Ok(WebhookMessage::Ignored { .. }) => prop_assert!(false, "a call event was ignored"),
            Err(_) => prop_assert!(!body["message"].is_object()),
        }
    }

    #[test]
    fn get_call_answers_never_panic(v in arb_json()) {
        let s = snapshot_from_call(&v);
        if let Some(d) = s.duration_seconds { prop_assert!(d.is_finite()); }
    }

    #[test]
    fn call_requests_never_panic(v in arb_json()) {
        let _ = parse_call_request(&v);
    }

    #[test]
    fn timestamps_never_panic(s in ".{0,40}", n in any::<f64>()) {
        let _ = parse_timestamp(&json!(s));
        let _ = parse_timestamp(&json!(n));
    }

    #[test]
    fn transcript_lines_are_never_empty(t in "(AI: |User: |[a-z]{0,5}|\\r|\\n| ){0,40}") {
        for line in parse_transcript(&t) {
            prop_assert!(!line.text.trim().is_empty() || !line.speaker.is_empty());
            prop_assert!(!line.text.contains('\n') && !line.text.ends_with('\r'));
        }
    }

    #[test]
    fn auth_never_panics_and_never_lets_garbage_in(secret in "[ -~]{1,30}", sig in "[ -~]{0,80}", ts in "[ -~]{0,20}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let auth = WebhookAuth::new([secret.clone()], "x-vapi-signature");
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&sig) { h.insert("x-vapi-signature", v); }
        if let Ok(v) = HeaderValue::from_str(&ts) { h.insert("x-vapi-timestamp", v); }
        if let Ok(v) = HeaderValue::from_str(&sig) { h.insert("x-vapi-secret", v); }
        let ok = auth.verify(&h, &body, 1_772_463_918).is_ok();
        // Only presenting the secret itself can pass without a valid HMAC.
        prop_assert!(!ok || sig.trim() == secret.trim() || sig.len() >= 64);
    }

    #[test]
    fn data_status_words_round_trip(i in 0usize..5) {
        let all = [DataStatus::Pending, DataStatus::Partial, DataStatus::Fetching, DataStatus::Complete, DataStatus::FetchFailed];
        let s = serde_json::to_value(all[i]).unwrap();
        prop_assert_eq!(s.as_str().unwrap(), all[i].as_str());
    }
}
