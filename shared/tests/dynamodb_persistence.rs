//! Provider rows and interaction logs (api.md §5) against a real-protocol DynamoDB (dynoxide).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ringback::adapters::dynamodb::ProvidersAndLogs;
use ringback::domain::{CallMethod, CallResult, DataStatus, Outcome};
use ringback::ports::{Persisted, ResultSink};
use serde_json::json;
use support::{ManualClock, Tables};

const PROVIDER: &str = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";
const REQUEST: &str = "1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";

type Item = HashMap<String, AttributeValue>;

struct Fixture {
    sink: ProvidersAndLogs,
    clock: Arc<ManualClock>,
    client: Client,
    t: Tables,
    _db: support::DynamoGuard,
}

async fn setup() -> Fixture {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at("2026-03-02T15:10:00Z");
    let sink = ProvidersAndLogs::new(
        client.clone(),
        t.providers.clone(),
        t.logs.clone(),
        clock.clone(),
    );
    Fixture {
        sink,
        clock,
        client,
        t,
        _db: db,
    }
}

fn finished(call_id: &str, updated_at: &str) -> CallResult {
    let mut r = CallResult::new(call_id, "2026-03-02T15:00:00.000Z");
    r.updated_at = updated_at.into();
    r.status = Some(Outcome::Completed);
    r.data_status = DataStatus::Complete;
    r.duration = Some(2.5);
    r.cost = Some(0.0);
    r.transcript = Some("AI: Hello, Acme?\nUser: Yes: speaking\n\nno speaker".into());
    r.analysis.summary = Some("Available Monday.".into());
    r.analysis.structured_data = Some(
        json!({"available": true, "price": 120.5, "slots": ["mon"], "note": null})
            .as_object()
            .unwrap()
            .clone(),
    );
    r.provider.name = Some("Acme Plumbing".into());
    r.provider.phone = Some("+15551234567".into());
    r.provider_id = Some(PROVIDER.into());
    r.service_request_id = Some(REQUEST.into());
    r
}

impl Fixture {
    async fn provider(&self, id: &str) -> Option<Item> {
        support::provider_row(&self.client, &self.t.providers, id).await
    }

    async fn logs(&self, request_id: &str) -> Vec<Item> {
        support::interaction_logs(&self.client, &self.t.logs, request_id).await
    }

    async fn count(&self, table: &str) -> i32 {
        self.client
            .scan()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .count
    }
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item[name]
        .as_s()
        .unwrap_or_else(|_| panic!("{name} is not a string: {:?}", item[name]))
}

#[tokio::test]
async fn provider_row_holds_the_final_call() {
    let f = setup().await;
    let r = finished("call-1", "2026-03-02T15:05:00.000Z");
    let out = f.sink.save(&r).await.unwrap();
    assert_eq!(
        out,
        Persisted {
            provider_row: true,
            interaction_log: true
        }
    );

    let row = f.provider(PROVIDER).await.expect("provider row");
    assert_eq!(s(&row, "call_status"), "completed");
    assert_eq!(s(&row, "call_transcript"), r.transcript.as_deref().unwrap());
    assert_eq!(s(&row, "call_summary"), "Available Monday.");
    assert_eq!(row["call_duration_minutes"].as_n().unwrap(), "2.5");
    assert_eq!(
        row["call_cost"].as_n().unwrap().parse::<f64>().unwrap(),
        0.0,
        "0 is a real cost"
    );
    assert_eq!(s(&row, "call_method"), "direct_vapi");
    assert_eq!(s(&row, "call_id"), "call-1");
    assert_eq!(s(&row, "called_at"), "2026-03-02T15:10:00.000Z");
    assert_eq!(s(&row, "call_data_status"), "complete");
    let result = row["call_result"].as_m().expect("structured data as a map");
    assert_eq!(result["available"], AttributeValue::Bool(true));
    assert_eq!(result["price"], AttributeValue::N("120.5".into()));
    assert_eq!(
        result["slots"],
        AttributeValue::L(vec![AttributeValue::S("mon".into())])
    );
    assert_eq!(result["note"], AttributeValue::Null(true));

    // Unknowns are null, not invented; a kestra call says so.
    let mut bare = CallResult::new("call-2", "2026-03-02T15:00:00.000Z");
    bare.updated_at = "2026-03-02T15:06:00.000Z".into();
    bare.data_status = DataStatus::FetchFailed;
    bare.call_method = CallMethod::Kestra;
    bare.provider_id = Some(PROVIDER.into());
    f.sink.save(&bare).await.unwrap();
    let row = f.provider(PROVIDER).await.unwrap();
    assert_eq!(s(&row, "call_status"), "unknown");
    assert_eq!(s(&row, "call_method"), "kestra");
    assert_eq!(s(&row, "call_data_status"), "fetch_failed");
    for name in [
        "call_result",
        "call_transcript",
        "call_summary",
        "call_duration_minutes",
        "call_cost",
    ] {
        assert_eq!(row[name], AttributeValue::Null(true), "{name}");
    }
}

#[tokio::test]
async fn non_uuid_ids_skip_their_write() {
    let f = setup().await;
    let mut r = finished("call-x", "2026-03-02T15:05:00.000Z");
    r.provider_id = Some("task-1234".into());
    r.service_request_id = None;
    assert_eq!(f.sink.save(&r).await.unwrap(), Persisted::default());

    r.provider_id = None;
    r.service_request_id = Some(REQUEST.into());
    assert_eq!(
        f.sink.save(&r).await.unwrap(),
        Persisted {
            provider_row: false,
            interaction_log: true
        }
    );
    r.provider_id = Some(PROVIDER.into());
    r.service_request_id = Some("sr-42".into());
    assert_eq!(
        f.sink.save(&r).await.unwrap(),
        Persisted {
            provider_row: true,
            interaction_log: false
        }
    );

    assert_eq!(f.count(&f.t.providers).await, 1);
    assert_eq!(f.count(&f.t.logs).await, 1);
}

#[tokio::test]
async fn saving_twice_keeps_one_log_with_its_first_time() {
    let f = setup().await;
    let mut r = finished("call-1", "2026-03-02T15:05:00.000Z");
    r.data_status = DataStatus::FetchFailed;
    r.analysis.summary = None;
    f.sink.save(&r).await.unwrap();

    f.clock.advance(Duration::from_secs(90));
    r.data_status = DataStatus::Complete;
    r.analysis.summary = Some("Available Monday.".into());
    r.updated_at = "2026-03-02T15:06:00.000Z".into();
    f.sink.save(&r).await.unwrap();
    f.sink.save(&r).await.unwrap(); // a redelivery

    let logs = f.logs(REQUEST).await;
    assert_eq!(logs.len(), 1, "one interaction log per call");
    let log = &logs[0];
    assert_eq!(s(log, "callId"), "call-1");
    assert_eq!(s(log, "step_name"), "Call to Acme Plumbing");
    assert_eq!(s(log, "status"), "success");
    assert_eq!(s(log, "detail"), "Available Monday.");
    assert_eq!(
        s(log, "created_at"),
        "2026-03-02T15:10:00.000Z",
        "kept from the first save"
    );
    let lines: Vec<(String, String)> = log["transcript"]
        .as_l()
        .unwrap()
        .iter()
        .map(|l| {
            let m = l.as_m().unwrap();
            (
                m["speaker"].as_s().unwrap().clone(),
                m["text"].as_s().unwrap().clone(),
            )
        })
        .collect();
    let want = [
        ("AI", "Hello, Acme?"),
        ("User", "Yes: speaking"),
        ("unknown", "no speaker"),
    ];
    assert_eq!(lines, want.map(|(a, b)| (a.to_owned(), b.to_owned())));

    // Another call of the same request gets its own log.
    f.sink
        .save(&finished("call-2", "2026-03-02T15:07:00.000Z"))
        .await
        .unwrap();
    assert_eq!(f.logs(REQUEST).await.len(), 2);
}

#[tokio::test]
async fn an_older_save_never_overwrites_a_newer_one() {
    let f = setup().await;
    let newer = finished("call-1", "2026-03-02T15:06:00.000Z");
    let mut older = newer.clone();
    older.updated_at = "2026-03-02T15:05:00.000Z".into();
    older.data_status = DataStatus::FetchFailed;
    older.analysis.summary = Some("partial".into());

    f.sink.save(&newer).await.unwrap();
    let out = f.sink.save(&older).await.unwrap();
    assert_eq!(
        out,
        Persisted {
            provider_row: true,
            interaction_log: true
        },
        "superseded, not an error"
    );

    let row = f.provider(PROVIDER).await.unwrap();
    assert_eq!(s(&row, "call_summary"), "Available Monday.");
    assert_eq!(s(&row, "call_data_status"), "complete");
    let log = &f.logs(REQUEST).await[0];
    assert_eq!(
        (s(log, "status"), s(log, "detail")),
        ("success", "Available Monday.")
    );

    // Another call for the same provider, started no earlier (here: at the same time, so the call
    // ids decide), replaces the row.
    let next_call = finished("call-2", "2026-03-02T14:00:00.000Z");
    f.sink.save(&next_call).await.unwrap();
    assert_eq!(s(&f.provider(PROVIDER).await.unwrap(), "call_id"), "call-2");
}

#[tokio::test]
async fn log_status_and_detail_follow_outcome_and_data() {
    let f = setup().await;
    let cases = [
        (
            Some(Outcome::Completed),
            DataStatus::Complete,
            Some("Booked."),
            "success",
            "Booked.",
        ),
        (
            Some(Outcome::Completed),
            DataStatus::FetchFailed,
            None,
            "warning",
            "Call to Acme Plumbing: completed",
        ),
        (
            Some(Outcome::Error),
            DataStatus::Complete,
            Some("Line dropped."),
            "error",
            "Line dropped.",
        ),
        (
            Some(Outcome::Error),
            DataStatus::FetchFailed,
            None,
            "error",
            "Call to Acme Plumbing: error",
        ),
        (
            Some(Outcome::NoAnswer),
            DataStatus::Complete,
            None,
            "warning",
            "Call to Acme Plumbing: no_answer",
        ),
        (
            Some(Outcome::Voicemail),
            DataStatus::FetchFailed,
            Some("  "),
            "warning",
            "Call to Acme Plumbing: voicemail",
        ),
        (
            Some(Outcome::Timeout),
            DataStatus::Complete,
            None,
            "warning",
            "Call to Acme Plumbing: timeout",
        ),
        (
            None,
            DataStatus::FetchFailed,
            None,
            "warning",
            "Call to Acme Plumbing: unknown",
        ),
    ];
    for (i, (outcome, data, summary, _, _)) in cases.iter().enumerate() {
        let mut r = finished(&format!("call-{i}"), "2026-03-02T15:05:00.000Z");
        r.status = *outcome;
        r.data_status = *data;
        r.analysis.summary = summary.map(str::to_owned);
        f.sink.save(&r).await.unwrap();
    }
    let logs: HashMap<String, Item> = f
        .logs(REQUEST)
        .await
        .into_iter()
        .map(|l| (s(&l, "callId").to_owned(), l))
        .collect();
    for (i, (outcome, data, _, status, detail)) in cases.iter().enumerate() {
        let log = &logs[&format!("call-{i}")];
        assert_eq!(
            (s(log, "status"), s(log, "detail")),
            (*status, *detail),
            "{outcome:?} {data:?}"
        );
    }

    // No provider name, no transcript.
    let mut r = finished("call-anon", "2026-03-02T15:05:00.000Z");
    r.provider.name = Some(" ".into());
    r.status = Some(Outcome::NoAnswer);
    r.analysis.summary = None;
    r.transcript = None;
    f.sink.save(&r).await.unwrap();
    let log = f
        .logs(REQUEST)
        .await
        .into_iter()
        .find(|l| s(l, "callId") == "call-anon")
        .unwrap();
    assert_eq!(s(&log, "step_name"), "Call to Unknown Provider");
    assert_eq!(s(&log, "detail"), "Call to Unknown Provider: no_answer");
    assert_eq!(log["transcript"], AttributeValue::Null(true));
}

/// A long call's transcript: `bytes` of turns built from everyday words (compresses as speech does).
fn long_transcript(bytes: usize) -> String {
    let words = [
        "plumber",
        "Tuesday",
        "licensed",
        "estimate",
        "pipe",
        "leak",
        "insured",
        "quote",
        "the",
        "morning",
        "kitchen",
        "sink",
        "available",
        "price",
        "hundred",
        "dollars",
        "yes",
        "no",
    ];
    let mut t = String::new();
    let mut i = 0usize;
    while t.len() < bytes {
        t.push_str(if i % 2 == 0 { "AI: " } else { "User: " });
        for j in 0..(8 + i % 9) {
            t.push_str(words[(i * 7 + j * 3 + i / 5) % words.len()]);
            t.push(' ');
        }
        t.push_str(&format!("({i})\n"));
        i += 1;
    }
    t
}

#[tokio::test]
async fn any_call_fits_the_durable_tables_and_reads_back_whole() {
    use ringback::adapters::dynamodb::{stored_json, stored_text};
    use ringback::domain::parse_transcript;
    let f = setup().await;
    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!({"d": deep});
    }
    let awkward = [
        // A long call: far past 400 KB as plain text and as the log's list of lines.
        (long_transcript(450_000), json!({"available": true})),
        // Structured data DynamoDB cannot hold natively: an empty key, nesting past 32 levels.
        (
            "AI: Hi\nUser: Hello".to_owned(),
            json!({"": "empty key", "deep": deep}),
        ),
        // Both at once, with a number past DynamoDB's range.
        (
            long_transcript(600_000),
            json!({"": {"huge": 1e200}, "deep": deep}),
        ),
    ];
    for (i, (transcript, data)) in awkward.into_iter().enumerate() {
        let mut r = finished(&format!("call-{i}"), &format!("2026-03-02T15:0{i}:00.000Z"));
        r.transcript = Some(transcript.clone());
        r.analysis.structured_data = Some(data.as_object().unwrap().clone());
        f.sink
            .save(&r)
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));

        let row = f.provider(PROVIDER).await.expect("provider row");
        assert_eq!(s(&row, "call_id"), format!("call-{i}"));
        assert_eq!(
            stored_text(&row, "call_transcript", "call_transcript_gz").as_deref(),
            Some(transcript.as_str()),
            "call {i}: the whole transcript"
        );
        assert_eq!(
            stored_json(&row, "call_result", "call_result_gz"),
            Some(data.clone()),
            "call {i}: the structured data as sent"
        );
        assert_eq!(row["data_truncated"], AttributeValue::Bool(false));
        // The plain attribute stays readable: the transcript's opening lines at least.
        assert!(transcript.starts_with(s(&row, "call_transcript").trim_end_matches('…')));

        let logs = f.logs(REQUEST).await;
        let log = logs
            .iter()
            .find(|l| s(l, "callId") == format!("call-{i}"))
            .expect("one log per call");
        let lines: Vec<ringback::domain::TranscriptLine> = match &log["transcript"] {
            AttributeValue::L(_) => {
                serde_json::from_value(ringback::adapters::dynamodb::to_json(&log["transcript"]))
                    .unwrap()
            }
            _ => serde_json::from_str(&stored_text(log, "transcript", "transcript_gz").unwrap())
                .unwrap(),
        };
        assert_eq!(lines, parse_transcript(&transcript), "call {i}: every line");
    }
    assert_eq!(f.count(&f.t.logs).await, 3);
}

#[tokio::test]
async fn an_outage_is_transient() {
    let f = setup().await;
    // A table that does not exist is an outage of the deployment, worth retrying.
    let missing = ProvidersAndLogs::new(
        f.client.clone(),
        "no-such-table".into(),
        f.t.logs.clone(),
        f.clock.clone(),
    );
    let err = missing
        .save(&finished("call-1", "2026-03-02T15:05:00.000Z"))
        .await
        .unwrap_err();
    assert!(!err.permanent, "{err}");
}

#[tokio::test]
async fn the_provider_row_holds_the_most_recently_started_call() {
    let f = setup().await;
    let started = |id: &str, start: &str, updated: &str| {
        let mut r = finished(id, updated);
        r.started_at = Some(start.into());
        r
    };
    let newer = started(
        "call-new",
        "2026-03-02T15:10:00.000Z",
        "2026-03-02T15:15:00.000Z",
    );
    // Started first, finished last (a long call, or a late enrichment).
    let older = started(
        "call-old",
        "2026-03-02T15:00:00.000Z",
        "2026-03-02T15:20:00.000Z",
    );
    f.sink.save(&newer).await.unwrap();
    f.sink.save(&older).await.unwrap();
    assert_eq!(
        s(&f.provider(PROVIDER).await.unwrap(), "call_id"),
        "call-new"
    );

    // The newer call's own later data still lands.
    let mut newer_later = newer.clone();
    newer_later.updated_at = "2026-03-02T15:25:00.000Z".into();
    newer_later.analysis.summary = Some("Booked for Friday.".into());
    f.sink.save(&newer_later).await.unwrap();
    let row = f.provider(PROVIDER).await.unwrap();
    assert_eq!(s(&row, "call_summary"), "Booked for Friday.");

    // A call started later still takes the row; without startedAt its creation time counts.
    let mut unanswered = finished("call-x", "2026-03-02T15:40:00.000Z");
    unanswered.created_at = "2026-03-02T15:30:00.000Z".into();
    f.sink.save(&unanswered).await.unwrap();
    assert_eq!(s(&f.provider(PROVIDER).await.unwrap(), "call_id"), "call-x");
}

#[tokio::test]
async fn a_save_never_takes_data_away_from_the_rows() {
    use ringback::adapters::dynamodb::stored_text;
    let f = setup().await;
    let full = finished("call-1", "2026-03-02T15:05:00.000Z");
    f.sink.save(&full).await.unwrap();
    // A dead letter redriven after the record expired: the record rebuilt from Vapi alone knows
    // less (a cut transcript, no analysis yet), and it is newer.
    let mut rebuilt = CallResult::new("call-1", "2026-03-02T15:00:00.000Z");
    rebuilt.updated_at = "2026-03-02T16:00:00.000Z".into();
    rebuilt.data_status = DataStatus::FetchFailed;
    rebuilt.transcript = Some("AI: Hello".into());
    rebuilt.provider_id = Some(PROVIDER.into());
    rebuilt.service_request_id = Some(REQUEST.into());
    f.sink.save(&rebuilt).await.unwrap();

    let row = f.provider(PROVIDER).await.unwrap();
    assert_eq!(
        s(&row, "call_data_status"),
        "fetch_failed",
        "the newer state"
    );
    assert_eq!(
        stored_text(&row, "call_transcript", "call_transcript_gz"),
        full.transcript,
        "the longer transcript stays"
    );
    assert_eq!(s(&row, "call_summary"), "Available Monday.");
    assert_eq!(row["call_duration_minutes"].as_n().unwrap(), "2.5");
    assert!(row["call_result"].as_m().unwrap().contains_key("available"));
    let logs = f.logs(REQUEST).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(s(&logs[0], "detail"), "Available Monday.");
    assert_eq!(
        logs[0]["transcript"].as_l().unwrap().len(),
        3,
        "every line stays"
    );
}
