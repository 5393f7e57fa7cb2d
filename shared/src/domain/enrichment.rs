//! The enrichment consumer's decisions, as pure functions over the record, the queued job and
//! what Vapi answered. The service around them only reads, writes conditionally and calls Vapi.
//!
//! One message is handled in two steps, each ending in one conditional write:
//! 1. [`admit`]: may this message work on the call? A duplicate, a stale attempt or a concurrent
//!    delivery is acknowledged without work; otherwise the record is *claimed* (`fetching`,
//!    `claimed_by = message id`, and for an `Enrich` job `fetchAttempts = attempt`) before Vapi is
//!    asked, so a second delivery of the same job backs off instead of starting a second chain.
//! 2. [`settle`]: given Vapi's answer, what the record becomes, whether the finished call must be
//!    persisted (provider row + interaction log, always *before* the terminal write), and which job
//!    comes next. `settle` re-checks admission on the record as it is now, so after a lost
//!    conditional write the service simply re-reads and settles again.
//!
//! ## Attempts and checks
//! - `Enrich` jobs carry the attempt number of the call's one enrichment chain (1-based);
//!   `fetchAttempts` is the highest attempt claimed. The chain has `len(ENRICHMENT_DELAYS)`
//!   attempts; attempt `n` that finds the data incomplete queues attempt `n + 1` after
//!   `delays[n]`.
//! - `Watchdog` jobs carry the number of the watchdog check (1 = the one the initiator queued);
//!   `book.watchdog_checks` is the last check that found the call still running. A watchdog never
//!   touches `fetchAttempts`: if it finds the call ended with incomplete data it starts the normal
//!   enrichment chain at attempt `fetchAttempts + 1` with the first delay, exactly as a webhook would.
//! - A redelivery of the *same* message id may always re-claim (the worker that held it died, or
//!   a step after the Vapi call failed). Another message id for an attempt already claimed is a
//!   duplicate while the claim is live, or once the attempt has settled. A claim lives for the
//!   policy's lease (longer than a worker runs): a `fetching` record whose lease has lapsed was
//!   left by a dead worker, and any message for its attempt (a dead-letter redrive, under a new
//!   message id) or a later one (the cleanup's re-drive) takes it over.
//! - `Persist` jobs are not claimed: the service saves a settled record's rows again.

use std::time::Duration;

use super::{is_complete, merge_snapshot, CallRecord, CallSnapshot, Completeness, DataStatus};
use crate::ports::MAX_QUEUE_DELAY;
use crate::ports::{EnrichmentJob, JobKind};

/// How the enrichment chain and the watchdog pace themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichmentPolicy {
    /// The delay before each enrichment attempt; its length is the attempt budget (never empty).
    pub delays: Vec<Duration>,
    /// Between two watchdog checks of a call that is still running (≤ [`MAX_QUEUE_DELAY`]).
    pub watchdog_delay: Duration,
    /// The last watchdog check; a call still running then is settled as `fetch_failed`.
    pub max_watchdog_checks: u32,
    /// How long a claim holds off other messages (see the module documentation).
    pub claim_lease: Duration,
}

impl EnrichmentPolicy {
    /// `watchdog_delay` is capped at SQS's 900 s; the checks cover `max_call` (Vapi's longest call)
    /// with one to spare: `ceil(max_call / delay) + 1`.
    pub fn new(delays: Vec<Duration>, watchdog_delay: Duration, max_call: Duration) -> Self {
        let delays = if delays.is_empty() {
            vec![Duration::ZERO]
        } else {
            delays
        };
        let watchdog_delay = watchdog_delay.min(MAX_QUEUE_DELAY);
        let step = watchdog_delay.max(Duration::from_secs(1)).as_millis();
        let checks = max_call.as_millis().div_ceil(step) + 1;
        Self {
            delays,
            watchdog_delay,
            max_watchdog_checks: u32::try_from(checks).unwrap_or(u32::MAX),
            claim_lease: Duration::from_secs(60),
        }
    }

    pub fn with_claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    /// Enrichment attempts per chain.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX)
    }

    /// The delay before attempt `attempt` (1-based); the last delay for any later one.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let i = (attempt.max(1) - 1) as usize;
        self.delays[i.min(self.delays.len() - 1)]
    }
}

/// Why a message is acknowledged without work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The record is already `complete` or `fetch_failed`.
    Finished,
    /// A later attempt (or watchdog check) has already been claimed: this job is a leftover.
    Stale,
    /// Another message holds a live claim on the same attempt (a duplicate send, a concurrent
    /// delivery, a redrive while the failed worker's lease runs): the service defers the job to
    /// the claim's end ([`claim_ends`]) instead of dropping it, since that worker may still fail.
    ClaimedElsewhere,
    /// The same attempt (or watchdog check) already ran to its end under another message: the
    /// work this job asks for is done.
    AttemptSettled,
    /// A watchdog job for a call whose enrichment chain has begun (an attempt claimed): that
    /// chain owns the call.
    ChainOwnsCall,
    /// Not a job the claim protocol handles (`persist`, `push`).
    NotClaimable,
    /// The call was erased: nothing may be written for it any more.
    Erased,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Erased => "erased",
            Self::Stale => "stale",
            Self::ClaimedElsewhere => "claimed_elsewhere",
            Self::AttemptSettled => "attempt_settled",
            Self::ChainOwnsCall => "chain_owns_call",
            Self::NotClaimable => "not_claimable",
        }
    }
}

/// Step 1's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Acknowledge the message; nothing to do.
    Skip(Skip),
    /// Write this claimed record (conditionally, on the version read), then ask Vapi.
    Claim(Box<CallRecord>),
    /// There is no record (expired or never written): ask Vapi, build the record from its answer.
    Fresh,
}

/// What `GET /call/{id}` answered, read at the edge.
#[derive(Debug, Clone, PartialEq)]
pub enum VapiAnswer {
    Call(Box<CallSnapshot>),
    /// 404.
    NotFound,
    /// Another 4xx: asking again will not help.
    Rejected(String),
    /// 429, 5xx, timeout, connection failure: worth asking again later.
    Unavailable(String),
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrichmentOutcome {
    Skipped(Skip),
    /// Vapi's data is complete: the record is `complete`.
    Complete,
    /// Not complete yet (or the call still runs): the next job is queued.
    Rescheduled {
        next: EnrichmentJob,
        delay: Duration,
    },
    /// Out of attempts, or Vapi refused or has no such call: `fetch_failed`, data kept.
    FetchFailed {
        reason: String,
    },
    /// No record and Vapi does not know the call either (or refused): nothing to keep.
    UnknownCall {
        reason: String,
    },
    /// Vapi is temporarily failing: the message is reported failed and redelivered by SQS.
    Retry {
        reason: String,
    },
    /// A `persist` job saved a settled call's rows again.
    Persisted,
    /// A `push` job ran: the event was attempted, waits for its time, or was nothing to do.
    Pushed(&'static str),
    /// Another message holds a live claim on the attempt: a copy of the job was queued to come
    /// back when that claim ends, and this message is acknowledged.
    Deferred {
        delay: Duration,
    },
}

impl EnrichmentOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Skipped(_) => "skipped",
            Self::Complete => "complete",
            Self::Rescheduled { .. } => "rescheduled",
            Self::FetchFailed { .. } => "fetch_failed",
            Self::UnknownCall { .. } => "unknown_call",
            Self::Retry { .. } => "retry",
            Self::Persisted => "persisted",
            Self::Pushed(_) => "push",
            Self::Deferred { .. } => "deferred",
        }
    }
}

/// Step 2's answer: what to do, in this order: persist (if asked), write, then queue `next`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub outcome: EnrichmentOutcome,
    /// The record to write, conditionally on the version it was read at (`None`: no write).
    pub record: Option<CallRecord>,
    /// The call is finished: save the provider row and interaction log before writing the record,
    /// so a record marked finished always has its rows.
    pub persist: bool,
    /// The job to queue after the write, and its delay.
    pub next: Option<(EnrichmentJob, Duration)>,
}

impl Settlement {
    fn only(outcome: EnrichmentOutcome) -> Self {
        Self {
            outcome,
            record: None,
            persist: false,
            next: None,
        }
    }
}

/// Step 1: may `message_id` work on the call for `job`? See the module documentation.
pub fn admit(
    existing: Option<&CallRecord>,
    job: &EnrichmentJob,
    message_id: &str,
    policy: &EnrichmentPolicy,
    now: &str,
) -> Admission {
    let Some(rec) = existing else {
        return Admission::Fresh;
    };
    if let Some(skip) = skip_reason(rec, job, message_id, now) {
        return Admission::Skip(skip);
    }
    Admission::Claim(Box::new(claim(rec.clone(), job, message_id, policy, now)))
}

fn skip_reason(rec: &CallRecord, job: &EnrichmentJob, message_id: &str, now: &str) -> Option<Skip> {
    let r = &rec.result;
    let ours = rec.book.claimed_by.as_deref() == Some(message_id);
    if super::erase::is_erased(rec) {
        return Some(Skip::Erased);
    }
    if r.data_status.is_terminal() {
        return Some(Skip::Finished);
    }
    // Another message is asking Vapi about this call right now (its lease has not lapsed).
    let held_elsewhere = !ours && r.data_status == DataStatus::Fetching && claim_live(rec, now);
    // A dead worker left the call `fetching`: its claim may be taken over.
    let abandoned = r.data_status == DataStatus::Fetching && !claim_live(rec, now);
    match job.kind {
        JobKind::Enrich => {
            if job.attempt < r.fetch_attempts {
                Some(Skip::Stale)
            } else if job.attempt == r.fetch_attempts && !ours && !abandoned {
                // Still `fetching` without a lapsed lease: running elsewhere; else it settled.
                Some(if r.data_status == DataStatus::Fetching {
                    Skip::ClaimedElsewhere
                } else {
                    Skip::AttemptSettled
                })
            } else {
                None
            }
        }
        JobKind::Watchdog => {
            let checks = rec.book.watchdog_checks;
            // A chain that has begun owns the call; one whose first job may never have been sent
            // (the webhook's send failed and Vapi gave up) leaves the check to do its work.
            if rec.book.enrichment_scheduled && r.fetch_attempts > 0 && !ours {
                Some(Skip::ChainOwnsCall)
            } else if job.attempt < checks {
                Some(Skip::Stale)
            } else if held_elsewhere {
                // Someone is asking Vapi now.
                Some(Skip::ClaimedElsewhere)
            } else if job.attempt == checks && !ours && !abandoned {
                // This check already ran under another message.
                Some(Skip::AttemptSettled)
            } else {
                None
            }
        }
        JobKind::Persist | JobKind::Push => Some(Skip::NotClaimable),
    }
}

/// A job for an earlier attempt of a call whose current attempt was abandoned (`fetching`, its
/// claim released or lapsed: its worker failed or died, and its own message may be dead-lettered
/// after it) carries on that attempt rather than being dropped as stale, so that a redrive of an
/// older job does not leave the chain to the cleanup. `None`: the job is what it says.
pub fn taken_over(rec: &CallRecord, job: &EnrichmentJob, now: &str) -> Option<EnrichmentJob> {
    let r = &rec.result;
    // A watchdog never claims once an attempt has (`ChainOwnsCall`): a `fetching` record with
    // attempts is an enrichment attempt's.
    let abandoned = r.data_status == DataStatus::Fetching && !claim_live(rec, now);
    (job.kind == JobKind::Enrich && job.attempt < r.fetch_attempts && abandoned).then(|| {
        EnrichmentJob {
            attempt: r.fetch_attempts,
            ..job.clone()
        }
    })
}

/// When a live claim on the record ends: the time a job held off by it ([`Skip::ClaimedElsewhere`])
/// comes back. `None`: no live claim.
pub fn claim_ends(rec: &CallRecord, now: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if rec.result.data_status != DataStatus::Fetching || !claim_live(rec, now) {
        return None;
    }
    let until = rec.book.claim_until.as_deref()?;
    chrono::DateTime::parse_from_rfc3339(until)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The record as `message_id` leaves it when its attempt ends without settling (Vapi or a store
/// failing; the message goes back to SQS and perhaps on to the dead-letter queue): still
/// `fetching`, its lease lapsed at once, so that the next message for the attempt (its own
/// redelivery, a redrive, a re-drive) takes over without waiting out the lease. `None`: the claim
/// is not this message's any more.
pub fn released(rec: &CallRecord, message_id: &str, now: &str) -> Option<CallRecord> {
    let ours = rec.book.claimed_by.as_deref() == Some(message_id);
    if !ours || rec.result.data_status != DataStatus::Fetching || !claim_live(rec, now) {
        return None;
    }
    let mut rec = rec.clone();
    rec.book.claim_until = Some(now.to_owned());
    Some(rec)
}

/// The record's claim holds until its lease lapses; a claim without a time (written before
/// leases existed) or with an unreadable one counts as lapsed, so no call can stay stuck on it.
pub(crate) fn claim_live(rec: &CallRecord, now: &str) -> bool {
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (rec.book.claim_until.as_deref().and_then(at), at(now)) {
        (Some(until), Some(now)) => now < until,
        _ => false,
    }
}

fn claim(
    mut rec: CallRecord,
    job: &EnrichmentJob,
    message_id: &str,
    policy: &EnrichmentPolicy,
    now: &str,
) -> CallRecord {
    rec.result.data_status = DataStatus::Fetching;
    rec.book.claimed_by = Some(message_id.to_owned());
    rec.book.claim_until = chrono::DateTime::parse_from_rfc3339(now)
        .ok()
        .and_then(|t| t.checked_add_signed(chrono::Duration::from_std(policy.claim_lease).ok()?))
        .map(|t| super::to_iso(t.with_timezone(&chrono::Utc)));
    if job.kind == JobKind::Enrich {
        rec.result.fetch_attempts = rec.result.fetch_attempts.max(job.attempt);
        rec.book.enrichment_scheduled = true;
    }
    rec.result.updated_at = now.to_owned();
    rec
}

/// Step 2: applies Vapi's answer to the record as it is now (`None`: there is none), for the
/// message `message_id` carrying `job`. Re-checks admission first, so it is safe to call again
/// on a re-read record after a lost conditional write.
pub fn settle(
    current: Option<CallRecord>,
    job: &EnrichmentJob,
    message_id: &str,
    answer: &VapiAnswer,
    policy: &EnrichmentPolicy,
    now: &str,
) -> Settlement {
    if job.kind == JobKind::Persist {
        return Settlement::only(EnrichmentOutcome::Skipped(Skip::NotClaimable));
    }
    let rec = match admit(current.as_ref(), job, message_id, policy, now) {
        Admission::Skip(skip) => return Settlement::only(EnrichmentOutcome::Skipped(skip)),
        Admission::Claim(rec) => *rec,
        Admission::Fresh => match answer {
            VapiAnswer::Call(snap) => claim(
                CallRecord::new(&job.call_id, &created_at(snap, now)),
                job,
                message_id,
                policy,
                now,
            ),
            VapiAnswer::NotFound => {
                let reason = format!("Vapi has no call {}", job.call_id);
                return Settlement::only(EnrichmentOutcome::UnknownCall { reason });
            }
            VapiAnswer::Rejected(why) => {
                let reason = format!("Vapi refused to return the call: {why}");
                return Settlement::only(EnrichmentOutcome::UnknownCall { reason });
            }
            VapiAnswer::Unavailable(why) => {
                return Settlement::only(EnrichmentOutcome::Retry {
                    reason: why.clone(),
                })
            }
        },
    };
    decide(rec, job, answer, policy, now)
}

fn decide(
    mut rec: CallRecord,
    job: &EnrichmentJob,
    answer: &VapiAnswer,
    policy: &EnrichmentPolicy,
    now: &str,
) -> Settlement {
    // The attempt settles here: its claim no longer holds anyone off (the message id stays, so
    // that its own redelivery may finish what a failure after this write left undone).
    if !matches!(answer, VapiAnswer::Unavailable(_)) {
        rec.book.claim_until = None;
    }
    let snap = match answer {
        VapiAnswer::Unavailable(why) => {
            return Settlement::only(EnrichmentOutcome::Retry {
                reason: why.clone(),
            })
        }
        VapiAnswer::NotFound => {
            return fetch_failed(rec, format!("Vapi has no call {}", job.call_id), now)
        }
        VapiAnswer::Rejected(why) => {
            return fetch_failed(rec, format!("Vapi refused to return the call: {why}"), now)
        }
        VapiAnswer::Call(snap) => snap,
    };
    merge_snapshot(&mut rec.result, snap);
    rec.result.fetched_at = Some(now.to_owned());
    rec.result.updated_at = now.to_owned();

    match (is_complete(snap), job.kind) {
        (Completeness::Complete, _) => {
            rec.result.data_status = DataStatus::Complete;
            rec.result.fetch_error = None;
            Settlement {
                outcome: EnrichmentOutcome::Complete,
                record: Some(rec),
                persist: true,
                next: None,
            }
        }
        (Completeness::Running, JobKind::Watchdog) => {
            if job.attempt >= policy.max_watchdog_checks {
                let reason = format!(
                    "Vapi still reports the call running after {} watchdog checks",
                    job.attempt
                );
                return fetch_failed(rec, reason, now);
            }
            rec.book.watchdog_checks = rec.book.watchdog_checks.max(job.attempt);
            rec.result.data_status = waiting_status(&rec);
            let next = EnrichmentJob {
                call_id: job.call_id.clone(),
                attempt: job.attempt + 1,
                kind: JobKind::Watchdog,
                event_id: None,
            };
            reschedule(rec, next, policy.watchdog_delay)
        }
        (Completeness::Incomplete, JobKind::Watchdog) => {
            // The call ended without a webhook having said so: start the normal chain.
            rec.book.enrichment_scheduled = true;
            rec.result.data_status = DataStatus::Partial;
            let attempt = rec.result.fetch_attempts + 1;
            let next = EnrichmentJob {
                call_id: job.call_id.clone(),
                attempt,
                kind: JobKind::Enrich,
                event_id: None,
            };
            let delay = policy.delay_before(attempt);
            reschedule(rec, next, delay)
        }
        (_, JobKind::Persist | JobKind::Push) => {
            Settlement::only(EnrichmentOutcome::Skipped(Skip::NotClaimable))
        }
        (Completeness::Incomplete | Completeness::Running, JobKind::Enrich) => {
            let in_chain = job.attempt.saturating_sub(rec.book.chain_start);
            if in_chain < policy.attempts() {
                rec.result.data_status = DataStatus::Partial;
                let next = EnrichmentJob {
                    call_id: job.call_id.clone(),
                    attempt: job.attempt + 1,
                    kind: JobKind::Enrich,
                    event_id: None,
                };
                let delay = policy.delay_before(in_chain + 1);
                reschedule(rec, next, delay)
            } else {
                let reason = format!("Vapi data still incomplete after {in_chain} attempts");
                fetch_failed(rec, reason, now)
            }
        }
    }
}

/// A new record's `createdAt`: when Vapi created the call, else `now`.
pub(crate) fn created_at(snap: &CallSnapshot, now: &str) -> String {
    snap.created_at
        .map_or_else(|| now.to_owned(), super::to_iso)
}

/// Where a record waits between watchdog checks: `partial` once any webhook arrived, else `pending`.
fn waiting_status(rec: &CallRecord) -> DataStatus {
    if rec.result.webhook_received_at.is_some() {
        DataStatus::Partial
    } else {
        DataStatus::Pending
    }
}

fn reschedule(rec: CallRecord, next: EnrichmentJob, delay: Duration) -> Settlement {
    Settlement {
        outcome: EnrichmentOutcome::Rescheduled {
            next: next.clone(),
            delay,
        },
        record: Some(rec),
        persist: false,
        next: Some((next, delay)),
    }
}

fn fetch_failed(mut rec: CallRecord, reason: String, now: &str) -> Settlement {
    rec.result.data_status = DataStatus::FetchFailed;
    rec.result.fetch_error = Some(reason.clone());
    rec.result.updated_at = now.to_owned();
    Settlement {
        outcome: EnrichmentOutcome::FetchFailed { reason },
        record: Some(rec),
        persist: true,
        next: None,
    }
}

#[cfg(test)]
mod tests;
