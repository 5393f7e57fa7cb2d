//! Fault injectors around the real adapters: each port call passes a gate and meets the fault the
//! world chose for it. A "landed" fault performs the real call first, so the table really holds
//! what the caller is told did not happen.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ringback::adapters::dynamodb::{CallsTable, EventsTable, ProvidersAndLogs};
use ringback::domain::{CallRecord, CallResult};
use ringback::ports::{
    Attempt, CallStore, Deadline, DeliveryAttempt, ErasureMark, IdempotencyRecord,
    IdempotencyStore, Keeping, OverduePage, Persisted, PushRecord, PushState, PushStore,
    ReconcileCursors, ResultSink, SavedResponse, SinkError, StoreError, StoredWebhook, Versioned,
    WebhookArchive, WebhookLog,
};

use crate::sched::{Fault, Gates, Op};

fn outage(op: Op) -> StoreError {
    StoreError::Unavailable(format!("injected: {op:?} failed"))
}

fn lost(op: Op) -> StoreError {
    StoreError::Unavailable(format!("injected: the answer to {op:?} was lost"))
}

/// Runs a store call through its gate.
async fn through<T>(
    gates: &Gates,
    op: Op,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match gates.gate(op).await.fault {
        None | Some(Fault::Slow) => call.await,
        Some(Fault::Crash) => gates.die().await,
        Some(Fault::FailBefore | Fault::RateLimited | Fault::Unreachable) => Err(outage(op)),
        Some(fault) => {
            let result = call.await;
            match fault {
                Fault::LandCrash => gates.die().await,
                // What the SDK's retry of a write that landed sees: its own condition fails.
                Fault::LandConflict if result.is_ok() => Err(StoreError::Conflict),
                _ if result.is_ok() => Err(lost(op)),
                _ => result,
            }
        }
    }
}

/// The calls table (records and idempotency keys), failing on schedule.
pub struct FaultyStore {
    pub inner: Arc<CallsTable>,
    pub gates: Gates,
    pub committed: Arc<std::sync::Mutex<Committed>>,
}

impl FaultyStore {
    /// A record write behind the store's faults; what lands is noted as committed.
    async fn write(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        put: impl std::future::Future<Output = Result<u64, StoreError>>,
    ) -> Result<u64, StoreError> {
        let put = async {
            let landed = put.await;
            if landed.is_ok() {
                self.committed
                    .lock()
                    .unwrap()
                    .add(record, expected.is_none());
            }
            landed
        };
        through(&self.gates, Op::StorePut, put).await
    }
}

/// Every state of a record that landed in the table: the only data an event may carry.
#[derive(Default)]
pub struct Committed {
    /// By call: digests of each committed result, whole and of its [`core`] (for events cut to
    /// fit, which carry a result with texts left out), each with the record's lifetime.
    pub states: std::collections::HashMap<String, std::collections::HashMap<u64, u32>>,
    /// By call: its record's lifetimes so far (a record that expired and was made again by a
    /// late webhook starts another, and so does a replay of a settled record).
    pub lifetimes: std::collections::HashMap<String, u32>,
    /// By call and lifetime: the data status of the state that landed last.
    pub last: std::collections::HashMap<(String, u32), String>,
    /// Calls whose last committed record still owes work (its settling event, or its rows): the
    /// run goes on until the cleanup has re-driven it.
    pub owing: std::collections::HashSet<String>,
    /// By call: the digest of the content of the result that landed last (all but `updatedAt`
    /// and `webhookReceivedAt`: when ringback wrote or first heard, not what the call said).
    pub newest: std::collections::HashMap<String, u64>,
    /// Calls whose tombstone landed: nothing is owed for them any more.
    pub erased: std::collections::HashSet<String>,
}

impl Committed {
    fn add(&mut self, record: &CallRecord, created: bool) {
        let result = &record.result;
        let id = result.call_id.clone();
        if record.book.erased_at.is_some() {
            self.owing.remove(&id);
            self.erased.insert(id);
            return;
        }
        if record.book.event_owed || record.book.rows_stale {
            self.owing.insert(id.clone());
        } else {
            self.owing.remove(&id);
        }
        let lifetime = self.lifetimes.entry(id.clone()).or_default();
        // A settled record un-settled (only an operator's replay does that) starts over too:
        // its new settle may rightly tell another ending (a fetch_failed call now complete).
        let unsettled = !result.data_status.is_terminal()
            && self
                .last
                .get(&(id.clone(), *lifetime))
                .is_some_and(|s| matches!(s.as_str(), "complete" | "fetch_failed"));
        *lifetime += u32::from(created || unsettled);
        let lifetime = *lifetime;
        let v = serde_json::to_value(result).expect("a result serializes");
        self.newest.insert(id.clone(), digest(&content(&v)));
        let states = self.states.entry(id.clone()).or_default();
        states.insert(digest(&v), lifetime);
        states.insert(digest(&core(&v)), lifetime);
        self.last
            .insert((id, lifetime), result.data_status.as_str().to_owned());
    }

    /// Whether some call's record, in its latest lifetime, last committed an unsettled state: a
    /// record a late webhook made again after the first one expired still owes its settle.
    /// Asked at each step of a run's quiet check: stops at the first, builds no list.
    pub fn unsettled(&self) -> bool {
        self.lifetimes
            .iter()
            .any(|(id, lifetime)| self.unsettled_in(id, *lifetime))
    }

    pub fn unsettled_calls(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lifetimes
            .iter()
            .filter(|(id, lifetime)| self.unsettled_in(id, **lifetime))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn unsettled_in(&self, id: &str, lifetime: u32) -> bool {
        !self.erased.contains(id)
            && self
                .last
                .get(&(id.to_owned(), lifetime))
                .is_some_and(|s| !matches!(s.as_str(), "complete" | "fetch_failed"))
    }

    /// Whether an event's `data` carries what the record committed last (an event cut to fit
    /// carries less: it cannot tell, and counts).
    pub fn is_newest(&self, data: &serde_json::Value) -> bool {
        data["truncated"].as_bool() == Some(true)
            || data["callId"]
                .as_str()
                .and_then(|id| self.newest.get(id))
                .is_some_and(|d| *d == digest(&content(data)))
    }

    /// The lifetime of the record in which an event's `data` was a committed state, if any.
    pub fn holds(&self, data: &serde_json::Value) -> Option<u32> {
        let cut = data["truncated"].as_bool() == Some(true);
        let d = if cut {
            digest(&core(data))
        } else {
            digest(data)
        };
        data["callId"]
            .as_str()
            .and_then(|id| self.states.get(id))
            .and_then(|s| s.get(&d).copied())
    }
}

/// A result without its `updatedAt` and `webhookReceivedAt`.
fn content(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("updatedAt");
        o.remove("webhookReceivedAt");
    }
    v
}

/// What identifies a state even in an event cut to fit.
fn core(v: &serde_json::Value) -> serde_json::Value {
    let keys = [
        "callId",
        "status",
        "callStatus",
        "dataStatus",
        "endedReason",
        "updatedAt",
    ];
    keys.iter()
        .map(|k| (k.to_string(), v[*k].clone()))
        .collect()
}

fn digest(v: &serde_json::Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rounded(v).to_string().hash(&mut h);
    h.finish()
}

/// Floats to 9 significant digits: serde_json reads back a float it wrote to within an ulp only.
fn rounded(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            Value::String(format!("{:.9e}", n.as_f64().unwrap_or(0.0)))
        }
        Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), rounded(x))).collect()),
        other => other.clone(),
    }
}

#[async_trait]
impl CallStore for FaultyStore {
    async fn get(&self, call_id: &str) -> Result<Option<Versioned>, StoreError> {
        through(
            &self.gates,
            Op::StoreGet,
            CallStore::get(&*self.inner, call_id),
        )
        .await
    }
    async fn put(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        let put = self.inner.put(record, expected, deadline);
        self.write(record, expected, put).await
    }
    async fn put_listed(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
        summary: &ringback::search::CallSummary,
        previous: &ringback::search::Previous,
    ) -> Result<u64, StoreError> {
        // One request for both: its faults are a record write's.
        let put = self
            .inner
            .put_listed(record, expected, deadline, summary, previous);
        self.write(record, expected, put).await
    }
    async fn erase(
        &self,
        tombstone: &CallRecord,
        expected: Option<u64>,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        // One transaction (tombstone, parts, summary, counters): a record write's faults.
        let put = self.inner.erase(tombstone, expected, until, deadline);
        self.write(tombstone, expected, put).await
    }
    async fn delete(&self, call_id: &str, expected: u64) -> Result<(), StoreError> {
        through(
            &self.gates,
            Op::StoreDelete,
            self.inner.delete(call_id, expected),
        )
        .await
    }
    async fn overdue(
        &self,
        now: DateTime<Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<OverduePage, StoreError> {
        through(
            &self.gates,
            Op::StoreOverdue,
            self.inner.overdue(now, page, limit),
        )
        .await
    }
    async fn recorded(
        &self,
        call_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        through(&self.gates, Op::StoreGet, self.inner.recorded(call_ids)).await
    }
}

/// The call index as the cleanup's revival reads it, failing on schedule. (Summaries are written
/// in the record's transaction, behind the store's faults.)
pub struct FaultyIndex {
    pub inner: ringback::adapters::dynamodb::CallIndexTable,
    pub gates: Gates,
}

#[async_trait]
impl ringback::search::CallIndex for FaultyIndex {
    async fn upsert(
        &self,
        summary: &ringback::search::CallSummary,
        version: u64,
        create: bool,
    ) -> Result<(), StoreError> {
        let write = self.inner.upsert(summary, version, create);
        through(&self.gates, Op::StorePut, write).await
    }
    async fn remove(&self, call_id: &str) -> Result<(), StoreError> {
        through(&self.gates, Op::StoreDelete, self.inner.remove(call_id)).await
    }
    async fn search(
        &self,
        query: &ringback::search::SearchQuery,
    ) -> Result<ringback::search::SearchPage, StoreError> {
        through(&self.gates, Op::IndexQuery, self.inner.search(query)).await
    }
    async fn summary(
        &self,
        call_id: &str,
    ) -> Result<Option<ringback::search::CallSummary>, StoreError> {
        through(&self.gates, Op::IndexQuery, self.inner.summary(call_id)).await
    }
    async fn counts(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<ringback::stats::CallCounts, StoreError> {
        through(&self.gates, Op::IndexCount, self.inner.counts(since, until)).await
    }
}

#[async_trait]
impl ReconcileCursors for FaultyStore {
    async fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        through(&self.gates, Op::StoreGet, self.inner.load(key)).await
    }
    async fn save(&self, key: &str, cursor: &str) -> Result<(), StoreError> {
        through(&self.gates, Op::StorePut, self.inner.save(key, cursor)).await
    }
}

#[async_trait]
impl IdempotencyStore for FaultyStore {
    async fn begin(
        &self,
        key: &str,
        request_hash: &str,
        attempt: &Attempt,
    ) -> Result<Result<(), IdempotencyRecord>, StoreError> {
        through(
            &self.gates,
            Op::IdemBegin,
            self.inner.begin(key, request_hash, attempt),
        )
        .await
    }
    async fn lookup(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        through(&self.gates, Op::IdemLookup, self.inner.lookup(key)).await
    }
    async fn complete(&self, key: &str, response: &SavedResponse) -> Result<(), StoreError> {
        through(
            &self.gates,
            Op::IdemComplete,
            self.inner.complete(key, response),
        )
        .await
    }
    async fn release(&self, key: &str, attempt_id: &str) -> Result<(), StoreError> {
        through(
            &self.gates,
            Op::IdemRelease,
            self.inner.release(key, attempt_id),
        )
        .await
    }
    async fn reattempt(&self, key: &str, from: &str, to: &Attempt) -> Result<(), StoreError> {
        through(
            &self.gates,
            Op::IdemReattempt,
            self.inner.reattempt(key, from, to),
        )
        .await
    }
}

/// The providers and interaction-log tables, failing on schedule.
pub struct FaultySink {
    pub inner: ProvidersAndLogs,
    pub gates: Gates,
}

impl FaultySink {
    async fn through(
        &self,
        op: Op,
        call: impl std::future::Future<Output = Result<Persisted, SinkError>>,
    ) -> Result<Persisted, SinkError> {
        let failed = || SinkError::transient("injected: UpdateItem failed");
        match self.gates.gate(op).await.fault {
            None | Some(Fault::Slow) => call.await,
            Some(Fault::Crash) => self.gates.die().await,
            Some(Fault::FailBefore | Fault::RateLimited | Fault::Unreachable) => Err(failed()),
            Some(fault) => {
                let saved = call.await;
                match fault {
                    Fault::LandCrash => self.gates.die().await,
                    _ if saved.is_ok() => Err(SinkError::transient(
                        "injected: the answer to UpdateItem was lost",
                    )),
                    _ => saved,
                }
            }
        }
    }
}

#[async_trait]
impl ResultSink for FaultySink {
    async fn save(&self, result: &CallResult) -> Result<Persisted, SinkError> {
        self.through(Op::SinkSave, self.inner.save(result)).await
    }
    async fn erase(&self, tombstone: &CallResult) -> Result<Persisted, SinkError> {
        self.through(Op::SinkErase, self.inner.erase(tombstone))
            .await
    }
}

/// The events table (pushed events and their attempts), failing on schedule.
pub struct FaultyEvents {
    pub inner: EventsTable,
    pub gates: Gates,
    /// Every event read that found it: (call, event, when), so the check can tell a delivery
    /// already under way when its call was erased from one that began after.
    pub reads: Arc<std::sync::Mutex<Vec<(String, String, crate::clock::Ms)>>>,
    pub clock: Arc<crate::clock::SimClock>,
}

#[async_trait]
impl PushStore for FaultyEvents {
    async fn create(&self, push: &PushRecord) -> Result<bool, StoreError> {
        through(&self.gates, Op::EventPut, self.inner.create(push)).await
    }
    async fn get(&self, call_id: &str, event_id: &str) -> Result<Option<PushRecord>, StoreError> {
        let found = through(&self.gates, Op::EventGet, self.inner.get(call_id, event_id)).await;
        if let Ok(Some(_)) = &found {
            let at = self.clock.ms();
            let read = (call_id.to_owned(), event_id.to_owned(), at);
            self.reads.lock().unwrap().push(read);
        }
        found
    }
    async fn find(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        through(&self.gates, Op::EventGet, self.inner.find(event_id)).await
    }
    async fn record_attempt(
        &self,
        call_id: &str,
        event_id: &str,
        expected: PushState,
        attempt: &DeliveryAttempt,
        state: PushState,
        next_attempt_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let write =
            self.inner
                .record_attempt(call_id, event_id, expected, attempt, state, next_attempt_at);
        through(&self.gates, Op::EventUpdate, write).await
    }
    async fn reopen(&self, call_id: &str, event_id: &str, now: &str) -> Result<(), StoreError> {
        through(
            &self.gates,
            Op::EventUpdate,
            self.inner.reopen(call_id, event_id, now),
        )
        .await
    }
    async fn restore(
        &self,
        call_id: &str,
        event_id: &str,
        state: PushState,
        round_start: u32,
        reopened_at: &str,
    ) -> Result<(), StoreError> {
        let write = self
            .inner
            .restore(call_id, event_id, state, round_start, reopened_at);
        through(&self.gates, Op::EventUpdate, write).await
    }
    async fn list(&self, call_id: &str) -> Result<Vec<PushRecord>, StoreError> {
        through(&self.gates, Op::EventGet, self.inner.list(call_id)).await
    }
    async fn open_count(&self, state: PushState, cap: u32) -> Result<(u64, bool), StoreError> {
        through(
            &self.gates,
            Op::EventCount,
            self.inner.open_count(state, cap),
        )
        .await
    }
}

#[async_trait]
impl WebhookArchive for FaultyEvents {
    async fn keep(&self, webhook: &StoredWebhook) -> Result<Keeping, StoreError> {
        through(&self.gates, Op::EventPut, self.inner.keep(webhook)).await
    }
    async fn webhooks(&self, call_id: &str) -> Result<Vec<StoredWebhook>, StoreError> {
        through(&self.gates, Op::EventGet, self.inner.webhooks(call_id)).await
    }
    async fn log(&self, call_id: &str) -> Result<WebhookLog, StoreError> {
        through(&self.gates, Op::EventGet, self.inner.log(call_id)).await
    }
    async fn erase(&self, call_id: &str, mark: &ErasureMark) -> Result<u64, StoreError> {
        through(&self.gates, Op::EventErase, self.inner.erase(call_id, mark)).await
    }
}
