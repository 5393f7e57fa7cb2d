//! `POST /api/v1/vapi/callbacks/{eventId}/redeliver`: an operator sends a delivered, gone or
//! failed event again. The event is reopened (pending, due now, a fresh round of retries) and its
//! next delivery job queued; the enrichment function's push jobs do the rest. Apart from
//! [`super::push::PushService`], so the function that serves it needs neither the signing secret
//! nor an HTTP sender.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::push::push_job;
use crate::domain::to_iso;
use crate::ports::{Clock, EnrichmentQueue, PushRecord, PushState, PushStore, StoreError};

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
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for RedeliverError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl Redelivery {
    /// Sends a delivered, gone or failed event again, with a fresh retry budget.
    pub async fn redeliver(&self, event_id: &str) -> Result<PushRecord, RedeliverError> {
        let not_found = || RedeliverError::NotFound(event_id.to_owned());
        let call_id = self.store.find(event_id).await?.ok_or_else(not_found)?;
        let push = self
            .store
            .get(&call_id, event_id)
            .await?
            .ok_or_else(not_found)?;
        if push.state == PushState::Pending {
            return Err(RedeliverError::Pending(event_id.to_owned()));
        }
        let now = to_iso(self.clock.now());
        match self.store.reopen(&call_id, event_id, &now).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(RedeliverError::Pending(event_id.to_owned())),
            Err(e) => return Err(e.into()),
        }
        let attempt = push.attempts.len() as u32 + 1;
        self.queue
            .schedule(&push_job(&call_id, event_id, attempt), Duration::ZERO)
            .await
            .map_err(|e| RedeliverError::Unavailable(e.to_string()))?;
        info!(%call_id, event_id, "event redelivery requested");
        let mut reopened = push;
        reopened.state = PushState::Pending;
        reopened.round_start = attempt - 1;
        reopened.next_attempt_at = Some(now);
        Ok(reopened)
    }
}
