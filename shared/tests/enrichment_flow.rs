//! The enrichment consumer end to end against real-protocol servers: the calls, providers and
//! interaction-log tables in an embedded DynamoDB (dynoxide over HTTP, through the real adapters),
//! Vapi played by the project's simulator over HTTP (through the real REST client). The queue is a
//! recording stand-in: the test plays the event source mapping, delivering each queued job with a
//! message id of its choosing (the SQS adapter has its own tests).
//!
//! Each test prints how many `GET /call/{id}` one call cost (the old backend polled up to 60 times).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ringback::adapters::dynamodb::{CallsTable, ProvidersAndLogs};
use ringback::config::Timing;
use ringback::domain::{
    admit, apply_webhook, Admission, CallRecord, CallStatus, DataStatus, EnrichmentOutcome,
    EventKey, Skip,
};
use ringback::ports::{
    CallStore, EnrichmentJob, EnrichmentQueue, JobKind, Persisted, PoisonSink, QueueError,
    ResultSink, SinkError,
};
use ringback::service::enrichment::{handle_batch, EnrichmentService, ProcessError, Processed};
use ringback::vapi::{snapshot_from_call, VapiClient, VapiClientConfig};
use serde_json::{json, Value};
use support::{ManualClock, Tables};
use vapi_simulator::{FetchScript, Simulator, SimulatorConfig, SimulatorHandle, Timings};

const PROVIDER: &str = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";
const REQUEST: &str = "1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const NOW: &str = "2026-03-02T15:06:00Z";

type Item = std::collections::HashMap<String, AttributeValue>;

// ---- stand-ins for what is not under test ----

/// The queue: records every job and its delay (the test delivers them); can be made to fail.
#[derive(Default)]
struct RecordingQueue {
    jobs: Mutex<Vec<(EnrichmentJob, Duration)>>,
    down: AtomicBool,
}

#[async_trait]
impl EnrichmentQueue for RecordingQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError("SendMessage: service unavailable".into()));
        }
        self.jobs.lock().unwrap().push((job.clone(), delay));
        Ok(())
    }
}

impl RecordingQueue {
    fn take(&self) -> Vec<(EnrichmentJob, Duration)> {
        std::mem::take(&mut self.jobs.lock().unwrap())
    }
}

/// The real persistence adapter, with a count of the saves that reached it, and an outage switch
/// in front of it.
struct CountingSink {
    inner: ProvidersAndLogs,
    saves: AtomicU32,
    down: AtomicBool,
}

#[async_trait]
impl ResultSink for CountingSink {
    async fn save(&self, result: &ringback::domain::CallResult) -> Result<Persisted, SinkError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::transient("UpdateItem: throttled"));
        }
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(result).await
    }
    async fn erase(&self, t: &ringback::domain::CallResult) -> Result<Persisted, SinkError> {
        self.inner.erase(t).await
    }
}

/// A dead-letter stand-in: what was parked, or a failure on demand.
#[derive(Default)]
struct Parking {
    parked: Mutex<Vec<(String, String)>>,
    broken: bool,
}

#[async_trait]
impl PoisonSink for Parking {
    async fn park(&self, message_id: &str, body: &str) -> Result<(), String> {
        if self.broken {
            return Err("dead-letter queue unavailable".into());
        }
        self.parked
            .lock()
            .unwrap()
            .push((message_id.into(), body.into()));
        Ok(())
    }
}

// ---- the harness ----

struct Harness {
    svc: EnrichmentService,
    queue: Arc<RecordingQueue>,
    sink: Arc<CountingSink>,
    parking: Arc<Parking>,
    store: Arc<CallsTable>,
    sim: SimulatorHandle,
    client: Client,
    t: Tables,
    clock: Arc<ManualClock>,
    next_message: AtomicU32,
    _db: support::DynamoGuard,
}

fn timing() -> Timing {
    Timing {
        enrichment_delays: vec![
            Duration::from_secs(3),
            Duration::from_secs(5),
            Duration::from_secs(8),
        ],
        // Longer than SQS allows: the consumer must cap it at 900 s.
        watchdog_delay: Duration::from_secs(1200),
        max_call: Duration::from_secs(3600),
        stuck_grace: Duration::from_secs(1200),
        deadline_cap: Duration::from_secs(1380),
        claim_lease: Duration::from_secs(60),
    }
}

async fn harness() -> Harness {
    harness_with(Parking::default()).await
}

async fn harness_with(parking: Parking) -> Harness {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at(NOW);
    let sim = Simulator::start(SimulatorConfig {
        timings: Timings::fast(),
        ..Default::default()
    })
    .await
    .expect("simulator starts");
    let store = Arc::new(CallsTable::new(
        client.clone(),
        t.calls.clone(),
        Duration::from_secs(1800),
        clock.clone(),
    ));
    let sink = Arc::new(CountingSink {
        inner: ProvidersAndLogs::new(
            client.clone(),
            t.providers.clone(),
            t.logs.clone(),
            clock.clone(),
        ),
        saves: AtomicU32::new(0),
        down: AtomicBool::new(false),
    });
    let queue = Arc::new(RecordingQueue::default());
    let parking = Arc::new(parking);
    let svc = EnrichmentService {
        store: store.clone(),
        queue: queue.clone(),
        vapi: Arc::new(VapiClient::new(VapiClientConfig::new(
            sim.base_url(),
            "test-key",
        ))),
        sink: sink.clone(),
        clock: clock.clone(),
        timing: timing(),
        poison: Some(parking.clone()),
        metrics: ringback::metrics::Metrics::off(),
        push: None,
    };
    Harness {
        svc,
        queue,
        sink,
        parking,
        store,
        sim,
        client,
        t,
        clock,
        next_message: AtomicU32::new(1),
        _db: db,
    }
}

/// Vapi's answer for an ended call with complete data, carrying our correlation ids.
fn ended_call(id: &str) -> Value {
    let mut call = support::fixture("get-call-complete.json");
    call["id"] = id.into();
    call["assistantOverrides"]["metadata"] = json!({
        "providerId": PROVIDER,
        "serviceRequestId": REQUEST,
        "providerName": "Acme Plumbing",
    });
    call
}

/// The same call while it is still running: no end, no artifacts yet.
fn running_call(id: &str) -> Value {
    let mut call = ended_call(id);
    let obj = call.as_object_mut().unwrap();
    for gone in [
        "endedReason",
        "endedAt",
        "analysis",
        "artifact",
        "messages",
        "cost",
        "costBreakdown",
    ] {
        obj.remove(gone);
    }
    obj.insert("status".into(), "in-progress".into());
    call
}

fn enrich(call_id: &str, attempt: u32) -> EnrichmentJob {
    EnrichmentJob {
        call_id: call_id.into(),
        attempt,
        kind: JobKind::Enrich,
        event_id: None,
    }
}

fn watchdog(call_id: &str, attempt: u32) -> EnrichmentJob {
    EnrichmentJob {
        call_id: call_id.into(),
        attempt,
        kind: JobKind::Watchdog,
        event_id: None,
    }
}

impl Harness {
    /// The record the webhook leaves after an `end-of-call-report` whose data was incomplete
    /// (transcript cut short, no analysis yet), through the real webhook transition.
    async fn webhook_record(&self, call_id: &str, tweak: impl FnOnce(&mut CallRecord)) {
        let report = vapi_simulator::incomplete(&ended_call(call_id));
        let out = apply_webhook(
            None,
            &snapshot_from_call(&report),
            &EventKey::end_of_call_report(),
            NOW,
        );
        assert!(out.schedule_enrichment);
        let mut record = out.record;
        tweak(&mut record);
        self.store
            .put(&record, None, None)
            .await
            .expect("record written");
    }

    /// The record the initiator leaves: pending, request details, no webhook yet.
    async fn initiated_record(&self, call_id: &str) {
        let mut record = CallRecord::new(call_id, NOW);
        record.result.provider.name = Some("Acme Plumbing".into());
        record.result.provider_id = Some(PROVIDER.into());
        record.result.service_request_id = Some(REQUEST.into());
        self.store
            .put(&record, None, None)
            .await
            .expect("record written");
    }

    async fn record(&self, call_id: &str) -> Option<CallRecord> {
        self.store
            .get(call_id)
            .await
            .expect("store readable")
            .map(|v| v.record)
    }

    fn message_id(&self) -> String {
        format!("msg-{}", self.next_message.fetch_add(1, Ordering::SeqCst))
    }

    async fn deliver_as(
        &self,
        message_id: &str,
        job: &EnrichmentJob,
    ) -> Result<Processed, ProcessError> {
        self.svc
            .process(message_id, &serde_json::to_string(job).unwrap())
            .await
    }

    async fn deliver(&self, job: &EnrichmentJob) -> Processed {
        let id = self.message_id();
        self.deliver_as(&id, job)
            .await
            .unwrap_or_else(|e| panic!("{job:?}: {e}"))
    }

    /// Delivers `first` and then every job it queues, as SQS would once each delay passed.
    /// Returns the delays asked for, in order.
    async fn run_chain(&self, first: EnrichmentJob) -> Vec<(EnrichmentJob, Duration)> {
        let mut asked = Vec::new();
        let mut next = vec![first];
        while let Some(job) = next.pop() {
            assert!(asked.len() < 20, "the chain does not end");
            self.deliver(&job).await;
            for (job, delay) in self.queue.take() {
                asked.push((job.clone(), delay));
                next.push(job);
            }
        }
        asked
    }

    fn gets(&self, call_id: &str) -> u32 {
        self.sim.get_calls_for(call_id)
    }

    async fn provider_row(&self) -> Option<Item> {
        support::provider_row(&self.client, &self.t.providers, PROVIDER).await
    }

    async fn logs(&self) -> Vec<Item> {
        support::interaction_logs(&self.client, &self.t.logs, REQUEST).await
    }

    /// One interaction log for `call_id`, with this status; the provider row points at the call.
    async fn assert_persisted_once(&self, call_id: &str, log_status: &str, data_status: &str) {
        let logs = self.logs().await;
        assert_eq!(logs.len(), 1, "one interaction log: {logs:?}");
        assert_eq!(s(&logs[0], "callId"), call_id);
        assert_eq!(s(&logs[0], "status"), log_status);
        assert_eq!(s(&logs[0], "step_name"), "Call to Acme Plumbing");
        let row = self.provider_row().await.expect("provider row written");
        assert_eq!(s(&row, "call_id"), call_id);
        assert_eq!(s(&row, "call_data_status"), data_status);
        assert_eq!(
            self.sink.saves.load(Ordering::SeqCst),
            1,
            "one save of the finished call"
        );
    }
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .unwrap_or_else(|| panic!("{name} is not a string in {item:?}"))
}

// ---- tests ----

#[tokio::test]
async fn completes_on_the_second_fetch() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-second"), FetchScript::CompleteOnNth(2));
    h.webhook_record(&id, |_| {}).await;

    let first = h.deliver(&enrich(&id, 1)).await;
    assert_eq!(first.vapi_calls, 1);
    assert!(
        matches!(first.outcome, EnrichmentOutcome::Rescheduled { .. }),
        "{:?}",
        first.outcome
    );
    assert_eq!(
        h.queue.take(),
        vec![(enrich(&id, 2), Duration::from_secs(5))],
        "attempt 2 after the 2nd delay"
    );
    let between = h.record(&id).await.unwrap().result;
    assert_eq!(between.data_status, DataStatus::Partial);
    assert_eq!(between.fetch_attempts, 1);
    assert!(
        h.logs().await.is_empty(),
        "nothing persisted before the call is finished"
    );

    let second = h.deliver(&enrich(&id, 2)).await;
    assert_eq!(second.outcome, EnrichmentOutcome::Complete);
    assert!(h.queue.take().is_empty());

    let r = h.record(&id).await.unwrap().result;
    assert_eq!(r.data_status, DataStatus::Complete);
    assert_eq!(r.fetch_attempts, 2);
    assert_eq!(r.fetched_at.as_deref(), Some("2026-03-02T15:06:00.000Z"));
    assert!(r
        .analysis
        .summary
        .as_deref()
        .unwrap()
        .contains("Thursday between 8 and 10 am"));
    assert!(r.transcript.as_deref().unwrap().len() > 50);
    assert_eq!(r.fetch_error, None);
    h.assert_persisted_once(&id, "success", "complete").await;
    let gets = h.gets(&id);
    eprintln!("vapi GETs for a call completing on the 2nd fetch: {gets}");
    assert_eq!(gets, 2);
}

#[tokio::test]
async fn never_complete_ends_fetch_failed_with_the_webhook_data_kept() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-never"), FetchScript::Never);
    let webhook_transcript =
        "AI: Hello, this is the assistant calling for Dana about a plumbing job.\nUser: Sure.";
    h.webhook_record(&id, |r| {
        r.result.transcript = Some(webhook_transcript.into());
        r.result.analysis.summary = Some("From the webhook".into());
    })
    .await;

    let asked = h.run_chain(enrich(&id, 1)).await;
    assert_eq!(
        asked,
        vec![
            (enrich(&id, 2), Duration::from_secs(5)),
            (enrich(&id, 3), Duration::from_secs(8))
        ],
        "one job per remaining attempt, each with its own delay"
    );
    let r = h.record(&id).await.unwrap().result;
    assert_eq!(r.data_status, DataStatus::FetchFailed);
    assert_eq!(r.fetch_attempts, 3);
    assert_eq!(
        r.fetch_error.as_deref(),
        Some("Vapi data still incomplete after 3 attempts")
    );
    assert_eq!(
        r.transcript.as_deref(),
        Some(webhook_transcript),
        "the longer transcript is kept"
    );
    assert_eq!(r.analysis.summary.as_deref(), Some("From the webhook"));

    h.assert_persisted_once(&id, "warning", "fetch_failed")
        .await;
    let row = h.provider_row().await.unwrap();
    assert_eq!(s(&row, "call_transcript"), webhook_transcript);
    assert_eq!(s(&row, "call_summary"), "From the webhook");
    let gets = h.gets(&id);
    eprintln!("vapi GETs for a call never complete (3 delays): {gets}");
    assert_eq!(gets, 3);
}

#[tokio::test]
async fn vapi_500s_are_retried_by_redelivery_then_complete() {
    let h = harness().await;
    let id = h.sim.seed_call(
        ended_call("call-flaky"),
        FetchScript::FailTimes {
            status: 500,
            times: 3,
        },
    );
    h.webhook_record(&id, |_| {}).await;

    for round in 1..=3 {
        let err = h
            .deliver_as("msg-flaky", &enrich(&id, 1))
            .await
            .expect_err("a 500 is retried");
        assert!(err.is_retry(), "round {round}: {err}");
        let r = h.record(&id).await.unwrap();
        assert_eq!(
            r.result.data_status,
            DataStatus::Fetching,
            "the claim is held for the redelivery"
        );
        assert_eq!(r.book.claimed_by.as_deref(), Some("msg-flaky"));
        assert!(
            h.queue.take().is_empty(),
            "a retry queues nothing: SQS redelivers the message"
        );
        assert!(h.logs().await.is_empty());
    }
    // The redelivery of the same message id re-claims and finishes.
    let done = h.deliver_as("msg-flaky", &enrich(&id, 1)).await.unwrap();
    assert_eq!(done.outcome, EnrichmentOutcome::Complete);
    assert_eq!(
        h.record(&id).await.unwrap().result.data_status,
        DataStatus::Complete
    );
    h.assert_persisted_once(&id, "success", "complete").await;
    let gets = h.gets(&id);
    eprintln!("vapi GETs for a call behind three 500s: {gets}");
    assert_eq!(gets, 4);
}

#[tokio::test]
async fn vapi_404_settles_a_known_call_and_ignores_an_unknown_one() {
    let h = harness().await;
    // Known to us, unknown to Vapi: fetch_failed, what we have persisted.
    h.webhook_record("call-gone", |_| {}).await;
    let out = h.deliver(&enrich("call-gone", 1)).await;
    assert_eq!(
        out.outcome,
        EnrichmentOutcome::FetchFailed {
            reason: "Vapi has no call call-gone".into()
        }
    );
    let r = h.record("call-gone").await.unwrap().result;
    assert_eq!(r.data_status, DataStatus::FetchFailed);
    assert_eq!(r.fetch_error.as_deref(), Some("Vapi has no call call-gone"));
    assert!(r.transcript.is_some(), "the webhook's data is kept");
    h.assert_persisted_once("call-gone", "warning", "fetch_failed")
        .await;

    // Unknown to both: acknowledged, nothing written anywhere.
    let out = h.deliver(&enrich("call-nobody", 1)).await;
    assert!(
        matches!(out.outcome, EnrichmentOutcome::UnknownCall { .. }),
        "{:?}",
        out.outcome
    );
    assert!(h.record("call-nobody").await.is_none());
    assert_eq!(h.logs().await.len(), 1);
    assert_eq!(h.sink.saves.load(Ordering::SeqCst), 1);
    assert!(h.queue.take().is_empty());
}

#[tokio::test]
async fn sink_and_queue_outages_are_retried_without_losing_the_call() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-outage"), FetchScript::CompleteOnNth(3));
    h.webhook_record(&id, |_| {}).await;

    // The queue is down when attempt 2 must be queued: retried, and the attempt is not written
    // as done without its successor (its claim is released for whoever comes next).
    h.queue.down.store(true, Ordering::SeqCst);
    let err = h
        .deliver_as("msg-1", &enrich(&id, 1))
        .await
        .expect_err("queue down");
    assert!(err.is_retry(), "{err}");
    let r = h.record(&id).await.unwrap();
    assert_eq!(r.result.data_status, DataStatus::Fetching);
    assert_eq!(
        r.book.claim_until.as_deref(),
        Some("2026-03-02T15:06:00.000Z"),
        "released: the lease ends now"
    );
    h.queue.down.store(false, Ordering::SeqCst);
    // The redelivery (same message id) does the attempt again and queues attempt 2.
    assert!(matches!(
        h.deliver_as("msg-1", &enrich(&id, 1))
            .await
            .unwrap()
            .outcome,
        EnrichmentOutcome::Rescheduled { .. }
    ));
    assert_eq!(
        h.queue.take(),
        vec![(enrich(&id, 2), Duration::from_secs(5))]
    );

    // The sink is down when the call completes: it is not marked finished without its rows.
    h.sink.down.store(true, Ordering::SeqCst);
    let err = h
        .deliver_as("msg-2", &enrich(&id, 2))
        .await
        .expect_err("sink down");
    assert!(err.is_retry(), "{err}");
    let r = h.record(&id).await.unwrap().result;
    assert_eq!(
        r.data_status,
        DataStatus::Fetching,
        "not complete before it is persisted"
    );
    assert!(h.logs().await.is_empty());
    h.sink.down.store(false, Ordering::SeqCst);
    assert_eq!(
        h.deliver_as("msg-2", &enrich(&id, 2))
            .await
            .unwrap()
            .outcome,
        EnrichmentOutcome::Complete
    );
    assert_eq!(
        h.record(&id).await.unwrap().result.data_status,
        DataStatus::Complete
    );
    h.assert_persisted_once(&id, "success", "complete").await;
    let gets = h.gets(&id);
    eprintln!("vapi GETs for a call through a queue and a sink outage: {gets}");
    assert_eq!(gets, 4);
}

#[tokio::test]
async fn duplicate_sends_of_a_job_start_one_chain() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-dup"), FetchScript::CompleteOnNth(2));
    h.webhook_record(&id, |_| {}).await;

    let first = h.deliver(&enrich(&id, 1)).await;
    assert!(matches!(
        first.outcome,
        EnrichmentOutcome::Rescheduled { .. }
    ));
    // The same job sent twice (another message id): acknowledged without asking Vapi.
    let dup = h.deliver(&enrich(&id, 1)).await;
    assert_eq!(
        dup.outcome,
        EnrichmentOutcome::Skipped(Skip::AttemptSettled)
    );
    assert_eq!(dup.vapi_calls, 0);
    let queued = h.queue.take();
    assert_eq!(queued.len(), 1, "one next attempt, not two: {queued:?}");

    assert_eq!(
        h.deliver(&queued[0].0).await.outcome,
        EnrichmentOutcome::Complete
    );
    // Late duplicates of either attempt change nothing.
    assert_eq!(
        h.deliver(&enrich(&id, 1)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::Finished)
    );
    assert_eq!(
        h.deliver(&enrich(&id, 2)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::Finished)
    );
    // A watchdog arriving after the webhook's chain finished does nothing either.
    assert_eq!(
        h.deliver(&watchdog(&id, 1)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::Finished)
    );
    assert!(h.queue.take().is_empty());
    h.assert_persisted_once(&id, "success", "complete").await;
    let gets = h.gets(&id);
    eprintln!("vapi GETs for a call with duplicated jobs: {gets}");
    assert_eq!(gets, 2);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_job_do_the_work_once() {
    let h = harness().await;
    // Slow answers keep the winner's claim held while the other delivery arrives.
    let id = h.sim.seed_call(
        ended_call("call-race"),
        FetchScript::Slow(Duration::from_millis(300)),
    );
    h.webhook_record(&id, |_| {}).await;

    let job = enrich(&id, 1);
    let (a, b) = tokio::join!(h.deliver_as("msg-a", &job), h.deliver_as("msg-b", &job));
    let (a, b) = (a.unwrap(), b.unwrap());
    let outcomes = [&a.outcome, &b.outcome];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| ***o == EnrichmentOutcome::Complete)
            .count(),
        1,
        "{outcomes:?}"
    );
    // The other found the claim live: not dropped, but deferred to the claim's end.
    let deferred = outcomes
        .iter()
        .find_map(|o| match o {
            EnrichmentOutcome::Deferred { delay } => Some(*delay),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{outcomes:?}"));
    assert_eq!(a.vapi_calls + b.vapi_calls, 1);
    assert_eq!(h.gets(&id), 1, "Vapi asked once");
    let queued = h.queue.take();
    assert_eq!(
        queued,
        vec![(job.clone(), deferred)],
        "one copy, due when the claim ends"
    );
    assert!(deferred > Duration::from_secs(1) && deferred <= Duration::from_secs(61));
    // Its copy comes back to a finished call.
    assert_eq!(
        h.deliver(&job).await.outcome,
        EnrichmentOutcome::Skipped(Skip::Finished)
    );
    h.assert_persisted_once(&id, "success", "complete").await;
}

#[tokio::test]
async fn a_call_without_record_is_built_from_vapi_alone() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-fresh"), FetchScript::Always);
    assert!(h.record(&id).await.is_none());

    let out = h.deliver(&enrich(&id, 1)).await;
    assert_eq!(out.outcome, EnrichmentOutcome::Complete);
    let r = h.record(&id).await.expect("record created").result;
    assert_eq!(r.data_status, DataStatus::Complete);
    assert_eq!(r.call_status, CallStatus::Ended);
    assert_eq!(
        r.provider_id.as_deref(),
        Some(PROVIDER),
        "correlation ids from Vapi's metadata"
    );
    assert_eq!(r.provider.name.as_deref(), Some("Acme Plumbing"));
    assert_eq!(r.ended_reason.as_deref(), Some("customer-ended-call"));
    assert_eq!(r.cost, Some(0.1372));
    assert!(r.webhook_received_at.is_none(), "no webhook was seen");
    h.assert_persisted_once(&id, "success", "complete").await;
    // A second delivery of the same job finds the record finished.
    assert_eq!(
        h.deliver(&enrich(&id, 1)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::Finished)
    );
    assert_eq!(h.gets(&id), 1);
}

#[tokio::test]
async fn poison_bodies_are_parked_and_acknowledged() {
    let h = harness().await;
    for body in [
        "not json",
        "{}",
        r#"{"callId":"","attempt":1,"kind":"enrich"}"#,
        r#"{"callId":"c","attempt":0,"kind":"enrich"}"#,
        r#"{"callId":"c","attempt":1,"kind":"reticulate"}"#,
    ] {
        let err = h.svc.process("msg-poison", body).await.expect_err(body);
        assert!(matches!(err, ProcessError::Poison(_)), "{body}: {err}");
        assert!(!err.is_retry());
    }
    let parked = h.parking.parked.lock().unwrap().clone();
    assert_eq!(parked.len(), 5);
    assert_eq!(parked[0], ("msg-poison".to_owned(), "not json".to_owned()));
    assert_eq!(h.sim.stats().get_call_total, 0, "Vapi never asked");

    // When it cannot be parked, it is reported failed so SQS's redrive parks it.
    let broken = harness_with(Parking {
        broken: true,
        ..Default::default()
    })
    .await;
    let err = broken
        .svc
        .process("msg-poison", "not json")
        .await
        .expect_err("not a job");
    assert!(err.is_retry(), "{err}");
}

fn sqs_message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(body.into());
    m
}

#[tokio::test]
async fn a_batch_reports_only_the_messages_to_retry() {
    let h = harness().await;
    let ok = h
        .sim
        .seed_call(ended_call("call-batch-ok"), FetchScript::Always);
    let flaky = h.sim.seed_call(
        ended_call("call-batch-flaky"),
        FetchScript::FailTimes {
            status: 503,
            times: 1,
        },
    );
    h.webhook_record(&ok, |_| {}).await;
    h.webhook_record(&flaky, |_| {}).await;

    let mut event = SqsEvent::default();
    event.records = vec![
        sqs_message("m-ok", &serde_json::to_string(&enrich(&ok, 1)).unwrap()),
        sqs_message(
            "m-flaky",
            &serde_json::to_string(&enrich(&flaky, 1)).unwrap(),
        ),
        sqs_message("m-poison", "garbage"),
    ];
    let resp = handle_batch(&h.svc, event.clone()).await;
    let failed: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m-flaky"]);
    assert_eq!(
        h.record(&ok).await.unwrap().result.data_status,
        DataStatus::Complete
    );
    assert_eq!(
        h.record(&flaky).await.unwrap().result.data_status,
        DataStatus::Fetching
    );

    // SQS redelivers the whole batch's failures (here: the event again, as a duplicate storm).
    let resp = handle_batch(&h.svc, event).await;
    assert!(
        resp.batch_item_failures.is_empty(),
        "{:?}",
        resp.batch_item_failures
    );
    assert_eq!(
        h.record(&flaky).await.unwrap().result.data_status,
        DataStatus::Complete
    );
    assert_eq!(h.gets(&ok), 1, "the finished call is not fetched again");
    assert_eq!(h.gets(&flaky), 2);
}

#[tokio::test]
async fn watchdog_rechecks_a_running_call_then_completes_it() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(running_call("call-watch"), FetchScript::Always);
    h.initiated_record(&id).await;

    let first = h.deliver(&watchdog(&id, 1)).await;
    assert!(
        matches!(first.outcome, EnrichmentOutcome::Rescheduled { .. }),
        "{:?}",
        first.outcome
    );
    assert_eq!(
        h.queue.take(),
        vec![(watchdog(&id, 2), Duration::from_secs(900))],
        "checked again later, within SQS's 900-second limit"
    );
    let r = h.record(&id).await.unwrap();
    assert_eq!(
        r.result.data_status,
        DataStatus::Pending,
        "still waiting for the call"
    );
    assert_eq!(r.result.call_status, CallStatus::InProgress);
    assert_eq!(r.book.watchdog_checks, 1);
    assert_eq!(
        r.result.fetch_attempts, 0,
        "a watchdog check is not an enrichment attempt"
    );
    // A duplicate of the first check is acknowledged without asking Vapi.
    assert_eq!(
        h.deliver(&watchdog(&id, 1)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::AttemptSettled)
    );

    // The call ends; its webhooks never come. The next check completes it from Vapi's data alone.
    h.sim.seed_call(ended_call(&id), FetchScript::Always);
    let second = h.deliver(&watchdog(&id, 2)).await;
    assert_eq!(second.outcome, EnrichmentOutcome::Complete);
    let r = h.record(&id).await.unwrap().result;
    assert_eq!(r.data_status, DataStatus::Complete);
    assert_eq!(r.call_status, CallStatus::Ended);
    assert!(r.analysis.summary.is_some());
    h.assert_persisted_once(&id, "success", "complete").await;
    let gets = h.gets(&id);
    eprintln!("vapi GETs for a call without webhooks, one watchdog check while running: {gets}");
    assert_eq!(gets, 2);
}

#[tokio::test]
async fn watchdog_gives_up_on_a_call_that_never_ends() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(running_call("call-forever"), FetchScript::Always);
    h.initiated_record(&id).await;

    let asked = h.run_chain(watchdog(&id, 1)).await;
    // max_call 3600 s / 900 s + 1 = 5 checks: 4 re-checks queued, the 5th settles.
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert!(asked
        .iter()
        .all(|(j, d)| j.kind == JobKind::Watchdog && *d == Duration::from_secs(900)));
    let r = h.record(&id).await.unwrap().result;
    assert_eq!(r.data_status, DataStatus::FetchFailed);
    assert_eq!(
        r.fetch_error.as_deref(),
        Some("Vapi still reports the call running after 5 watchdog checks")
    );
    h.assert_persisted_once(&id, "warning", "fetch_failed")
        .await;
    assert_eq!(h.gets(&id), 5);
}

#[tokio::test]
async fn watchdog_on_an_ended_call_without_data_runs_the_enrichment_chain() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-silent"), FetchScript::Never);
    h.initiated_record(&id).await;

    let asked = h.run_chain(watchdog(&id, 1)).await;
    assert_eq!(
        asked,
        vec![
            (enrich(&id, 1), Duration::from_secs(3)),
            (enrich(&id, 2), Duration::from_secs(5)),
            (enrich(&id, 3), Duration::from_secs(8)),
        ]
    );
    let r = h.record(&id).await.unwrap().result;
    assert_eq!(r.data_status, DataStatus::FetchFailed);
    assert_eq!(
        r.fetch_error.as_deref(),
        Some("Vapi data still incomplete after 3 attempts")
    );
    assert_eq!(r.call_status, CallStatus::Ended);
    h.assert_persisted_once(&id, "warning", "fetch_failed")
        .await;
    let gets = h.gets(&id);
    eprintln!("vapi GETs for an ended call without webhooks whose data never completes: {gets}");
    assert_eq!(gets, 4);
}

#[tokio::test]
async fn a_webhook_after_a_watchdog_check_still_gets_its_chain() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(running_call("call-late-hook"), FetchScript::Always);
    h.initiated_record(&id).await;
    assert!(matches!(
        h.deliver(&watchdog(&id, 1)).await.outcome,
        EnrichmentOutcome::Rescheduled { .. }
    ));
    h.queue.take();

    // The call ends and the report arrives: the webhook starts the chain at attempt 1.
    h.sim
        .seed_call(ended_call(&id), FetchScript::CompleteOnNth(2));
    let current = h.store.get(&id).await.unwrap().unwrap();
    let report = vapi_simulator::incomplete(&ended_call(&id));
    let out = apply_webhook(
        Some(current.record),
        &snapshot_from_call(&report),
        &EventKey::end_of_call_report(),
        NOW,
    );
    assert!(out.schedule_enrichment);
    h.store
        .put(&out.record, Some(current.version), None)
        .await
        .unwrap();

    // The chain's first attempt runs first: the pending watchdog check then defers to it, and
    // the chain completes the call.
    let asked = h.run_chain(enrich(&id, 1)).await;
    assert_eq!(asked, vec![(enrich(&id, 2), Duration::from_secs(5))]);
    assert_eq!(
        h.deliver(&watchdog(&id, 2)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::Finished)
    );
    assert_eq!(
        h.record(&id).await.unwrap().result.data_status,
        DataStatus::Complete
    );
    h.assert_persisted_once(&id, "success", "complete").await;
}

#[tokio::test]
async fn a_watchdog_check_does_the_work_of_a_chain_whose_first_job_was_never_sent() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(running_call("call-lost-first"), FetchScript::Always);
    h.initiated_record(&id).await;
    assert!(matches!(
        h.deliver(&watchdog(&id, 1)).await.outcome,
        EnrichmentOutcome::Rescheduled { .. }
    ));
    h.queue.take();
    // The call ends; the report's write lands but its send of the chain's first job fails, and
    // Vapi gives up on the report: the record says a chain exists, no job carries it.
    h.sim.seed_call(ended_call(&id), FetchScript::Always);
    let current = h.store.get(&id).await.unwrap().unwrap();
    let out = apply_webhook(
        Some(current.record),
        &snapshot_from_call(&ended_call(&id)),
        &EventKey::end_of_call_report(),
        NOW,
    );
    assert!(out.schedule_enrichment && out.record.book.enrichment_scheduled);
    h.store
        .put(&out.record, Some(current.version), None)
        .await
        .unwrap();
    // The next watchdog check finds no attempt claimed: it asks Vapi and completes the call.
    assert_eq!(
        h.deliver(&watchdog(&id, 2)).await.outcome,
        EnrichmentOutcome::Complete
    );
    h.assert_persisted_once(&id, "success", "complete").await;
    // Once an attempt has claimed a chain, the chain owns the call.
    let h2 = harness().await;
    let id2 = h2
        .sim
        .seed_call(ended_call("call-chain-owns"), FetchScript::CompleteOnNth(2));
    h2.webhook_record(&id2, |_| {}).await;
    assert!(matches!(
        h2.deliver(&enrich(&id2, 1)).await.outcome,
        EnrichmentOutcome::Rescheduled { .. }
    ));
    assert_eq!(
        h2.deliver(&watchdog(&id2, 1)).await.outcome,
        EnrichmentOutcome::Skipped(Skip::ChainOwnsCall)
    );
}

// ---- claims that expire: a redriven or re-driven job takes over a dead worker's call ----

#[tokio::test]
async fn a_job_redriven_from_the_dead_letter_queue_asks_vapi_again() {
    let h = harness().await;
    let id = h.sim.seed_call(
        ended_call("call-dlq"),
        FetchScript::FailTimes {
            status: 500,
            times: 5,
        },
    );
    h.webhook_record(&id, |_| {}).await;
    // SQS delivers the first job five times (maxReceiveCount); Vapi fails each time.
    for _ in 0..5 {
        let err = h
            .deliver_as("msg-original", &enrich(&id, 1))
            .await
            .unwrap_err();
        assert!(err.is_retry());
    }
    assert_eq!(h.gets(&id), 5);
    // Each failure released its claim: the operator redrives the dead-letter queue at once,
    // and the job, back under a new message id, asks Vapi again without waiting out a lease.
    let p = h.deliver_as("msg-redriven", &enrich(&id, 1)).await.unwrap();
    assert_eq!(p.outcome, EnrichmentOutcome::Complete);
    assert_eq!(h.gets(&id), 6);
    h.assert_persisted_once(&id, "success", "complete").await;
}

#[tokio::test]
async fn a_job_redriven_while_a_dead_workers_claim_runs_comes_back_when_it_ends() {
    let h = harness().await;
    let id = h
        .sim
        .seed_call(ended_call("call-killed"), FetchScript::Always);
    h.webhook_record(&id, |_| {}).await;
    // A worker claimed attempt 1 and was killed (a hung Vapi, the function's timeout): its
    // claim stays live for the lease, and nothing releases it.
    let v = h.store.get(&id).await.unwrap().unwrap();
    let Admission::Claim(claimed) = admit(
        Some(&v.record),
        &enrich(&id, 1),
        "msg-killed",
        &h.svc.policy(),
        NOW,
    ) else {
        panic!("claimable")
    };
    h.store.put(&claimed, Some(v.version), None).await.unwrap();

    // Redriven at once: deferred to the lease's end (60 s) plus a second, not dropped.
    let p = h.deliver_as("msg-redriven", &enrich(&id, 1)).await.unwrap();
    let delay = Duration::from_secs(61);
    assert_eq!(p.outcome, EnrichmentOutcome::Deferred { delay });
    assert_eq!(h.gets(&id), 0);
    let queued = h.queue.take();
    assert_eq!(queued, vec![(enrich(&id, 1), delay)]);
    // The copy arrives once the claim has lapsed: it takes over and completes the call.
    h.clock.advance(delay);
    let p = h.deliver(&queued[0].0).await;
    assert_eq!(p.outcome, EnrichmentOutcome::Complete);
    assert_eq!(h.gets(&id), 1);
    h.assert_persisted_once(&id, "success", "complete").await;
}

#[tokio::test]
async fn the_cleanups_redrive_takes_over_a_watchdog_check_that_died() {
    let h = harness().await;
    let id = h.sim.seed_call(
        ended_call("call-wd"),
        FetchScript::FailTimes {
            status: 503,
            times: 1,
        },
    );
    h.initiated_record(&id).await;
    // The watchdog's worker claimed the call, Vapi failed, and the worker died for good.
    let err = h
        .deliver_as("msg-watchdog", &watchdog(&id, 1))
        .await
        .unwrap_err();
    assert!(err.is_retry());
    assert_eq!(
        h.record(&id).await.unwrap().result.data_status,
        DataStatus::Fetching
    );
    // Past its deadline the cleanup re-drives the same check under a new message id.
    h.clock.advance(Duration::from_secs(600));
    let p = h
        .deliver_as("msg-cleanup", &watchdog(&id, 1))
        .await
        .unwrap();
    assert_eq!(p.outcome, EnrichmentOutcome::Complete);
    assert_eq!(h.gets(&id), 2, "Vapi was asked again");
}

// ---- late data: a report that arrives after the chain settled the call ----

#[tokio::test]
async fn a_report_after_the_chain_settled_reaches_the_provider_row_and_the_log() {
    use ringback::service::webhook::WebhookService;
    let h = harness().await;
    // Vapi's analysis outlasts the chain: every GET answers without it.
    let id = h.sim.seed_call(ended_call("call-late"), FetchScript::Never);
    // The chain started from the `status-update` (ended); the report is still to come.
    h.webhook_record(&id, |r| {
        r.book.seen_events = ["status-update:ended".to_owned()].into();
    })
    .await;
    h.run_chain(enrich(&id, 1)).await;
    assert_eq!(
        h.record(&id).await.unwrap().result.data_status,
        DataStatus::FetchFailed
    );
    let row = h.provider_row().await.unwrap();
    assert_eq!(row["call_summary"], AttributeValue::Null(true));

    // Then the end-of-call-report arrives, with the analysis, through the real webhook.
    let webhook = WebhookService {
        store: h.store.clone(),
        queue: h.queue.clone(),
        clock: h.clock.clone(),
        auth: ringback::vapi::WebhookAuth::disabled(),
        max_bytes: 1 << 20,
        timing: timing(),
        metrics: ringback::metrics::Metrics::off(),
        archive: None,
    };
    h.clock.advance(Duration::from_secs(120));
    let report = json!({"message": {"type": "end-of-call-report", "call": ended_call(&id),
        "analysis": {"summary": "Available Monday at 9."}}});
    webhook
        .ingest(&http::HeaderMap::new(), report.to_string().as_bytes())
        .await
        .unwrap();
    let jobs = h.queue.take();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].0.kind, JobKind::Persist);
    let p = h.deliver(&jobs[0].0).await;
    assert_eq!(p.outcome, EnrichmentOutcome::Persisted);

    let row = h.provider_row().await.unwrap();
    assert_eq!(s(&row, "call_summary"), "Available Monday at 9.");
    let logs = h.logs().await;
    assert_eq!(logs.len(), 1, "still one interaction log");
    assert_eq!(s(&logs[0], "detail"), "Available Monday at 9.");
    assert!(!h.record(&id).await.unwrap().book.rows_stale);
    // A duplicate persist job (SQS delivers at least once) finds nothing owed.
    let again = h.deliver(&jobs[0].0).await;
    assert_eq!(again.outcome, EnrichmentOutcome::Skipped(Skip::Stale));
}
