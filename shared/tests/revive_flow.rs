//! The cleanup's revival (`service/revive.rs`) against a real-protocol DynamoDB (dynoxide): a call
//! whose record expired before it settled (the cleanup could not run for longer than the TTL) is
//! found through its durable listing summary, recorded again and handed to its watchdog; a call
//! that settled and expired as it should, and a call still within its TTL, are left alone.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ringback::adapters::dynamodb::{CallIndexTable, CallsTable};
use ringback::adapters::memory_queue::MemoryQueue;
use ringback::config::Timing;
use ringback::domain::{CallRecord, CallStatus, DataStatus};
use ringback::metrics::Metrics;
use ringback::ports::{
    CallStore, EnrichmentJob, JobKind, Persisted, ResultSink, SinkError, StoreError,
};
use ringback::search::{CallIndex, CallSummary, Filter, IndexedCalls, SearchPage, SearchQuery};
use ringback::service::cleanup::{CleanupService, Revive};
use ringback::service::deadline_for;
use support::ManualClock;

const TTL: Duration = Duration::from_secs(1800);
const NOW: &str = "2026-12-04T10:00:00Z";

fn timing() -> Timing {
    Timing {
        enrichment_delays: vec![Duration::from_secs(3), Duration::from_secs(5)],
        watchdog_delay: Duration::from_secs(900),
        max_call: Duration::from_secs(3600),
        stuck_grace: Duration::from_secs(60),
        deadline_cap: Duration::from_secs(1080),
        claim_lease: Duration::from_secs(60),
    }
}

/// The revival never persists: a sink that says so if it is asked to.
struct NoSink;

#[async_trait]
impl ResultSink for NoSink {
    async fn save(&self, _: &ringback::domain::CallResult) -> Result<Persisted, SinkError> {
        panic!("the revival persisted a call")
    }
    async fn erase(&self, _: &ringback::domain::CallResult) -> Result<Persisted, SinkError> {
        panic!("the revival erased a call")
    }
}

/// A call index whose queries fail: the listing unreadable.
struct Unreadable;

#[async_trait]
impl CallIndex for Unreadable {
    async fn upsert(&self, _: &CallSummary, _: u64, _: bool) -> Result<(), StoreError> {
        Ok(())
    }
    async fn remove(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn search(&self, _: &SearchQuery) -> Result<SearchPage, StoreError> {
        Err(StoreError::Unavailable("the call index is down".into()))
    }
    async fn summary(&self, _: &str) -> Result<Option<CallSummary>, StoreError> {
        Err(StoreError::Unavailable("the call index is down".into()))
    }
    async fn counts(
        &self,
        _: chrono::DateTime<chrono::Utc>,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<ringback::stats::CallCounts, StoreError> {
        Err(StoreError::Unavailable("the call index is down".into()))
    }
}

struct Rig {
    store: Arc<IndexedCalls<CallsTable>>,
    index: Arc<CallIndexTable>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
    _db: support::DynamoGuard,
}

impl Rig {
    async fn start() -> Self {
        let (client, db) = support::dynamo().await;
        let t = support::tables(&client).await;
        let index_table = support::call_index_table(&client).await;
        let clock = ManualClock::at(NOW);
        let index = Arc::new(CallIndexTable::new(client.clone(), index_table.clone()));
        let table = CallsTable::new(client, t.calls, TTL, clock.clone()).with_index(index_table);
        Self {
            store: Arc::new(IndexedCalls::new(
                table,
                Some(index.clone() as Arc<dyn CallIndex>),
            )),
            index,
            queue: Arc::new(MemoryQueue::default()),
            clock,
            _db: db,
        }
    }

    fn cleanup(&self, index: Arc<dyn CallIndex>, metrics: Metrics) -> CleanupService {
        CleanupService {
            revive: Some(Revive { index, ttl: TTL }),
            reconcile: None,
            store: self.store.clone(),
            queue: self.queue.clone(),
            sink: Arc::new(NoSink),
            clock: self.clock.clone(),
            timing: timing(),
            page_size: 100,
            metrics,
            push: None,
            erase: None,
        }
    }

    /// A record written now, as a step would write it.
    async fn write(&self, id: &str, data_status: DataStatus, call_status: CallStatus) {
        let now = ringback::ports::Clock::now(self.clock.as_ref());
        let mut r = CallRecord::new(id, &ringback::domain::to_iso(now));
        r.result.data_status = data_status;
        r.result.call_status = call_status;
        r.result.provider.name = Some(format!("Provider of {id}"));
        r.result.provider.phone = Some("+14155550123".into());
        r.result.provider_id = Some("5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34".into());
        r.result.service_request_id = Some("1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f".into());
        r.result.updated_at = ringback::domain::to_iso(now);
        let deadline = deadline_for(&r, now, &timing());
        self.store.put(&r, None, deadline).await.expect("written");
    }

    /// The `n` jobs queued, taken out of the queue as they become visible (the revival spreads
    /// them a second apart).
    async fn take_jobs(&self, n: usize) -> Vec<EnrichmentJob> {
        let mut jobs = Vec::new();
        while jobs.len() < n {
            let got = self
                .queue
                .receive(10, Duration::from_secs(5), Duration::from_secs(600))
                .await;
            assert!(!got.is_empty(), "only {} of {n} jobs queued", jobs.len());
            for d in got {
                jobs.push(serde_json::from_str(&d.body).expect("a job"));
                assert!(self.queue.delete(&d.receipt));
            }
        }
        assert!(self.queue.is_empty(), "more than {n} jobs queued");
        jobs
    }

    async fn listed_as(&self, id: &str, status: DataStatus) -> bool {
        let q = SearchQuery {
            filter: Filter::DataStatus(status),
            limit: 100,
            ..SearchQuery::default()
        };
        let page = self.index.search(&q).await.expect("a page");
        page.calls.iter().any(|c| c.call_id == id)
    }
}

#[tokio::test]
async fn a_call_whose_record_expired_unfinished_is_recorded_again_and_watched() {
    let rig = Rig::start().await;
    rig.write("lost-partial", DataStatus::Partial, CallStatus::InProgress)
        .await;
    rig.write("lost-fetching", DataStatus::Fetching, CallStatus::Ended)
        .await;
    rig.write("settled", DataStatus::Complete, CallStatus::Ended)
        .await;
    // Twenty minutes later, a call that is still well within its TTL.
    rig.clock.advance(Duration::from_secs(1200));
    rig.write("young", DataStatus::Partial, CallStatus::InProgress)
        .await;
    // The cleanup failed for longer than the TTL: the first three records expire.
    rig.clock.advance(Duration::from_secs(1800 - 1200 + 60));
    for id in ["lost-partial", "lost-fetching", "settled"] {
        assert!(rig.store.get(id).await.unwrap().is_none(), "{id} expired");
    }

    let metrics = Metrics::capture();
    let report = rig
        .cleanup(rig.index.clone(), metrics.clone())
        .run_once()
        .await
        .expect("a run");
    assert_eq!(report.revived.revived, 2, "{report:?}");
    // Only the two unfinished calls older than the TTL match; the settled one and the young one
    // are not even looked at.
    assert_eq!(report.revived.examined, 2, "{report:?}");
    assert!(!report.revived.unfinished);
    assert_eq!(metrics.total("CallsRevivedByCleanup", &[]), 2.0);

    for id in ["lost-partial", "lost-fetching"] {
        let v = rig.store.get(id).await.unwrap().expect("recorded again");
        let r = &v.record.result;
        assert_eq!(
            r.data_status,
            DataStatus::Pending,
            "{id}: its watchdog asks Vapi"
        );
        assert_eq!(
            r.created_at, "2026-12-04T10:00:00.000Z",
            "{id} keeps when it was placed"
        );
        assert_eq!(
            r.provider.name.as_deref(),
            Some(&*format!("Provider of {id}"))
        );
        assert!(
            r.provider_id.is_some() && r.service_request_id.is_some(),
            "{r:?}"
        );
        assert!(
            rig.listed_as(id, DataStatus::Pending).await,
            "{id} listed as pending"
        );
    }
    assert!(
        rig.store.get("settled").await.unwrap().is_none(),
        "a settled call stays gone"
    );
    assert!(rig.listed_as("settled", DataStatus::Complete).await);
    let mut jobs: Vec<_> = rig
        .take_jobs(2)
        .await
        .into_iter()
        .map(|j| (j.call_id, j.kind, j.attempt))
        .collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        jobs,
        vec![
            ("lost-fetching".to_string(), JobKind::Watchdog, 1),
            ("lost-partial".to_string(), JobKind::Watchdog, 1),
        ]
    );

    // The next run finds them recorded: nothing revived twice, nothing queued.
    let again = rig
        .cleanup(rig.index.clone(), Metrics::off())
        .run_once()
        .await
        .expect("a run");
    assert_eq!(
        (again.revived.revived, again.revived.examined),
        (0, 2),
        "{again:?}"
    );
    assert!(rig.queue.is_empty(), "nothing queued again");
}

#[tokio::test]
async fn an_unreadable_listing_fails_the_run_and_is_counted() {
    let rig = Rig::start().await;
    let metrics = Metrics::capture();
    let err = rig
        .cleanup(Arc::new(Unreadable), metrics.clone())
        .run_once()
        .await
        .expect_err("the run fails, so that it is retried");
    assert!(err.to_string().contains("revival"), "{err}");
    assert!(err.to_string().contains("the call index is down"), "{err}");
    assert_eq!(metrics.total("RevivalFailed", &[]), 1.0);
}
