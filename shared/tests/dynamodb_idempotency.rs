//! Idempotency records in the calls table against a real-protocol DynamoDB (dynoxide).

mod support;

use std::time::Duration;

use ringback::adapters::dynamodb::{CallsTable, IDEMPOTENCY_TTL};
use ringback::ports::{IdempotencyRecord, IdempotencyStore, SavedResponse, StoreError};
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

#[tokio::test]
async fn first_request_holds_the_key_and_repeats_see_its_answer() {
    let (store, _clock, _db) = setup().await;
    assert_eq!(store.begin("key-1", "h1").await.unwrap(), Ok(()));

    // A repeat while the first is still placing the call: held, no response yet.
    let held = store.begin("key-1", "h1").await.unwrap();
    assert_eq!(
        held,
        Err(IdempotencyRecord {
            request_hash: "h1".into(),
            response: None
        })
    );

    store.complete("key-1", &accepted()).await.unwrap();
    // A repeat after: the first answer, and the hash to tell a different body apart.
    let again = store.begin("key-1", "h2").await.unwrap();
    assert_eq!(
        again,
        Err(IdempotencyRecord {
            request_hash: "h1".into(),
            response: Some(accepted())
        })
    );

    // Other keys are independent.
    assert_eq!(store.begin("key-2", "h1").await.unwrap(), Ok(()));
}

#[tokio::test]
async fn release_frees_the_key_for_a_retry() {
    let (store, _clock, _db) = setup().await;
    store.begin("key-r", "h1").await.unwrap().unwrap();
    store.release("key-r").await.unwrap();
    assert_eq!(store.begin("key-r", "h1").await.unwrap(), Ok(()));
    // Releasing a key nobody holds is fine.
    store.release("never-taken").await.unwrap();
    // Completing a key nobody holds is a conflict, not a silent half-record.
    assert!(matches!(
        store.complete("never-taken", &accepted()).await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
async fn a_key_is_forgotten_after_24_hours() {
    let (store, clock, _db) = setup().await;
    store.begin("key-old", "h1").await.unwrap().unwrap();
    store.complete("key-old", &accepted()).await.unwrap();
    clock.advance(IDEMPOTENCY_TTL - Duration::from_secs(1));
    assert!(
        store.begin("key-old", "h2").await.unwrap().is_err(),
        "still remembered"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        store.begin("key-old", "h2").await.unwrap(),
        Ok(()),
        "expired: taken anew"
    );
    let held = store.begin("key-old", "h3").await.unwrap();
    assert_eq!(
        held,
        Err(IdempotencyRecord {
            request_hash: "h2".into(),
            response: None
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_only_one_wins() {
    let (store, _clock, _db) = setup().await;
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.begin("race", "h").await.unwrap().is_ok()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}
