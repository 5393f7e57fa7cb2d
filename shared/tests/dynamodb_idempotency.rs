//! Idempotency records in the calls table against a real-protocol DynamoDB (dynoxide).

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use ringback::adapters::dynamodb::{CallsTable, IDEMPOTENCY_TTL};
use ringback::ports::{
    Attempt, Clock, IdempotencyRecord, IdempotencyStore, SavedResponse, StoreError,
};
use serde_json::json;
use support::ManualClock;

async fn setup() -> (
    CallsTable,
    std::sync::Arc<ManualClock>,
    support::DynamoGuard,
) {
    let (client, guard) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at("2026-03-02T15:00:00Z");
    (
        CallsTable::new(client, t.calls, Duration::from_secs(1800), clock.clone()),
        clock,
        guard,
    )
}

fn accepted() -> SavedResponse {
    SavedResponse {
        status: 202,
        body: json!({"success": true, "data": {"callId": "c-1", "status": "queued"}}),
        headers: vec![("location".into(), "/api/v1/vapi/calls/c-1".into())],
    }
}

fn attempt(id: &str, at: DateTime<Utc>) -> Attempt {
    Attempt {
        id: id.into(),
        started_at: at,
    }
}

fn held(hash: &str, a: &Attempt, response: Option<SavedResponse>) -> IdempotencyRecord {
    IdempotencyRecord {
        request_hash: hash.into(),
        attempt: Some(a.clone()),
        response,
    }
}

#[tokio::test]
async fn first_request_holds_the_key_and_repeats_see_its_attempt_then_its_answer() {
    let (store, clock, _db) = setup().await;
    let a1 = attempt("a-1", clock.now());
    assert_eq!(store.begin("key-1", "h1", &a1).await.unwrap(), Ok(()));

    // A repeat while the first is still placing the call: held by the first attempt.
    let a2 = attempt("a-2", clock.now());
    let repeat = store.begin("key-1", "h1", &a2).await.unwrap();
    assert_eq!(repeat, Err(held("h1", &a1, None)));
    assert_eq!(
        store.lookup("key-1").await.unwrap(),
        Some(held("h1", &a1, None))
    );

    store.complete("key-1", &accepted()).await.unwrap();
    // A repeat after: the first answer, and the hash to tell a different body apart.
    let again = store.begin("key-1", "h2", &a2).await.unwrap();
    assert_eq!(again, Err(held("h1", &a1, Some(accepted()))));

    // Other keys are independent.
    assert_eq!(store.begin("key-2", "h1", &a2).await.unwrap(), Ok(()));
}

#[tokio::test]
async fn the_put_of_a_begin_that_landed_is_recognised_on_its_retry() {
    // The SDK retries a PutItem whose answer was lost; the retry fails its condition against
    // the item it wrote itself. The same attempt holds the key: that is ours, not a repeat.
    let (store, clock, _db) = setup().await;
    let a1 = attempt("a-1", clock.now());
    store.begin("key-1", "h1", &a1).await.unwrap().unwrap();
    assert_eq!(store.begin("key-1", "h1", &a1).await.unwrap(), Ok(()));
}

#[tokio::test]
async fn only_the_holding_attempt_releases_the_key() {
    let (store, clock, _db) = setup().await;
    let a1 = attempt("a-1", clock.now());
    store.begin("key-r", "h1", &a1).await.unwrap().unwrap();
    // Another attempt cannot free it (a late failure of a request that lost the key).
    store.release("key-r", "someone-else").await.unwrap();
    assert!(store.lookup("key-r").await.unwrap().is_some());
    store.release("key-r", "a-1").await.unwrap();
    assert_eq!(store.lookup("key-r").await.unwrap(), None);
    assert_eq!(store.begin("key-r", "h1", &a1).await.unwrap(), Ok(()));
    // A completed key is never released.
    store.complete("key-r", &accepted()).await.unwrap();
    store.release("key-r", "a-1").await.unwrap();
    assert!(store
        .lookup("key-r")
        .await
        .unwrap()
        .unwrap()
        .response
        .is_some());
    // Releasing a key nobody holds is fine.
    store.release("never-taken", "a-1").await.unwrap();
    // Completing a key nobody holds is a conflict, not a silent half-record.
    assert!(matches!(
        store.complete("never-taken", &accepted()).await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
async fn a_key_passes_to_one_new_attempt_only() {
    let (store, clock, _db) = setup().await;
    let a1 = attempt("a-1", clock.now());
    store.begin("key-d", "h1", &a1).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(60));
    let b = attempt("b", clock.now());
    let c = attempt("c", clock.now());
    store.reattempt("key-d", "a-1", &b).await.unwrap();
    // A second request resolving the same doubt loses: the key moved on.
    assert!(matches!(
        store.reattempt("key-d", "a-1", &c).await,
        Err(StoreError::Conflict)
    ));
    // The SDK's retry of the hand-over that landed is recognised as ours.
    store.reattempt("key-d", "a-1", &b).await.unwrap();
    assert_eq!(
        store.lookup("key-d").await.unwrap(),
        Some(held("h1", &b, None))
    );
    // A completed key is not handed over.
    store.complete("key-d", &accepted()).await.unwrap();
    assert!(matches!(
        store.reattempt("key-d", "b", &c).await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
async fn a_key_is_forgotten_after_24_hours() {
    let (store, clock, _db) = setup().await;
    let a1 = attempt("a-1", clock.now());
    store.begin("key-old", "h1", &a1).await.unwrap().unwrap();
    store.complete("key-old", &accepted()).await.unwrap();
    clock.advance(IDEMPOTENCY_TTL - Duration::from_secs(1));
    let a2 = attempt("a-2", clock.now());
    assert!(
        store.begin("key-old", "h2", &a2).await.unwrap().is_err(),
        "still remembered"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.lookup("key-old").await.unwrap(), None);
    assert_eq!(
        store.begin("key-old", "h2", &a2).await.unwrap(),
        Ok(()),
        "expired: taken anew"
    );
    let a3 = attempt("a-3", clock.now());
    let repeat = store.begin("key-old", "h3", &a3).await.unwrap();
    assert_eq!(repeat, Err(held("h2", &a2, None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_only_one_wins() {
    let (store, clock, _db) = setup().await;
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let a = attempt(&format!("a-{i}"), clock.now());
        tasks.push(tokio::spawn(async move {
            store.begin("race", "h", &a).await.unwrap().is_ok()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}
