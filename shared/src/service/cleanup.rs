//! The scheduled cleanup: pages through the unfinished-records index (never a table scan) and
//! re-drives or settles every record past its deadline. Each change is one conditional write, so
//! two runs at once cannot both act on a record: the loser's write fails and it moves on.
//!
//! It also reconciles with Vapi ([`Reconcile`]): a call ringback placed whose record and watchdog
//! were both lost (two stores failing right after Vapi accepted it) and whose webhooks never came
//! would otherwise be known to nobody. The calls our number placed within the records' TTL (a
//! record lives at least that long after its call was placed), older than a minute (the
//! initiator's own writes are done), that carry our attempt id and have no record get a watchdog
//! job: the consumer builds their record from Vapi. Each run looks again, so an outage of the
//! queue or of Vapi only delays it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::placed::{attempt_of, search_window};
use super::{deadline_for, persist};
use crate::config::Timing;
use crate::domain::{
    merge_snapshot, parse_timestamp, plan_cleanup, to_iso, CleanupAction, DataStatus,
};
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, JobKind, ResultSink, StoreError, VapiApi,
    Versioned,
};
use crate::vapi::snapshot_from_call;

/// Where the cleanup looks for calls ringback placed (see the module documentation).
pub struct Reconcile {
    pub vapi: Arc<dyn VapiApi>,
    pub phone_number_id: String,
    /// How far back to look: `RESULT_TTL_SECONDS`. A call placed that recently with no record
    /// was never recorded (a record lives at least that long after its creation).
    pub window: std::time::Duration,
}

/// How old a placed call must be before a missing record counts as lost.
const RECONCILE_MIN_AGE: chrono::Duration = chrono::Duration::seconds(60);

pub struct CleanupService {
    /// `None`: no reconciliation with Vapi (a deployment without its credentials, or a test).
    pub reconcile: Option<Reconcile>,
    pub store: Arc<dyn CallStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub sink: Arc<dyn ResultSink>,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
    pub page_size: u32,
    pub metrics: Metrics,
    /// Pushes `call.failed` for a call it settles; `None`: pushes are off.
    pub push: Option<Arc<crate::service::push::PushService>>,
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
    /// Overdue records this run could not handle (the run then reports an error).
    pub failed: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("cleanup interrupted: {0}")]
pub struct CleanupError(pub String);

impl CleanupService {
    pub async fn run_once(&self) -> Result<CleanupReport, CleanupError> {
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
        if let Some(r) = &self.reconcile {
            match self.adopt_unrecorded(r, now).await {
                Ok(n) => report.adopted = n,
                Err(e) => {
                    warn!(error = %e, "reconciliation with Vapi failed; the next run retries")
                }
            }
        }
        if report.examined > 0 || report.adopted > 0 {
            info!(?report, "cleanup run");
        }
        if report.failed > 0 {
            return Err(CleanupError(format!(
                "{} of {} overdue records could not be handled ({report:?})",
                report.failed, report.examined
            )));
        }
        Ok(report)
    }

    /// Records each call our number placed recently that has no record, from what Vapi lists
    /// of it, `pending` with a deadline, and asks its watchdog to look at once (if that send
    /// fails, the deadline brings the record back to a later run).
    async fn adopt_unrecorded(&self, r: &Reconcile, now: DateTime<Utc>) -> Result<u32, String> {
        let window = chrono::Duration::from_std(r.window).unwrap_or_default();
        let mut ours = Vec::new();
        search_window(
            r.vapi.as_ref(),
            &r.phone_number_id,
            now - window,
            now - RECONCILE_MIN_AGE,
            |call| {
                if attempt_of(call).is_some() {
                    ours.push(snapshot_from_call(call));
                }
                false
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut adopted = 0;
        for snap in ours {
            let call_id = snap.call_id.clone();
            if self
                .store
                .get(&call_id)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                continue;
            }
            let record = adopted_record(&snap, now);
            let deadline = deadline_for(&record, now, &self.timing);
            match self.store.put(&record, None, deadline).await {
                Ok(_) => {}
                // Recorded meanwhile (a webhook, the watchdog, another run): not ours to adopt.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.to_string()),
            }
            warn!(
                call_id,
                "a call placed in Vapi had no record; recorded it, its watchdog will finish it"
            );
            self.metrics.count("CallsAdoptedByCleanup", 1, &[]);
            adopted += 1;
            let job = EnrichmentJob {
                call_id: call_id.clone(),
                attempt: 1,
                kind: JobKind::Watchdog,
                event_id: None,
            };
            if let Err(e) = self.queue.schedule(&job, std::time::Duration::ZERO).await {
                warn!(call_id, error = %e, "watchdog not queued; the record's deadline brings it back");
            }
        }
        Ok(adopted)
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
                // Like the rows, the event is made before the terminal write.
                if let Some(push) = &self.push {
                    let failed = crate::domain::push::EventType::Failed;
                    push.emit(&record.result, failed)
                        .await
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                }
                match self.store.put(&record, Some(version), None).await {
                    Ok(_) => {}
                    // Whoever won wrote a newer state; what we persisted is superseded by theirs.
                    Err(StoreError::Conflict) => return Ok(Some(CleanupAction::Leave)),
                    Err(e) => return Err(e),
                }
                info!(call_id, "stuck call settled as fetch_failed");
            }
        }
        Ok(Some(action))
    }
}

/// The record of a placed call found without one: what Vapi's listing says of it (the request's
/// details travel in its metadata), still `pending` so the watchdog and the cleanup finish it.
fn adopted_record(
    snap: &crate::domain::CallSnapshot,
    now: DateTime<Utc>,
) -> crate::domain::CallRecord {
    let created = snap.created_at.unwrap_or(now);
    let mut record = crate::domain::CallRecord::new(&snap.call_id, &to_iso(created));
    merge_snapshot(&mut record.result, snap);
    record.result.updated_at = to_iso(now);
    record
}
