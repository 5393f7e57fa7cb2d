//! [`IndexedCalls`]: the calls table's [`CallStore`] with each call's durable summary kept beside it.
//!
//! ## When the summary is written
//!
//! A record write (`put`) carries the summary **in the same request** ([`CallStore::put_listed`]:
//! one `TransactWriteItems` with the record's conditional write) when a searchable field
//! ([`super::CallSummary::searchable`]: dataStatus, outcome, provider name and id, service
//! request id, createdAt) differs from the record the writer read (the decorator remembers, per
//! call, the summary of the version it last read or wrote; a writer that read nothing through it
//! always writes one). Every summary carries the record version it was written for.
//!
//! So the listing shows only states records committed: a write that loses its race, fails or
//! dies writes neither, and the last summary written is the newest record's. A record re-created
//! after it expired (versions start again at 1) writes its summary as any first write does.
//!
//! Writes cost: a summary change turns the record's `PutItem` into a two-item transaction (twice
//! the write units of each item) about five times for an answered call (pending, partial,
//! fetching, complete, plus the outcome with the report); a duplicate webhook or a write that
//! changes only the transcript or bookkeeping writes the record alone (`docs/cost.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CallIndex, CallSummary, Previous, Searchable};
use crate::domain::CallRecord;
use crate::ports::{
    Attempt, CallStore, Deadline, IdempotencyRecord, IdempotencyStore, OverduePage, SavedResponse,
    StoreError, Versioned,
};

/// How many calls' last-seen summaries a process remembers (a Lambda handles one call at a time;
/// the local runner a few hundred at once). Past it, the memory is cleared: only writes are lost.
const REMEMBERED: usize = 4096;

/// A [`CallStore`] (and, passed through, an [`IdempotencyStore`]) that keeps every call's summary
/// in a [`CallIndex`]. Without an index it is the inner store as it is.
pub struct IndexedCalls<S> {
    inner: S,
    index: Option<Arc<dyn CallIndex>>,
    /// call id → (version, searchable fields) last read or written through this store.
    seen: Mutex<HashMap<String, (u64, Searchable)>>,
}

impl<S> IndexedCalls<S> {
    pub fn new(inner: S, index: Option<Arc<dyn CallIndex>>) -> Self {
        Self {
            inner,
            index,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn index(&self) -> Option<&Arc<dyn CallIndex>> {
        self.index.as_ref()
    }

    fn remember(&self, id: &str, version: u64, s: Searchable) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= REMEMBERED && !seen.contains_key(id) {
            seen.clear();
        }
        seen.insert(id.to_owned(), (version, s));
    }

    fn forget(&self, id: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// What the summary held when the record was at `expected`, as far as this store saw.
    fn previous(&self, id: &str, expected: Option<u64>) -> Previous {
        let Some(expected) = expected else {
            return Previous::Absent;
        };
        match self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some((v, known)) if *v == expected => Previous::Was(known.clone()),
            _ => Previous::Unknown,
        }
    }
}

#[async_trait]
impl<S: CallStore> CallStore for IndexedCalls<S> {
    async fn get(&self, call_id: &str) -> Result<Option<Versioned>, StoreError> {
        let found = self.inner.get(call_id).await?;
        if let (Some(_), Some(v)) = (&self.index, &found) {
            let s = CallSummary::of(&v.record.result).searchable();
            self.remember(call_id, v.version, s);
        }
        Ok(found)
    }

    async fn put(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        if self.index.is_none() {
            return self.inner.put(record, expected, deadline).await;
        }
        let id = record.result.call_id.as_str();
        let summary = CallSummary::of(&record.result);
        let searchable = summary.searchable();
        let previous = self.previous(id, expected);
        let written = if previous == Previous::Was(searchable.clone()) {
            self.inner.put(record, expected, deadline).await
        } else {
            self.inner
                .put_listed(record, expected, deadline, &summary, &previous)
                .await
        };
        match written {
            Ok(version) => {
                self.remember(id, version, searchable);
                Ok(version)
            }
            Err(e) => {
                self.forget(id);
                Err(e)
            }
        }
    }

    async fn recorded(
        &self,
        call_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.inner.recorded(call_ids).await
    }

    async fn delete(&self, call_id: &str, expected: u64) -> Result<(), StoreError> {
        // The calls table removes the summary in the same request.
        self.inner.delete(call_id, expected).await?;
        self.forget(call_id);
        Ok(())
    }

    async fn erase(
        &self,
        tombstone: &CallRecord,
        expected: Option<u64>,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        // The calls table removes the summary in the same request.
        let id = tombstone.result.call_id.as_str();
        self.forget(id);
        self.inner.erase(tombstone, expected, until, deadline).await
    }

    async fn overdue(
        &self,
        now: DateTime<Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<OverduePage, StoreError> {
        self.inner.overdue(now, page, limit).await
    }
}

#[async_trait]
impl<S: IdempotencyStore> IdempotencyStore for IndexedCalls<S> {
    async fn begin(
        &self,
        key: &str,
        request_hash: &str,
        attempt: &Attempt,
    ) -> Result<Result<(), IdempotencyRecord>, StoreError> {
        self.inner.begin(key, request_hash, attempt).await
    }
    async fn lookup(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.lookup(key).await
    }
    async fn complete(&self, key: &str, response: &SavedResponse) -> Result<(), StoreError> {
        self.inner.complete(key, response).await
    }
    async fn release(&self, key: &str, attempt_id: &str) -> Result<(), StoreError> {
        self.inner.release(key, attempt_id).await
    }
    async fn reattempt(&self, key: &str, from: &str, to: &Attempt) -> Result<(), StoreError> {
        self.inner.reattempt(key, from, to).await
    }
}
