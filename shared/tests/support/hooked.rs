//! [`Hooked`]: the real calls table with a test's stand-ins in front of some of its calls (a
//! write that fails or loses its race, an index that lags, counters). Every call a test does not
//! hook goes to the table as it is.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ringback::adapters::dynamodb::CallsTable;
use ringback::domain::CallRecord;
use ringback::ports::{CallStore, Deadline, OverduePage, StoreError, Versioned};
use ringback::search::{CallSummary, Previous};

/// What a test puts in front of the calls table: each hook answers in the table's place
/// (`Some`) or lets the call through (`None`, the default).
#[async_trait]
pub trait Hooks: Send + Sync {
    async fn get(&self, _call_id: &str) -> Option<Result<Option<Versioned>, StoreError>> {
        None
    }
    /// Before a record write (`put` and `put_listed` alike).
    async fn put(&self, _record: &CallRecord) -> Option<Result<u64, StoreError>> {
        None
    }
    async fn overdue(&self) -> Option<Result<OverduePage, StoreError>> {
        None
    }
    async fn recorded(&self, _call_ids: &[String]) -> Option<Result<HashSet<String>, StoreError>> {
        None
    }
}

/// The real calls table behind a test's [`Hooks`].
pub struct Hooked<H> {
    pub table: Arc<CallsTable>,
    pub hooks: H,
}

impl<H> Hooked<H> {
    pub fn new(table: impl Into<Arc<CallsTable>>, hooks: H) -> Self {
        Self {
            table: table.into(),
            hooks,
        }
    }
}

#[async_trait]
impl<H: Hooks> CallStore for Hooked<H> {
    async fn get(&self, call_id: &str) -> Result<Option<Versioned>, StoreError> {
        match self.hooks.get(call_id).await {
            Some(answer) => answer,
            None => self.table.get(call_id).await,
        }
    }
    async fn put(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        match self.hooks.put(record).await {
            Some(answer) => answer,
            None => self.table.put(record, expected, deadline).await,
        }
    }
    async fn put_listed(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
        summary: &CallSummary,
        previous: &Previous,
    ) -> Result<u64, StoreError> {
        match self.hooks.put(record).await {
            Some(answer) => answer,
            None => {
                self.table
                    .put_listed(record, expected, deadline, summary, previous)
                    .await
            }
        }
    }
    async fn erase(
        &self,
        tombstone: &CallRecord,
        expected: Option<u64>,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        match self.hooks.put(tombstone).await {
            Some(answer) => answer,
            None => self.table.erase(tombstone, expected, until, deadline).await,
        }
    }
    async fn delete(&self, call_id: &str, expected: u64) -> Result<(), StoreError> {
        self.table.delete(call_id, expected).await
    }
    async fn overdue(
        &self,
        now: DateTime<Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<OverduePage, StoreError> {
        match self.hooks.overdue().await {
            Some(answer) => answer,
            None => self.table.overdue(now, page, limit).await,
        }
    }
    async fn recorded(&self, call_ids: &[String]) -> Result<HashSet<String>, StoreError> {
        match self.hooks.recorded(call_ids).await {
            Some(answer) => answer,
            None => self.table.recorded(call_ids).await,
        }
    }
}
