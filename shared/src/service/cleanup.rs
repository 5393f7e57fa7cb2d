//! The scheduled cleanup: pages through the unfinished-records index (never a table scan) and
//! re-drives or settles every record past its deadline. Each change is one conditional write, so
//! two runs at once cannot both act on a record: the loser's write fails and it moves on.
//!
//! It also reconciles with Vapi ([`Reconcile`], `service/reconcile.rs`): a call this deployment
//! placed that has no record is recorded and watched; and it revives ([`Revive`],
//! `service/revive.rs`) a call whose record expired before it settled.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{deadline_for, owed, persist};
use crate::config::Timing;
use crate::domain::{
    merge_snapshot, parse_timestamp, plan_cleanup, to_iso, CleanupAction, DataStatus,
};
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, ResultSink, StoreError, Versioned,
};

pub use super::reconcile::{Reconcile, Reconciled};
pub use super::revive::{Revive, Revived};

pub struct CleanupService {
    /// `None`: no reconciliation with Vapi (a deployment without its credentials, or a test).
    pub reconcile: Option<Reconcile>,
    /// `None`: no revival (a deployment without the call index, or a test).
    pub revive: Option<Revive>,
    pub store: Arc<dyn CallStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub sink: Arc<dyn ResultSink>,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
    pub page_size: u32,
    pub metrics: Metrics,
    /// Pushes `call.failed` for a call it settles; `None`: pushes are off.
    pub push: Option<Arc<crate::service::push::PushService>>,
    /// Finishes an erase that stopped half-way (its tombstone still has a deadline).
    pub erase: Option<Arc<crate::service::erase::EraseService>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Overdue index entries looked at.
    pub examined: u32,
    pub redriven: u32,
    pub settled: u32,
    /// Finished meanwhile, moved on, or taken by a concurrent run.
    pub left: u32,
    /// Calls placed in Vapi that had no record, recorded and handed to their watchdog.
    pub adopted: u32,
    /// The reconciliation with Vapi (`adopted` is its count too).
    pub reconciled: Reconciled,
    /// Calls whose record expired unfinished, found through the listing and recorded again.
    pub revived: Revived,
    /// Overdue records this run could not handle (the run then reports an error).
    pub failed: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("cleanup interrupted: {0}")]
pub struct CleanupError(pub String);

impl CleanupService {
    pub async fn run_once(&self) -> Result<CleanupReport, CleanupError> {
        let started = tokio::time::Instant::now();
        let now = self.clock.now();
        let mut report = CleanupReport::default();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .overdue(now, cursor, self.page_size)
                .await
                .map_err(|e| CleanupError(e.to_string()))?;
            for id in &page.call_ids {
                report.examined += 1;
                match self.one(id, now).await {
                    // Counted as they happen, so an interrupted run still reports what it did.
                    Ok(Some(CleanupAction::Redrive { .. })) => {
                        report.redriven += 1;
                        self.metrics.count("CallsRedrivenByCleanup", 1, &[]);
                    }
                    Ok(Some(CleanupAction::Settle { .. })) => {
                        report.settled += 1;
                        self.metrics.count("CallsSettledByCleanup", 1, &[]);
                    }
                    Ok(_) => report.left += 1,
                    // One bad record must not stop the sweep; the run fails at its end, so that
                    // Lambda runs it again within minutes rather than leaving the record to the
                    // next schedule (its expiry may come first).
                    Err(e) => {
                        warn!(call_id = %id, error = %e, "cleanup could not handle this record");
                        report.failed += 1;
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut unreconciled = None;
        if let Some(r) = &self.reconcile {
            let (done, result) = self.reconcile(r, now, started).await;
            report.adopted = done.adopted;
            report.reconciled = done;
            if let Err(e) = result {
                // Never silent: counted (alarmed), and the run fails so that Lambda retries it;
                // the cursor stays at the last page done.
                self.metrics.count("ReconciliationFailed", 1, &[]);
                warn!(error = %e, "reconciliation with Vapi failed; the next run resumes where it stopped");
                unreconciled = Some(e);
            } else if done.unfinished {
                info!(reconciled = ?done, "reconciliation ran out of time; the next run continues it");
            }
        }
        // After the reconciliation, which keeps its own budget: a backlog of expired records
        // must not starve the search for calls that never had one.
        let mut unrevived = None;
        if let Some(r) = &self.revive {
            let result = self.revive(r, now, started, &mut report.revived).await;
            if let Err(e) = result {
                self.metrics.count("RevivalFailed", 1, &[]);
                warn!(error = %e, "revival of expired unfinished calls failed; the next run repeats it");
                unrevived = Some(e);
            } else if report.revived.unfinished {
                info!(revived = ?report.revived, "more expired unfinished calls than one run takes; the next run continues");
            }
        }
        if report.examined > 0 || report.adopted > 0 || report.revived.revived > 0 {
            info!(?report, "cleanup run");
        }
        if report.failed > 0 {
            return Err(CleanupError(format!(
                "{} of {} overdue records could not be handled ({report:?})",
                report.failed, report.examined
            )));
        }
        if let Some(e) = unrevived {
            return Err(CleanupError(format!(
                "revival of expired unfinished calls failed: {e} ({report:?})"
            )));
        }
        if let Some(e) = unreconciled {
            return Err(CleanupError(format!(
                "reconciliation with Vapi failed: {e} ({report:?})"
            )));
        }
        Ok(report)
    }

    async fn one(
        &self,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CleanupAction>, StoreError> {
        let Some(Versioned {
            mut record,
            version,
        }) = self.store.get(call_id).await?
        else {
            return Ok(None);
        };
        if crate::domain::erase::is_erased(&record) {
            // Only an erase that stopped half-way leaves its tombstone in the index.
            if let Some(erase) = &self.erase {
                erase
                    .finish(record, version)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                info!(call_id, "erase finished");
            }
            return Ok(Some(CleanupAction::Leave));
        }
        // The index lags behind writes: trust the record as it is now, not the entry that led here.
        let written = parse_timestamp(&serde_json::Value::String(record.result.updated_at.clone()));
        let overdue = match written.and_then(|t| deadline_for(&record, t, &self.timing)) {
            Some(deadline) => deadline <= now,
            None => !record.result.data_status.is_terminal(),
        };
        if !overdue {
            return Ok(Some(CleanupAction::Leave));
        }
        let action = plan_cleanup(&record);
        record.result.updated_at = to_iso(now);
        match &action {
            CleanupAction::Leave => return Ok(Some(action)),
            CleanupAction::Redrive { kind, attempt } => {
                record.book.redrives += 1;
                let deadline = deadline_for(&record, now, &self.timing);
                match self.store.put(&record, Some(version), deadline).await {
                    Ok(_) => {}
                    Err(StoreError::Conflict) => return Ok(Some(CleanupAction::Leave)),
                    Err(e) => return Err(e),
                }
                let job = EnrichmentJob {
                    call_id: call_id.to_owned(),
                    attempt: *attempt,
                    kind: *kind,
                    event_id: None,
                };
                if let Err(e) = self.queue.schedule(&job, std::time::Duration::ZERO).await {
                    // The new deadline brings it back to the next run.
                    warn!(call_id, error = %e, "re-drive not queued");
                }
                info!(
                    call_id,
                    ?kind,
                    attempt,
                    data_status = record.result.data_status.as_str(),
                    "stuck call re-driven"
                );
            }
            CleanupAction::Settle { reason } => {
                record.result.data_status = DataStatus::FetchFailed;
                record.result.fetch_error = Some(reason.clone());
                // Persist first: a record marked finished is never looked at again.
                persist(self.sink.as_ref(), &mut record, &self.metrics)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                // `call.failed` follows the commit: a settle that loses its race makes none.
                let push = self.push.as_ref();
                record.book.event_owed = push.is_some_and(|p| p.makes_events_for(&record.result));
                let deadline = deadline_for(&record, now, &self.timing);
                let version = match self.store.put(&record, Some(version), deadline).await {
                    Ok(v) => v,
                    // Whoever won wrote a newer state; what we persisted is superseded by theirs.
                    Err(StoreError::Conflict) => return Ok(Some(CleanupAction::Leave)),
                    Err(e) => return Err(e),
                };
                info!(call_id, "stuck call settled as fetch_failed");
                if let Some(push) = push.filter(|_| record.book.event_owed) {
                    let (store, timing) = (self.store.as_ref(), &self.timing);
                    if let Err(e) = owed::pay(store, push, timing, now, record, version).await {
                        // The record keeps its deadline: the next run re-drives the event.
                        warn!(call_id, error = %e, "call.failed not made yet");
                    }
                }
            }
        }
        Ok(Some(action))
    }
}

impl CleanupService {
    /// Writes the record of a call found without one (the reconciliation's adoption, the
    /// revival), unless one appeared meanwhile (a late webhook, the watchdog, another run:
    /// `Ok(false)`), then queues its watchdog after `delay`. If that send fails, the record's
    /// deadline brings it back to a later run.
    pub(super) async fn record_and_watch(
        &self,
        record: &crate::domain::CallRecord,
        now: DateTime<Utc>,
        delay: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let deadline = deadline_for(record, now, &self.timing);
        match self.store.put(record, None, deadline).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => return Ok(false),
            Err(e) => return Err(e),
        }
        let call_id = record.result.call_id.as_str();
        let job = EnrichmentJob {
            call_id: call_id.to_owned(),
            attempt: 1,
            kind: crate::ports::JobKind::Watchdog,
            event_id: None,
        };
        if let Err(e) = self.queue.schedule(&job, delay).await {
            warn!(call_id, error = %e, "watchdog not queued; the record's deadline brings it back");
        }
        Ok(true)
    }
}

/// The record of a placed call found without one: what Vapi's listing says of it (the request's
/// details travel in its metadata), still `pending` so the watchdog and the cleanup finish it.
pub(super) fn adopted_record(
    snap: &crate::domain::CallSnapshot,
    now: DateTime<Utc>,
) -> crate::domain::CallRecord {
    let created = snap.created_at.unwrap_or(now);
    let mut record = crate::domain::CallRecord::new(&snap.call_id, &to_iso(created));
    merge_snapshot(&mut record.result, snap);
    record.result.updated_at = to_iso(now);
    record
}
