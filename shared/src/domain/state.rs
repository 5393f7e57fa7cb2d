//! The record's state machine: `pending → partial → fetching → complete | fetch_failed`, with
//! `callStatus` monotonic and terminal data states never downgraded.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{merge_snapshot, CallResult, CallSnapshot, CallStatus, DataStatus};

/// What the system remembers about a record besides what clients see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Bookkeeping {
    /// Webhook events already applied; Vapi redeliveries differ byte-wise (presigned URLs),
    /// so events are recognised by `(type, status)`, not by body.
    #[serde(default)]
    pub seen_events: BTreeSet<String>,
    /// An enrichment chain exists for this call; a second one is never started.
    #[serde(default)]
    pub enrichment_scheduled: bool,
    /// The queue message that holds the current fetch attempt, so a concurrent duplicate backs off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// Until when (ISO-8601) the claim of a `fetching` record holds off other messages. Only a dead
    /// worker's claim outlives it: a redriven or re-driven message may then take the call over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_until: Option<String>,
    /// A settled record received data its provider row and interaction log do not hold yet: a
    /// `persist` job saves them again (the cleanup re-drives it if that job is lost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rows_stale: bool,
    /// The settle is committed but its event (`call.completed` / `call.failed`) is not made yet:
    /// it is made from the committed record right after that write, or by a `persist` job the
    /// cleanup re-drives. An event made before the write could carry a state that never commits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub event_owed: bool,
    /// Why the tables refused the call's rows (never expected: every call is fitted to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_error: Option<String>,
    /// Watchdog checks of a call that was still running.
    #[serde(default)]
    pub watchdog_checks: u32,
    /// Times the cleanup found this record stuck and re-drove it.
    #[serde(default)]
    pub redrives: u32,
    /// Fetch attempts made before the current enrichment chain: a replay starts a new chain
    /// with the whole attempt budget (its attempts are still numbered on, so that a job of the
    /// old chain is stale).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chain_start: u32,
    /// When the call was erased (ISO-8601): this record is its tombstone ([`super::erase`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallRecord {
    pub result: CallResult,
    pub book: Bookkeeping,
}

impl CallRecord {
    pub fn new(call_id: impl Into<String>, now: &str) -> Self {
        Self {
            result: CallResult::new(call_id, now),
            book: Bookkeeping::default(),
        }
    }
}

/// The identity of a webhook event for de-duplication (vapi.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey(String);

impl EventKey {
    pub fn end_of_call_report() -> Self {
        Self("end-of-call-report".into())
    }
    pub fn status_update(status: &str) -> Self {
        Self(format!(
            "status-update:{}",
            status.trim().to_ascii_lowercase()
        ))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOutcome {
    pub record: CallRecord,
    /// The record must be written (false for a duplicate delivery).
    pub write: bool,
    /// Send the first job of the call's one enrichment chain: this delivery starts the chain, or
    /// it repeats the delivery that did while the chain has not begun (that delivery's send may
    /// have been lost with its answer; the consumer drops a second first job).
    pub schedule_enrichment: bool,
    /// Send a `persist` job: the call is settled and its rows miss data the record now holds.
    pub schedule_persist: bool,
}

/// Applies one accepted webhook event to the record (or to a new one).
pub fn apply_webhook(
    existing: Option<CallRecord>,
    snap: &CallSnapshot,
    key: &EventKey,
    now: &str,
) -> WebhookOutcome {
    let mut record = existing.unwrap_or_else(|| {
        CallRecord::new(&snap.call_id, &super::enrichment::created_at(snap, now))
    });
    if record.book.seen_events.contains(key.as_str()) {
        // A redelivery changes nothing, but what its first delivery set off is sent again while
        // nothing shows it ran: the first send may have failed after the write landed.
        let (schedule_enrichment, schedule_persist) = owed_sends(&record, now);
        return WebhookOutcome {
            record,
            write: false,
            schedule_enrichment,
            schedule_persist,
        };
    }
    record.book.seen_events.insert(key.as_str().to_owned());
    let new_data = merge_snapshot(&mut record.result, snap);

    let r = &mut record.result;
    if r.webhook_received_at.is_none() {
        r.webhook_received_at = Some(now.to_owned());
    }
    if r.data_status == DataStatus::Pending {
        r.data_status = DataStatus::Partial;
    }
    r.updated_at = now.to_owned();

    let starts_chain = !r.data_status.is_terminal()
        && r.call_status == CallStatus::Ended
        && !record.book.enrichment_scheduled;
    record.book.enrichment_scheduled |= starts_chain;
    // Late data for a settled call (Vapi's analysis outlasted the chain): its rows must get it too.
    record.book.rows_stale |= r.data_status.is_terminal() && new_data;
    // A new event sends, like a redelivery, whatever an earlier delivery still owes (its send may
    // have failed after its write landed, and Vapi may have given up on it).
    let (schedule_enrichment, schedule_persist) = owed_sends(&record, now);
    WebhookOutcome {
        record,
        write: true,
        schedule_enrichment,
        schedule_persist,
    }
}

/// The sends a record still waits for: the first enrichment job of a chain no attempt has
/// claimed yet (a watchdog check asking Vapi right now will start it; one that died or failed
/// holds no live claim), and the `persist` job of a settled record whose rows are stale.
fn owed_sends(rec: &CallRecord, now: &str) -> (bool, bool) {
    let r = &rec.result;
    let check_in_flight =
        r.data_status == DataStatus::Fetching && super::enrichment::claim_live(rec, now);
    let chain_unstarted = !r.data_status.is_terminal()
        && r.call_status == CallStatus::Ended
        && rec.book.enrichment_scheduled
        && r.fetch_attempts == 0
        && !check_in_flight;
    let rows_owed = r.data_status.is_terminal() && rec.book.rows_stale;
    (chain_unstarted, rows_owed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(status: Option<CallStatus>) -> CallSnapshot {
        CallSnapshot {
            call_id: "c1".into(),
            call_status: status,
            ..Default::default()
        }
    }

    #[test]
    fn first_end_of_call_report_schedules_once() {
        let eocr = EventKey::end_of_call_report();
        let first = apply_webhook(None, &snap(Some(CallStatus::Ended)), &eocr, "t1");
        assert!(first.write && first.schedule_enrichment);
        assert_eq!(first.record.result.data_status, DataStatus::Partial);
        assert_eq!(
            first.record.result.webhook_received_at.as_deref(),
            Some("t1")
        );

        // Its redelivery writes nothing, but sends the first job again while no attempt has
        // claimed it: the first delivery's send may have been lost after its write landed.
        let again = apply_webhook(
            Some(first.record.clone()),
            &snap(Some(CallStatus::Ended)),
            &eocr,
            "t2",
        );
        assert!(!again.write && again.schedule_enrichment);
        assert_eq!(again.record, first.record);
        let mut started = first.record.clone();
        started.result.fetch_attempts = 1;
        let later = apply_webhook(Some(started), &snap(Some(CallStatus::Ended)), &eocr, "t2");
        assert!(!later.write && !later.schedule_enrichment);

        // status-update(ended) after the report, while the chain has not begun: recorded, and
        // the chain's first job sent again (the report's send may have failed), never a second
        // chain.
        let su = apply_webhook(
            Some(first.record.clone()),
            &snap(Some(CallStatus::Ended)),
            &EventKey::status_update("ended"),
            "t3",
        );
        assert!(su.write && su.schedule_enrichment);
        assert_eq!(su.record.result.fetch_attempts, 0);
        // Once an attempt has claimed the chain, a new event sends nothing.
        let mut claimed = first.record;
        claimed.result.fetch_attempts = 1;
        let later = apply_webhook(
            Some(claimed),
            &snap(Some(CallStatus::Ended)),
            &EventKey::status_update("ended"),
            "t4",
        );
        assert!(later.write && !later.schedule_enrichment);
    }

    #[test]
    fn a_watchdog_check_in_flight_starts_the_chain_but_a_released_one_does_not() {
        const NOW: &str = "2026-03-02T15:05:00.000Z";
        // A watchdog check claimed the call (`fetching`, no attempt yet) while it was running.
        let mut checking = CallRecord::new("c1", "t0");
        checking.result.data_status = DataStatus::Fetching;
        checking.book.claimed_by = Some("msg-watchdog".into());
        checking.book.claim_until = Some("2026-03-02T15:06:00.000Z".into());
        let ended = || snap(Some(CallStatus::Ended));
        let key = EventKey::status_update("ended");
        // Live: the check will find the call ended and start the chain itself.
        let out = apply_webhook(Some(checking.clone()), &ended(), &key, NOW);
        assert!(out.write && !out.schedule_enrichment);
        // Released (its send failed) or lapsed (its worker died): nobody will; the webhook does.
        checking.book.claim_until = Some(NOW.into());
        let out = apply_webhook(Some(checking), &ended(), &key, NOW);
        assert!(out.write && out.schedule_enrichment);
    }

    #[test]
    fn running_call_updates_do_not_schedule() {
        let out = apply_webhook(
            None,
            &snap(Some(CallStatus::Ringing)),
            &EventKey::status_update("ringing"),
            "t1",
        );
        assert!(out.write && !out.schedule_enrichment);
        assert_eq!(out.record.result.call_status, CallStatus::Ringing);
    }

    #[test]
    fn never_downgrades_a_terminal_record() {
        for terminal in [DataStatus::Complete, DataStatus::FetchFailed] {
            let mut rec = CallRecord::new("c1", "t0");
            rec.result.data_status = terminal;
            rec.result.call_status = CallStatus::Ended;
            let out = apply_webhook(
                Some(rec),
                &snap(Some(CallStatus::InProgress)),
                &EventKey::end_of_call_report(),
                "t1",
            );
            assert_eq!(out.record.result.data_status, terminal);
            assert_eq!(out.record.result.call_status, CallStatus::Ended);
            assert!(!out.schedule_enrichment);
        }
    }

    #[test]
    fn late_data_for_a_settled_call_is_persisted_again() {
        let mut rec = CallRecord::new("c1", "t0");
        rec.result.data_status = DataStatus::FetchFailed;
        rec.result.call_status = CallStatus::Ended;
        let mut report = snap(Some(CallStatus::Ended));
        report.analysis.summary = Some("Available Monday".into());
        let late = apply_webhook(
            Some(rec.clone()),
            &report,
            &EventKey::end_of_call_report(),
            "t1",
        );
        assert!(late.write && late.schedule_persist && !late.schedule_enrichment);
        assert!(late.record.book.rows_stale);
        assert_eq!(late.record.result.data_status, DataStatus::FetchFailed);
        assert_eq!(
            late.record.result.analysis.summary.as_deref(),
            Some("Available Monday")
        );
        // Its redelivery sends the persist job again until the rows are saved.
        let again = apply_webhook(
            Some(late.record.clone()),
            &report,
            &EventKey::end_of_call_report(),
            "t2",
        );
        assert!(!again.write && again.schedule_persist);
        let mut saved = late.record;
        saved.book.rows_stale = false;
        let after = apply_webhook(Some(saved), &report, &EventKey::end_of_call_report(), "t3");
        assert!(!after.schedule_persist);
        // An event that adds nothing new asks for no save.
        let nothing = apply_webhook(
            Some(rec),
            &snap(Some(CallStatus::Ended)),
            &EventKey::status_update("ended"),
            "t1",
        );
        assert!(nothing.write && !nothing.schedule_persist);
    }

    #[test]
    fn late_status_update_never_regresses() {
        let first = apply_webhook(
            None,
            &snap(Some(CallStatus::Ended)),
            &EventKey::end_of_call_report(),
            "t1",
        );
        let late = apply_webhook(
            Some(first.record),
            &snap(Some(CallStatus::InProgress)),
            &EventKey::status_update("in-progress"),
            "t2",
        );
        assert_eq!(late.record.result.call_status, CallStatus::Ended);
        // It starts no chain of its own: at most it repeats the first job of the one there is.
        assert!(late.record.book.enrichment_scheduled);
        assert_eq!(late.record.result.fetch_attempts, 0);
    }

    #[test]
    fn event_keys_fold_case() {
        assert_eq!(
            EventKey::status_update(" Ended"),
            EventKey::status_update("ended")
        );
        assert_ne!(
            EventKey::status_update("ended"),
            EventKey::end_of_call_report()
        );
    }
}
