//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver`: an operator sends a delivered, gone or
//! failed event again. The event is reopened (pending, due now, a fresh round of retries) and its
//! next delivery job queued; the enrichment function's push jobs do the rest. A queue send that
//! fails puts the event back as it was and answers 503, so the operator's retry is not refused as
//! "still being delivered"; a pending event stalled with no live job is redeliverable too
//! ([`STALLED_AFTER`]). Apart from
//! [`super::push::PushService`], so the function that serves it needs neither the signing secret
//! nor an HTTP sender.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::push::push_job;
use crate::domain::to_iso;
use crate::ports::{Clock, EnrichmentQueue, PushRecord, PushState, PushStore, StoreError};

/// How long past its `nextAttemptAt` a pending event must be before no delivery job can still
/// be alive for it. A job is queued to become visible by the event's due time (SQS delays are
/// capped to it), and a job that keeps failing is received again after the queue's visibility
/// timeout (180 s in the template) up to `maxReceiveCount` (5) times before it is parked: 15
/// minutes in all. Past that the event is stuck (its job's send failed, or the job was parked),
/// and an operator's redelivery queues a new one instead of answering 409 until it expires.
pub const STALLED_AFTER: Duration = Duration::from_secs(15 * 60);

pub struct Redelivery {
    pub store: Arc<dyn PushStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub clock: Arc<dyn Clock>,
}

/// Why an operator's redelivery was not started.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no event {0}")]
    NotFound(String),
    #[error("event {0} is still being delivered")]
    Pending(String),
    /// Published to the event bus only: there is no callback to send it to.
    #[error("event {0} went to the event bus only; it has no callback URL to redeliver to")]
    BusOnly(String),
    /// The delivery job could not be queued; the event is as it was, so a retry can start it.
    #[error("event {0}: its delivery was not queued (the queue failed); redeliver it again")]
    NotQueued(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for RedeliverError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl Redelivery {
    /// Sends a delivered, gone or failed event again, with a fresh retry budget; or, for a
    /// pending event stalled past [`STALLED_AFTER`], queues its overdue attempt again.
    pub async fn redeliver(&self, event_id: &str) -> Result<PushRecord, RedeliverError> {
        let not_found = || RedeliverError::NotFound(event_id.to_owned());
        let call_id = self.store.find(event_id).await?.ok_or_else(not_found)?;
        let push = self
            .store
            .get(&call_id, event_id)
            .await?
            .ok_or_else(not_found)?;
        if push.url.is_empty() {
            return Err(RedeliverError::BusOnly(event_id.to_owned()));
        }
        let attempt = push.attempts.len() as u32 + 1;
        let now = self.clock.now();
        if push.state == PushState::Pending {
            if !stalled(&push, now) {
                return Err(RedeliverError::Pending(event_id.to_owned()));
            }
            // Its attempt is recorded by one conditional write, so should a job be alive after
            // all, the two converge on it.
            self.send(&call_id, event_id, attempt).await?;
            info!(%call_id, event_id, attempt, "stalled event's delivery queued again");
            return Ok(push);
        }
        let now = to_iso(now);
        match self.store.reopen(&call_id, event_id, &now).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(RedeliverError::Pending(event_id.to_owned())),
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.send(&call_id, event_id, attempt).await {
            // Put the event back as it was, so the operator's retry is not refused as "still
            // being delivered". Should that fail too, the event is stalled and a redelivery
            // after STALLED_AFTER queues it.
            let back = self
                .store
                .restore(&call_id, event_id, push.state, push.round_start, &now)
                .await;
            if let Err(why) = back {
                warn!(%call_id, event_id, error = %why, "reopened event not restored after the failed send");
            }
            return Err(e);
        }
        info!(%call_id, event_id, "event redelivery requested");
        let mut reopened = push;
        reopened.state = PushState::Pending;
        reopened.round_start = attempt - 1;
        reopened.next_attempt_at = Some(now);
        Ok(reopened)
    }

    async fn send(
        &self,
        call_id: &str,
        event_id: &str,
        attempt: u32,
    ) -> Result<(), RedeliverError> {
        self.queue
            .schedule(&push_job(call_id, event_id, attempt), Duration::ZERO)
            .await
            .map_err(|e| {
                warn!(%call_id, event_id, error = %e, "redelivery job not queued");
                RedeliverError::NotQueued(event_id.to_owned())
            })
    }
}

/// Pending, and due longer ago than any live job could take to run.
fn stalled(push: &PushRecord, now: DateTime<Utc>) -> bool {
    let due = push
        .next_attempt_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let grace = chrono::Duration::from_std(STALLED_AFTER).expect("minutes fit");
    // Pending with no due time is never written; if it were, no job could be waiting for it.
    due.is_none_or(|d| d.with_timezone(&Utc) + grace <= now)
}
