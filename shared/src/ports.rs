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

    /// Removes a record at `expected` version (the initiator undoing a half-made call).
    async fn delete(&self, call_id: &str, expected: u64) -> Result<(), StoreError>;

    /// Ids of unfinished records whose deadline is before `now`, one page at a time.
    async fn overdue(
        &self,
        now: DateTime<Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<OverduePage, StoreError>;
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverduePage {
    pub call_ids: Vec<String>,
    /// Opaque cursor for the next page.
    pub next: Option<String>,
}

// ---- idempotency records (call creation) ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// SHA-256 of the request body: the same key with another body is a conflict.
    pub request_hash: String,
    /// `None` while the first request is still placing the call.
    pub response: Option<SavedResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedResponse {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes the key for this request; `Err(existing)` when the key is already held.
    async fn begin(
        &self,
        key: &str,
        request_hash: &str,
    ) -> Result<Result<(), IdempotencyRecord>, StoreError>;
    async fn complete(&self, key: &str, response: &SavedResponse) -> Result<(), StoreError>;
    /// Frees the key after a failure, so a retry can run.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
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
}

/// What an enrichment message carries: ids, never payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrichmentJob {
    pub call_id: String,
    /// 1-based attempt within the call's chain.
    pub attempt: u32,
    pub kind: JobKind,
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
    #[error("Vapi has no such call")]
    NotFound,
    /// Other 4xx: retrying the same request will not help.
    #[error("Vapi refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

#[async_trait]
pub trait VapiApi: Send + Sync {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError>;
    async fn create_call(&self, body: &Value) -> Result<Value, VapiError>;
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
