//! A replay racing the call's webhooks, through the real calls and events tables on the embedded
//! DynamoDB: a webhook that lands while the replay rebuilds the record is not dropped.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use ringback::adapters::dynamodb::{ensure_events_table, CallsTable, EventsTable};
use ringback::config::Timing;
use ringback::domain::{CallRecord, DataStatus};
use ringback::ports::{
    CallStore, EnrichmentJob, EnrichmentQueue, QueueError, StoreError, SystemClock,
};
use ringback::service::replay::ReplayService;
use ringback::service::webhook::WebhookService;
use ringback::vapi::WebhookAuth;
use serde_json::json;

const SECRET: &str = "test-secret";
const CALL: &str = "call-replay-race";

struct Accepting;

#[async_trait]
impl EnrichmentQueue for Accepting {
    async fn schedule(&self, _job: &EnrichmentJob, _delay: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

/// Just before the replay's first write a webhook is delivered (kept, then written to the
/// record): the replay's write then loses its race.
struct LateWebhook {
    webhooks: Arc<WebhookService>,
    body: Mutex<Option<Vec<u8>>>,
}

#[async_trait]
impl support::Hooks for LateWebhook {
    async fn put(&self, _record: &CallRecord) -> Option<Result<u64, StoreError>> {
        let late = self.body.lock().unwrap().take();
        if let Some(body) = late {
            self.webhooks
                .ingest(&headers(), &body)
                .await
                .expect("the late webhook is taken");
        }
        None
    }
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-vapi-secret", HeaderValue::from_static(SECRET));
    h
}

#[tokio::test]
async fn a_webhook_landing_during_a_replay_is_in_the_rebuilt_record() {
    let (client, _db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let events_table = support::unique("events");
    ensure_events_table(&client, &events_table).await.unwrap();
    let clock = Arc::new(SystemClock);
    let archive = Arc::new(EventsTable::new(
        client.clone(),
        events_table,
        Duration::from_secs(86_400),
        clock.clone(),
    ));
    let calls = Arc::new(CallsTable::new(
        client,
        t.calls,
        Duration::from_secs(1800),
        clock.clone(),
    ));
    let webhooks = Arc::new(WebhookService {
        archive: Some(archive.clone()),
        store: calls.clone(),
        queue: Arc::new(Accepting),
        clock: clock.clone(),
        auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
        max_bytes: 1 << 20,
        timing: Timing::default(),
        metrics: ringback::metrics::Metrics::off(),
    });
    let ended = json!({"message": {"type": "status-update", "status": "ended",
        "endedReason": "customer-ended-call", "call": {"id": CALL}}});
    webhooks
        .ingest(&headers(), ended.to_string().as_bytes())
        .await
        .unwrap();
    // Settled (as the enrichment would leave it), so that it may be replayed.
    let v = calls.get(CALL).await.unwrap().unwrap();
    let mut settled = v.record.clone();
    settled.result.data_status = DataStatus::FetchFailed;
    calls.put(&settled, Some(v.version), None).await.unwrap();

    let report = json!({"message": {"type": "end-of-call-report",
        "endedReason": "customer-ended-call",
        "artifact": {"transcript": "AI: Hello.\nUser: Tuesday works."},
        "call": {"id": CALL}}});
    let replay = ReplayService {
        store: Arc::new(support::Hooked::new(
            calls.clone(),
            LateWebhook {
                webhooks: webhooks.clone(),
                body: Mutex::new(Some(report.to_string().into_bytes())),
            },
        )),
        archive,
        queue: Arc::new(Accepting),
        clock,
        timing: Timing::default(),
    };
    let replayed = replay.replay(CALL).await.expect("replayed");
    assert_eq!(replayed.events, 2, "the late report is re-applied too");
    let now = calls.get(CALL).await.unwrap().unwrap().record.result;
    assert_eq!(
        now.transcript.as_deref(),
        Some("AI: Hello.\nUser: Tuesday works."),
        "the report that landed during the replay is not dropped"
    );
}
