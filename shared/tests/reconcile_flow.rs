//! The cleanup's reconciliation with Vapi at volume (api.md §9 "Deployment identity"): the built-in
//! Vapi simulator holds tens of thousands of calls of our phone number in the window, some of
//! them placed by this deployment and never recorded, most by another deployment (or by one from
//! before identities), hundreds created in the same millisecond, listed newest first or oldest
//! first. The real DynamoDB adapter on the embedded store holds the records and the cursor.
//!
//! What a user would notice: every call this deployment placed without a record is recorded and
//! watched, no other deployment's call ever is, a run that fails or runs out of time loses
//! nothing and the next one continues where it stopped, and a run lists only what is new.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ringback::adapters::dynamodb::{CallsTable, ProvidersAndLogs};
use ringback::adapters::memory_queue::MemoryQueue;
use ringback::config::{DeploymentId, Timing};
use ringback::domain::{to_iso, CallRecord};
use ringback::metrics::Metrics;
use ringback::ports::{
    CallFilter, CallStore, ReconcileCursors, StoreError, VapiApi, VapiError, Versioned,
};
use ringback::service::cleanup::{CleanupService, Reconcile, Reconciled};
use ringback::service::placed::search_window;
use ringback::vapi::{VapiClient, VapiClientConfig};
use serde_json::{json, Value};
use support::ManualClock;
use vapi_simulator::{FetchScript, ListOrder, Simulator, SimulatorConfig, SimulatorHandle};

const NOW: &str = "2026-03-02T15:00:00Z";
const PHONE: &str = "pn-ringback";
const OURS: &str = "stack-ours";
const THEIRS: &str = "stack-theirs";
const TTL: Duration = Duration::from_secs(1800);

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

/// Who placed a seeded call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Placer {
    /// This deployment, and it has no record: must be adopted.
    OursLost,
    /// This deployment, recorded: left alone.
    OursRecorded,
    /// Another deployment on the same number.
    Theirs,
    /// Our attempt-id key, but no identity (a deployment from before identities): not ours.
    Anonymous,
    /// No metadata at all (a dashboard call).
    Nobody,
}

struct Seeded {
    id: String,
    placer: Placer,
}

/// A listed call as Vapi shows it.
fn vapi_call(id: &str, created: DateTime<Utc>, updated: DateTime<Utc>, placer: Placer) -> Value {
    let mut metadata = json!({"providerName": "Acme Plumbing", "serviceRequestId": id});
    match placer {
        Placer::OursLost | Placer::OursRecorded => {
            metadata["ringbackAttemptId"] = json!(format!("attempt-{id}"));
            metadata["ringbackDeploymentId"] = json!(OURS);
        }
        Placer::Theirs => {
            metadata["ringbackAttemptId"] = json!(format!("attempt-{id}"));
            metadata["ringbackDeploymentId"] = json!(THEIRS);
        }
        Placer::Anonymous => metadata["ringbackAttemptId"] = json!(format!("attempt-{id}")),
        Placer::Nobody => metadata = json!({}),
    }
    json!({
        "id": id, "orgId": "org", "type": "outboundPhoneCall", "phoneNumberId": PHONE,
        "status": "ended", "endedReason": "customer-ended-call",
        "createdAt": to_iso(created), "updatedAt": to_iso(updated),
        "customer": {"number": "+14155550123", "name": "Acme Plumbing"},
        "assistantOverrides": {"metadata": metadata},
    })
}

/// `n` calls spread over `from..to` (deterministically), `tied` of them created in one
/// millisecond (updated a few ms apart), every `ours_every`-th placed by us (every fourth of
/// those recorded), the rest by others.
fn population(
    n: usize,
    tied: usize,
    ours_every: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Value, Placer)> {
    let span = (to - from).num_milliseconds() as u64;
    let tie_at = from + chrono::Duration::milliseconds((span / 3) as i64);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let created = if i < tied {
                tie_at
            } else {
                from + chrono::Duration::milliseconds((x % span) as i64)
            };
            let updated = created + chrono::Duration::milliseconds((i % 997) as i64 * 3);
            let placer = match i % ours_every {
                0 if (i / ours_every) % 4 == 3 => Placer::OursRecorded,
                0 => Placer::OursLost,
                1 | 2 => Placer::Anonymous,
                3 => Placer::Nobody,
                _ => Placer::Theirs,
            };
            (
                vapi_call(&format!("call-{i:06}"), created, updated, placer),
                placer,
            )
        })
        .collect()
}

/// Store requests, as DynamoDB would count them (BatchGetItem: one per 100 keys).
#[derive(Default)]
struct Counts {
    gets: AtomicU32,
    puts: AtomicU32,
    batch_gets: AtomicU32,
    cursor: AtomicU32,
}

impl Counts {
    fn total(&self) -> u32 {
        [&self.gets, &self.puts, &self.batch_gets, &self.cursor]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// The real calls table, counted.
struct Counting(Arc<Counts>);

#[async_trait]
impl support::Hooks for Counting {
    async fn get(&self, _call_id: &str) -> Option<Result<Option<Versioned>, StoreError>> {
        self.0.gets.fetch_add(1, Ordering::Relaxed);
        None
    }
    async fn put(&self, _record: &CallRecord) -> Option<Result<u64, StoreError>> {
        self.0.puts.fetch_add(1, Ordering::Relaxed);
        None
    }
    async fn recorded(&self, call_ids: &[String]) -> Option<Result<HashSet<String>, StoreError>> {
        let requests = call_ids.len().div_ceil(100) as u32;
        self.0.batch_gets.fetch_add(requests, Ordering::Relaxed);
        None
    }
}

type Counted = support::Hooked<Counting>;

#[async_trait]
impl ReconcileCursors for Counted {
    async fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.hooks.0.cursor.fetch_add(1, Ordering::Relaxed);
        self.table.load(key).await
    }
    async fn save(&self, key: &str, cursor: &str) -> Result<(), StoreError> {
        self.hooks.0.cursor.fetch_add(1, Ordering::Relaxed);
        self.table.save(key, cursor).await
    }
}

/// Vapi that fails every listing after the first `ok` ones (an outage mid-run).
struct FailingAfter {
    inner: Arc<dyn VapiApi>,
    ok: AtomicU32,
}

#[async_trait]
impl VapiApi for FailingAfter {
    async fn get_call(&self, id: &str) -> Result<Value, VapiError> {
        self.inner.get_call(id).await
    }
    async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
        self.inner.create_call(body).await
    }
    async fn list_calls(&self, f: &CallFilter) -> Result<Vec<Value>, VapiError> {
        if self
            .ok
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(VapiError::Transient {
                status: Some(503),
                retry_after: None,
                message: "injected outage".into(),
            });
        }
        self.inner.list_calls(f).await
    }
}

struct Rig {
    sim: SimulatorHandle,
    vapi: Arc<dyn VapiApi>,
    table: Arc<CallsTable>,
    store: Arc<Counted>,
    counts: Arc<Counts>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
    client: aws_sdk_dynamodb::Client,
    t: support::Tables,
    _db: support::DynamoGuard,
}

async fn rig(order: ListOrder) -> Rig {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at(NOW);
    let table = Arc::new(CallsTable::new(
        client.clone(),
        t.calls.clone(),
        TTL,
        clock.clone(),
    ));
    let counts = Arc::new(Counts::default());
    let store = Arc::new(Counted::new(table.clone(), Counting(counts.clone())));
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    sim.set_list_order(order);
    let vapi = Arc::new(VapiClient::new(VapiClientConfig::new(
        sim.base_url(),
        "key",
    )));
    Rig {
        sim,
        vapi,
        table,
        store,
        counts,
        queue: Arc::new(MemoryQueue::default()),
        clock,
        client,
        t,
        _db: db,
    }
}

impl Rig {
    /// Seeds the calls in Vapi, and records the ones this deployment recorded.
    async fn seed(&self, calls: Vec<(Value, Placer)>) -> Vec<Seeded> {
        let mut seeded = Vec::with_capacity(calls.len());
        for (call, placer) in calls {
            let id = self.sim.seed_call(call.clone(), FetchScript::Always);
            if placer == Placer::OursRecorded {
                let rec = CallRecord::new(&id, call["createdAt"].as_str().unwrap());
                self.table.put(&rec, None, None).await.unwrap();
            }
            seeded.push(Seeded { id, placer });
        }
        seeded
    }

    fn cleanup(
        &self,
        vapi: Arc<dyn VapiApi>,
        page: u32,
        budget: Duration,
        metrics: Metrics,
    ) -> CleanupService {
        let reconcile = Reconcile {
            page,
            budget,
            ..Reconcile::new(
                vapi,
                PHONE,
                DeploymentId::parse(OURS).unwrap(),
                TTL,
                self.store.clone(),
            )
        };
        CleanupService {
            revive: None,
            reconcile: Some(reconcile),
            store: self.store.clone(),
            queue: self.queue.clone(),
            sink: Arc::new(ProvidersAndLogs::new(
                self.client.clone(),
                self.t.providers.clone(),
                self.t.logs.clone(),
                self.clock.clone(),
            )),
            clock: self.clock.clone(),
            timing: Timing::default(),
            page_size: 100,
            metrics,
            push: None,
            erase: None,
        }
    }

    /// Which of `ids` have a record now.
    async fn recorded(&self, ids: &[String]) -> HashSet<String> {
        self.table.recorded(ids).await.unwrap()
    }

    /// The call ids the queue holds watchdog jobs for.
    fn watched(&self) -> HashSet<String> {
        self.queue
            .snapshot()
            .messages
            .iter()
            .map(|m| serde_json::from_str::<Value>(&m.body).unwrap())
            .filter(|j| j["kind"] == "watchdog")
            .map(|j| j["callId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// One run, timed and counted, with its figures printed.
    async fn run(
        &self,
        svc: &CleanupService,
        what: &str,
    ) -> (Result<Reconciled, String>, Duration) {
        let (vapi_before, store_before) = (self.sim.stats().list_calls, self.counts.total());
        let started = std::time::Instant::now();
        let result = svc.run_once().await;
        let took = started.elapsed();
        let reconciled = match &result {
            Ok(r) => Ok(r.reconciled),
            Err(e) => Err(e.to_string()),
        };
        eprintln!(
            "{what}: {took:?}, {} Vapi requests, {} store requests, {reconciled:?}",
            self.sim.stats().list_calls - vapi_before,
            self.counts.total() - store_before,
        );
        (reconciled, took)
    }
}

fn ids_of(seeded: &[Seeded], placers: &[Placer]) -> Vec<String> {
    seeded
        .iter()
        .filter(|s| placers.contains(&s.placer))
        .map(|s| s.id.clone())
        .collect()
}

/// Every own unrecorded call adopted, once, and watched; nothing of anyone else's recorded.
async fn assert_only_ours_adopted(rig: &Rig, seeded: &[Seeded]) {
    let lost = ids_of(seeded, &[Placer::OursLost]);
    let others = ids_of(seeded, &[Placer::Theirs, Placer::Anonymous, Placer::Nobody]);
    let recorded = rig.recorded(&lost).await;
    assert_eq!(
        recorded.len(),
        lost.len(),
        "every call we placed is recorded"
    );
    assert_eq!(rig.watched(), lost.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(
        rig.queue.len(),
        lost.len(),
        "one watchdog job per adopted call"
    );
    assert!(
        rig.recorded(&others).await.is_empty(),
        "another deployment's call was recorded"
    );
}

async fn fifty_thousand_calls(order: ListOrder) {
    let rig = rig(order).await;
    let window_end = now() - chrono::Duration::seconds(61);
    let from = now() - chrono::Duration::seconds(1799);
    let seeded = rig
        .seed(population(50_000, 300, 25, from, window_end))
        .await;
    let cleanup = rig.cleanup(
        rig.vapi.clone(),
        1000,
        Duration::from_secs(600),
        Metrics::off(),
    );

    let (done, _) = rig.run(&cleanup, &format!("50,000 calls, {order:?}")).await;
    let done = done.unwrap();
    assert_eq!(done.listed, 50_000, "each call listed exactly once");
    assert_eq!(
        done.adopted as usize,
        ids_of(&seeded, &[Placer::OursLost]).len()
    );
    assert_eq!(done.foreign as usize, 50_000 - 2_000);
    assert!(!done.unfinished);
    assert_only_ours_adopted(&rig, &seeded).await;

    // Five minutes later the window holds 50,000 old calls and a few new: only the new are listed.
    rig.clock.advance(Duration::from_secs(300));
    let new = population(
        40,
        0,
        2,
        now() - chrono::Duration::seconds(59),
        now() + chrono::Duration::seconds(239),
    );
    let new: Vec<(Value, Placer)> = new
        .into_iter()
        .enumerate()
        .map(|(i, (mut c, p))| {
            c["id"] = json!(format!("new-{i}"));
            (c, p)
        })
        .collect();
    let mut all = seeded;
    all.extend(rig.seed(new).await);
    let (next, _) = rig.run(&cleanup, "the next run").await;
    let next = next.unwrap();
    assert_eq!(
        next.listed, 40,
        "only the calls created since the last run are listed"
    );
    assert_eq!(next.vapi_requests, 1);
    assert_only_ours_adopted(&rig, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_calls_newest_first_only_ours_are_adopted() {
    fifty_thousand_calls(ListOrder::NewestFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_calls_oldest_first_only_ours_are_adopted() {
    fifty_thousand_calls(ListOrder::OldestFirst).await;
}

/// More calls in one millisecond than a page holds: that millisecond is split by `updatedAt`.
#[tokio::test]
async fn more_than_a_page_in_one_millisecond_in_either_order() {
    for order in [ListOrder::NewestFirst, ListOrder::OldestFirst] {
        let rig = rig(order).await;
        let from = now() - chrono::Duration::seconds(1700);
        let seeded = rig
            .seed(population(
                3_000,
                450,
                5,
                from,
                now() - chrono::Duration::seconds(120),
            ))
            .await;
        let cleanup = rig.cleanup(
            rig.vapi.clone(),
            100,
            Duration::from_secs(600),
            Metrics::off(),
        );
        let (done, _) = rig
            .run(
                &cleanup,
                &format!("3,000 calls, 450 in one ms, pages of 100, {order:?}"),
            )
            .await;
        let done = done.unwrap();
        assert_eq!(
            done.listed, 3_000,
            "{order:?}: each call listed exactly once"
        );
        assert_only_ours_adopted(&rig, &seeded).await;
    }
}

/// A millisecond whose calls cannot be told apart (more than a page, same createdAt and
/// updatedAt) fails the run loudly, counted, instead of leaving calls unlisted.
#[tokio::test]
async fn a_window_that_cannot_be_listed_fails_the_run_and_is_counted() {
    let rig = rig(ListOrder::NewestFirst).await;
    let t = now() - chrono::Duration::seconds(600);
    let calls = (0..150)
        .map(|i| {
            (
                vapi_call(&format!("same-{i}"), t, t, Placer::Theirs),
                Placer::Theirs,
            )
        })
        .collect();
    rig.seed(calls).await;
    let metrics = Metrics::capture();
    let cleanup = rig.cleanup(
        rig.vapi.clone(),
        100,
        Duration::from_secs(600),
        metrics.clone(),
    );
    let (done, _) = rig
        .run(&cleanup, "150 identical timestamps, pages of 100")
        .await;
    let err = done.unwrap_err();
    assert!(err.contains("cannot list"), "{err}");
    assert_eq!(metrics.total("ReconciliationFailed", &[]), 1.0);
}

/// A run that fails part-way (Vapi down) keeps the pages it finished; the next resumes there
/// rather than starting over, and together they adopt everything.
#[tokio::test]
async fn a_failed_run_resumes_where_it_stopped() {
    let rig = rig(ListOrder::NewestFirst).await;
    let from = now() - chrono::Duration::seconds(1700);
    let seeded = rig
        .seed(population(
            5_000,
            200,
            10,
            from,
            now() - chrono::Duration::seconds(90),
        ))
        .await;
    let metrics = Metrics::capture();
    let flaky = Arc::new(FailingAfter {
        inner: rig.vapi.clone(),
        ok: AtomicU32::new(2),
    });
    let failing = rig.cleanup(flaky, 1000, Duration::from_secs(600), metrics.clone());
    let (first, _) = rig.run(&failing, "a run Vapi fails after 2 pages").await;
    assert!(first.is_err(), "the run reports the failure");
    assert_eq!(metrics.total("ReconciliationFailed", &[]), 1.0);
    let healthy = rig.cleanup(
        rig.vapi.clone(),
        1000,
        Duration::from_secs(600),
        Metrics::off(),
    );
    let listed_before = rig.sim.stats().list_calls;
    let (second, _) = rig.run(&healthy, "the next run").await;
    let second = second.unwrap();
    // Two pages of 1,000 were done, less the boundary calls each page shares with the last.
    assert!(
        (2_999..=3_001).contains(&second.listed),
        "the two pages done are not listed again: {second:?}"
    );
    assert!(
        rig.sim.stats().list_calls - listed_before <= 5,
        "it did not start over"
    );
    assert_only_ours_adopted(&rig, &seeded).await;
}

/// A run whose time is up saves its place; the next run finishes the listing.
#[tokio::test]
async fn a_run_out_of_time_leaves_the_rest_to_the_next() {
    let rig = rig(ListOrder::OldestFirst).await;
    let from = now() - chrono::Duration::seconds(1700);
    let seeded = rig
        .seed(population(
            2_500,
            100,
            10,
            from,
            now() - chrono::Duration::seconds(90),
        ))
        .await;
    let out_of_time = rig.cleanup(rig.vapi.clone(), 1000, Duration::ZERO, Metrics::off());
    let (first, _) = rig.run(&out_of_time, "a run with no time left").await;
    let first = first.unwrap();
    assert!(first.unfinished && first.listed == 0);
    let healthy = rig.cleanup(
        rig.vapi.clone(),
        1000,
        Duration::from_secs(600),
        Metrics::off(),
    );
    let (second, _) = rig.run(&healthy, "the next run").await;
    let second = second.unwrap();
    assert_eq!(second.listed, 2_500);
    assert!(!second.unfinished);
    assert_only_ours_adopted(&rig, &seeded).await;
}

/// Finding 10: the in-doubt search paged to `oldest - 1 ms`, so calls sharing the boundary
/// millisecond with the end of a page were never listed, and the initiator could conclude that
/// its call was never placed. Here the 100th and later calls (newest first) share one
/// millisecond, and the call looked for is among them.
#[tokio::test]
async fn the_in_doubt_search_finds_a_call_in_the_boundary_millisecond() {
    let rig = rig(ListOrder::NewestFirst).await;
    let boundary = now() - chrono::Duration::seconds(50);
    let mut calls = Vec::new();
    for i in 0..95 {
        let t = now() - chrono::Duration::milliseconds(i + 1);
        calls.push((
            vapi_call(&format!("newer-{i}"), t, t, Placer::Theirs),
            Placer::Theirs,
        ));
    }
    for i in 0..10 {
        // Newest first, a millisecond lists its last placed call first: `tied-0` comes last.
        let placer = if i == 0 {
            Placer::OursLost
        } else {
            Placer::Theirs
        };
        calls.push((
            vapi_call(&format!("tied-{i}"), boundary, boundary, placer),
            placer,
        ));
    }
    for i in 0..45 {
        let t = boundary - chrono::Duration::milliseconds(i + 1);
        calls.push((
            vapi_call(&format!("older-{i}"), t, t, Placer::Theirs),
            Placer::Theirs,
        ));
    }
    rig.seed(calls).await;
    let found = search_window(
        rig.vapi.as_ref(),
        PHONE,
        now() - chrono::Duration::seconds(120),
        now(),
        |call| call["assistantOverrides"]["metadata"]["ringbackAttemptId"] == "attempt-tied-0",
    )
    .await
    .unwrap();
    assert!(found, "the call at the boundary millisecond was not found");
}
