//! The enrichment consumer: one SQS message names a call (`{"callId","attempt","kind"}`); the
//! consumer claims the record, asks Vapi for the call once, and settles the record: `complete`,
//! the next attempt queued, or `fetch_failed` with everything received kept. The decisions are
//! [`crate::domain::admit`] and [`crate::domain::settle`]; this file does the I/O around them.
//!
//! Order, so nothing is lost:
//! 1. claim: one conditional write (`fetching`, `claimed_by`), or none for a call without record;
//! 2. one `GET /call/{id}`;
//! 3. a finished call is saved to the providers and interaction-log tables (idempotent) *before*
//!    the record is written as `complete`/`fetch_failed`: a record marked finished always has its
//!    rows, and a failure in between leaves the claim for the redelivery to finish; likewise the
//!    next job, if any, is queued before the write, so a written attempt always has its successor;
//! 4. the record is written (conditionally; on a lost race it is re-read and settled again).
//!
//! An attempt that fails before its write releases its claim (the lease lapses at once), so that
//! the next message for it (its redelivery, or a redrive from the dead-letter queue under a new
//! message id) takes over at once. A job that finds the attempt claimed by a live worker elsewhere
//! is deferred, not dropped: a copy comes back when that claim ends (`Skip::ClaimedElsewhere`).
//!
//! Any failure of the store, the queue, Vapi (429/5xx/timeout) or the sink is [`ProcessError::Retry`]:
//! [`handle_batch`] reports the message as a batch item failure, SQS delivers it again after the
//! visibility timeout (the same message id re-claims), and after `maxReceiveCount` it lands in the
//! dead-letter queue while the record, left unfinished with a deadline, is the cleanup's business.
//!
//! A `persist` job (a settled call received new data) is not claimed: the record is read, its
//! rows are saved again, and `rowsStale` is cleared with one conditional write; if newer data
//! landed meanwhile, the save is repeated on the record as it is then.
//!
//! A body that is not a job ([`ProcessError::Poison`]) can never succeed. The event source mapping
//! offers no way to send one message to the dead-letter queue at once, and reporting it failed
//! would spend `maxReceiveCount` deliveries (and alarms) on it. So it is logged at error level with
//! its message id, handed to the optional [`PoisonSink`] (in Lambda: a `SendMessage` to
//! `ENRICHMENT_DLQ_URL`, so an operator finds it where failed messages go) and acknowledged. If
//! parking it fails, it is reported failed, so SQS's own redrive parks it in the end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, info, warn, Instrument};

use super::push::{Delivery, PushService};
use super::{deadline_for, owed, persist, WRITE_RETRIES};
use crate::config::Timing;
use crate::domain::push::{event_id, EventType};
use crate::domain::{
    admit, claim_ends, parse_timestamp, released, settle, taken_over, to_iso, Admission, CallId,
    CallRecord, EnrichmentOutcome, EnrichmentPolicy, Skip, VapiAnswer,
};
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, JobKind, PoisonSink, PushRecord, ResultSink,
    StoreError, VapiApi, VapiError, MAX_QUEUE_DELAY,
};
use crate::vapi::snapshot_from_call;

/// Messages of one batch processed at once.
pub const BATCH_CONCURRENCY: usize = 10;

/// The shortest wait of a job deferred behind another worker's live claim (a short lease, as the
/// local runner's, would otherwise bring it back while that worker still pays its settle's event).
pub const DEFER_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(10);

pub struct EnrichmentService {
    pub store: Arc<dyn CallStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub vapi: Arc<dyn VapiApi>,
    pub sink: Arc<dyn ResultSink>,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
    /// Where bodies that are not jobs go; `None`: they are only logged.
    pub poison: Option<Arc<dyn PoisonSink>>,
    /// Completion events for calls with a `callbackUrl`; `None`: pushes are off.
    pub push: Option<Arc<PushService>>,
    pub metrics: Metrics,
}

/// A message handled: acknowledge it.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub job: EnrichmentJob,
    pub outcome: EnrichmentOutcome,
    /// `GET /call/{id}` requests this message made (0 or 1).
    pub vapi_calls: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Something needed was unavailable: report the message failed so SQS delivers it again.
    #[error("retry later: {reason}")]
    Retry { reason: String, vapi_calls: u32 },
    /// The body is not a job and never will be: it was logged (and parked); acknowledge it.
    #[error("not an enrichment job: {0}")]
    Poison(String),
}

impl ProcessError {
    fn retry(reason: impl std::fmt::Display, vapi_calls: u32) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            vapi_calls,
        }
    }

    /// The message must be reported as a batch item failure.
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }
}

/// Reads a message body as a job: a valid call id and a 1-based attempt.
pub fn parse_job(body: &str) -> Result<EnrichmentJob, String> {
    let job: EnrichmentJob = serde_json::from_str(body).map_err(|e| e.to_string())?;
    CallId::parse(&job.call_id).map_err(|e| e.to_string())?;
    if job.attempt == 0 {
        return Err("attempt must be 1 or more".into());
    }
    if (job.kind == JobKind::Push) != job.event_id.is_some() {
        return Err("eventId goes with push jobs, and only with them".into());
    }
    Ok(job)
}

impl EnrichmentService {
    pub fn policy(&self) -> EnrichmentPolicy {
        EnrichmentPolicy::new(
            self.timing.enrichment_delays.clone(),
            self.timing.watchdog_delay,
            self.timing.max_call,
        )
        .with_claim_lease(self.timing.claim_lease)
    }

    /// Handles one queue message. `Ok`: acknowledge it; `Err(Retry)`: report it failed.
    pub async fn process(&self, message_id: &str, body: &str) -> Result<Processed, ProcessError> {
        let job = match parse_job(body) {
            Ok(job) => job,
            Err(reason) => {
                self.count_outcome("poison");
                return Err(self.poisoned(message_id, body, reason).await);
            }
        };
        self.metrics.count("EnrichmentAttempts", 1, &[]);
        let span = tracing::info_span!(
            "enrichment",
            call_id = %job.call_id,
            message_id,
            attempt = job.attempt,
            kind = ?job.kind
        );
        async {
            let result = self.run(message_id, &job).await;
            match &result {
                Ok(p) => {
                    log_outcome(p);
                    self.count_outcome(p.outcome.as_str());
                }
                Err(e) => {
                    warn!(error = %e, "enrichment will be retried");
                    self.count_outcome("retry");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn poisoned(&self, message_id: &str, body: &str, reason: String) -> ProcessError {
        // The body is untrusted: log its size, not its content (it could hold anything).
        error!(message_id, error = %reason, body_bytes = body.len(), "enrichment message is not a job; parking it");
        if let Some(sink) = &self.poison {
            if let Err(e) = sink.park(message_id, body).await {
                error!(message_id, error = %e, "poison message could not be parked; leaving it to SQS's redrive");
                return ProcessError::retry(format!("parking a poison message failed: {e}"), 0);
            }
        }
        ProcessError::Poison(reason)
    }

    async fn run(&self, message_id: &str, job: &EnrichmentJob) -> Result<Processed, ProcessError> {
        let done = |outcome, vapi_calls| {
            Ok(Processed {
                job: job.clone(),
                outcome,
                vapi_calls,
            })
        };
        match job.kind {
            JobKind::Persist => return done(self.repersist(&job.call_id).await?, 0),
            JobKind::Push => return done(self.deliver(job).await?, 0),
            JobKind::Enrich | JobKind::Watchdog => {}
        }
        let policy = self.policy();

        // 1. Claim (or find there is nothing to do).
        let mut current = None;
        let mut claimed = false;
        let mut job = job.clone();
        for _ in 0..WRITE_RETRIES {
            let found = self
                .store
                .get(&job.call_id)
                .await
                .map_err(|e| ProcessError::retry(e, 0))?;
            let now = self.clock.now();
            if let Some(current) = found
                .as_ref()
                .and_then(|v| taken_over(&v.record, &job, &to_iso(now)))
            {
                info!(
                    attempt = current.attempt,
                    "the call's current attempt was abandoned; this job carries it on"
                );
                job = current;
            }
            let job = &job;
            match admit(
                found.as_ref().map(|v| &v.record),
                job,
                message_id,
                &policy,
                &to_iso(now),
            ) {
                // A settle whose event is still owed (its step failed after the commit).
                Admission::Skip(_) if found.as_ref().is_some_and(|v| v.record.book.event_owed) => {
                    return done(self.repersist(&job.call_id).await?, 0)
                }
                Admission::Skip(Skip::ClaimedElsewhere) => {
                    let held = found.as_ref().map(|v| &v.record);
                    let deferred = self.defer(job, held, now).await;
                    return done(deferred.map_err(|e| ProcessError::retry(e, 0))?, 0);
                }
                Admission::Skip(skip) => return done(EnrichmentOutcome::Skipped(skip), 0),
                Admission::Fresh => {
                    claimed = true;
                    break;
                }
                Admission::Claim(record) => {
                    let expected = found.map(|v| v.version);
                    let deadline = deadline_for(&record, now, &self.timing);
                    match self.store.put(&record, expected, deadline).await {
                        Ok(version) => {
                            current = Some((*record, version));
                            claimed = true;
                            break;
                        }
                        Err(StoreError::Conflict) => continue,
                        Err(e) => return Err(ProcessError::retry(e, 0)),
                    }
                }
            }
        }
        if !claimed {
            return Err(ProcessError::retry(
                "the record kept changing under concurrent writes",
                0,
            ));
        }

        // 2-5. Ask Vapi and settle. An attempt that ends without settling lets go of its claim, so
        // that the next message for it (its redelivery, a redrive) need not wait out the lease.
        let job = &job;
        let held = current.clone();
        let settled = self.ask_and_settle(message_id, job, &policy, current).await;
        if settled.is_err() {
            if let Some((record, version)) = held {
                self.release(&record, version, message_id).await;
            }
        }
        let (outcome, vapi_calls) = settled?;
        done(outcome, vapi_calls)
    }

    /// Steps 2-5 for a message whose claim is written (`current`: the claimed record and its
    /// version; `None`: no record, the call is built from Vapi's answer).
    async fn ask_and_settle(
        &self,
        message_id: &str,
        job: &EnrichmentJob,
        policy: &EnrichmentPolicy,
        mut current: Option<(CallRecord, u64)>,
    ) -> Result<(EnrichmentOutcome, u32), ProcessError> {
        // 2. Ask Vapi, once.
        let answer = match self.vapi.get_call(&job.call_id).await {
            Ok(call) => VapiAnswer::Call(Box::new(snapshot_from_call(&call))),
            Err(VapiError::NotFound) => VapiAnswer::NotFound,
            Err(e @ VapiError::Rejected { .. }) => VapiAnswer::Rejected(e.to_string()),
            Err(e @ (VapiError::Transient { .. } | VapiError::Unreachable { .. })) => {
                VapiAnswer::Unavailable(e.to_string())
            }
        };

        // 3-5. Settle: persist, queue the next job, write, make the settling event.
        let mut sent: Option<(EnrichmentJob, std::time::Duration)> = None;
        for _ in 0..WRITE_RETRIES {
            let now = self.clock.now();
            let (record, expected) = match current.take() {
                Some((r, v)) => (Some(r), Some(v)),
                None => (None, None),
            };
            let taken = record.clone();
            let s = settle(record, job, message_id, &answer, policy, &to_iso(now));
            match &s.outcome {
                EnrichmentOutcome::Retry { reason } => return Err(ProcessError::retry(reason, 1)),
                // Another message claimed the attempt while we asked Vapi: it may yet fail.
                EnrichmentOutcome::Skipped(Skip::ClaimedElsewhere) => {
                    let deferred = self.defer(job, taken.as_ref(), now).await;
                    return match deferred {
                        Ok(outcome) => Ok((outcome, 1)),
                        Err(e) => Err(ProcessError::retry(e, 1)),
                    };
                }
                _ => {}
            }
            // The next job goes before the write: a written attempt then always has its
            // successor, so a copy of this job under another id (a redrive) that finds the attempt
            // settled may drop it. A send whose write fails leaves a job the claims absorb.
            // A write retried after a lost race sends its successor once, unless it changed.
            if let Some((next, delay)) = s.next.as_ref().filter(|n| sent.as_ref() != Some(*n)) {
                self.queue
                    .schedule(next, *delay)
                    .await
                    .map_err(|e| ProcessError::retry(e, 1))?;
                sent = Some((next.clone(), *delay));
            }
            if let Some(mut record) = s.record {
                if s.persist {
                    persist(self.sink.as_ref(), &mut record, &self.metrics)
                        .await
                        .map_err(|e| ProcessError::retry(e, 1))?;
                }
                // The event follows the commit, from the committed record (`owed`).
                let settles = EventType::on_settle(record.result.data_status).is_some();
                record.book.event_owed = settles
                    && self
                        .push
                        .as_ref()
                        .is_some_and(|p| p.makes_events_for(&record.result));
                let deadline = deadline_for(&record, now, &self.timing);
                match self.store.put(&record, expected, deadline).await {
                    Ok(version) => {
                        if s.outcome == EnrichmentOutcome::Complete {
                            self.time_to_complete(&record, now);
                        }
                        if let (true, Some(push)) = (record.book.event_owed, &self.push) {
                            owed::pay(
                                self.store.as_ref(),
                                push,
                                &self.timing,
                                now,
                                record,
                                version,
                            )
                            .await
                            .map_err(|e| ProcessError::retry(e, 1))?;
                        }
                    }
                    Err(StoreError::Conflict) => {
                        current = self.reread(&job.call_id).await?;
                        continue;
                    }
                    Err(e) => return Err(ProcessError::retry(e, 1)),
                }
            }
            return Ok((s.outcome, 1));
        }
        Err(ProcessError::retry(
            "the record kept changing under concurrent writes",
            1,
        ))
    }

    /// A job held off by another message's live claim is never dropped unseen: that worker may
    /// still fail (its attempt then released, or its process gone with the lease running). A copy
    /// comes back a second after the claim ends (at least [`DEFER_AT_LEAST`]); if the attempt
    /// settled by then, it is skipped.
    async fn defer(
        &self,
        job: &EnrichmentJob,
        held: Option<&CallRecord>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<EnrichmentOutcome, String> {
        let ends = held.and_then(|r| claim_ends(r, &to_iso(now)));
        let wait = ends.map_or(chrono::Duration::zero(), |t| t - now);
        // At least DEFER_AT_LEAST: by then the holder has settled and paid its event, so the
        // copy is dropped rather than repeating a settle still in progress.
        let delay = (wait.to_std().unwrap_or_default() + std::time::Duration::from_secs(1))
            .max(DEFER_AT_LEAST)
            .min(MAX_QUEUE_DELAY);
        self.queue
            .schedule(job, delay)
            .await
            .map_err(|e| format!("deferring the job failed: {e}"))?;
        Ok(EnrichmentOutcome::Deferred { delay })
    }

    /// Best effort: a release that fails leaves the lease to lapse by itself. A write that lost
    /// its race (a webhook merged data meanwhile) is tried again on the record as it is then, as
    /// long as the claim is still this message's.
    async fn release(&self, claimed: &CallRecord, version: u64, message_id: &str) {
        let (mut record, mut version) = (claimed.clone(), version);
        for _ in 0..WRITE_RETRIES {
            let now = self.clock.now();
            let Some(free) = released(&record, message_id, &to_iso(now)) else {
                return;
            };
            let deadline = deadline_for(&free, now, &self.timing);
            match self.store.put(&free, Some(version), deadline).await {
                Ok(_) => {
                    info!("claim released for the next message of this attempt");
                    return;
                }
                Err(StoreError::Conflict) => match self.store.get(&record.result.call_id).await {
                    Ok(Some(v)) => (record, version) = (v.record, v.version),
                    _ => return,
                },
                Err(e) => {
                    warn!(error = %e, "claim not released; its lease lapses by itself");
                    return;
                }
            }
        }
    }

    /// A `persist` job: saves a settled record's rows again while they are stale, and makes its
    /// settling event if that is still owed.
    async fn repersist(&self, call_id: &str) -> Result<EnrichmentOutcome, ProcessError> {
        let mut made = Vec::new();
        for _ in 0..WRITE_RETRIES {
            let Some((mut record, version)) = self.reread(call_id).await? else {
                return Ok(EnrichmentOutcome::Skipped(Skip::Finished));
            };
            let book = &record.book;
            if !record.result.data_status.is_terminal() || !(book.rows_stale || book.event_owed) {
                // Nothing owed: done already, or the chain will do it when it settles.
                return Ok(EnrichmentOutcome::Skipped(Skip::Stale));
            }
            let stale = book.rows_stale;
            let mut kind = EventType::on_settle(record.result.data_status)
                .filter(|_| book.event_owed)
                .unwrap_or(EventType::Updated);
            if stale {
                persist(self.sink.as_ref(), &mut record, &self.metrics)
                    .await
                    .map_err(|e| ProcessError::retry(e, 0))?;
                if kind != EventType::Updated {
                    if let Some((push, kept)) = self.settling_made(call_id, kind).await? {
                        // Made before the late data landed (its sends perhaps lost with a
                        // failed step): it goes out as it was, and this data as an update.
                        push.resend(&kept)
                            .await
                            .map_err(|e| ProcessError::retry(e, 0))?;
                        kind = EventType::Updated;
                    }
                }
            }
            if stale || kind != EventType::Updated {
                self.emit(&record, kind, &mut made)
                    .await
                    .map_err(|e| ProcessError::retry(e, 0))?;
            }
            record.book.event_owed = false;
            let now = self.clock.now();
            let deadline = deadline_for(&record, now, &self.timing);
            match self.store.put(&record, Some(version), deadline).await {
                Ok(_) => return Ok(EnrichmentOutcome::Persisted),
                // Newer data landed while we saved: save the record as it is now.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(ProcessError::retry(e, 0)),
            }
        }
        Err(ProcessError::retry(
            "the record kept changing under concurrent writes",
            0,
        ))
    }

    /// The call's settling event of `kind`, if it is kept already (under any data).
    async fn settling_made(
        &self,
        call_id: &str,
        kind: EventType,
    ) -> Result<Option<(&PushService, PushRecord)>, ProcessError> {
        let Some(push) = &self.push else {
            return Ok(None);
        };
        let kept = push
            .store
            .list(call_id)
            .await
            .map_err(|e| ProcessError::retry(e, 0))?;
        Ok(kept
            .into_iter()
            .find(|p| p.event.kind == kind)
            .map(|p| (push.as_ref(), p)))
    }

    /// Makes a `persist` job's event, from data already committed. `made`: the events this job
    /// made already. A job whose write lost its race runs again and makes the same event (same
    /// data, same id); its first delivery job is queued already, and queueing another would
    /// start a second chain of retries.
    async fn emit(
        &self,
        record: &CallRecord,
        kind: EventType,
        made: &mut Vec<String>,
    ) -> Result<(), super::push::PushError> {
        let Some(push) = &self.push else {
            return Ok(());
        };
        let id = event_id(&record.result, kind);
        if made.contains(&id) {
            return Ok(());
        }
        push.emit(&record.result, kind).await?;
        made.push(id);
        Ok(())
    }

    /// A `push` job: one delivery attempt of one event.
    async fn deliver(&self, job: &EnrichmentJob) -> Result<EnrichmentOutcome, ProcessError> {
        let Some(push) = &self.push else {
            warn!("push job, but pushes are not configured here (CALLBACK_SIGNING_SECRET)");
            return Err(ProcessError::retry("pushes are not configured", 0));
        };
        let word = match push.deliver(job).await {
            Ok(Delivery::Attempted(state)) => state.as_str(),
            Ok(Delivery::Waiting) => "waiting",
            Ok(Delivery::Skipped(why)) => why,
            Err(e) => return Err(ProcessError::retry(e, 0)),
        };
        Ok(EnrichmentOutcome::Pushed(word))
    }

    fn count_outcome(&self, outcome: &str) {
        self.metrics
            .count("EnrichmentOutcome", 1, &[("outcome", outcome)]);
    }

    /// `TimeToComplete`: from the first webhook (or the record's creation) to the `complete` write.
    fn time_to_complete(&self, record: &CallRecord, now: chrono::DateTime<chrono::Utc>) {
        let r = &record.result;
        let since = r.webhook_received_at.as_deref().unwrap_or(&r.created_at);
        if let Some(start) = parse_timestamp(&serde_json::Value::String(since.to_owned())) {
            let ms = (now - start).num_milliseconds() as f64;
            self.metrics.millis("TimeToComplete", ms, &[]);
        }
    }

    async fn reread(&self, call_id: &str) -> Result<Option<(CallRecord, u64)>, ProcessError> {
        let found = self
            .store
            .get(call_id)
            .await
            .map_err(|e| ProcessError::retry(e, 1))?;
        Ok(found.map(|v| (v.record, v.version)))
    }
}

fn log_outcome(p: &Processed) {
    let outcome = p.outcome.as_str();
    match &p.outcome {
        EnrichmentOutcome::Skipped(skip) => info!(
            outcome,
            skip = skip.as_str(),
            "enrichment message acknowledged without work"
        ),
        EnrichmentOutcome::Complete => {
            info!(outcome, vapi_calls = p.vapi_calls, "call data complete")
        }
        EnrichmentOutcome::Persisted => info!(outcome, "late data saved to the call's rows"),
        EnrichmentOutcome::Pushed(state) => info!(outcome, state, "push job handled"),
        EnrichmentOutcome::Rescheduled { next, delay } => info!(
            outcome,
            next_attempt = next.attempt,
            next_kind = ?next.kind,
            delay_s = delay.as_secs(),
            "call data not complete yet; next check queued"
        ),
        EnrichmentOutcome::FetchFailed { reason } => {
            warn!(outcome, reason = %reason, "call settled as fetch_failed")
        }
        EnrichmentOutcome::UnknownCall { reason } => {
            warn!(outcome, reason = %reason, "no record and Vapi has no usable call; nothing to keep")
        }
        EnrichmentOutcome::Retry { reason } => {
            warn!(outcome, reason = %reason, "enrichment will be retried")
        }
        EnrichmentOutcome::Deferred { delay } => info!(
            outcome,
            delay_s = delay.as_secs(),
            "the attempt is claimed by another message; the job comes back when that claim ends"
        ),
    }
}

/// The Lambda (and local runner) entry point for one SQS batch: each message is processed
/// concurrently (at most [`BATCH_CONCURRENCY`] at once); the ones to retry are reported as batch
/// item failures, every other one is acknowledged.
pub async fn handle_batch(svc: &EnrichmentService, event: SqsEvent) -> SqsBatchResponse {
    let permits = tokio::sync::Semaphore::new(BATCH_CONCURRENCY);
    let work = event.records.into_iter().map(|m| {
        let permits = &permits;
        async move {
            let message_id = m.message_id.unwrap_or_default();
            let body = m.body.unwrap_or_default();
            let _permit = permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let result = svc.process(&message_id, &body).await;
            (message_id, result)
        }
    });
    let mut resp = SqsBatchResponse::default();
    for (message_id, result) in join_all(work.collect()).await {
        if let Err(e) = result {
            if e.is_retry() {
                resp.add_failure(message_id);
            }
        }
    }
    resp
}

/// Runs the futures concurrently on the current task and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}
