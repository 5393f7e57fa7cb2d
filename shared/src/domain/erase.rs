//! Erasing a call: what its tombstone keeps, and for how long.
//!
//! An erased call's record is replaced by a **tombstone**: the same item, holding no call data,
//! only what the other tables need to stay consistent (the call id, when it was created and
//! started, its provider and service request ids, the state it had) and when it was erased
//! ([`super::Bookkeeping::erased_at`]). Every path that could write the call again reads or
//! conditions on the record first (webhooks, enrichment, persist and push jobs, replay, the
//! initiator, the cleanup's reconciliation and revival), so the tombstone is what stops them.
//! It is kept for [`tombstone_lifetime`]: longer than anything that could bring the data back.

use std::time::Duration;

use super::{CallRecord, CallResult};

/// SQS keeps a message at most 14 days: no job queued for the call, nor one parked in a
/// dead-letter queue and redriven, can outlive it.
pub const MAX_QUEUED: Duration = Duration::from_secs(14 * 24 * 3600);
/// Slack past the longest of those spans (clock skew, a last late retry).
const SLACK: Duration = Duration::from_secs(24 * 3600);

/// How long a tombstone stays: past the kept history's retention (`EVENT_RETENTION_DAYS`, which
/// also bounds every pushed event's retries), the record lifetime (`RESULT_TTL_SECONDS`, which
/// bounds the reconciliation's look back at Vapi), and the longest a queued job can wait, plus a
/// day. Vapi's own webhook retries end within minutes.
pub fn tombstone_lifetime(event_retention: Duration, result_ttl: Duration) -> Duration {
    event_retention.max(result_ttl).max(MAX_QUEUED) + SLACK
}

/// The record's tombstone, erased at `now`.
pub fn tombstone(rec: &CallRecord, now: &str) -> CallRecord {
    let r = &rec.result;
    let mut t = CallRecord::new(&r.call_id, &r.created_at);
    let kept = &mut t.result;
    kept.call_status = r.call_status;
    kept.data_status = r.data_status;
    kept.status = r.status;
    kept.provider_id = r.provider_id.clone();
    kept.service_request_id = r.service_request_id.clone();
    kept.started_at = r.started_at.clone();
    kept.call_method = r.call_method;
    kept.updated_at = now.to_owned();
    t.book.erased_at = Some(now.to_owned());
    t
}

/// Whether `rec` is a tombstone.
pub fn is_erased(rec: &CallRecord) -> bool {
    rec.book.erased_at.is_some()
}

/// The ids an erase needs when the record itself has expired: the listing summary's.
pub fn from_summary(summary: &crate::search::CallSummary) -> CallRecord {
    let mut rec = CallRecord::new(&summary.call_id, &summary.created_at);
    let r: &mut CallResult = &mut rec.result;
    r.data_status = summary.data_status;
    r.status = summary.status;
    r.call_status = summary.call_status;
    r.provider_id = summary.provider_id.clone();
    r.service_request_id = summary.service_request_id.clone();
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DataStatus, Outcome};

    #[test]
    fn a_tombstone_keeps_ids_and_state_and_no_call_data() {
        let mut rec = CallRecord::new("c1", "2026-12-01T10:00:00.000Z");
        let r = &mut rec.result;
        r.transcript = Some("AI: hello".into());
        r.analysis.summary = Some("booked".into());
        r.provider.phone = Some("+15551234567".into());
        r.provider.name = Some("Ace Plumbing".into());
        r.request.criteria = Some("licensed".into());
        r.callback_url = Some("https://hooks.example/x".into());
        r.recording_url = Some("https://rec.example/x".into());
        r.provider_id = Some("p1".into());
        r.service_request_id = Some("s1".into());
        r.data_status = DataStatus::Complete;
        r.status = Some(Outcome::Completed);
        rec.book.rows_stale = true;
        rec.book.event_owed = true;

        let t = tombstone(&rec, "2026-12-02T00:00:00.000Z");
        assert!(is_erased(&t) && !is_erased(&rec));
        let json = serde_json::to_string(&t.result).unwrap();
        for secret in [
            "hello",
            "booked",
            "+1555",
            "Ace",
            "licensed",
            "hooks.example",
            "rec.example",
        ] {
            assert!(!json.contains(secret), "{secret} kept in {json}");
        }
        assert_eq!(t.result.provider_id.as_deref(), Some("p1"));
        assert_eq!(t.result.service_request_id.as_deref(), Some("s1"));
        assert_eq!(t.result.created_at, "2026-12-01T10:00:00.000Z");
        assert_eq!(t.result.data_status, DataStatus::Complete);
        // Nothing left owed: no job may act on a tombstone.
        assert!(!t.book.rows_stale && !t.book.event_owed && !t.book.enrichment_scheduled);
    }

    #[test]
    fn the_tombstone_outlives_every_way_back() {
        let day = Duration::from_secs(86_400);
        assert_eq!(tombstone_lifetime(7 * day, day), 15 * day);
        assert_eq!(tombstone_lifetime(30 * day, day), 31 * day);
        assert_eq!(tombstone_lifetime(day, 20 * day), 21 * day);
    }
}
