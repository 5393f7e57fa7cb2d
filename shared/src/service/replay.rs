//! `POST /api/v1/vapi/calls/{id}/replay`: re-apply a call's kept webhooks through today's code
//! ([`crate::domain::replay::rebuild`]) and run enrichment again. Idempotent: the rebuilt record
//! depends only on the kept deliveries and the client's request, enrichment saves the same rows
//! (one interaction log per call), and the settling event keeps its id, so a receiver that has
//! it is not sent it again: the re-enriched record reaches receivers as `call.updated`. The
//! re-enrichment is a fresh chain with the whole attempt budget (`Bookkeeping::chain_start`).

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{deadline_for, WRITE_RETRIES};
use crate::config::Timing;
use crate::domain::replay::{rebuild, KeptEvent};
use crate::domain::{to_iso, CallId, DataStatus};
use crate::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, JobKind, StoreError, WebhookArchive,
};
use crate::vapi::{parse_webhook, WebhookMessage};

pub struct ReplayService {
    pub store: Arc<dyn CallStore>,
    pub archive: Arc<dyn WebhookArchive>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub clock: Arc<dyn Clock>,
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no call {0}: no record and no kept webhooks")]
    NotFound(String),
    /// The call was erased: there is nothing to replay.
    #[error("call {0} was erased at {1}")]
    Erased(String, String),
    /// The call is still being worked on: replaying now would race its enrichment.
    #[error("call {0} is {1}; replay it once it is complete or fetch_failed")]
    Busy(String, &'static str),
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// What a replay started.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub call_id: String,
    /// Kept deliveries re-applied.
    pub events: usize,
    pub data_status: DataStatus,
}

impl ReplayService {
    pub async fn replay(&self, raw_id: &str) -> Result<Replayed, ReplayError> {
        let id = CallId::parse(raw_id).map_err(|_| ReplayError::NotFound(raw_id.to_owned()))?;
        let id = id.as_str();
        for _ in 0..WRITE_RETRIES {
            let current = self.store.get(id).await?;
            if let Some(at) = current
                .as_ref()
                .and_then(|v| v.record.book.erased_at.clone())
            {
                return Err(ReplayError::Erased(id.to_owned(), at));
            }
            if let Some(v) = &current {
                let status = v.record.result.data_status;
                if !status.is_terminal() {
                    return Err(ReplayError::Busy(id.to_owned(), status.as_str()));
                }
            }
            // The archive after the record, on every try: a webhook is kept before it writes
            // the record, so one the record read holds is in this read, and one that lands
            // later makes this try's write lose its race (the next try reads it).
            let events = self.kept(id).await?;
            if current.is_none() && events.is_empty() {
                return Err(ReplayError::NotFound(id.to_owned()));
            }
            let now = self.clock.now();
            let prior = current.as_ref().map(|v| &v.record);
            let record = rebuild(id, prior, &events, &to_iso(now));
            let deadline = deadline_for(&record, now, &self.timing);
            match self
                .store
                .put(&record, current.as_ref().map(|v| v.version), deadline)
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
            // A lost send leaves the record partial with a deadline: the cleanup re-drives it.
            let job = EnrichmentJob {
                call_id: id.to_owned(),
                attempt: record.result.fetch_attempts + 1,
                kind: JobKind::Enrich,
                event_id: None,
            };
            if let Err(e) = self.queue.schedule(&job, Duration::ZERO).await {
                warn!(call_id = id, error = %e, "replay's enrichment job not queued; the cleanup will re-drive the call");
            }
            info!(call_id = id, events = events.len(), "call replayed");
            return Ok(Replayed {
                call_id: id.to_owned(),
                events: events.len(),
                data_status: record.result.data_status,
            });
        }
        Err(ReplayError::Unavailable(
            "the record kept changing under concurrent writes".into(),
        ))
    }

    /// The call's kept webhooks, parsed by today's code (the ones it refuses are skipped).
    async fn kept(&self, id: &str) -> Result<Vec<KeptEvent>, ReplayError> {
        Ok(self
            .archive
            .webhooks(id)
            .await?
            .into_iter()
            .filter_map(|w| match parse_webhook(&w.body) {
                Ok(msg @ WebhookMessage::Call { .. }) => {
                    let key = msg.event_key()?;
                    let WebhookMessage::Call { snapshot, .. } = msg else {
                        return None;
                    };
                    (snapshot.call_id == id).then_some(KeptEvent {
                        snapshot: *snapshot,
                        key,
                        received_at: w.received_at,
                    })
                }
                Ok(WebhookMessage::Ignored { .. }) => None,
                Err(e) => {
                    // Kept because it was accepted then: today's code refuses it. Say so.
                    warn!(call_id = id, webhook = %w.id, error = %e, "kept webhook no longer parses; skipped");
                    None
                }
            })
            .collect())
    }
}
