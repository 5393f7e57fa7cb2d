//! Each service emits the metrics operations rely on (docs/operations.md#metrics), checked through
//! `Metrics::capture()` against the real adapters: DynamoDB on embedded dynoxide, Vapi played by the
//! project's simulator through the real REST client. The queue is a stand-in that accepts everything.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use ringback::adapters::dynamodb::{CallsTable, ProvidersAndLogs};
use ringback::config::Timing;
use ringback::domain::{apply_webhook, CallRecord, DataStatus, EventKey, MAX_REDRIVES};
use ringback::metrics::Metrics;
use ringback::ports::{CallStore, Clock, EnrichmentJob, EnrichmentQueue, QueueError};
use ringback::service::cleanup::CleanupService;
use ringback::service::deadline_for;
use ringback::service::enrichment::EnrichmentService;
use ringback::service::initiate::{InitiateError, InitiatorService};
use ringback::service::webhook::{IngestError, WebhookService};
use ringback::vapi::{snapshot_from_call, CallSettings, VapiClient, VapiClientConfig, WebhookAuth};
use serde_json::json;
use support::ManualClock;
use vapi_simulator::{FetchScript, Simulator, SimulatorConfig, SimulatorHandle, Timings};

const SECRET: &str = "test-secret";
const NOW: &str = "2026-03-02T15:06:00Z";

struct AcceptingQueue;

#[async_trait]
impl EnrichmentQueue for AcceptingQueue {
    async fn schedule(&self, _: &EnrichmentJob, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

struct World {
    store: Arc<CallsTable>,
    sink: Arc<ProvidersAndLogs>,
    clock: Arc<ManualClock>,
    metrics: Metrics,
    sim: SimulatorHandle,
    _db: support::DynamoGuard,
}

async fn world() -> World {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at(NOW);
    // A week of TTL: the cleanup test moves the clock days ahead and the records must still be there.
    let ttl = Duration::from_secs(7 * 24 * 3600);
    let sim = Simulator::start(SimulatorConfig {
        timings: Timings::fast(),
        ..Default::default()
    })
    .await
    .expect("simulator starts");
    World {
        store: Arc::new(CallsTable::new(client.clone(), t.calls, ttl, clock.clone())),
        sink: Arc::new(ProvidersAndLogs::new(
            client,
            t.providers,
            t.logs,
            clock.clone(),
        )),
        clock,
        metrics: Metrics::capture(),
        sim,
        _db: db,
    }
}

impl World {
    fn vapi(&self) -> Arc<VapiClient> {
        Arc::new(
            VapiClient::new(VapiClientConfig::new(self.sim.base_url(), "test-key"))
                .with_metrics(self.metrics.clone()),
        )
    }

    fn webhook(&self) -> WebhookService {
        WebhookService {
            store: self.store.clone(),
            queue: Arc::new(AcceptingQueue),
            clock: self.clock.clone(),
            auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
            max_bytes: 1 << 20,
            timing: Timing::default(),
            metrics: self.metrics.clone(),
            archive: None,
        }
    }

    fn enrichment(&self) -> EnrichmentService {
        EnrichmentService {
            store: self.store.clone(),
            queue: Arc::new(AcceptingQueue),
            vapi: self.vapi(),
            sink: self.sink.clone(),
            clock: self.clock.clone(),
            timing: Timing::default(),
            poison: None,
            metrics: self.metrics.clone(),
            push: None,
        }
    }

    fn cleanup(&self) -> CleanupService {
        CleanupService {
            revive: None,
            reconcile: None,
            store: self.store.clone(),
            queue: Arc::new(AcceptingQueue),
            sink: self.sink.clone(),
            clock: self.clock.clone(),
            timing: Timing::default(),
            page_size: 10,
            metrics: self.metrics.clone(),
            push: None,
            erase: None,
        }
    }

    fn initiator(&self) -> InitiatorService {
        InitiatorService {
            store: self.store.clone(),
            idempotency: self.store.clone(),
            queue: Arc::new(AcceptingQueue),
            vapi: self.vapi(),
            clock: self.clock.clone(),
            settings: CallSettings {
                phone_number_id: "8c2d4f6a-3b1e-4d7c-a9f0-6e5d4c3b2a10".into(),
                assistant_id: None,
                // Nothing listens there: the simulator's webhooks go nowhere, which is fine here.
                webhook_url: "http://127.0.0.1:9/api/v1/vapi/webhook".into(),
                webhook_secret: Some(SECRET.into()),
                deployment_id: ringback::config::DeploymentId::parse("stack-test").unwrap(),
            },
            timing: Timing::default(),
            idempotency_wait: Duration::from_secs(1),
            in_doubt_after: Duration::from_secs(30),
            metrics: self.metrics.clone(),
            callbacks: ringback::service::initiate::Callbacks::Off,
        }
    }

    /// The captured values of `name` carrying these dimension values, summed.
    fn total(&self, name: &str, dims: &[(&str, &str)]) -> f64 {
        self.metrics.total(name, dims)
    }
}

fn secret_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-vapi-secret", HeaderValue::from_static(SECRET));
    h
}

#[tokio::test]
async fn webhooks_are_counted_by_what_became_of_them() {
    let w = world().await;
    let svc = w.webhook();
    let report = serde_json::to_vec(&support::fixture("end-of-call-report.json")).unwrap();

    let err = svc
        .ingest(&HeaderMap::new(), &report)
        .await
        .expect_err("no secret");
    assert!(matches!(err, IngestError::Unauthorized(_)));
    svc.ingest(&secret_headers(), b"not json")
        .await
        .expect_err("invalid");
    svc.ingest(&secret_headers(), &report)
        .await
        .expect("accepted");
    svc.ingest(&secret_headers(), &report)
        .await
        .expect("duplicate");
    svc.ingest(
        &secret_headers(),
        br#"{"message":{"type":"speech-update"}}"#,
    )
    .await
    .expect("ignored");

    assert_eq!(w.total("WebhooksReceived", &[]), 5.0);
    assert_eq!(
        w.total("WebhooksRejected", &[("reason", "unauthorized")]),
        1.0
    );
    assert_eq!(
        w.total("WebhooksRejected", &[("reason", "invalid_payload")]),
        1.0
    );
    assert_eq!(
        w.total("WebhooksRejected", &[]),
        2.0,
        "the total the alarm watches"
    );
    assert_eq!(w.total("WebhooksAccepted", &[]), 1.0);
    assert_eq!(w.total("WebhooksDuplicate", &[]), 1.0);
    assert_eq!(w.total("WebhooksIgnored", &[]), 1.0);

    // The rejection's document, as CloudWatch reads it: the reason is a dimension, the total too.
    let doc = w
        .metrics
        .documents()
        .into_iter()
        .find(|d| d.get("WebhooksRejected").is_some())
        .unwrap();
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Ringback");
    assert_eq!(directive["Dimensions"], json!([["reason"], []]));
    assert_eq!(
        directive["Metrics"],
        json!([{"Name": "WebhooksRejected", "Unit": "Count"}])
    );
    // No call id or phone number ever rides along.
    let text = doc.to_string();
    assert!(!text.contains("5e2b7c91") && !text.contains("+1"), "{text}");
}

#[tokio::test]
async fn enrichment_counts_outcomes_vapi_calls_and_time_to_complete() {
    let w = world().await;
    let mut call = support::fixture("get-call-complete.json");
    call["id"] = "call-metrics".into();
    let id = w.sim.seed_call(call.clone(), FetchScript::Always);
    // The webhook's record, received at NOW; Vapi's data is complete 90 s later.
    let report = vapi_simulator::incomplete(&call);
    let mut snap = snapshot_from_call(&report);
    snap.call_id = id.clone();
    let out = apply_webhook(None, &snap, &EventKey::end_of_call_report(), NOW);
    w.store.put(&out.record, None, None).await.unwrap();
    w.clock.advance(Duration::from_secs(90));

    let svc = w.enrichment();
    let job = json!({"callId": id, "attempt": 1, "kind": "enrich"}).to_string();
    svc.process("msg-1", &job).await.expect("processed");
    svc.process("msg-2", "{not a job")
        .await
        .expect_err("poison");

    assert_eq!(w.total("EnrichmentAttempts", &[]), 1.0);
    assert_eq!(
        w.total("EnrichmentOutcome", &[("outcome", "complete")]),
        1.0
    );
    assert_eq!(w.total("EnrichmentOutcome", &[("outcome", "poison")]), 1.0);
    assert_eq!(w.total("TimeToComplete", &[]), 90_000.0);
    assert_eq!(
        w.total(
            "VapiApiCalls",
            &[("operation", "get_call"), ("result", "ok")]
        ),
        1.0
    );
    let latency = w
        .metrics
        .documents()
        .into_iter()
        .find(|d| d.get("VapiApiLatency").is_some())
        .unwrap();
    assert_eq!(latency["operation"], "get_call");
    assert_eq!(
        latency["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
        "Milliseconds"
    );
}

#[tokio::test]
async fn cleanup_counts_calls_it_redrives_and_settles() {
    let w = world().await;
    let timing = Timing::default();
    let now = w.clock.now();
    for (id, redrives) in [
        ("call-stuck-once", 0),
        ("call-stuck-for-good", MAX_REDRIVES),
    ] {
        let mut rec = CallRecord::new(id, NOW);
        rec.book.redrives = redrives;
        let deadline = deadline_for(&rec, now, &timing);
        w.store.put(&rec, None, deadline).await.unwrap();
    }
    w.clock.advance(Duration::from_secs(2 * 24 * 3600));

    let report = w.cleanup().run_once().await.unwrap();
    assert_eq!((report.redriven, report.settled), (1, 1));
    assert_eq!(w.total("CallsRedrivenByCleanup", &[]), 1.0);
    assert_eq!(w.total("CallsSettledByCleanup", &[]), 1.0);
    let settled = w.store.get("call-stuck-for-good").await.unwrap().unwrap();
    assert_eq!(settled.record.result.data_status, DataStatus::FetchFailed);
}

#[tokio::test]
async fn starting_calls_counts_starts_and_failures_by_reason() {
    let w = world().await;
    let svc = w.initiator();
    let request = json!({
        "providerName": "Acme Plumbing",
        "providerPhone": "+14155550123",
        "serviceNeeded": "leaking pipe",
        "userCriteria": "available this week",
        "location": "Oakland, CA",
        "urgency": "within_24_hours",
    });
    let body = serde_json::to_vec(&request).unwrap();

    svc.start(&body, None).await.expect("started");
    let err = svc
        .start(br#"{"providerName": ""}"#, None)
        .await
        .expect_err("invalid");
    assert!(matches!(err, InitiateError::Invalid(_)));

    assert_eq!(w.total("CallsStarted", &[]), 1.0);
    assert_eq!(w.total("CallStartFailures", &[("reason", "invalid")]), 1.0);
    assert_eq!(w.total("CallStartFailures", &[]), 1.0);
    assert_eq!(
        w.total(
            "VapiApiCalls",
            &[("operation", "create_call"), ("result", "ok")]
        ),
        1.0
    );
    // Nothing about the callee reaches a metric.
    let all = serde_json::to_string(&w.metrics.documents()).unwrap();
    assert!(
        !all.contains("+14155550123") && !all.contains("Acme"),
        "{all}"
    );
}
