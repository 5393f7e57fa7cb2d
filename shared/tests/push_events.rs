//! Making pushed events, through the real calls and events tables on the embedded DynamoDB: one
//! delivery chain per event however often a step retries its write, and one `call.updated` per
//! version of the data, even two versions in the same millisecond.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ringback::adapters::dynamodb::{
    ensure_events_table, CallsTable, EventsTable, ProvidersAndLogs,
};
use ringback::config::Timing;
use ringback::domain::push::{EventType, SigningSecret};
use ringback::domain::{CallRecord, CallResult, DataStatus};
use ringback::ports::{
    CallFilter, CallStore, CallbackAnswer, CallbackSender, EnrichmentJob, EnrichmentQueue,
    EventBus, JobKind, PushStore, QueueError, StoreError, VapiApi, VapiError,
};
use ringback::service::enrichment::EnrichmentService;
use ringback::service::push::PushService;
use serde_json::Value;

const CALL: &str = "call-push-1";
const NOW: &str = "2026-12-04T09:00:00Z";

#[derive(Default)]
struct RecordingQueue(Mutex<Vec<EnrichmentJob>>);

#[async_trait]
impl EnrichmentQueue for RecordingQueue {
    async fn schedule(&self, job: &EnrichmentJob, _delay: Duration) -> Result<(), QueueError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

impl RecordingQueue {
    fn push_jobs(&self) -> Vec<(String, u32)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|j| j.kind == JobKind::Push)
            .map(|j| (j.event_id.clone().unwrap_or_default(), j.attempt))
            .collect()
    }
}

/// An event bus that takes everything and remembers it.
#[derive(Default)]
struct RecordingBus(Mutex<Vec<ringback::domain::push::CallEvent>>);

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, event: &ringback::domain::push::CallEvent) -> Result<(), String> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Never reached in these tests: events are made, not delivered.
struct NoReceiver;

#[async_trait]
impl CallbackSender for NoReceiver {
    async fn post(&self, _url: &str, _h: &[(&str, String)], _b: &[u8]) -> CallbackAnswer {
        unreachable!("no delivery job is run here")
    }
}

/// Not asked: a `persist` job does not call Vapi.
struct NoVapi;

#[async_trait]
impl VapiApi for NoVapi {
    async fn get_call(&self, _id: &str) -> Result<Value, VapiError> {
        Err(VapiError::NotFound)
    }
    async fn create_call(&self, _body: &Value) -> Result<Value, VapiError> {
        Err(VapiError::NotFound)
    }
    async fn list_calls(&self, _f: &CallFilter) -> Result<Vec<Value>, VapiError> {
        Ok(Vec::new())
    }
}

/// The calls table, except that its next `n` writes fail their condition without writing:
/// another writer got there first (whose write changed nothing this test looks at).
struct Losing(Mutex<u32>);

#[async_trait]
impl support::Hooks for Losing {
    async fn put(&self, _record: &CallRecord) -> Option<Result<u64, StoreError>> {
        let mut lose = self.0.lock().unwrap();
        let lost = *lose > 0;
        *lose = lose.saturating_sub(1);
        lost.then_some(Err(StoreError::Conflict))
    }
}

type Contended = support::Hooked<Losing>;

struct Fixture {
    store: Arc<Contended>,
    events: Arc<EventsTable>,
    queue: Arc<RecordingQueue>,
    push: Arc<PushService>,
    enrichment: EnrichmentService,
    _db: support::DynamoGuard,
}

async fn setup() -> Fixture {
    build(None).await
}

async fn build(bus: Option<Arc<RecordingBus>>) -> Fixture {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let events_table = support::unique("events");
    ensure_events_table(&client, &events_table).await.unwrap();
    let clock = support::ManualClock::at(NOW);
    let store = Arc::new(Contended::new(
        CallsTable::new(
            client.clone(),
            t.calls,
            Duration::from_secs(1800),
            clock.clone(),
        ),
        Losing(Mutex::new(0)),
    ));
    let events = Arc::new(EventsTable::new(
        client.clone(),
        events_table,
        Duration::from_secs(7 * 86_400),
        clock.clone(),
    ));
    let queue = Arc::new(RecordingQueue::default());
    let push = Arc::new(PushService {
        store: events.clone(),
        queue: queue.clone(),
        sender: Arc::new(NoReceiver),
        secret: Some(SigningSecret::generate().0),
        bus: bus.map(|b| b as Arc<dyn EventBus>),
        clock: clock.clone(),
        retry_delays: vec![Duration::from_secs(5)],
        hosts: ringback::domain::callback_host::CallbackHosts::Deployment,
        jitter: Arc::new(|| 0.0),
        metrics: ringback::metrics::Metrics::off(),
    });
    let enrichment = EnrichmentService {
        store: store.clone(),
        queue: queue.clone(),
        vapi: Arc::new(NoVapi),
        sink: Arc::new(ProvidersAndLogs::new(
            client,
            t.providers,
            t.logs,
            clock.clone(),
        )),
        clock,
        timing: Timing::default(),
        poison: None,
        push: Some(push.clone()),
        metrics: ringback::metrics::Metrics::off(),
    };
    Fixture {
        store,
        events,
        queue,
        push,
        enrichment,
        _db: db,
    }
}

/// Runs a `persist` job for the call, as the enrichment consumer gets one.
async fn persist_job(f: &Fixture) {
    let job = EnrichmentJob {
        call_id: CALL.into(),
        attempt: 1,
        kind: JobKind::Persist,
        event_id: None,
    };
    let body = serde_json::to_string(&job).unwrap();
    f.enrichment.process("m-1", &body).await.expect("persisted");
}

fn settled(transcript: &str) -> CallResult {
    let mut r = CallResult::new(CALL, "2026-12-04T08:50:00.000Z");
    r.data_status = DataStatus::Complete;
    r.callback_url = Some("https://receiver.example/hook".into());
    r.transcript = Some(transcript.into());
    r.updated_at = "2026-12-04T08:59:59.999Z".into();
    r
}

#[tokio::test]
async fn a_step_that_retries_its_write_starts_one_delivery_chain() {
    let f = setup().await;
    // A settled call that got late data: its rows are stale, a `persist` job saves them again
    // and makes the call.updated event.
    let mut record = CallRecord::new(CALL, NOW);
    record.result = settled("AI: Hello.\nUser: Hi, this is Acme.");
    record.book.rows_stale = true;
    f.store.table.put(&record, None, None).await.unwrap();
    // The step's write loses its race twice, then lands.
    *f.store.hooks.0.lock().unwrap() = 2;

    persist_job(&f).await;

    let events = f.events.list(CALL).await.unwrap();
    assert_eq!(events.len(), 1, "one event for one version of the data");
    let jobs = f.queue.push_jobs();
    assert_eq!(
        jobs,
        vec![(events[0].event.id.clone(), 1)],
        "one first delivery job: each extra one is a second chain of retries"
    );
}

#[tokio::test]
async fn two_versions_of_the_data_in_one_millisecond_are_two_updates() {
    let f = setup().await;
    let first = settled("AI: Hello.");
    let second = settled("AI: Hello.\nUser: Hi, this is Acme, we can come on Tuesday.");
    assert_eq!(first.updated_at, second.updated_at);
    f.push.emit(&first, EventType::Updated).await.unwrap();
    f.push.emit(&second, EventType::Updated).await.unwrap();
    // The same version made again (a redelivered step) is still the same event.
    f.push.emit(&second, EventType::Updated).await.unwrap();

    let events = f.events.list(CALL).await.unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    let transcripts: Vec<_> = events
        .iter()
        .map(|e| e.event.data.transcript.clone().unwrap())
        .collect();
    assert!(transcripts.contains(&second.transcript.clone().unwrap()));
    assert_ne!(events[0].event.id, events[1].event.id);
}

fn cleanup_of(f: &Fixture) -> ringback::service::cleanup::CleanupService {
    ringback::service::cleanup::CleanupService {
        revive: None,
        reconcile: None,
        store: f.store.clone(),
        queue: f.queue.clone(),
        sink: f.enrichment.sink.clone(),
        clock: f.enrichment.clock.clone(),
        timing: Timing::default(),
        page_size: 10,
        metrics: ringback::metrics::Metrics::off(),
        push: Some(f.push.clone()),
        erase: None,
    }
}

/// A record the cleanup must settle: partial, out of re-drives, its deadline passed.
async fn stuck(f: &Fixture) {
    let mut stuck = CallRecord::new(CALL, "2026-12-04T08:00:00.000Z");
    stuck.result = settled("AI: Hello.");
    stuck.result.data_status = DataStatus::Partial;
    stuck.result.updated_at = "2026-12-04T08:00:00.000Z".into();
    stuck.book.redrives = ringback::domain::MAX_REDRIVES;
    f.store
        .table
        .put(&stuck, None, Some(at("2026-12-04T08:30:00Z")))
        .await
        .unwrap();
}

fn at(iso: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn a_cleanup_settle_that_loses_its_race_pushes_nothing() {
    // The enrichment settled the call `complete` while the cleanup read it: a `call.failed`
    // made before the cleanup's write would tell receivers the opposite of what happened.
    let f = setup().await;
    stuck(&f).await;
    *f.store.hooks.0.lock().unwrap() = 1;
    let report = cleanup_of(&f).run_once().await.unwrap();
    assert_eq!((report.settled, report.left), (0, 1), "{report:?}");
    assert!(
        f.events.list(CALL).await.unwrap().is_empty(),
        "no event for a state never committed"
    );
    assert!(f.queue.push_jobs().is_empty());
}

#[tokio::test]
async fn a_settle_whose_event_was_never_made_gets_it_from_the_cleanup() {
    // The process died between the settle's write and its event: the record owes it, keeps a
    // deadline, and the cleanup's `persist` re-drive makes it from the committed record.
    let f = setup().await;
    let mut record = CallRecord::new(CALL, NOW);
    record.result = settled("AI: Hello.\nUser: Hi.");
    record.result.updated_at = "2026-12-04T08:00:00.000Z".into();
    record.book.event_owed = true;
    f.store
        .table
        .put(&record, None, Some(at("2026-12-04T08:30:00Z")))
        .await
        .unwrap();

    let report = cleanup_of(&f).run_once().await.unwrap();
    assert_eq!(report.redriven, 1, "{report:?}");
    let job = f.queue.0.lock().unwrap().pop().expect("a re-drive job");
    assert_eq!(job.kind, JobKind::Persist);
    let body = serde_json::to_string(&job).unwrap();
    f.enrichment.process("m-1", &body).await.expect("made");

    let events = f.events.list(CALL).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [EventType::Completed],
        "the settling event, not an update"
    );
    let now = f.store.get(CALL).await.unwrap().unwrap().record;
    assert_eq!(events[0].event.data, now.result, "the committed data");
    assert!(!now.book.event_owed, "paid");
    assert_eq!(
        f.store
            .table
            .overdue(at("2026-12-05T00:00:00Z"), None, 10)
            .await
            .unwrap()
            .call_ids
            .len(),
        0,
        "out of the cleanup's sight"
    );
}

#[tokio::test]
async fn a_call_the_cleanup_settles_pushes_call_failed() {
    // docs/operations.md once said these calls pushed nothing; the cleanup makes the event
    // right after its terminal write, as enrichment does.
    let f = setup().await;
    stuck(&f).await;
    let report = cleanup_of(&f).run_once().await.unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    let events = f.events.list(CALL).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(kinds, [EventType::Failed]);
    assert_eq!(events[0].event.data.data_status, DataStatus::FetchFailed);
    assert_eq!(f.queue.push_jobs().len(), 1);
}

#[tokio::test]
async fn a_settling_event_made_again_after_late_data_reaches_the_bus_as_first_made() {
    // The settle's event went to the bus, then the process died before clearing the flag, and
    // late data landed. Published again under its id, the event must carry the body consumers
    // may already hold (they de-duplicate on id): the late data goes out as `call.updated`.
    let bus = Arc::new(RecordingBus::default());
    let f = build(Some(bus.clone())).await;
    let mut record = CallRecord::new(CALL, NOW);
    record.result = settled("AI: Hello.");
    record.result.callback_url = None;
    f.push
        .emit(&record.result, EventType::Completed)
        .await
        .unwrap();
    record.result.transcript = Some("AI: Hello.\nUser: Tuesday works.".into());
    record.result.updated_at = "2026-12-04T09:00:00.000Z".into();
    record.book.event_owed = true;
    record.book.rows_stale = true;
    f.store.table.put(&record, None, None).await.unwrap();

    persist_job(&f).await;

    let published = bus.0.lock().unwrap().clone();
    let completed: Vec<_> = published
        .iter()
        .filter(|e| e.kind == EventType::Completed)
        .collect();
    assert!(completed.len() >= 2, "published again: {published:#?}");
    assert!(
        completed.iter().all(|e| *e == completed[0]),
        "one id, one body: {completed:#?}"
    );
    assert_eq!(completed[0].data.transcript.as_deref(), Some("AI: Hello."));
    let updated: Vec<_> = published
        .iter()
        .filter(|e| e.kind == EventType::Updated)
        .collect();
    assert_eq!(updated.len(), 1, "{published:#?}");
    assert_eq!(
        updated[0].data, record.result,
        "the late data, as committed"
    );
    assert!(
        f.queue.push_jobs().is_empty(),
        "no callback URL: nothing to POST"
    );
}

#[tokio::test]
async fn a_call_settled_again_after_a_replay_pushes_its_corrected_data_as_an_update() {
    // The settling event keeps its id (receivers de-duplicate on it), so a replay's corrected
    // record must reach them under another one.
    let f = setup().await;
    let first = settled("AI: Helo.");
    f.push.emit(&first, EventType::Completed).await.unwrap();
    let mut corrected = settled("AI: Hello.\nUser: Tuesday works.");
    corrected.updated_at = "2026-12-04T10:00:00.000Z".into();
    f.push.emit(&corrected, EventType::Completed).await.unwrap();

    let events = f.events.list(CALL).await.unwrap();
    let of = |kind| {
        events
            .iter()
            .filter(|e| e.event.kind == kind)
            .map(|e| e.event.data.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(EventType::Completed),
        [first],
        "the settling event stands"
    );
    assert_eq!(
        of(EventType::Updated),
        [corrected],
        "the corrected data goes out"
    );
    // A settle made again with the same data (a step that runs again) adds nothing.
    let again = settled("AI: Helo.");
    f.push.emit(&again, EventType::Completed).await.unwrap();
    assert_eq!(f.events.list(CALL).await.unwrap().len(), 2);
}
