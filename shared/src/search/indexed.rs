//! [`IndexedCalls`]: the calls table's [`CallStore`] with each call's durable summary kept beside it.
//!
//! ## When the summary is written, and in what order
//!
//! A record write (`put`) writes the summary **first**, then the record, and only when a searchable
//! field ([`super::CallSummary::searchable`]: dataStatus, outcome, provider name and id, service
//! request id, createdAt) differs from the record the writer read (the decorator remembers, per
//! call, the summary of the version it last read or wrote; a writer that read nothing through it
//! always writes). Every summary carries the record version it was written for.
//!
//! - **Crash, or failure, between the two writes:** the summary is ahead of its record (it shows a
//!   state the record never reached), never behind: a call is in the index before its record
//!   exists, so no crash leaves a call unfindable. The call's next searchable change rewrites it;
//!   every unfinished call has one coming (it settles `complete` or `fetch_failed`, the cleanup
//!   sees to that), so a settled call's summary shows how it settled.
//! - **Summary write fails:** the record is not written either; the caller sees `Unavailable`, as
//!   for the record itself (a webhook answers 503 and is retried, a job is redelivered).
//! - **Two writers race** (the record's conditional write lets one win): both may have written
//!   their summary; the loser, told `Conflict`, re-reads the record and writes the winner's
//!   summary, and a summary is never replaced by one for an older version (a conditional write on
//!   the version), so the last word is the record's. Only a loser that dies in the instant between
//!   losing and repairing leaves its summary standing, until the call's next searchable change.
//! - **A record re-created after it expired** (versions start again at 1) replaces the summary
//!   unconditionally, keeping the call findable under what it now says.
//!
//! Writes cost: one `PutItem` on the summary table per searchable change (about five for an
//! answered call: pending, partial, fetching, complete, plus the outcome with the report), none for
//! a duplicate webhook or a write that changes only the transcript or bookkeeping
//! (`docs/cost.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::warn;

use super::{CallIndex, CallSummary, Searchable};
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

    fn unchanged(&self, id: &str, expected: Option<u64>, s: &Searchable) -> bool {
        let Some(expected) = expected else {
            return false;
        };
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|(v, known)| *v == expected && known == s)
    }
}

impl<S: CallStore> IndexedCalls<S> {
    /// After a lost race: the record as it is now decides the summary.
    async fn repair(&self, index: &dyn CallIndex, call_id: &str) {
        let repaired = match self.inner.get(call_id).await {
            Ok(Some(current)) => {
                let summary = CallSummary::of(&current.record.result);
                index
                    .upsert(&summary, current.version, false)
                    .await
                    .map(|()| self.remember(call_id, current.version, summary.searchable()))
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = repaired {
            warn!(call_id, error = %e, "the call's summary may show a lost write until its next change");
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
        let Some(index) = &self.index else {
            return self.inner.put(record, expected, deadline).await;
        };
        let id = record.result.call_id.as_str();
        let summary = CallSummary::of(&record.result);
        let searchable = summary.searchable();
        let write_summary = !self.unchanged(id, expected, &searchable);
        if write_summary {
            let version = expected.map_or(1, |v| v + 1);
            index.upsert(&summary, version, expected.is_none()).await?;
        }
        match self.inner.put(record, expected, deadline).await {
            Ok(version) => {
                self.remember(id, version, searchable);
                Ok(version)
            }
            Err(StoreError::Conflict) => {
                self.forget(id);
                if write_summary {
                    self.repair(index.as_ref(), id).await;
                }
                Err(StoreError::Conflict)
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
        self.inner.delete(call_id, expected).await?;
        self.forget(call_id);
        if let Some(index) = &self.index {
            if let Err(e) = index.remove(call_id).await {
                warn!(call_id, error = %e, "a deleted call's summary is left in the index");
            }
        }
        Ok(())
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
