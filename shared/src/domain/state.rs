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
    /// Watchdog checks of a call that was still running.
    #[serde(default)]
    pub watchdog_checks: u32,
    /// Times the cleanup found this record stuck and re-drove it.
    #[serde(default)]
    pub redrives: u32,
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

/// The identity of a webhook event for de-duplication (VAPI.md §4).
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
    /// This delivery starts the call's one enrichment chain.
    pub schedule_enrichment: bool,
}

/// Applies one accepted webhook event to the record (or to a new one).
pub fn apply_webhook(
    existing: Option<CallRecord>,
    snap: &CallSnapshot,
    key: &EventKey,
    now: &str,
) -> WebhookOutcome {
    let mut record = existing.unwrap_or_else(|| CallRecord::new(&snap.call_id, now));
    if record.book.seen_events.contains(key.as_str()) {
        return WebhookOutcome {
            record,
            write: false,
            schedule_enrichment: false,
        };
    }
    record.book.seen_events.insert(key.as_str().to_owned());
    merge_snapshot(&mut record.result, snap);

    let r = &mut record.result;
    if r.webhook_received_at.is_none() {
        r.webhook_received_at = Some(now.to_owned());
    }
    if r.data_status == DataStatus::Pending {
        r.data_status = DataStatus::Partial;
    }
    r.updated_at = now.to_owned();

    let schedule = !r.data_status.is_terminal()
        && r.call_status == CallStatus::Ended
        && !record.book.enrichment_scheduled;
    record.book.enrichment_scheduled |= schedule;
    WebhookOutcome {
        record,
        write: true,
        schedule_enrichment: schedule,
    }
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

        let again = apply_webhook(
            Some(first.record.clone()),
            &snap(Some(CallStatus::Ended)),
            &eocr,
            "t2",
        );
        assert!(!again.write && !again.schedule_enrichment);
        assert_eq!(again.record, first.record);

        // status-update(ended) after the report: recorded, but no second chain.
        let su = apply_webhook(
            Some(first.record),
            &snap(Some(CallStatus::Ended)),
            &EventKey::status_update("ended"),
            "t3",
        );
        assert!(su.write && !su.schedule_enrichment);
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
        assert!(!late.schedule_enrichment);
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
