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
//!   a step after the Vapi call failed); any other message id for an attempt already claimed is a
//!   duplicate.

use std::time::Duration;

use super::{is_complete, merge_snapshot, CallRecord, CallSnapshot, Completeness, DataStatus};
use crate::ports::{EnrichmentJob, JobKind};

/// The longest delay SQS gives a message (`DelaySeconds` ≤ 900).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

/// How the enrichment chain and the watchdog pace themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichmentPolicy {
    /// The delay before each enrichment attempt; its length is the attempt budget (never empty).
    pub delays: Vec<Duration>,
    /// Between two watchdog checks of a call that is still running (≤ [`MAX_QUEUE_DELAY`]).
    pub watchdog_delay: Duration,
    /// The last watchdog check; a call still running then is settled as `fetch_failed`.
    pub max_watchdog_checks: u32,
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
        }
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
    /// The same attempt is claimed by another message (a duplicate send or a concurrent delivery).
    ClaimedElsewhere,
    /// A watchdog job for a call whose enrichment chain already exists (a webhook, or an earlier
    /// check that found the call ended, started it): that chain owns the call.
    ChainOwnsCall,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Stale => "stale",
            Self::ClaimedElsewhere => "claimed_elsewhere",
            Self::ChainOwnsCall => "chain_owns_call",
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
    now: &str,
) -> Admission {
    let Some(rec) = existing else {
        return Admission::Fresh;
    };
    if let Some(skip) = skip_reason(rec, job, message_id) {
        return Admission::Skip(skip);
    }
    Admission::Claim(Box::new(claim(rec.clone(), job, message_id, now)))
}

fn skip_reason(rec: &CallRecord, job: &EnrichmentJob, message_id: &str) -> Option<Skip> {
    let r = &rec.result;
    let ours = rec.book.claimed_by.as_deref() == Some(message_id);
    if r.data_status.is_terminal() {
        return Some(Skip::Finished);
    }
    match job.kind {
        JobKind::Enrich => {
            if job.attempt < r.fetch_attempts {
                Some(Skip::Stale)
            } else if job.attempt == r.fetch_attempts && !ours {
                Some(Skip::ClaimedElsewhere)
            } else {
                None
            }
        }
        JobKind::Watchdog => {
            let checks = rec.book.watchdog_checks;
            if rec.book.enrichment_scheduled && !ours {
                Some(Skip::ChainOwnsCall)
            } else if job.attempt < checks {
                Some(Skip::Stale)
            } else if (job.attempt == checks || r.data_status == DataStatus::Fetching) && !ours {
                // Either this check already ran under another message, or someone is asking
                // Vapi about this call right now.
                Some(Skip::ClaimedElsewhere)
            } else {
                None
            }
        }
    }
}

fn claim(mut rec: CallRecord, job: &EnrichmentJob, message_id: &str, now: &str) -> CallRecord {
    rec.result.data_status = DataStatus::Fetching;
    rec.book.claimed_by = Some(message_id.to_owned());
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
    let rec = match admit(current.as_ref(), job, message_id, now) {
        Admission::Skip(skip) => return Settlement::only(EnrichmentOutcome::Skipped(skip)),
        Admission::Claim(rec) => *rec,
        Admission::Fresh => match answer {
            VapiAnswer::Call(_) => claim(CallRecord::new(&job.call_id, now), job, message_id, now),
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
            };
            let delay = policy.delay_before(attempt);
            reschedule(rec, next, delay)
        }
        (Completeness::Incomplete | Completeness::Running, JobKind::Enrich) => {
            if job.attempt < policy.attempts() {
                rec.result.data_status = DataStatus::Partial;
                let next = EnrichmentJob {
                    call_id: job.call_id.clone(),
                    attempt: job.attempt + 1,
                    kind: JobKind::Enrich,
                };
                let delay = policy.delay_before(job.attempt + 1);
                reschedule(rec, next, delay)
            } else {
                let reason = format!("Vapi data still incomplete after {} attempts", job.attempt);
                fetch_failed(rec, reason, now)
            }
        }
    }
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
mod tests {
    use super::*;
    use crate::domain::{Analysis, CallStatus, Outcome};

    const T0: &str = "2026-03-02T15:00:00.000Z";
    const NOW: &str = "2026-03-02T15:05:00.000Z";
    const LONG: &str = "AI: Hello, is this Acme Plumbing?\nUser: Yes, how can I help you today?";
    const M1: &str = "msg-1";
    const M2: &str = "msg-2";

    fn policy() -> EnrichmentPolicy {
        EnrichmentPolicy::new(
            vec![
                Duration::from_secs(3),
                Duration::from_secs(5),
                Duration::from_secs(8),
            ],
            Duration::from_secs(900),
            Duration::from_secs(3600),
        )
    }

    fn enrich(attempt: u32) -> EnrichmentJob {
        EnrichmentJob {
            call_id: "c1".into(),
            attempt,
            kind: JobKind::Enrich,
        }
    }

    fn watchdog(attempt: u32) -> EnrichmentJob {
        EnrichmentJob {
            call_id: "c1".into(),
            attempt,
            kind: JobKind::Watchdog,
        }
    }

    /// A record in `ds` with `attempts` claimed, last by `by`.
    fn rec(ds: DataStatus, attempts: u32, by: Option<&str>) -> CallRecord {
        let mut r = CallRecord::new("c1", T0);
        r.result.data_status = ds;
        r.result.fetch_attempts = attempts;
        r.result.call_status = CallStatus::Ended;
        r.result.webhook_received_at = Some(T0.into());
        r.result.transcript = Some("AI: Hello".into());
        r.book.enrichment_scheduled = true;
        r.book.claimed_by = by.map(Into::into);
        r
    }

    /// A call we started that no webhook has reached.
    fn pending(checks: u32, by: Option<&str>) -> CallRecord {
        let mut r = CallRecord::new("c1", T0);
        r.result.provider.name = Some("Acme Plumbing".into());
        r.book.watchdog_checks = checks;
        r.book.claimed_by = by.map(Into::into);
        r
    }

    fn with(mut r: CallRecord, ds: DataStatus) -> CallRecord {
        r.result.data_status = ds;
        r
    }

    fn snap(status: CallStatus, transcript: &str, summary: Option<&str>) -> VapiAnswer {
        VapiAnswer::Call(Box::new(CallSnapshot {
            call_id: "c1".into(),
            call_status: Some(status),
            ended_reason: (status == CallStatus::Ended).then(|| "customer-ended-call".into()),
            transcript: Some(transcript.into()),
            analysis: Analysis {
                summary: summary.map(Into::into),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    fn complete() -> VapiAnswer {
        snap(CallStatus::Ended, LONG, Some("Available Monday"))
    }

    fn incomplete() -> VapiAnswer {
        snap(CallStatus::Ended, "AI: Hello, is this Acme", None)
    }

    fn running() -> VapiAnswer {
        snap(CallStatus::InProgress, "AI: Hello", None)
    }

    /// (name, record, job, message id) → admitted (`Ok`) or skipped for this reason.
    type AdmissionCase = (
        &'static str,
        Option<CallRecord>,
        EnrichmentJob,
        &'static str,
        Result<(), Skip>,
    );

    #[test]
    fn admission_table() {
        use Admission as A;
        let cases: Vec<AdmissionCase> = vec![
            ("no record: fresh path", None, enrich(1), M1, Ok(())),
            (
                "complete: duplicate",
                Some(rec(DataStatus::Complete, 2, Some(M1))),
                enrich(2),
                M2,
                Err(Skip::Finished),
            ),
            (
                "fetch_failed: duplicate",
                Some(rec(DataStatus::FetchFailed, 3, Some(M1))),
                enrich(3),
                M1,
                Err(Skip::Finished),
            ),
            (
                "terminal beats a watchdog",
                Some(rec(DataStatus::Complete, 1, Some(M1))),
                watchdog(1),
                M2,
                Err(Skip::Finished),
            ),
            (
                "first attempt",
                Some(rec(DataStatus::Partial, 0, None)),
                enrich(1),
                M1,
                Ok(()),
            ),
            (
                "next attempt",
                Some(rec(DataStatus::Partial, 1, Some(M1))),
                enrich(2),
                M2,
                Ok(()),
            ),
            (
                "older attempt",
                Some(rec(DataStatus::Partial, 2, Some(M1))),
                enrich(1),
                M2,
                Err(Skip::Stale),
            ),
            (
                "older attempt, same message",
                Some(rec(DataStatus::Partial, 2, Some(M2))),
                enrich(1),
                M2,
                Err(Skip::Stale),
            ),
            (
                "same attempt, another message (done)",
                Some(rec(DataStatus::Partial, 1, Some(M1))),
                enrich(1),
                M2,
                Err(Skip::ClaimedElsewhere),
            ),
            (
                "same attempt, another message (in flight)",
                Some(rec(DataStatus::Fetching, 1, Some(M1))),
                enrich(1),
                M2,
                Err(Skip::ClaimedElsewhere),
            ),
            (
                "same attempt, same message: re-claim",
                Some(rec(DataStatus::Fetching, 1, Some(M1))),
                enrich(1),
                M1,
                Ok(()),
            ),
            (
                "cleanup re-drive past a dead claim",
                Some(rec(DataStatus::Fetching, 2, Some(M1))),
                enrich(3),
                M2,
                Ok(()),
            ),
            (
                "enrich after watchdog checks",
                Some(pending(2, Some(M1))),
                enrich(1),
                M2,
                Ok(()),
            ),
            (
                "watchdog, no webhook",
                Some(pending(0, None)),
                watchdog(1),
                M1,
                Ok(()),
            ),
            (
                "watchdog, webhook chain exists",
                Some(rec(DataStatus::Partial, 0, None)),
                watchdog(1),
                M1,
                Err(Skip::ChainOwnsCall),
            ),
            (
                "watchdog, chain in flight",
                Some(rec(DataStatus::Fetching, 1, Some(M2))),
                watchdog(2),
                M1,
                Err(Skip::ChainOwnsCall),
            ),
            (
                "watchdog, next check",
                Some(pending(1, Some(M1))),
                watchdog(2),
                M2,
                Ok(()),
            ),
            (
                "watchdog, older check",
                Some(pending(2, Some(M1))),
                watchdog(1),
                M2,
                Err(Skip::Stale),
            ),
            (
                "watchdog, same check done elsewhere",
                Some(pending(1, Some(M1))),
                watchdog(1),
                M2,
                Err(Skip::ClaimedElsewhere),
            ),
            (
                "watchdog, same check redelivered",
                Some(pending(1, Some(M1))),
                watchdog(1),
                M1,
                Ok(()),
            ),
            (
                "watchdog, check in flight elsewhere",
                Some(with(pending(0, Some(M1)), DataStatus::Fetching)),
                watchdog(1),
                M2,
                Err(Skip::ClaimedElsewhere),
            ),
            (
                "watchdog, status-update only",
                Some(with(pending(0, None), DataStatus::Partial)),
                watchdog(1),
                M1,
                Ok(()),
            ),
        ];
        for (name, existing, job, msg, want) in cases {
            let got = admit(existing.as_ref(), &job, msg, NOW);
            match (want, got) {
                (Err(s), A::Skip(g)) => assert_eq!(s, g, "{name}"),
                (Ok(()), A::Fresh) => assert!(existing.is_none(), "{name}"),
                (Ok(()), A::Claim(c)) => {
                    assert_eq!(c.result.data_status, DataStatus::Fetching, "{name}");
                    assert_eq!(c.book.claimed_by.as_deref(), Some(msg), "{name}");
                    assert_eq!(c.result.updated_at, NOW, "{name}");
                    let before = existing.unwrap();
                    match job.kind {
                        JobKind::Enrich => {
                            assert_eq!(
                                c.result.fetch_attempts,
                                job.attempt.max(before.result.fetch_attempts),
                                "{name}"
                            );
                            assert!(c.book.enrichment_scheduled, "{name}");
                        }
                        JobKind::Watchdog => {
                            assert_eq!(
                                c.result.fetch_attempts, before.result.fetch_attempts,
                                "{name}: a watchdog uses no attempt"
                            );
                            assert_eq!(
                                c.book.watchdog_checks, before.book.watchdog_checks,
                                "{name}"
                            );
                        }
                    }
                }
                (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    fn claimed(job: &EnrichmentJob, before: CallRecord) -> CallRecord {
        match admit(Some(&before), job, M1, NOW) {
            Admission::Claim(c) => *c,
            other => panic!("not admitted: {other:?}"),
        }
    }

    /// (name, record before the claim, job, Vapi's answer) → (outcome, data status, persisted,
    /// next job and delay, fetchAttempts, fetchError).
    #[test]
    fn settlement_table() {
        use DataStatus::*;
        let s = Duration::from_secs;
        struct Case {
            name: &'static str,
            before: Option<CallRecord>,
            job: EnrichmentJob,
            answer: VapiAnswer,
            outcome: &'static str,
            status: Option<DataStatus>,
            persist: bool,
            next: Option<(EnrichmentJob, Duration)>,
            attempts: u32,
            error: Option<&'static str>,
        }
        let cases = vec![
            Case {
                name: "complete on the first fetch",
                before: Some(rec(Partial, 0, None)),
                job: enrich(1),
                answer: complete(),
                outcome: "complete",
                status: Some(Complete),
                persist: true,
                next: None,
                attempts: 1,
                error: None,
            },
            Case {
                name: "incomplete, attempts remain",
                before: Some(rec(Partial, 0, None)),
                job: enrich(1),
                answer: incomplete(),
                outcome: "rescheduled",
                status: Some(Partial),
                persist: false,
                next: Some((enrich(2), s(5))),
                attempts: 1,
                error: None,
            },
            Case {
                name: "incomplete, second attempt",
                before: Some(rec(Partial, 1, Some(M2))),
                job: enrich(2),
                answer: incomplete(),
                outcome: "rescheduled",
                status: Some(Partial),
                persist: false,
                next: Some((enrich(3), s(8))),
                attempts: 2,
                error: None,
            },
            Case {
                name: "incomplete, last attempt",
                before: Some(rec(Partial, 2, Some(M2))),
                job: enrich(3),
                answer: incomplete(),
                outcome: "fetch_failed",
                status: Some(FetchFailed),
                persist: true,
                next: None,
                attempts: 3,
                error: Some("Vapi data still incomplete after 3 attempts"),
            },
            Case {
                name: "cleanup re-drive past the budget",
                before: Some(rec(Fetching, 3, Some(M2))),
                job: enrich(4),
                answer: incomplete(),
                outcome: "fetch_failed",
                status: Some(FetchFailed),
                persist: true,
                next: None,
                attempts: 4,
                error: Some("Vapi data still incomplete after 4 attempts"),
            },
            Case {
                name: "enrich finds the call running",
                before: Some(rec(Partial, 0, None)),
                job: enrich(1),
                answer: running(),
                outcome: "rescheduled",
                status: Some(Partial),
                persist: false,
                next: Some((enrich(2), s(5))),
                attempts: 1,
                error: None,
            },
            Case {
                name: "404 with a record",
                before: Some(rec(Partial, 0, None)),
                job: enrich(1),
                answer: VapiAnswer::NotFound,
                outcome: "fetch_failed",
                status: Some(FetchFailed),
                persist: true,
                next: None,
                attempts: 1,
                error: Some("Vapi has no call c1"),
            },
            Case {
                name: "404 without a record",
                before: None,
                job: enrich(1),
                answer: VapiAnswer::NotFound,
                outcome: "unknown_call",
                status: None,
                persist: false,
                next: None,
                attempts: 0,
                error: None,
            },
            Case {
                name: "rejected with a record",
                before: Some(rec(Partial, 0, None)),
                job: enrich(1),
                answer: VapiAnswer::Rejected("bad id".into()),
                outcome: "fetch_failed",
                status: Some(FetchFailed),
                persist: true,
                next: None,
                attempts: 1,
                error: Some("Vapi refused to return the call: bad id"),
            },
            Case {
                name: "rejected without a record",
                before: None,
                job: enrich(1),
                answer: VapiAnswer::Rejected("bad id".into()),
                outcome: "unknown_call",
                status: None,
                persist: false,
                next: None,
                attempts: 0,
                error: None,
            },
            Case {
                name: "transient",
                before: Some(rec(Partial, 0, None)),
                job: enrich(1),
                answer: VapiAnswer::Unavailable("500".into()),
                outcome: "retry",
                status: None,
                persist: false,
                next: None,
                attempts: 0,
                error: None,
            },
            Case {
                name: "transient, fresh",
                before: None,
                job: enrich(1),
                answer: VapiAnswer::Unavailable("500".into()),
                outcome: "retry",
                status: None,
                persist: false,
                next: None,
                attempts: 0,
                error: None,
            },
            Case {
                name: "fresh, complete",
                before: None,
                job: enrich(2),
                answer: complete(),
                outcome: "complete",
                status: Some(Complete),
                persist: true,
                next: None,
                attempts: 2,
                error: None,
            },
            Case {
                name: "fresh, incomplete",
                before: None,
                job: enrich(1),
                answer: incomplete(),
                outcome: "rescheduled",
                status: Some(Partial),
                persist: false,
                next: Some((enrich(2), s(5))),
                attempts: 1,
                error: None,
            },
            Case {
                name: "fresh watchdog, running",
                before: None,
                job: watchdog(1),
                answer: running(),
                outcome: "rescheduled",
                status: Some(Pending),
                persist: false,
                next: Some((watchdog(2), s(900))),
                attempts: 0,
                error: None,
            },
            Case {
                name: "watchdog, running",
                before: Some(pending(0, None)),
                job: watchdog(1),
                answer: running(),
                outcome: "rescheduled",
                status: Some(Pending),
                persist: false,
                next: Some((watchdog(2), s(900))),
                attempts: 0,
                error: None,
            },
            Case {
                name: "watchdog, running at the bound",
                before: Some(pending(4, Some(M2))),
                job: watchdog(5),
                answer: running(),
                outcome: "fetch_failed",
                status: Some(FetchFailed),
                persist: true,
                next: None,
                attempts: 0,
                error: Some("Vapi still reports the call running after 5 watchdog checks"),
            },
            Case {
                name: "watchdog, ended complete",
                before: Some(pending(1, Some(M2))),
                job: watchdog(2),
                answer: complete(),
                outcome: "complete",
                status: Some(Complete),
                persist: true,
                next: None,
                attempts: 0,
                error: None,
            },
            Case {
                name: "watchdog, ended incomplete: chain starts",
                before: Some(pending(1, Some(M2))),
                job: watchdog(2),
                answer: incomplete(),
                outcome: "rescheduled",
                status: Some(Partial),
                persist: false,
                next: Some((enrich(1), s(3))),
                attempts: 0,
                error: None,
            },
            Case {
                name: "watchdog, 404",
                before: Some(pending(0, None)),
                job: watchdog(1),
                answer: VapiAnswer::NotFound,
                outcome: "fetch_failed",
                status: Some(FetchFailed),
                persist: true,
                next: None,
                attempts: 0,
                error: Some("Vapi has no call c1"),
            },
            Case {
                name: "duplicate: already complete",
                before: Some(rec(Complete, 1, Some(M2))),
                job: enrich(1),
                answer: complete(),
                outcome: "skipped",
                status: None,
                persist: false,
                next: None,
                attempts: 0,
                error: None,
            },
        ];
        for c in cases {
            // Settle on the record as the claim left it (a terminal one is not admitted: as found).
            let before = match c.before.clone() {
                Some(b) if !b.result.data_status.is_terminal() => Some(claimed(&c.job, b)),
                other => other,
            };
            let got = settle(before, &c.job, M1, &c.answer, &policy(), NOW);
            let name = c.name;
            assert_eq!(got.outcome.as_str(), c.outcome, "{name}: {:?}", got.outcome);
            assert_eq!(
                got.record.as_ref().map(|r| r.result.data_status),
                c.status,
                "{name}"
            );
            assert_eq!(got.persist, c.persist, "{name}");
            assert_eq!(got.next, c.next, "{name}");
            if let Some(r) = &got.record {
                assert_eq!(r.result.fetch_attempts, c.attempts, "{name}");
                assert_eq!(r.result.fetch_error.as_deref(), c.error, "{name}");
                assert_eq!(r.result.updated_at, NOW, "{name}");
                assert_eq!(r.book.claimed_by.as_deref(), Some(M1), "{name}");
            }
            if let EnrichmentOutcome::FetchFailed { reason } = &got.outcome {
                assert_eq!(Some(reason.as_str()), c.error, "{name}");
            }
        }
    }

    #[test]
    fn vapi_data_is_merged_and_nothing_received_is_lost() {
        let mut before = rec(DataStatus::Partial, 2, None);
        before.result.analysis.summary = Some("From the webhook".into());
        before.result.recording_url = Some("https://example.test/r.wav".into());
        let out = settle(
            Some(claimed(&enrich(3), before)),
            &enrich(3),
            M1,
            &incomplete(),
            &policy(),
            NOW,
        );
        let r = out.record.unwrap().result;
        assert_eq!(r.data_status, DataStatus::FetchFailed);
        assert_eq!(r.analysis.summary.as_deref(), Some("From the webhook"));
        assert_eq!(
            r.recording_url.as_deref(),
            Some("https://example.test/r.wav")
        );
        assert_eq!(
            r.transcript.as_deref(),
            Some("AI: Hello, is this Acme"),
            "the longer transcript wins"
        );
        assert_eq!(r.fetched_at.as_deref(), Some(NOW));

        let out = settle(None, &enrich(1), M1, &complete(), &policy(), NOW);
        let r = out.record.unwrap();
        assert_eq!(r.result.status, Some(Outcome::Completed));
        assert_eq!(r.result.call_status, CallStatus::Ended);
        assert_eq!(r.result.transcript.as_deref(), Some(LONG));
        assert_eq!(r.result.created_at, NOW);
        assert!(r.book.enrichment_scheduled);
    }

    #[test]
    fn watchdog_bookkeeping() {
        // Running: the check is recorded (idempotently for a redelivery), callStatus moves on.
        let out = settle(
            Some(claimed(&watchdog(3), pending(2, Some(M2)))),
            &watchdog(3),
            M1,
            &running(),
            &policy(),
            NOW,
        );
        let r = out.record.unwrap();
        assert_eq!(r.book.watchdog_checks, 3);
        assert_eq!(r.result.call_status, CallStatus::InProgress);
        assert!(!r.book.enrichment_scheduled);
        let again = settle(
            Some(claimed(&watchdog(3), r)),
            &watchdog(3),
            M1,
            &running(),
            &policy(),
            NOW,
        );
        assert_eq!(again.record.unwrap().book.watchdog_checks, 3);

        // A status-update arrived meanwhile: the record waits as partial.
        let mut seen = pending(0, None);
        seen.result.webhook_received_at = Some(T0.into());
        let out = settle(
            Some(claimed(&watchdog(1), seen)),
            &watchdog(1),
            M1,
            &running(),
            &policy(),
            NOW,
        );
        assert_eq!(out.record.unwrap().result.data_status, DataStatus::Partial);

        // Ended, incomplete: the chain is marked as existing, so a late webhook starts no other.
        let out = settle(
            Some(claimed(&watchdog(1), pending(0, None))),
            &watchdog(1),
            M1,
            &incomplete(),
            &policy(),
            NOW,
        );
        assert!(out.record.unwrap().book.enrichment_scheduled);
    }

    #[test]
    fn settle_rechecks_the_claim() {
        // Another message took the same attempt while we asked Vapi: our answer is dropped.
        let taken = rec(DataStatus::Fetching, 1, Some(M2));
        let out = settle(Some(taken), &enrich(1), M1, &complete(), &policy(), NOW);
        assert_eq!(
            out.outcome,
            EnrichmentOutcome::Skipped(Skip::ClaimedElsewhere)
        );
        assert!(out.record.is_none() && !out.persist);
        // A webhook created the record while a fresh fetch was in flight: our answer applies to it.
        let out = settle(
            Some(rec(DataStatus::Partial, 0, None)),
            &enrich(1),
            M1,
            &complete(),
            &policy(),
            NOW,
        );
        assert_eq!(out.outcome, EnrichmentOutcome::Complete);
        // An enrichment chain overtook a watchdog check.
        let out = settle(
            Some(rec(DataStatus::Fetching, 1, Some(M2))),
            &watchdog(1),
            M1,
            &running(),
            &policy(),
            NOW,
        );
        assert_eq!(out.outcome, EnrichmentOutcome::Skipped(Skip::ChainOwnsCall));
    }

    #[test]
    fn policy_bounds() {
        let p = policy();
        assert_eq!(p.attempts(), 3);
        assert_eq!(
            p.max_watchdog_checks, 5,
            "an hour of 15-minute checks, plus one"
        );
        assert_eq!(p.delay_before(1), Duration::from_secs(3));
        assert_eq!(p.delay_before(3), Duration::from_secs(8));
        assert_eq!(p.delay_before(9), Duration::from_secs(8));
        let long =
            EnrichmentPolicy::new(vec![], Duration::from_secs(3600), Duration::from_secs(3600));
        assert_eq!(
            long.watchdog_delay, MAX_QUEUE_DELAY,
            "capped at SQS's limit"
        );
        assert_eq!(long.max_watchdog_checks, 5);
        assert_eq!(long.attempts(), 1);
        let quick = EnrichmentPolicy::new(
            vec![Duration::ZERO],
            Duration::from_secs(2),
            Duration::from_secs(10),
        );
        assert_eq!(quick.max_watchdog_checks, 6);
        let zero = EnrichmentPolicy::new(
            vec![Duration::ZERO],
            Duration::ZERO,
            Duration::from_secs(10),
        );
        assert_eq!(
            zero.max_watchdog_checks, 11,
            "a zero delay counts as one second"
        );
    }
}
