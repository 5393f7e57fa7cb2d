//! The small traits the services are written against. Each has a real adapter in [`crate::adapters`]
//! (DynamoDB, SQS, reqwest) and is tested against a real-protocol server.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{CallRecord, CallResult};

// ---- calls table ----

/// A record as stored, with the version that guards the next write.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub record: CallRecord,
    pub version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote first (or the item exists): re-read and try again.
    #[error("conditional write lost: the record changed")]
    Conflict,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The item cannot be read back as a record (never expected; surfaced, not hidden).
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

/// Where a write leaves the record for the cleanup: `Some(t)` keeps it in the unfinished index
/// with the time by which it should have moved on; `None` takes it out (terminal records).
pub type Deadline = Option<DateTime<Utc>>;

#[async_trait]
pub trait CallStore: Send + Sync {
    /// The record, or `None` when absent or expired (TTL deletes late; reads check `expiresAt`).
    async fn get(&self, call_id: &str) -> Result<Option<Versioned>, StoreError>;

    /// One conditional write: `expected = None` creates (fails if present), `Some(v)` replaces
    /// version `v`. Refreshes `expiresAt`. Returns the new version.
    async fn put(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
    ) -> Result<u64, StoreError>;

    /// [`Self::put`], and in the same request the call's listing summary for the new version
    /// and the counts of calls by state it moves from `previous` ([`crate::stats`]), so the
    /// listing never shows a state the record did not commit, and a lost race changes neither.
    /// A store with no listing writes the record only.
    async fn put_listed(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
        summary: &crate::search::CallSummary,
        previous: &crate::search::Previous,
    ) -> Result<u64, StoreError> {
        let _ = (summary, previous);
        self.put(record, expected, deadline).await
    }

    /// Removes a record at `expected` version (the initiator undoing a half-made call).
    async fn delete(&self, call_id: &str, expected: u64) -> Result<(), StoreError>;

    /// Replaces the record by `tombstone` ([`crate::domain::erase`]) in one conditional write:
    /// `expected` is the version read (`None`: no live record, the call known only by its
    /// summary), the tombstone is kept until `until` (with `deadline` while the erase is not
    /// finished, so the cleanup finishes it), and the record's document parts and its listing
    /// summary go in the same request. Returns the new version.
    async fn erase(
        &self,
        tombstone: &CallRecord,
        expected: Option<u64>,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, StoreError>;

    /// Ids of unfinished records whose deadline is before `now`, one page at a time.
    async fn overdue(
        &self,
        now: DateTime<Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<OverduePage, StoreError>;

    /// How many unfinished records are past their deadline, counted up to `cap` (`true`: there
    /// are more): pages of [`Self::overdue`], so a bounded number of requests.
    async fn overdue_count(&self, now: DateTime<Utc>, cap: u32) -> Result<(u64, bool), StoreError> {
        let (mut count, mut page) = (0u64, None);
        loop {
            // One past the cap tells "exactly cap" from "more".
            let left = (u64::from(cap) + 1).saturating_sub(count).min(500) as u32;
            let found = self.overdue(now, page, left).await?;
            count += found.call_ids.len() as u64;
            if count > u64::from(cap) {
                return Ok((u64::from(cap), true));
            }
            match found.next {
                Some(next) => page = Some(next),
                None => return Ok((count, false)),
            }
        }
    }

    /// Which of `call_ids` have a live record: the cleanup's reconciliation asks about a page of
    /// listed calls at once. This default asks one by one; the DynamoDB adapter batches.
    async fn recorded(
        &self,
        call_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for id in call_ids {
            if self.get(id).await?.is_some() {
                found.insert(id.clone());
            }
        }
        Ok(found)
    }
}

/// Where the cleanup remembers how far its reconciliation with Vapi got, as opaque text under a
/// key (one small item per phone number and deployment).
#[async_trait]
pub trait ReconcileCursors: Send + Sync {
    async fn load(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn save(&self, key: &str, cursor: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverduePage {
    pub call_ids: Vec<String>,
    /// Opaque cursor for the next page.
    pub next: Option<String>,
}

// ---- idempotency records (call creation) ----

/// One try at placing the call for an idempotency key. Its id travels in the call's metadata
/// (`ringbackAttemptId`), so a call whose `POST /call` answer was lost can be found in Vapi again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub id: String,
    pub started_at: DateTime<Utc>,
}

impl Attempt {
    pub fn new(started_at: DateTime<Utc>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            started_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// SHA-256 of the request body: the same key with another body is a conflict.
    pub request_hash: String,
    /// The attempt that holds the key; `None` only for keys taken before attempts were recorded.
    pub attempt: Option<Attempt>,
    /// `None` while the call is being placed, or while it is in doubt.
    pub response: Option<SavedResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedResponse {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

/// The key is never released while a call may exist for it: only a certain refusal releases it,
/// and only [`IdempotencyStore::reattempt`] hands it to a new attempt once the old one is known
/// to have placed nothing.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes the key for `attempt`; `Err(holder)` when the key is already held.
    async fn begin(
        &self,
        key: &str,
        request_hash: &str,
        attempt: &Attempt,
    ) -> Result<Result<(), IdempotencyRecord>, StoreError>;
    /// The live record of `key`, if any.
    async fn lookup(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    async fn complete(&self, key: &str, response: &SavedResponse) -> Result<(), StoreError>;
    /// Frees the key held by `attempt_id` (Vapi certainly refused it), so a retry can run.
    async fn release(&self, key: &str, attempt_id: &str) -> Result<(), StoreError>;
    /// Hands the key from attempt `from` to `to`; [`StoreError::Conflict`] when another request
    /// took it over first (or it was completed meanwhile).
    async fn reattempt(&self, key: &str, from: &str, to: &Attempt) -> Result<(), StoreError>;
}

// ---- enrichment queue ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A webhook said the call ended: fetch the complete call.
    Enrich,
    /// No webhook yet for a call we started: ask Vapi whether it ended.
    Watchdog,
    /// A settled call received new data: save its provider row and interaction log again.
    Persist,
    /// Deliver one pushed event (`event_id`) to the call's `callbackUrl`; `attempt` counts
    /// delivery attempts.
    Push,
}

/// What an enrichment message carries: ids, never payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichmentJob {
    pub call_id: String,
    /// 1-based attempt within the call's chain.
    pub attempt: u32,
    pub kind: JobKind,
    /// The event a `push` job delivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// SQS's limit on `DelaySeconds`: longer waits are chains of messages.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

#[async_trait]
pub trait EnrichmentQueue: Send + Sync {
    /// One send, delivered no earlier than `delay` from now (SQS caps it at 900 s).
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError>;
}

// ---- poison messages ----

/// Where a message that is not a job is parked for an operator (a dead-letter queue).
#[async_trait]
pub trait PoisonSink: Send + Sync {
    async fn park(&self, message_id: &str, body: &str) -> Result<(), String>;
}

// ---- Vapi ----

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum VapiError {
    /// 429, 5xx, timeouts, connection failures: worth retrying.
    #[error("Vapi is temporarily failing ({status:?}): {message}")]
    Transient {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    /// No connection could be made: the request never reached Vapi, so nothing happened there.
    /// Worth retrying; unlike [`VapiError::Transient`], never leaves a `POST /call` in doubt.
    #[error("Vapi is unreachable: {message}")]
    Unreachable { message: String },
    #[error("Vapi has no such call")]
    NotFound,
    /// Other 4xx: retrying the same request will not help.
    #[error("Vapi refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

/// `GET /call` filters (vapi.md §1.3): calls from one phone number created in a window (both
/// bounds inclusive), optionally also updated in one (the listing splits a millisecond that holds
/// more than a page of calls by `updatedAt`: `service::placed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFilter {
    pub phone_number_id: String,
    pub created_at_ge: DateTime<Utc>,
    pub created_at_le: DateTime<Utc>,
    pub updated_at_ge: Option<DateTime<Utc>>,
    pub updated_at_le: Option<DateTime<Utc>>,
    pub limit: u32,
}

#[async_trait]
pub trait VapiApi: Send + Sync {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError>;
    async fn create_call(&self, body: &Value) -> Result<Value, VapiError>;
    /// `DELETE /call/{id}`: Vapi forgets the call (its transcript, recording, analysis).
    /// [`VapiError::NotFound`] when Vapi has no such call (deleted already).
    async fn delete_call(&self, call_id: &str) -> Result<(), VapiError> {
        let _ = call_id;
        Err(VapiError::Rejected {
            status: 501,
            message: "this Vapi client cannot delete calls".into(),
        })
    }
    /// `GET /call`: at most `limit` of the calls matching `filter`, the first ones in Vapi's
    /// order (newest first today, undocumented: callers must not depend on it).
    async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<Value>, VapiError>;
}

// ---- persistence of finished calls ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Persisted {
    pub provider_row: bool,
    pub interaction_log: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", if *.permanent { "persistence refused the call" } else { "persistence unavailable" })]
pub struct SinkError {
    pub message: String,
    /// Retrying the same save cannot succeed (the tables refuse it), as opposed to an outage.
    pub permanent: bool,
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

#[async_trait]
pub trait ResultSink: Send + Sync {
    /// Writes the provider row and the interaction log for a finished call, idempotently.
    async fn save(&self, result: &CallResult) -> Result<Persisted, SinkError>;
    /// Takes an erased call's transcript, summary and structured data out of its provider row
    /// (while the row is the call's, or would be: see the adapter) and its interaction log,
    /// marking them erased so that no later [`Self::save`] of the call writes them again.
    /// `tombstone` carries the ids and times the rows are keyed and ordered by.
    async fn erase(&self, tombstone: &CallResult) -> Result<Persisted, SinkError>;
}

// ---- pushed events (callbacks) ----

/// Where a pushed event stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// Not delivered yet; `next_attempt_at` says when it is tried next.
    Pending,
    Delivered,
    /// The receiver answered 410 Gone: never tried again.
    Gone,
    /// Out of attempts: dead-lettered, for an operator to redeliver.
    Failed,
}

impl PushState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Gone => "gone",
            Self::Failed => "failed",
        }
    }
}

/// One try at delivering an event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// 1-based.
    pub attempt: u32,
    /// ISO-8601.
    pub at: String,
    /// The receiver's HTTP status; `None` when no answer came (timeout, refused).
    pub status: Option<u16>,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A pushed event with its delivery history, as kept in the events table.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRecord {
    pub event: crate::domain::push::CallEvent,
    /// Where it goes: the call's `callbackUrl` when the event was made.
    pub url: String,
    pub state: PushState,
    pub attempts: Vec<DeliveryAttempt>,
    /// Attempts made before the current round of retries (an operator's redelivery starts a
    /// new round with the full retry budget).
    pub round_start: u32,
    /// When a pending event is due next (ISO-8601).
    pub next_attempt_at: Option<String>,
}

#[async_trait]
pub trait PushStore: Send + Sync {
    /// Keeps a new event, `pending` with no attempts; `Ok(false)` when it is already kept
    /// (the same event made again): the kept one stands, or the call is erased
    /// ([`WebhookArchive::erase`]'s mark refuses it).
    async fn create(&self, push: &PushRecord) -> Result<bool, StoreError>;
    /// Read strongly consistently: a job right after `create` finds the event.
    async fn get(&self, call_id: &str, event_id: &str) -> Result<Option<PushRecord>, StoreError>;
    /// The call an event belongs to (through an index: eventually consistent).
    async fn find(&self, event_id: &str) -> Result<Option<String>, StoreError>;
    /// Appends `attempt` and moves the event to `state`, only if it still has exactly
    /// `attempt.attempt - 1` attempts and its state is `expected` ([`StoreError::Conflict`]
    /// otherwise: another delivery of the same job got there first).
    async fn record_attempt(
        &self,
        call_id: &str,
        event_id: &str,
        expected: PushState,
        attempt: &DeliveryAttempt,
        state: PushState,
        next_attempt_at: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Sets a delivered, gone or failed event back to `pending`, due now (an operator's
    /// redelivery); [`StoreError::Conflict`] while it is still pending.
    async fn reopen(&self, call_id: &str, event_id: &str, now: &str) -> Result<(), StoreError>;
    /// Undoes a `reopen` (at `reopened_at`) whose delivery job could not be queued: back to
    /// `state` with `round_start`, only while the event is still as the reopen left it (pending,
    /// due `reopened_at`, no attempt since); [`StoreError::Conflict`] otherwise.
    async fn restore(
        &self,
        call_id: &str,
        event_id: &str,
        state: PushState,
        round_start: u32,
        reopened_at: &str,
    ) -> Result<(), StoreError>;
    /// A call's events, oldest first.
    async fn list(&self, call_id: &str) -> Result<Vec<PushRecord>, StoreError>;
    /// How many events of every call are in `state` (pending or failed: the open ones), through
    /// an index, counted up to about `cap` (`true`: there are more).
    async fn open_count(&self, state: PushState, cap: u32) -> Result<(u64, bool), StoreError>;
}

// ---- kept webhooks ----

/// The most deliveries kept per call. A call ringback records sends about ten (a `status-update`
/// per transition and one `end-of-call-report`), and Vapi's re-sends of those differ byte-wise
/// (fresh presigned URLs) at most a few times each: 200 is ample for any real call, while a replay
/// or a timeline reads a bounded amount whatever a sender does. Past it deliveries are counted.
pub const MAX_KEPT_WEBHOOKS: u64 = 200;
/// The most body bytes kept per call: 32 × the default `MAX_WEBHOOK_BYTES`, so the replay that
/// reads them all stays far inside a function's memory.
pub const MAX_KEPT_WEBHOOK_BYTES: u64 = 32 * 1024 * 1024;

/// One authenticated webhook delivery, kept raw for `EVENT_RETENTION_DAYS`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub call_id: String,
    /// A digest of the body: the same body sent again is the same delivery, kept once.
    pub id: String,
    /// ISO-8601.
    pub received_at: String,
    pub message_type: String,
    /// The scheme that authenticated it (`x-vapi-secret`, `bearer`, `signature`, `none`).
    pub auth: String,
    /// [`StoredWebhook::APPLIED`] or [`StoredWebhook::DUPLICATE`].
    pub outcome: String,
    /// The body exactly as received.
    pub body: Vec<u8>,
}

impl StoredWebhook {
    /// The delivery changed the record.
    pub const APPLIED: &'static str = "applied";
    /// The delivery changed nothing: most likely a re-send of a body kept already.
    pub const DUPLICATE: &'static str = "duplicate";
}

/// What [`WebhookArchive::keep`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeping {
    Kept,
    /// The same body (same id) is kept already: nothing written.
    AlreadyKept,
    /// The call's bound ([`MAX_KEPT_WEBHOOKS`], [`MAX_KEPT_WEBHOOK_BYTES`]) is reached: counted.
    OverBound,
    /// The call is erased: nothing is kept for it any more.
    Erased,
}

/// A kept delivery without its body: what a timeline shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptWebhook {
    pub id: String,
    pub received_at: String,
    pub message_type: String,
    pub auth: String,
    pub outcome: String,
    pub bytes: u64,
}

/// A call's kept deliveries (no bodies) and what was counted instead of kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookLog {
    /// Oldest first.
    pub kept: Vec<KeptWebhook>,
    /// Deliveries past the call's bound.
    pub not_kept: u64,
}

/// What stays of an erased call's history: the one entry its timeline still shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureMark {
    /// ISO-8601.
    pub erased_at: String,
    /// Until when the mark (and the record's tombstone) is kept.
    pub until: DateTime<Utc>,
}

#[async_trait]
pub trait WebhookArchive: Send + Sync {
    /// Keeps one delivery; [`Keeping::Erased`] (nothing written) once the call is erased.
    async fn keep(&self, webhook: &StoredWebhook) -> Result<Keeping, StoreError>;
    /// A call's kept webhooks with their bodies, oldest first (at most the call's bound).
    async fn webhooks(&self, call_id: &str) -> Result<Vec<StoredWebhook>, StoreError>;
    /// A call's kept webhooks without reading or decompressing a body, and the counts.
    async fn log(&self, call_id: &str) -> Result<WebhookLog, StoreError>;
    /// Erases the call's whole history (kept webhooks, pushed events and their attempts): first
    /// the mark, which refuses every later keep and event, then every item under it. Returns
    /// how many items went. Idempotent.
    async fn erase(&self, call_id: &str, mark: &ErasureMark) -> Result<u64, StoreError>;
}

/// An event bus for AWS-native consumers (EventBridge), beside or instead of callback URLs.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &crate::domain::push::CallEvent) -> Result<(), String>;
}

/// What a receiver answered one POST.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackAnswer {
    /// `None`: no answer (timeout, connection refused, TLS failure), described in `error`.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
}

#[async_trait]
pub trait CallbackSender: Send + Sync {
    /// POSTs `body` with `headers`; never fails, the answer says what happened.
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> CallbackAnswer;
}

// ---- time ----

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
