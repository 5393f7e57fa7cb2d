//! What the scheduled cleanup does with a record that is past its deadline: re-drive it (a lost
//! queue message, a crashed worker, a send that failed after the write) a bounded number of times,
//! then settle it as `fetch_failed` with everything received kept.

use super::{CallRecord, CallStatus, DataStatus};
use crate::ports::JobKind;

/// Re-drives before a stuck record is settled.
pub const MAX_REDRIVES: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupAction {
    /// Nothing to do: the record finished meanwhile.
    Leave,
    /// Put a fresh job on the queue; its attempt number is past any the record has seen, so the
    /// enrichment consumer does not take it for a duplicate.
    Redrive {
        kind: JobKind,
        attempt: u32,
    },
    Settle {
        reason: String,
    },
}

pub fn plan_cleanup(rec: &CallRecord) -> CleanupAction {
    let r = &rec.result;
    if r.data_status.is_terminal() {
        // Settled: only rows still missing late data, or a settling event not made yet, are the
        // cleanup's business (never settled again; the re-drive repeats until both are done or
        // the record expires).
        return if rec.book.rows_stale || rec.book.event_owed {
            CleanupAction::Redrive {
                kind: JobKind::Persist,
                attempt: 1,
            }
        } else {
            CleanupAction::Leave
        };
    }
    if rec.book.redrives >= MAX_REDRIVES {
        return CleanupAction::Settle {
            reason: format!(
                "settled by the cleanup: still {} after {} re-drives",
                r.data_status.as_str(),
                rec.book.redrives
            ),
        };
    }
    // Nobody has said the call ended (or a worker died mid-check): ask Vapi whether it has.
    // Watchdog checks are numbered apart from fetch attempts, as the consumer counts them.
    if r.data_status == DataStatus::Pending || r.call_status != CallStatus::Ended {
        return CleanupAction::Redrive {
            kind: JobKind::Watchdog,
            attempt: rec.book.watchdog_checks + 1,
        };
    }
    CleanupAction::Redrive {
        kind: JobKind::Enrich,
        attempt: r.fetch_attempts + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ds: DataStatus, cs: CallStatus, attempts: u32, redrives: u32) -> CallRecord {
        let mut r = CallRecord::new("c", "t");
        r.result.data_status = ds;
        r.result.call_status = cs;
        r.result.fetch_attempts = attempts;
        r.book.redrives = redrives;
        r
    }

    #[test]
    fn watchdog_redrives_continue_the_check_count() {
        let mut r = rec(DataStatus::Pending, CallStatus::Queued, 0, 0);
        r.book.watchdog_checks = 2;
        assert_eq!(
            plan_cleanup(&r),
            CleanupAction::Redrive {
                kind: JobKind::Watchdog,
                attempt: 3
            }
        );
    }

    #[test]
    fn actions_by_state() {
        use CleanupAction::*;
        let cases = [
            (rec(DataStatus::Complete, CallStatus::Ended, 2, 0), Leave),
            (rec(DataStatus::FetchFailed, CallStatus::Ended, 3, 9), Leave),
            (
                rec(DataStatus::Pending, CallStatus::Queued, 0, 0),
                Redrive {
                    kind: JobKind::Watchdog,
                    attempt: 1,
                },
            ),
            (
                rec(DataStatus::Partial, CallStatus::InProgress, 0, 1),
                Redrive {
                    kind: JobKind::Watchdog,
                    attempt: 1,
                },
            ),
            (
                rec(DataStatus::Fetching, CallStatus::InProgress, 1, 0),
                Redrive {
                    kind: JobKind::Watchdog,
                    attempt: 1,
                },
            ),
            (
                rec(DataStatus::Partial, CallStatus::Ended, 0, 0),
                Redrive {
                    kind: JobKind::Enrich,
                    attempt: 1,
                },
            ),
            (
                rec(DataStatus::Fetching, CallStatus::Ended, 2, 2),
                Redrive {
                    kind: JobKind::Enrich,
                    attempt: 3,
                },
            ),
        ];
        let mut stale = rec(DataStatus::FetchFailed, CallStatus::Ended, 3, 9);
        stale.book.rows_stale = true;
        let mut owed = rec(DataStatus::Complete, CallStatus::Ended, 1, 0);
        owed.book.event_owed = true;
        let persist = Redrive {
            kind: JobKind::Persist,
            attempt: 1,
        };
        let cases = cases
            .into_iter()
            .chain([(stale, persist.clone()), (owed, persist)]);
        for (r, want) in cases {
            assert_eq!(plan_cleanup(&r), want, "{:?}", r.result.data_status);
        }
        assert!(matches!(
            plan_cleanup(&rec(
                DataStatus::Fetching,
                CallStatus::Ended,
                2,
                MAX_REDRIVES
            )),
            Settle { .. }
        ));
    }
}
