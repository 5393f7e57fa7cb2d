//! The settling event a committed settle owes ([`Bookkeeping::event_owed`]).
//!
//! A settle commits the record with `event_owed` set; only then is its event (`call.completed` or
//! `call.failed`) made, from the record as committed, and the flag cleared. So a receiver only
//! ever gets a state the record really had, and a settle that loses its race (to a richer
//! report, or the cleanup to the enrichment) makes no event at all. Until the flag is cleared
//! the record keeps a deadline: a failure after the commit is made good by the step's retry or
//! by the cleanup's `persist` re-drive, which make the same event again (same data, same id).
//!
//! [`Bookkeeping::event_owed`]: crate::domain::Bookkeeping::event_owed

use chrono::{DateTime, Utc};

use super::push::PushService;
use super::{deadline_for, WRITE_RETRIES};
use crate::config::Timing;
use crate::domain::push::EventType;
use crate::domain::CallRecord;
use crate::ports::{CallStore, StoreError};

/// Makes the event `record` (committed at `version` with `event_owed`) owes, then clears the
/// flag. `Err`: the event or the write failed; the flag stays for a retry or the cleanup.
pub(crate) async fn pay(
    store: &dyn CallStore,
    push: &PushService,
    timing: &Timing,
    now: DateTime<Utc>,
    mut record: CallRecord,
    mut version: u64,
) -> Result<(), String> {
    if let Some(kind) = EventType::on_settle(record.result.data_status) {
        push.emit(&record.result, kind)
            .await
            .map_err(|e| e.to_string())?;
    }
    for _ in 0..WRITE_RETRIES {
        record.book.event_owed = false;
        let deadline = deadline_for(&record, now, timing);
        match store.put(&record, Some(version), deadline).await {
            Ok(_) => return Ok(()),
            // Late data landed since the settle: it carries the flag on and has its own
            // `call.updated`; the settling event is made, so only the flag is left to clear.
            Err(StoreError::Conflict) => match store.get(&record.result.call_id).await {
                Ok(Some(v)) if v.record.book.event_owed => {
                    (record, version) = (v.record, v.version)
                }
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            },
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the record kept changing under concurrent writes".into())
}
