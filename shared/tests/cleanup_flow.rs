//! The scheduled cleanup end to end (api.md §4 "nothing lost"): records written by the real webhook
//! service into an embedded DynamoDB (dynoxide over HTTP, the real adapters), their queue messages
//! lost, and the cleanup re-driving them from the unfinished-records index until it settles them as
//! `fetch_failed` with everything received persisted. Time is a [`ManualClock`]; the queue is the
//! local runner's in-process one, inspected directly.
//!
//! Webhooks send their enrichment jobs to a queue nobody reads (`lost`): the message is lost. The
//! cleanup sends to its own queue, so what it re-drove is exactly what that queue holds.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use http::{HeaderMap, HeaderValue};
use ringback::adapters::dynamodb::{CallsTable, ProvidersAndLogs};
use ringback::adapters::memory_queue::MemoryQueue;
use ringback::config::{CallsConfig, Env, Timing};
use ringback::domain::{to_iso, CallRecord, CallStatus, DataStatus, MAX_REDRIVES};
use ringback::metrics::Metrics;
use ringback::ports::{CallStore, Clock, EnrichmentJob, JobKind, OverduePage, StoreError};
use ringback::service::cleanup::{CleanupReport, CleanupService};
use ringback::service::deadline_for;
use ringback::service::webhook::{Ingested, WebhookService};
use ringback::vapi::WebhookAuth;
use serde_json::{json, Value};
use support::{ManualClock, Tables};

const SECRET: &str = "webhook-secret";
const PROVIDER: &str = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";
const REQUEST: &str = "1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const NOW: &str = "2026-03-02T15:00:00Z";

/// Past an ended call's deadline (3 × 1 s of enrichment + 30 s grace) from the time of a write.
const PAST_ENRICHMENT_DEADLINE: Duration = Duration::from_secs(34);

type Item = HashMap<String, AttributeValue>;

fn timing() -> Timing {
    Timing {
        enrichment_delays: vec![Duration::from_secs(1); 3],
        watchdog_delay: Duration::from_secs(60),
        max_call: Duration::from_secs(600),
        stuck_grace: Duration::from_secs(30),
        deadline_cap: Duration::from_secs(1380),
        claim_lease: Duration::from_secs(60),
    }
}

fn report(examined: u32, redriven: u32, settled: u32, left: u32) -> CleanupReport {
    CleanupReport {
        examined,
        redriven,
        settled,
        left,
        adopted: 0,
        failed: 0,
        reconciled: Default::default(),
        revived: Default::default(),
    }
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

/// The end-of-call-report sample for `call_id`, carrying our correlation ids the way the
/// initiator sends them (`call.assistantOverrides.metadata`).
fn end_of_call_report(call_id: &str) -> Value {
    let mut v = support::fixture("end-of-call-report.json");
    v["message"]["call"]["id"] = call_id.into();
    v["message"]["call"]["assistantOverrides"]["metadata"] = json!({
        "providerId": PROVIDER,
        "serviceRequestId": REQUEST,
        "providerName": "Acme Plumbing",
    });
    v
}

/// A call still running: one `status-update`, no end yet.
fn in_progress(call_id: &str) -> Value {
    json!({"message": {"type": "status-update", "status": "in-progress", "call": {"id": call_id,
        "assistantOverrides": {"metadata": {"providerId": PROVIDER, "serviceRequestId": REQUEST}}}}})
}

// ---- the harness ----

struct Flow {
    store: Arc<CallsTable>,
    /// The cleanup's queue.
    queue: Arc<MemoryQueue>,
    /// Where the webhooks' enrichment jobs go: never received, so every message is lost.
    lost: Arc<MemoryQueue>,
    webhook: WebhookService,
    clock: Arc<ManualClock>,
    client: Client,
    t: Tables,
    _db: support::DynamoGuard,
}

async fn flow() -> Flow {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at(NOW);
    let store = Arc::new(CallsTable::new(
        client.clone(),
        t.calls.clone(),
        Duration::from_secs(1800),
        clock.clone(),
    ));
    let lost = Arc::new(MemoryQueue::default());
    let webhook = WebhookService {
        store: store.clone(),
        queue: lost.clone(),
        clock: clock.clone(),
        auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
        max_bytes: 1 << 20,
        timing: timing(),
        metrics: Metrics::off(),
        archive: None,
    };
    Flow {
        store,
        queue: Arc::new(MemoryQueue::default()),
        lost,
        webhook,
        clock,
        client,
        t,
        _db: db,
    }
}

impl Flow {
    /// A cleanup over the shared store and queue, with its own persistence adapter.
    fn cleanup(&self, page_size: u32) -> CleanupService {
        CleanupService {
            revive: None,
            reconcile: None,
            store: self.store.clone(),
            queue: self.queue.clone(),
            sink: Arc::new(ProvidersAndLogs::new(
                self.client.clone(),
                self.t.providers.clone(),
                self.t.logs.clone(),
                self.clock.clone(),
            )),
            clock: self.clock.clone(),
            timing: timing(),
            page_size,
            metrics: Metrics::off(),
            push: None,
            erase: None,
        }
    }

    async fn ingest(&self, message: &Value) -> Ingested {
        let mut h = HeaderMap::new();
        h.insert("x-vapi-secret", HeaderValue::from_static(SECRET));
        self.webhook
            .ingest(&h, message.to_string().as_bytes())
            .await
            .expect("webhook accepted")
    }

    /// An ended call's report, its enrichment job sent to the lost queue.
    async fn stuck(&self, call_id: &str) {
        let lost_before = self.lost.len();
        let out = self.ingest(&end_of_call_report(call_id)).await;
        assert!(
            matches!(
                out,
                Ingested::Accepted {
                    data_status: DataStatus::Partial,
                    enrichment_scheduled: true,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(
            self.lost.len(),
            lost_before + 1,
            "the enrichment job was sent (and is lost)"
        );
    }

    async fn running(&self, call_id: &str) {
        let out = self.ingest(&in_progress(call_id)).await;
        assert!(
            matches!(
                out,
                Ingested::Accepted {
                    data_status: DataStatus::Partial,
                    enrichment_scheduled: false,
                    ..
                }
            ),
            "{out:?}"
        );
    }

    async fn record(&self, call_id: &str) -> (CallRecord, u64) {
        let v = self
            .store
            .get(call_id)
            .await
            .expect("store readable")
            .unwrap_or_else(|| panic!("no record {call_id}"));
        (v.record, v.version)
    }

    /// The jobs the cleanup queued, taken out of its queue. Received without waiting: a re-drive
    /// is visible at once.
    async fn take_jobs(&self) -> Vec<EnrichmentJob> {
        let mut jobs = Vec::new();
        loop {
            let batch = self
                .queue
                .receive(10, Duration::ZERO, Duration::from_secs(600))
                .await;
            if batch.is_empty() {
                break;
            }
            for d in batch {
                jobs.push(serde_json::from_str(&d.body).expect("a job"));
                assert!(self.queue.delete(&d.receipt));
            }
        }
        assert!(self.queue.is_empty(), "every job was visible at once");
        jobs.sort_by(|a: &EnrichmentJob, b| a.call_id.cmp(&b.call_id));
        jobs
    }

    /// Ids in the unfinished index with a deadline before `at`.
    async fn overdue(&self, at: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        support::overdue_ids(&*self.store, at).await
    }

    async fn provider_row(&self) -> Option<Item> {
        support::provider_row(&self.client, &self.t.providers, PROVIDER).await
    }

    async fn logs(&self) -> Vec<Item> {
        support::interaction_logs(&self.client, &self.t.logs, REQUEST).await
    }
}

/// The calls table behind an index that lags: `overdue` answers with the entries it held
/// earlier (a GSI is eventually consistent), everything else is the real table.
struct Lagging(Vec<String>);

#[async_trait]
impl support::Hooks for Lagging {
    async fn overdue(&self) -> Option<Result<OverduePage, StoreError>> {
        Some(Ok(OverduePage {
            call_ids: self.0.clone(),
            next: None,
        }))
    }
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .unwrap_or_else(|| panic!("{name} is not a string in {item:?}"))
}

// ---- tests ----

#[tokio::test]
async fn a_stuck_record_is_redriven_then_settled_and_a_healthy_one_left_alone() {
    let f = flow().await;
    let cleanup = f.cleanup(100);
    let sample = end_of_call_report("x");
    let webhook_transcript = sample["message"]["artifact"]["transcript"]
        .as_str()
        .unwrap()
        .to_owned();
    let webhook_summary = sample["message"]["analysis"]["summary"]
        .as_str()
        .unwrap()
        .to_owned();

    // T0: the call ended; its enrichment message is lost. Deadline T0 + 33 s.
    f.stuck("call-stuck").await;
    // T0 + 10 s: another call, still running, written later: deadline T0 + 10 + 630 s.
    f.clock.advance(Duration::from_secs(10));
    f.running("call-healthy").await;
    let (healthy, healthy_version) = f.record("call-healthy").await;

    // Not yet past the deadline: nothing to do.
    f.clock.advance(Duration::from_secs(22));
    assert_eq!(cleanup.run_once().await.unwrap(), CleanupReport::default());
    assert!(f.take_jobs().await.is_empty());

    // Past the stuck record's deadline only: it alone is re-driven, with a fresh Enrich job.
    f.clock.advance(Duration::from_secs(8));
    assert_eq!(cleanup.run_once().await.unwrap(), report(1, 1, 0, 0));
    assert_eq!(f.take_jobs().await, vec![enrich("call-stuck", 1)]);
    let (rec, _) = f.record("call-stuck").await;
    assert_eq!(rec.book.redrives, 1);
    assert_eq!(rec.result.data_status, DataStatus::Partial);
    assert_eq!(rec.result.updated_at, to_iso(f.clock.now()));
    assert_eq!(
        f.record("call-healthy").await,
        (healthy.clone(), healthy_version),
        "untouched"
    );

    // The re-driven job is lost too: each new deadline passes, and it is re-driven again.
    for round in 2..=MAX_REDRIVES {
        // Not before its new deadline...
        assert_eq!(
            cleanup.run_once().await.unwrap(),
            CleanupReport::default(),
            "round {round}"
        );
        f.clock.advance(PAST_ENRICHMENT_DEADLINE);
        // ...but after it.
        assert_eq!(
            cleanup.run_once().await.unwrap(),
            report(1, 1, 0, 0),
            "round {round}"
        );
        assert_eq!(
            f.take_jobs().await,
            vec![enrich("call-stuck", 1)],
            "round {round}"
        );
        assert_eq!(f.record("call-stuck").await.0.book.redrives, round);
    }
    assert!(
        f.logs().await.is_empty(),
        "nothing persisted while re-driving"
    );
    assert!(f.provider_row().await.is_none());

    // After MAX_REDRIVES re-drives, the next run settles it: fetch_failed, everything kept.
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    assert_eq!(cleanup.run_once().await.unwrap(), report(1, 0, 1, 0));
    assert!(f.take_jobs().await.is_empty(), "settling queues nothing");
    let (rec, _) = f.record("call-stuck").await;
    let r = &rec.result;
    assert_eq!(r.data_status, DataStatus::FetchFailed);
    let why = r.fetch_error.as_deref().unwrap_or("");
    assert!(
        why.contains("cleanup"),
        "fetchError says who settled it: {why:?}"
    );
    assert_eq!(
        r.transcript.as_deref(),
        Some(webhook_transcript.as_str()),
        "the webhook's transcript is kept"
    );
    assert_eq!(
        r.analysis.summary.as_deref(),
        Some(webhook_summary.as_str())
    );
    assert_eq!(r.call_status, CallStatus::Ended);
    assert_eq!(r.ended_reason.as_deref(), Some("customer-ended-call"));
    assert_eq!(r.provider_id.as_deref(), Some(PROVIDER));

    // fetch_failed still writes the provider row and the interaction log (warning).
    let row = f.provider_row().await.expect("provider row written");
    assert_eq!(s(&row, "call_id"), "call-stuck");
    assert_eq!(s(&row, "call_data_status"), "fetch_failed");
    assert_eq!(s(&row, "call_transcript"), webhook_transcript);
    assert_eq!(s(&row, "call_summary"), webhook_summary);
    let logs = f.logs().await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(s(&logs[0], "callId"), "call-stuck");
    assert_eq!(s(&logs[0], "status"), "warning");
    assert_eq!(s(&logs[0], "step_name"), "Call to Acme Plumbing");

    // Settled means finished: out of the index, and a further run does nothing.
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    assert_eq!(cleanup.run_once().await.unwrap(), CleanupReport::default());
    assert!(f.take_jobs().await.is_empty());
    let far = f.clock.now() + chrono::Duration::days(1);
    assert_eq!(
        f.overdue(far).await,
        vec!["call-healthy".to_owned()],
        "only the unfinished call is indexed"
    );
    assert_eq!(f.logs().await.len(), 1);
    assert_eq!(
        f.record("call-healthy").await,
        (healthy, healthy_version),
        "untouched throughout"
    );
}

#[tokio::test]
async fn two_cleanups_at_once_redrive_and_settle_each_record_once() {
    let f = flow().await;
    // Enough records to fill several shards of the unfinished index, each run paging through all.
    let ids: Vec<String> = (1..=24).map(|i| format!("call-race-{i:02}")).collect();
    for id in &ids {
        f.stuck(id).await;
    }
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    let (a, b) = (f.cleanup(2), f.cleanup(2));

    // Re-drives: one per record in total, whichever run won it.
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.redriven + rb.redriven, 24, "{ra:?} {rb:?}");
    assert_eq!(ra.settled + rb.settled, 0);
    let jobs = f.take_jobs().await;
    assert_eq!(
        jobs,
        ids.iter().map(|id| enrich(id, 1)).collect::<Vec<_>>(),
        "one job per record"
    );
    for id in &ids {
        assert_eq!(f.record(id).await.0.book.redrives, 1, "{id}");
    }

    // Up to the last re-drive, one run at a time.
    for _ in 2..=MAX_REDRIVES {
        f.clock.advance(PAST_ENRICHMENT_DEADLINE);
        assert_eq!(a.run_once().await.unwrap(), report(24, 24, 0, 0));
        assert_eq!(f.take_jobs().await.len(), 24);
    }

    // Settling at once: each record settled by one run, one interaction log per call.
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.settled + rb.settled, 24, "{ra:?} {rb:?}");
    assert_eq!(ra.redriven + rb.redriven, 0, "{ra:?} {rb:?}");
    assert!(f.take_jobs().await.is_empty());
    let mut logged: Vec<String> = f
        .logs()
        .await
        .iter()
        .map(|l| s(l, "callId").to_owned())
        .collect();
    logged.sort();
    assert_eq!(logged, ids);
    for id in &ids {
        assert_eq!(
            f.record(id).await.0.result.data_status,
            DataStatus::FetchFailed,
            "{id}"
        );
    }
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    assert_eq!(a.run_once().await.unwrap(), CleanupReport::default());
}

#[tokio::test]
async fn a_run_behind_a_lagging_index_leaves_records_another_run_just_handled() {
    let f = flow().await;
    let ids: Vec<String> = (1..=3).map(|i| format!("call-lag-{i}")).collect();
    for id in &ids {
        f.stuck(id).await;
    }
    let cleanup = f.cleanup(100);
    let lagging = |entries: Vec<String>| CleanupService {
        revive: None,
        reconcile: None,
        store: Arc::new(support::Hooked::new(f.store.clone(), Lagging(entries))),
        ..f.cleanup(100)
    };

    // A run re-drives them; a second run still sees the old index entries and must trust the
    // records, which are not overdue any more.
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    let seen = f.overdue(f.clock.now()).await;
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "each once, in shard order");
    assert_eq!(cleanup.run_once().await.unwrap(), report(3, 3, 0, 0));
    assert_eq!(lagging(seen).run_once().await.unwrap(), report(3, 0, 0, 3));
    assert_eq!(
        f.take_jobs().await,
        ids.iter().map(|id| enrich(id, 1)).collect::<Vec<_>>()
    );
    for id in &ids {
        assert_eq!(f.record(id).await.0.book.redrives, 1, "{id}");
    }

    // The same after the settling run: a finished record is left as it is.
    for _ in 2..=MAX_REDRIVES {
        f.clock.advance(PAST_ENRICHMENT_DEADLINE);
        assert_eq!(cleanup.run_once().await.unwrap(), report(3, 3, 0, 0));
    }
    f.take_jobs().await;
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    let seen = f.overdue(f.clock.now()).await;
    assert_eq!(cleanup.run_once().await.unwrap(), report(3, 0, 3, 0));
    let settled: Vec<u64> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(f.record(id).await.1);
        }
        v
    };
    assert_eq!(lagging(seen).run_once().await.unwrap(), report(3, 0, 0, 3));
    for (id, version) in ids.iter().zip(settled) {
        assert_eq!(f.record(id).await.1, version, "{id} rewritten");
    }
    assert!(f.take_jobs().await.is_empty());
    assert_eq!(f.logs().await.len(), 3);
}

#[tokio::test]
async fn calls_whose_watchdog_was_lost_are_redriven_as_watchdog_checks() {
    let f = flow().await;
    let t0 = f.clock.now();
    // The initiator's record, already checked twice by the watchdog, whose next check was lost.
    let mut pending = CallRecord::new("call-pending", &to_iso(t0));
    pending.result.provider.name = Some("Acme Plumbing".into());
    pending.result.provider_id = Some(PROVIDER.into());
    pending.result.service_request_id = Some(REQUEST.into());
    pending.book.watchdog_checks = 2;
    let deadline = deadline_for(&pending, t0, &timing());
    assert_eq!(
        deadline,
        Some(t0 + chrono::Duration::seconds(90)),
        "WATCHDOG_DELAY + grace"
    );
    f.store.put(&pending, None, deadline).await.unwrap();
    // A call that said it was running and then went silent: overdue after MAX_CALL + grace.
    f.running("call-silent").await;

    let cleanup = f.cleanup(100);
    f.clock.advance(Duration::from_secs(89));
    assert_eq!(cleanup.run_once().await.unwrap(), CleanupReport::default());

    f.clock.advance(Duration::from_secs(2));
    assert_eq!(cleanup.run_once().await.unwrap(), report(1, 1, 0, 0));
    assert_eq!(
        f.take_jobs().await,
        vec![watchdog("call-pending", 3)],
        "numbered after the checks so far"
    );
    let (rec, _) = f.record("call-pending").await;
    assert_eq!(rec.result.data_status, DataStatus::Pending);
    assert_eq!(rec.book.redrives, 1);
    assert_eq!(rec.book.watchdog_checks, 2, "a re-drive is not a check");

    f.clock.set(t0 + chrono::Duration::seconds(631));
    assert_eq!(cleanup.run_once().await.unwrap(), report(2, 2, 0, 0));
    assert_eq!(
        f.take_jobs().await,
        vec![watchdog("call-pending", 3), watchdog("call-silent", 1)],
        "a call not known to have ended is asked about, not enriched"
    );
}

/// With the shipped defaults, a pending record's natural deadline (WATCHDOG_DELAY 900 s +
/// STUCK_GRACE 1200 s) lies past its expiry (RESULT_TTL 1800 s): deadlines are capped below the TTL
/// so a call whose watchdog message was lost is still re-driven before it expires.
#[tokio::test]
async fn with_the_default_settings_a_lost_watchdog_is_still_redriven() {
    let f = flow().await;
    let defaults = Timing::default();
    let ttl = CallsConfig::from_env(&Env::from_pairs([("CALLS_TABLE", "calls")]))
        .unwrap()
        .result_ttl;
    assert_eq!(
        ttl,
        Duration::from_secs(1800),
        "the harness's store uses the default TTL"
    );
    let cleanup = CleanupService {
        revive: None,
        reconcile: None,
        timing: defaults.clone(),
        ..f.cleanup(100)
    };

    let t0 = f.clock.now();
    let pending = CallRecord::new("call-default", &to_iso(t0));
    let deadline = deadline_for(&pending, t0, &defaults).expect("unfinished");
    f.store.put(&pending, None, Some(deadline)).await.unwrap();

    f.clock.set(deadline + chrono::Duration::seconds(1));
    let r = cleanup.run_once().await.unwrap();
    assert_eq!(
        r,
        report(1, 1, 0, 0),
        "the record expired {} s before its cleanup deadline and was not re-driven",
        (deadline.timestamp() - t0.timestamp()) - ttl.as_secs() as i64
    );
    assert_eq!(f.take_jobs().await, vec![watchdog("call-default", 1)]);
}

#[tokio::test]
async fn one_run_pages_through_every_overdue_record() {
    let f = flow().await;
    let ids: Vec<String> = (1..=7).map(|i| format!("call-page-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        f.stuck(id).await;
        // Some records share a deadline, some do not: the cursor must handle both.
        if i % 3 == 2 {
            f.clock.advance(Duration::from_secs(1));
        }
    }
    f.running("call-page-running").await;
    f.clock.advance(PAST_ENRICHMENT_DEADLINE);
    let overdue = f.overdue(f.clock.now()).await;
    assert_eq!(overdue.len(), 7, "{overdue:?}");

    let cleanup = f.cleanup(3);
    assert_eq!(cleanup.run_once().await.unwrap(), report(7, 7, 0, 0));
    let jobs = f.take_jobs().await;
    assert_eq!(jobs, ids.iter().map(|id| enrich(id, 1)).collect::<Vec<_>>());
    let mut redrives = BTreeMap::new();
    for id in &ids {
        redrives.insert(id.clone(), f.record(id).await.0.book.redrives);
    }
    assert!(redrives.values().all(|n| *n == 1), "{redrives:?}");
    assert_eq!(f.record("call-page-running").await.0.book.redrives, 0);
    assert_eq!(cleanup.run_once().await.unwrap(), CleanupReport::default());
}

// ---- a placed call with no record at all ----

#[tokio::test]
async fn a_placed_call_with_no_record_is_recorded_and_watched() {
    use ringback::domain::parse_call_request;
    use ringback::ports::VapiApi;
    use ringback::service::cleanup::Reconcile;
    use ringback::vapi::{create_call_body, CallSettings, VapiClient, VapiClientConfig};
    let f = flow().await;
    let sim = vapi_simulator::Simulator::start(vapi_simulator::SimulatorConfig {
        timings: vapi_simulator::Timings::fast(),
        ..Default::default()
    })
    .await
    .unwrap();
    let vapi = Arc::new(VapiClient::new(VapiClientConfig::new(
        sim.base_url(),
        "key",
    )));
    let settings = CallSettings {
        phone_number_id: "pn-ringback".into(),
        assistant_id: None,
        webhook_url: "https://ringback.example.com/api/v1/vapi/webhook".into(),
        webhook_secret: None,
        deployment_id: ringback::config::DeploymentId::parse("stack-ours").unwrap(),
    };
    let request = parse_call_request(&json!({
        "providerName": "Acme Plumbing", "providerPhone": "+14155550123",
        "serviceNeeded": "plumber", "userCriteria": "licensed", "location": "Oakland, CA",
        "urgency": "flexible", "providerId": PROVIDER, "serviceRequestId": REQUEST,
    }))
    .unwrap();
    // Vapi placed it, then the initiator's record write and its watchdog send were both lost.
    let ours = vapi
        .create_call(&create_call_body(&request, &settings, "attempt-1"))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A call someone else placed from the same number is none of ours: a dashboard's (no
    // metadata), another deployment's (its identity), or one from before identities (none).
    let mut other = create_call_body(&request, &settings, "x");
    other["assistantOverrides"]["metadata"] = json!({});
    let mut theirs = create_call_body(&request, &settings, "y");
    theirs["assistantOverrides"]["metadata"]["ringbackDeploymentId"] = json!("stack-theirs");
    let mut anonymous = create_call_body(&request, &settings, "z");
    anonymous["assistantOverrides"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ringbackDeploymentId");
    let mut foreign = Vec::new();
    for body in [other, theirs, anonymous] {
        let id = vapi.create_call(&body).await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        foreign.push(id);
    }

    f.clock
        .set(chrono::Utc::now() + chrono::Duration::minutes(2));
    let cleanup = CleanupService {
        revive: None,
        reconcile: Some(Reconcile::new(
            vapi.clone(),
            "pn-ringback",
            settings.deployment_id.clone(),
            Duration::from_secs(1800),
            f.store.clone(),
        )),
        ..f.cleanup(100)
    };
    assert_eq!(cleanup.run_once().await.unwrap().adopted, 1);
    for id in &foreign {
        assert!(f.store.get(id).await.unwrap().is_none(), "{id} is not ours");
    }
    let rec = f.store.get(&ours).await.unwrap().expect("recorded").record;
    assert_eq!(rec.result.data_status, DataStatus::Pending);
    assert_eq!(rec.result.provider.name.as_deref(), Some("Acme Plumbing"));
    assert_eq!(rec.result.provider_id.as_deref(), Some(PROVIDER));
    let jobs: Vec<Value> = f
        .queue
        .snapshot()
        .messages
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    assert_eq!(
        jobs,
        vec![json!({"callId": ours, "attempt": 1, "kind": "watchdog"})]
    );
    // The next run lists only calls created since (none) and adopts nothing again.
    assert_eq!(cleanup.run_once().await.unwrap().adopted, 0);
}
