//! Kept webhooks (the events table's raw deliveries) are bounded per call, kept once per body, and
//! never touched for a message type ringback ignores: through the real webhook service and the
//! real DynamoDB adapter on the embedded store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use ringback::adapters::dynamodb::{ensure_events_table, CallsTable, EventsTable};
use ringback::config::Timing;
use ringback::ports::{
    EnrichmentJob, EnrichmentQueue, Keeping, QueueError, StoredWebhook, SystemClock,
    WebhookArchive, MAX_KEPT_WEBHOOKS,
};
use ringback::service::webhook::{Ingested, WebhookService};
use ringback::vapi::WebhookAuth;
use serde_json::json;

const SECRET: &str = "test-secret";
const CALL: &str = "call-kept-1";

struct Accepting;

#[async_trait]
impl EnrichmentQueue for Accepting {
    async fn schedule(&self, _job: &EnrichmentJob, _delay: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

fn events(client: aws_sdk_dynamodb::Client, table: String) -> Arc<EventsTable> {
    Arc::new(EventsTable::new(
        client,
        table,
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    ))
}

/// The events table on a fresh embedded store, and the guard that keeps the store up.
async fn fresh_archive() -> (Arc<EventsTable>, support::DynamoGuard) {
    let (client, db) = support::dynamo().await;
    let table = support::unique("events");
    ensure_events_table(&client, &table).await.unwrap();
    (events(client, table), db)
}

async fn service(archive: Arc<dyn WebhookArchive>) -> (WebhookService, support::DynamoGuard) {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let store = Arc::new(CallsTable::new(
        client,
        t.calls,
        Duration::from_secs(1800),
        Arc::new(SystemClock),
    ));
    let svc = WebhookService {
        archive: Some(archive),
        store,
        queue: Arc::new(Accepting),
        clock: Arc::new(SystemClock),
        auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
        max_bytes: 1 << 20,
        timing: Timing::default(),
        metrics: ringback::metrics::Metrics::off(),
    };
    (svc, db)
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-vapi-secret", HeaderValue::from_static(SECRET));
    h
}

fn status_update(status: &str) -> Vec<u8> {
    json!({"message": {"type": "status-update", "status": status, "call": {"id": CALL}}})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn an_ignored_message_type_answers_200_with_the_events_table_down() {
    let (dead, _closer) = support::dead_dynamo().await;
    let (svc, _db) = service(events(dead, "events".into())).await;
    let chatter = json!({"message": {"type": "speech-update", "call": {"id": CALL}}});
    let out = svc
        .ingest(&headers(), chatter.to_string().as_bytes())
        .await
        .expect("api.md §2: any other type is 200 with nothing stored");
    assert_eq!(
        out,
        Ingested::Ignored {
            message_type: "speech-update".into()
        }
    );
}

#[tokio::test]
async fn the_same_body_sent_again_is_kept_once() {
    let (archive, db) = fresh_archive().await;
    let (svc, _calls) = service(archive.clone()).await;
    let ringing = status_update("ringing");
    for _ in 0..3 {
        svc.ingest(&headers(), &ringing).await.unwrap();
    }
    svc.ingest(&headers(), &status_update("in-progress"))
        .await
        .unwrap();

    let kept = archive.webhooks(CALL).await.unwrap();
    assert_eq!(kept.len(), 2, "one copy per distinct body");
    assert_eq!(kept[0].body, ringing);
    let log = archive.log(CALL).await.unwrap();
    assert_eq!(log.kept.len(), 2);
    assert_eq!(
        log.not_kept, 0,
        "a re-send is not a delivery past the bound"
    );
    assert_eq!(log.kept[0].bytes, ringing.len() as u64);
    drop(db);
}

#[tokio::test]
async fn a_call_keeps_at_most_its_bound_and_counts_the_rest() {
    let (archive, _db) = fresh_archive().await;
    let extra = 3;
    let mut outcomes = Vec::new();
    for i in 0..MAX_KEPT_WEBHOOKS + extra {
        let body = format!("{{\"n\":{i}}}").into_bytes();
        let w = StoredWebhook {
            call_id: CALL.into(),
            id: format!("id{i}"),
            received_at: format!("2026-12-04T09:00:{:02}.{:03}Z", i / 1000, i % 1000),
            message_type: "status-update".into(),
            auth: "x-vapi-secret".into(),
            outcome: "applied".into(),
            body,
        };
        outcomes.push(archive.keep(&w).await.unwrap());
    }
    let kept = outcomes.iter().filter(|k| **k == Keeping::Kept).count() as u64;
    assert_eq!(kept, MAX_KEPT_WEBHOOKS);
    assert_eq!(outcomes.last(), Some(&Keeping::OverBound));
    let log = archive.log(CALL).await.unwrap();
    assert_eq!(log.kept.len() as u64, MAX_KEPT_WEBHOOKS);
    assert_eq!(log.not_kept, extra);
    assert_eq!(
        archive.webhooks(CALL).await.unwrap().len() as u64,
        MAX_KEPT_WEBHOOKS
    );
}

fn delivery(id: &str, body: Vec<u8>) -> StoredWebhook {
    StoredWebhook {
        call_id: CALL.into(),
        id: id.into(),
        received_at: format!("2026-12-05T09:00:00.000Z{id}"),
        message_type: "status-update".into(),
        auth: "x-vapi-secret".into(),
        outcome: "applied".into(),
        body,
    }
}

#[tokio::test]
async fn concurrent_deliveries_keep_one_copy_per_body_and_never_pass_the_bound() {
    let (archive, _db) = fresh_archive().await;
    for i in 0..MAX_KEPT_WEBHOOKS - 1 {
        let w = delivery(&format!("a{i:03}"), format!("{{\"n\":{i}}}").into_bytes());
        assert_eq!(archive.keep(&w).await.unwrap(), Keeping::Kept);
    }
    // One place left: the same body sent four times at once, and four other bodies.
    let same = delivery("same", b"{\"same\":true}".to_vec());
    let others: Vec<_> = (0..4)
        .map(|i| delivery(&format!("other{i}"), format!("{{\"o\":{i}}}").into_bytes()))
        .collect();
    let mut racing = tokio::task::JoinSet::new();
    for w in std::iter::repeat_n(same, 4).chain(others) {
        let archive = archive.clone();
        racing.spawn(async move { archive.keep(&w).await.unwrap() });
    }
    let outcomes = racing.join_all().await;
    let kept = outcomes.iter().filter(|k| **k == Keeping::Kept).count();
    assert_eq!(kept, 1, "one place, one body kept: {outcomes:?}");
    let log = archive.log(CALL).await.unwrap();
    assert_eq!(log.kept.len() as u64, MAX_KEPT_WEBHOOKS);
    assert_eq!(
        archive.webhooks(CALL).await.unwrap().len() as u64,
        MAX_KEPT_WEBHOOKS,
        "every claim has its body"
    );
    // Each of the others that lost is counted past the bound; copies of the body kept are not.
    let same_kept = log.kept.iter().any(|k| k.id == "same");
    let over = outcomes
        .iter()
        .filter(|k| **k == Keeping::OverBound)
        .count() as u64;
    assert_eq!(log.not_kept, over);
    assert_eq!(over, if same_kept { 4 } else { 3 + 4 });
}

#[tokio::test]
async fn a_body_too_big_for_one_item_is_kept_in_parts_and_read_back_whole() {
    let (archive, _db) = fresh_archive().await;
    // Incompressible, so its gzip needs more than one 350 KiB item.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let body: Vec<u8> = (0..800 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let w = delivery("big", body.clone());
    assert_eq!(archive.keep(&w).await.unwrap(), Keeping::Kept);
    assert_eq!(archive.keep(&w).await.unwrap(), Keeping::AlreadyKept);
    let kept = archive.webhooks(CALL).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, body, "every part read back, in order");
}

#[tokio::test]
async fn a_delivery_that_changed_nothing_is_still_kept_when_its_body_is_new() {
    let (archive, _db) = fresh_archive().await;
    let mut first = delivery("first", b"{\"n\":1}".to_vec());
    first.outcome = StoredWebhook::DUPLICATE.into();
    assert_eq!(archive.keep(&first).await.unwrap(), Keeping::Kept);
    assert_eq!(archive.keep(&first).await.unwrap(), Keeping::AlreadyKept);
    let mut second = delivery("second", b"{\"n\":2}".to_vec());
    second.outcome = StoredWebhook::DUPLICATE.into();
    assert_eq!(archive.keep(&second).await.unwrap(), Keeping::Kept);
    let log = archive.log(CALL).await.unwrap();
    assert_eq!(log.kept.len(), 2);
    assert!(log.kept.iter().all(|k| k.outcome == "duplicate"));
}
