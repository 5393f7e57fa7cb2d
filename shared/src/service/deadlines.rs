//! When an unfinished record becomes the cleanup's business: the time by which it should have
//! moved on, plus grace. Terminal records have no deadline (they leave the unfinished index).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Timing;
use crate::domain::{CallRecord, CallStatus, DataStatus};

pub fn deadline_for(rec: &CallRecord, now: DateTime<Utc>, t: &Timing) -> Option<DateTime<Utc>> {
    let r = &rec.result;
    if crate::domain::erase::is_erased(rec) {
        // An erase sets its own deadline until it is finished (`service::erase`).
        return None;
    }
    let expected = match r.data_status {
        // A settled record leaves the cleanup's sight, unless its rows still wait for late data
        // or its settling event is still to be made.
        DataStatus::Complete | DataStatus::FetchFailed
            if !rec.book.rows_stale && !rec.book.event_owed =>
        {
            return None
        }
        // The `persist` job (or the settling step) runs at once; the grace covers its redeliveries.
        DataStatus::Complete | DataStatus::FetchFailed => Duration::ZERO,
        // The watchdog should have asked Vapi by then.
        DataStatus::Pending => t.watchdog_delay,
        // The call may still be running: wait for its longest duration.
        DataStatus::Partial if r.call_status != CallStatus::Ended => t.max_call,
        // The enrichment chain should have run every attempt by then.
        DataStatus::Partial | DataStatus::Fetching => t.enrichment_delays.iter().sum(),
    };
    // A record must be looked at before it expires, or a lost message loses the call.
    let span = expected.saturating_add(t.stuck_grace).min(t.deadline_cap);
    let span = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    Some(
        now.checked_add_signed(span)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_by_state() {
        let t = Timing {
            enrichment_delays: vec![Duration::from_secs(3), Duration::from_secs(5)],
            watchdog_delay: Duration::from_secs(900),
            max_call: Duration::from_secs(3600),
            stuck_grace: Duration::from_secs(100),
            deadline_cap: Duration::from_secs(3000),
            claim_lease: Duration::from_secs(60),
        };
        let now = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        let at = |ds, cs| {
            let mut r = CallRecord::new("c", "t");
            r.result.data_status = ds;
            r.result.call_status = cs;
            deadline_for(&r, now, &t).map(|d| d.timestamp() - now.timestamp())
        };
        assert_eq!(at(DataStatus::Pending, CallStatus::Queued), Some(1000));
        assert_eq!(at(DataStatus::Partial, CallStatus::InProgress), Some(3000));
        assert_eq!(at(DataStatus::Partial, CallStatus::Ended), Some(108));
        assert_eq!(at(DataStatus::Fetching, CallStatus::Ended), Some(108));
        assert_eq!(at(DataStatus::Complete, CallStatus::Ended), None);
        assert_eq!(at(DataStatus::FetchFailed, CallStatus::Ended), None);
        // Late data its rows do not hold yet keeps a settled record in the cleanup's sight.
        let mut stale = CallRecord::new("c", "t");
        stale.result.data_status = DataStatus::FetchFailed;
        stale.book.rows_stale = true;
        assert_eq!(
            deadline_for(&stale, now, &t).map(|d| d.timestamp() - now.timestamp()),
            Some(100)
        );
        // So does a settle whose event is not made yet.
        let mut owed = CallRecord::new("c", "t");
        owed.result.data_status = DataStatus::Complete;
        owed.book.event_owed = true;
        assert_eq!(
            deadline_for(&owed, now, &t).map(|d| d.timestamp() - now.timestamp()),
            Some(100)
        );
        // Past the cap, the cap: the cleanup must see the record before it expires.
        let capped = Timing {
            deadline_cap: Duration::from_secs(500),
            ..t.clone()
        };
        let mut r = CallRecord::new("c", "t");
        r.result.data_status = DataStatus::Pending;
        assert_eq!(
            deadline_for(&r, now, &capped).map(|d| d.timestamp() - now.timestamp()),
            Some(500)
        );
    }
}
