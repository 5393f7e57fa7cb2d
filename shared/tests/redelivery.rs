//! An operator's redelivery of a pushed event (`POST /api/v1/vapi/callbacks/{eventId}/redeliver`)
//! through the real events table on the embedded DynamoDB: a queue that fails must never leave
//! the event stuck (pending with no job), and an id no event can have is a 4xx, never a 5xx.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, StatusCode};
use ringback::adapters::dynamodb::{ensure_events_table, EventsTable};
use ringback::api::post_redeliver;
use ringback::config::ApiAuth;
use ringback::domain::push::{event_id, CallEvent, EventType};
use ringback::domain::CallResult;
use ringback::ports::{
    EnrichmentJob, EnrichmentQueue, JobKind, PushRecord, PushState, PushStore, QueueError,
};
use ringback::service::redeliver::{RedeliverError, Redelivery};
use serde_json::Value;

const CALL: &str = "call-redeliver-1";

/// A queue that refuses its next `failures` sends, then records what it is sent.
#[derive(Default)]
struct FlakyQueue {
    failures: Mutex<u32>,
    sent: Mutex<Vec<EnrichmentJob>>,
}

#[async_trait]
impl EnrichmentQueue for FlakyQueue {
    async fn schedule(&self, job: &EnrichmentJob, _delay: Duration) -> Result<(), QueueError> {
        let mut left = self.failures.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(QueueError("queue is down (test)".into()));
        }
        self.sent.lock().unwrap().push(job.clone());
        Ok(())
    }
}

struct Fixture {
    events: Arc<EventsTable>,
    queue: Arc<FlakyQueue>,
    redelivery: Redelivery,
    _db: support::DynamoGuard,
}

async fn setup() -> Fixture {
    let (client, db) = support::dynamo().await;
    let table = support::unique("events");
    ensure_events_table(&client, &table).await.unwrap();
    let clock = support::ManualClock::at("2026-12-04T09:00:00Z");
    let events = Arc::new(EventsTable::new(
        client,
        table,
        Duration::from_secs(7 * 86_400),
        clock.clone(),
    ));
    let queue = Arc::new(FlakyQueue::default());
    let redelivery = Redelivery {
        store: events.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
    };
    Fixture {
        events,
        queue,
        redelivery,
        _db: db,
    }
}

/// Keeps an event of `CALL` in `state`, as a finished delivery chain leaves it.
async fn kept(f: &Fixture, state: PushState, next_attempt_at: Option<&str>) -> String {
    let mut data = CallResult::new(CALL, "2026-12-04T08:00:00.000Z");
    data.callback_url = Some("https://receiver.example/hook".into());
    let id = event_id(&data, EventType::Completed);
    let push = PushRecord {
        event: CallEvent {
            kind: EventType::Completed,
            id: id.clone(),
            timestamp: "2026-12-04T08:00:00.000Z".into(),
            data,
        },
        url: "https://receiver.example/hook".into(),
        state,
        attempts: Vec::new(),
        round_start: 0,
        next_attempt_at: next_attempt_at.map(str::to_owned),
    };
    assert!(f.events.create(&push).await.unwrap());
    id
}

fn push_jobs(f: &Fixture) -> Vec<(String, u32)> {
    f.queue
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|j| j.kind == JobKind::Push)
        .map(|j| (j.event_id.clone().unwrap_or_default(), j.attempt))
        .collect()
}

fn bearer() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer tok"));
    h
}

fn json(r: &ringback::api::Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

#[tokio::test]
async fn a_failed_queue_send_answers_503_and_the_operators_retry_goes_through() {
    let f = setup().await;
    let id = kept(&f, PushState::Failed, None).await;
    *f.queue.failures.lock().unwrap() = 1;

    let auth = ApiAuth::Token("tok".into());
    let first = post_redeliver(Some(&f.redelivery), &auth, &bearer(), &id).await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let msg = json(&first)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("not queued") && msg.contains("again"),
        "the operator is told the send failed and to retry: {msg}"
    );
    assert!(push_jobs(&f).is_empty());
    // The event is not left pending without a job: it is as it was.
    let after = f.events.get(CALL, &id).await.unwrap().unwrap();
    assert_eq!(after.state, PushState::Failed, "{after:?}");

    // The operator's retry, at once, is accepted and queues the delivery.
    let again = post_redeliver(Some(&f.redelivery), &auth, &bearer(), &id).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED, "{}", json(&again));
    assert_eq!(push_jobs(&f), vec![(id.clone(), 1)]);
    let now = f.events.get(CALL, &id).await.unwrap().unwrap();
    assert_eq!(now.state, PushState::Pending);
}

#[tokio::test]
async fn a_pending_event_long_overdue_has_no_job_and_can_be_redelivered() {
    let f = setup().await;
    // Pending, due an hour ago: whatever job it had is gone (its send failed, or it was parked).
    let id = kept(&f, PushState::Pending, Some("2026-12-04T08:00:00.000Z")).await;
    let r = f.redelivery.redeliver(&id).await.unwrap();
    assert_eq!(r.state, PushState::Pending);
    assert_eq!(push_jobs(&f), vec![(id.clone(), 1)]);

    // One due in the future, or just now, still has its job: 409, nothing queued.
    let soon = "2026-12-04T09:10:00.000Z".to_owned();
    let mut data = CallResult::new("call-redeliver-2", "2026-12-04T08:00:00.000Z");
    data.callback_url = Some("https://receiver.example/hook".into());
    let other = event_id(&data, EventType::Completed);
    let push = PushRecord {
        event: CallEvent {
            kind: EventType::Completed,
            id: other.clone(),
            timestamp: "2026-12-04T08:00:00.000Z".into(),
            data,
        },
        url: "https://receiver.example/hook".into(),
        state: PushState::Pending,
        attempts: Vec::new(),
        round_start: 0,
        next_attempt_at: Some(soon),
    };
    assert!(f.events.create(&push).await.unwrap());
    assert!(matches!(
        f.redelivery.redeliver(&other).await,
        Err(RedeliverError::Pending(_))
    ));
    assert_eq!(push_jobs(&f).len(), 1);
}

#[tokio::test]
async fn an_id_no_event_can_have_is_a_404_never_a_5xx() {
    let f = setup().await;
    let auth = ApiAuth::Token("tok".into());
    for id in ["x".repeat(3000), "é".repeat(1500), "evt_ünïcode".into()] {
        let r = post_redeliver(Some(&f.redelivery), &auth, &bearer(), &id).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{}", json(&r));
        let body = json(&r);
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            body["error"]["message"].as_str().unwrap().len() < 300,
            "the id is not echoed whole: {body}"
        );
    }
    assert!(push_jobs(&f).is_empty());
}
