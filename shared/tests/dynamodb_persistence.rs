//! Provider rows and interaction logs (SPEC §5) against a real-protocol DynamoDB (dynoxide).

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

const PROVIDER: &str = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";
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

    // A later call for the same provider replaces the row, whatever its timestamps.
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
