//! What `GET /api/v1/vapi/stats` reads, through the real DynamoDB adapters on the embedded store:
//! the counts of calls by state move with every listed record write and an erase, and the pushed
//! events counted open are exactly the pending and dead-lettered ones, through every state change.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ringback::adapters::dynamodb::{ensure_events_table, CallIndexTable, CallsTable, EventsTable};
use ringback::domain::push::{event_id, CallEvent, EventType};
use ringback::domain::{erase::tombstone, CallRecord, CallResult, DataStatus, Outcome};
use ringback::ports::{CallStore, DeliveryAttempt, PushRecord, PushState, PushStore, SystemClock};
use ringback::search::{CallIndex, IndexedCalls};

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn counts_follow_every_listed_write_and_an_erase_and_never_drift() {
    let (client, _db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let index_table = support::call_index_table(&client).await;
    let index = Arc::new(CallIndexTable::new(client.clone(), index_table.clone()));
    // A writer with its own memory of what it read, as each function has.
    let writer = || {
        let calls = CallsTable::new(
            client.clone(),
            t.calls.clone(),
            Duration::from_secs(1800),
            Arc::new(SystemClock),
        )
        .with_index(index_table.clone());
        IndexedCalls::new(calls, Some(index.clone() as Arc<dyn CallIndex>))
    };
    let store = writer();
    let day = (at("2026-12-05T00:00:00Z"), at("2026-12-06T00:00:00Z"));
    let counts = || async { index.counts(day.0, day.1).await.unwrap() };

    // Two calls in two hours: one partial, then complete with its outcome.
    let mut a = CallRecord::new("call-a", "2026-12-05T09:10:00.000Z");
    a.result.data_status = DataStatus::Partial;
    let va = store.put(&a, None, None).await.unwrap();
    let mut b = CallRecord::new("call-b", "2026-12-05T10:20:00.000Z");
    b.result.data_status = DataStatus::Pending;
    store.put(&b, None, None).await.unwrap();
    a.result.data_status = DataStatus::Complete;
    a.result.status = Some(Outcome::Completed);
    let va = store.put(&a, Some(va), None).await.unwrap();
    let c = counts().await;
    assert_eq!(c.total, 2);
    assert_eq!(c.by_data_status["complete"], 1);
    assert_eq!(c.by_data_status["pending"], 1);
    assert_eq!(c.by_data_status["partial"], 0, "moved, not added");
    assert_eq!(c.by_outcome["completed"], 1);

    // A writer that never read the record through this store does not know the summary's state:
    // it is read, and the counts still move exactly once.
    let mut moved = a.clone();
    moved.result.created_at = "2026-12-05T11:00:00.000Z".into(); // another hour
    let va = writer().put(&moved, Some(va), None).await.unwrap();
    let c = counts().await;
    assert_eq!((c.total, c.by_data_status["complete"]), (2, 1), "{c:?}");
    let hour = index
        .counts(at("2026-12-05T11:00:00Z"), at("2026-12-05T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(hour.total, 1, "counted in its new hour: {hour:?}");
    let hour = index
        .counts(at("2026-12-05T09:00:00Z"), at("2026-12-05T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(hour.total, 0, "and no more in its old one: {hour:?}");

    // The erase takes the call away from the counts with its summary.
    let gone = tombstone(&moved, "2026-12-05T12:00:00.000Z");
    store
        .erase(&gone, Some(va), at("2026-12-20T00:00:00Z"), None)
        .await
        .unwrap();
    let c = counts().await;
    assert_eq!(c.total, 1, "{c:?}");
    assert_eq!(c.by_data_status["complete"], 0);
    assert_eq!(c.by_outcome["completed"], 0);
    assert!(index.summary("call-a").await.unwrap().is_none());
    assert!(store
        .get("call-a")
        .await
        .unwrap()
        .unwrap()
        .record
        .book
        .erased_at
        .is_some());
}

#[tokio::test]
async fn open_pushed_events_are_counted_through_every_state_change() {
    let (client, _db) = support::dynamo().await;
    let table = support::unique("events");
    ensure_events_table(&client, &table).await.unwrap();
    let events = EventsTable::new(
        client,
        table,
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    );
    let open = || async {
        (
            events.open_count(PushState::Pending, 1000).await.unwrap().0,
            events.open_count(PushState::Failed, 1000).await.unwrap().0,
        )
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut data = CallResult::new(format!("call-{n}"), "2026-12-05T08:00:00.000Z");
        data.callback_url = Some("https://receiver.example/hook".into());
        let id = event_id(&data, EventType::Completed);
        let push = PushRecord {
            event: CallEvent {
                kind: EventType::Completed,
                id: id.clone(),
                timestamp: "2026-12-05T08:00:00.000Z".into(),
                data,
            },
            url: "https://receiver.example/hook".into(),
            state: PushState::Pending,
            attempts: Vec::new(),
            round_start: 0,
            next_attempt_at: Some("2026-12-05T08:00:00.000Z".into()),
        };
        assert!(events.create(&push).await.unwrap());
        ids.push((format!("call-{n}"), id));
    }
    assert_eq!(open().await, (3, 0));
    let attempt = |n: u32, status: u16| DeliveryAttempt {
        attempt: n,
        at: "2026-12-05T08:00:01.000Z".into(),
        status: Some(status),
        latency_ms: 5,
        error: None,
    };
    let (c0, e0) = &ids[0];
    events
        .record_attempt(
            c0,
            e0,
            PushState::Pending,
            &attempt(1, 204),
            PushState::Delivered,
            None,
        )
        .await
        .unwrap();
    let (c1, e1) = &ids[1];
    events
        .record_attempt(
            c1,
            e1,
            PushState::Pending,
            &attempt(1, 500),
            PushState::Failed,
            None,
        )
        .await
        .unwrap();
    let (c2, e2) = &ids[2];
    events
        .record_attempt(
            c2,
            e2,
            PushState::Pending,
            &attempt(1, 500),
            PushState::Pending,
            Some("2026-12-05T08:01:00.000Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        open().await,
        (1, 1),
        "delivered leaves, failed moves, a retry stays"
    );
    events
        .reopen(c1, e1, "2026-12-05T09:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(open().await, (2, 0), "an operator's redelivery reopens it");
    events
        .restore(c1, e1, PushState::Failed, 0, "2026-12-05T09:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        open().await,
        (1, 1),
        "and an undone one is dead-lettered again"
    );
    let (count, more) = events.open_count(PushState::Pending, 0).await.unwrap();
    assert_eq!((count, more), (0, true), "a cap says there are more");
}
