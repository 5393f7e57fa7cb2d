use super::*;
use crate::domain::{Analysis, CallStatus, Outcome};

const T0: &str = "2026-03-02T15:00:00.000Z";
const NOW: &str = "2026-03-02T15:05:00.000Z";
const LONG: &str = "AI: Hello, is this Acme Plumbing?\nUser: Yes, how can I help you today?";
const M1: &str = "msg-1";
const M2: &str = "msg-2";
/// A claim taken at NOW holds until then; a claim holding until `LAPSED` belonged to a dead worker.
const LIVE: &str = "2026-03-02T15:06:00.000Z";
const LAPSED: &str = "2026-03-02T15:04:59.000Z";

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
        event_id: None,
    }
}

fn watchdog(attempt: u32) -> EnrichmentJob {
    EnrichmentJob {
        call_id: "c1".into(),
        attempt,
        kind: JobKind::Watchdog,
        event_id: None,
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
    r.book.claim_until = by.map(|_| LIVE.into());
    r
}

/// A call we started that no webhook has reached.
fn pending(checks: u32, by: Option<&str>) -> CallRecord {
    let mut r = CallRecord::new("c1", T0);
    r.result.provider.name = Some("Acme Plumbing".into());
    r.book.watchdog_checks = checks;
    r.book.claimed_by = by.map(Into::into);
    r.book.claim_until = by.map(|_| LIVE.into());
    r
}

/// The record with its claim's lease lapsed: its worker died.
fn lapsed(mut r: CallRecord) -> CallRecord {
    r.book.claim_until = Some(LAPSED.into());
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
            Err(Skip::AttemptSettled),
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
            "same attempt, a dead worker's claim: a redriven message takes over",
            Some(lapsed(rec(DataStatus::Fetching, 1, Some(M1)))),
            enrich(1),
            M2,
            Ok(()),
        ),
        (
            "same attempt settled, lease long gone: still a duplicate",
            Some(lapsed(rec(DataStatus::Partial, 1, Some(M1)))),
            enrich(1),
            M2,
            Err(Skip::AttemptSettled),
        ),
        (
            "watchdog check of a dead worker: the cleanup's re-drive takes over",
            Some(lapsed(with(pending(0, Some(M1)), DataStatus::Fetching))),
            watchdog(1),
            M2,
            Ok(()),
        ),
        (
            "watchdog, same check of a dead worker, redriven",
            Some(lapsed(with(pending(1, Some(M1)), DataStatus::Fetching))),
            watchdog(1),
            M2,
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
            "watchdog, webhook chain not begun (its first send may be lost): the check works",
            Some(rec(DataStatus::Partial, 0, None)),
            watchdog(1),
            M1,
            Ok(()),
        ),
        (
            "watchdog, webhook chain begun",
            Some(rec(DataStatus::Partial, 1, Some(M2))),
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
            Err(Skip::AttemptSettled),
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
        let got = admit(existing.as_ref(), &job, msg, &policy(), NOW);
        match (want, got) {
            (Err(s), A::Skip(g)) => assert_eq!(s, g, "{name}"),
            (Ok(()), A::Fresh) => assert!(existing.is_none(), "{name}"),
            (Ok(()), A::Claim(c)) => {
                assert_eq!(c.result.data_status, DataStatus::Fetching, "{name}");
                assert_eq!(c.book.claimed_by.as_deref(), Some(msg), "{name}");
                assert_eq!(
                    c.book.claim_until.as_deref(),
                    Some("2026-03-02T15:06:00.000Z"),
                    "{name}: the lease"
                );
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
                    JobKind::Persist | JobKind::Push => {
                        unreachable!("{name}: persist and push jobs are never claimed")
                    }
                }
            }
            (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }
}

fn claimed(job: &EnrichmentJob, before: CallRecord) -> CallRecord {
    match admit(Some(&before), job, M1, &policy(), NOW) {
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
            name: "a replay's chain has the whole budget",
            before: Some({
                let mut r = rec(Partial, 3, None);
                r.book.chain_start = 3;
                r
            }),
            job: enrich(4),
            answer: incomplete(),
            outcome: "rescheduled",
            status: Some(Partial),
            persist: false,
            next: Some((enrich(5), s(5))),
            attempts: 4,
            error: None,
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
fn a_failed_attempt_releases_its_claim_and_a_held_job_knows_when_to_come_back() {
    use crate::domain::to_iso;
    use Admission as A;
    let held = rec(DataStatus::Fetching, 1, Some(M1));
    // Held elsewhere: the job comes back when the lease ends.
    assert_eq!(
        admit(Some(&held), &enrich(1), M2, &policy(), NOW),
        A::Skip(Skip::ClaimedElsewhere)
    );
    assert_eq!(claim_ends(&held, NOW).map(to_iso), Some(LIVE.to_string()));
    // Only the holder releases, and only a live claim.
    assert!(released(&held, M2, NOW).is_none());
    assert!(released(&lapsed(held.clone()), M1, NOW).is_none());
    assert!(released(&rec(DataStatus::Partial, 1, Some(M1)), M1, NOW).is_none());
    let free = released(&held, M1, NOW).expect("the holder releases");
    assert_eq!(
        free.result.data_status,
        DataStatus::Fetching,
        "still mid-attempt"
    );
    assert_eq!(free.result.fetch_attempts, 1);
    assert_eq!(claim_ends(&free, NOW), None);
    // A redriven copy (another message id) takes the attempt over at once.
    match admit(Some(&free), &enrich(1), M2, &policy(), NOW) {
        A::Claim(c) => assert_eq!(c.book.claimed_by.as_deref(), Some(M2)),
        other => panic!("not taken over: {other:?}"),
    }
    // So does the holder's own redelivery, and a watchdog check released the same way.
    assert!(matches!(
        admit(Some(&free), &enrich(1), M1, &policy(), NOW),
        A::Claim(_)
    ));
    let check = with(pending(0, Some(M1)), DataStatus::Fetching);
    assert_eq!(
        admit(Some(&check), &watchdog(1), M2, &policy(), NOW),
        A::Skip(Skip::ClaimedElsewhere)
    );
    let check = released(&check, M1, NOW).expect("released");
    assert!(matches!(
        admit(Some(&check), &watchdog(1), M2, &policy(), NOW),
        A::Claim(_)
    ));
    // No live claim, nothing to wait for.
    assert_eq!(
        claim_ends(&rec(DataStatus::Partial, 1, Some(M1)), NOW),
        None
    );
}

#[test]
fn an_older_job_carries_on_an_abandoned_attempt_and_only_that() {
    // Attempt 2 failed and released its claim (or its worker died): a redriven attempt-1 job
    // carries attempt 2 on instead of being dropped as stale.
    let abandoned = lapsed(rec(DataStatus::Fetching, 2, Some(M1)));
    let carried = taken_over(&abandoned, &enrich(1), NOW).expect("carried on");
    assert_eq!(carried, enrich(2));
    assert!(matches!(
        admit(Some(&abandoned), &carried, M2, &policy(), NOW),
        Admission::Claim(_)
    ));
    // Not while attempt 2 runs, nor once it settled, nor for the current attempt or a watchdog.
    assert_eq!(
        taken_over(&rec(DataStatus::Fetching, 2, Some(M1)), &enrich(1), NOW),
        None
    );
    assert_eq!(
        taken_over(
            &lapsed(rec(DataStatus::Partial, 2, Some(M1))),
            &enrich(1),
            NOW
        ),
        None
    );
    assert_eq!(taken_over(&abandoned, &enrich(2), NOW), None);
    assert_eq!(taken_over(&abandoned, &watchdog(1), NOW), None);
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
    let long = EnrichmentPolicy::new(vec![], Duration::from_secs(3600), Duration::from_secs(3600));
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
