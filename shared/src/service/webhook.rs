//! Ingesting one Vapi server message: authenticate the raw body, read it, apply it to the record
//! with one conditional write, and start the call's enrichment chain the first time it ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use tracing::{info, warn};

use super::{deadline_for, WRITE_RETRIES};
use crate::config::Timing;
use crate::domain::erase::is_erased;
use crate::domain::{apply_webhook, to_iso, DataStatus, WebhookOutcome};
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, JobKind, Keeping, StoreError, StoredWebhook,
    WebhookArchive,
};
use crate::vapi::{parse_webhook, AuthError, PayloadError, WebhookAuth, WebhookMessage};

/// What a kept delivery is filed under.
struct Kept<'a> {
    call_id: &'a str,
    message_type: &'a str,
    scheme: &'static str,
    outcome: &'static str,
}

/// A kept delivery's id: a digest of its body, so the same body sent again (a re-sent signed
/// body, a retry after a 503) is recognised as kept already and not stored twice.
fn body_id(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(body)[..16])
}

pub struct WebhookService {
    /// Where every authenticated delivery is kept raw (`EVENTS_TABLE`); `None`: not kept.
    pub archive: Option<Arc<dyn WebhookArchive>>,
    pub store: Arc<dyn CallStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub clock: Arc<dyn Clock>,
    pub auth: WebhookAuth,
    pub max_bytes: usize,
    pub timing: Timing,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// A type we do not record; nothing stored.
    Ignored { message_type: String },
    /// The call was erased: nothing stored, nothing set off.
    Erased { call_id: String },
    Accepted {
        call_id: String,
        data_status: DataStatus,
        duplicate: bool,
        enrichment_scheduled: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("webhook authentication failed: {0}")]
    Unauthorized(AuthError),
    #[error(transparent)]
    Invalid(#[from] PayloadError),
    /// Storage or queue failed: Vapi should retry (503).
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl WebhookService {
    pub async fn ingest(&self, headers: &HeaderMap, body: &[u8]) -> Result<Ingested, IngestError> {
        let result = self.apply(headers, body).await;
        self.count(&result);
        result
    }

    /// `WebhooksReceived`, then one of `WebhooksAccepted`, `WebhooksDuplicate`, `WebhooksIgnored`,
    /// `WebhooksRejected` (bad input, by `reason`: the error code the caller gets) or `WebhooksFailed`
    /// (our storage or queue was down: an outage, not a misconfigured sender, so it alarms apart).
    fn count(&self, result: &Result<Ingested, IngestError>) {
        let m = &self.metrics;
        m.count("WebhooksReceived", 1, &[]);
        match result {
            Ok(Ingested::Ignored { .. } | Ingested::Erased { .. }) => {
                m.count("WebhooksIgnored", 1, &[])
            }
            Ok(Ingested::Accepted {
                duplicate: true, ..
            }) => m.count("WebhooksDuplicate", 1, &[]),
            Ok(Ingested::Accepted { .. }) => m.count("WebhooksAccepted", 1, &[]),
            Err(IngestError::Unavailable(_)) => m.count("WebhooksFailed", 1, &[]),
            Err(e) => {
                let reason = match e {
                    IngestError::TooLarge { .. } => "payload_too_large",
                    IngestError::Unauthorized(_) => "unauthorized",
                    _ => "invalid_payload",
                };
                m.count("WebhooksRejected", 1, &[("reason", reason)]);
            }
        }
    }

    async fn apply(&self, headers: &HeaderMap, body: &[u8]) -> Result<Ingested, IngestError> {
        if body.len() > self.max_bytes {
            return Err(IngestError::TooLarge {
                size: body.len(),
                limit: self.max_bytes,
            });
        }
        let now = self.clock.now();
        let scheme = self
            .auth
            .scheme_of(headers, body, now.timestamp())
            .map_err(IngestError::Unauthorized)?;
        let msg = parse_webhook(body)?;
        let key = msg.event_key();
        let (kind, snap) = match msg {
            // api.md §2: answered 200 with nothing stored, whatever state the tables are in.
            WebhookMessage::Ignored { message_type } => {
                return Ok(Ingested::Ignored { message_type })
            }
            WebhookMessage::Call { kind, snapshot } => (kind, snapshot),
        };
        let key = key.expect("call events have a key");
        tracing::Span::current().record("call_id", snap.call_id.as_str());

        for _ in 0..WRITE_RETRIES {
            let current = self.store.get(&snap.call_id).await?;
            if current.as_ref().is_some_and(|v| is_erased(&v.record)) {
                info!(call_id = %snap.call_id, "webhook for an erased call: nothing stored");
                return Ok(Ingested::Erased {
                    call_id: snap.call_id,
                });
            }
            let expected = current.as_ref().map(|v| v.version);
            let now_iso = to_iso(now);
            let out = apply_webhook(current.map(|v| v.record), &snap, &key, &now_iso);
            let data_status = out.record.result.data_status;
            if out.write {
                let deadline = deadline_for(&out.record, now, &self.timing);
                match self.store.put(&out.record, expected, deadline).await {
                    Ok(_) => {}
                    // Someone wrote first, or our own write landed and its answer was lost (the
                    // SDK's retry then fails the condition): either way, read and apply again.
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
                info!(call_id = %snap.call_id, event = key.as_str(), ?kind, data_status = data_status.as_str(), "webhook applied");
            } else {
                info!(call_id = %snap.call_id, event = key.as_str(), "duplicate webhook: nothing to change");
            }
            // A failed send answers 503: Vapi's retry finds the event applied, and sends what is
            // still owed (`apply_webhook` asks again until the consumer shows it ran). The send
            // and the keep are independent: one round trip for both.
            let kept = Kept {
                call_id: &snap.call_id,
                message_type: kind.as_str(),
                scheme,
                outcome: match out.write {
                    true => StoredWebhook::APPLIED,
                    false => StoredWebhook::DUPLICATE,
                },
            };
            let (sent, kept) = tokio::join!(
                self.send_jobs(&snap.call_id, &out),
                self.keep(kept, body, now)
            );
            sent.and(kept)?;
            return Ok(Ingested::Accepted {
                call_id: snap.call_id,
                data_status,
                duplicate: !out.write,
                enrichment_scheduled: out.schedule_enrichment,
            });
        }
        Err(IngestError::Unavailable(
            "the record kept changing under concurrent writes".into(),
        ))
    }

    /// Keeps the delivery raw, after what it did is known. A failure answers 503: Vapi's retry
    /// is then kept (as a duplicate), so no delivery the record took goes unkept.
    async fn keep(&self, k: Kept<'_>, body: &[u8], now: DateTime<Utc>) -> Result<(), IngestError> {
        let Some(archive) = &self.archive else {
            return Ok(());
        };
        let w = StoredWebhook {
            call_id: k.call_id.to_owned(),
            id: body_id(body),
            received_at: to_iso(now),
            message_type: k.message_type.to_owned(),
            auth: k.scheme.to_owned(),
            outcome: k.outcome.to_owned(),
            body: body.to_vec(),
        };
        let keeping = archive.keep(&w).await.map_err(|e| {
            warn!(call_id = k.call_id, error = %e, "webhook not kept; asking Vapi to retry");
            IngestError::Unavailable(e.to_string())
        })?;
        match keeping {
            // Erased while this delivery was applied: the record refused it too.
            Keeping::Kept | Keeping::Erased => {}
            Keeping::AlreadyKept => self.metrics.count("WebhooksResent", 1, &[]),
            Keeping::OverBound => {
                warn!(
                    call_id = k.call_id,
                    "call's kept webhooks at their bound; counted, not kept"
                );
                self.metrics.count("WebhooksNotKept", 1, &[]);
            }
        }
        Ok(())
    }

    /// The first enrichment job and the `persist` job the delivery set off (ids only).
    async fn send_jobs(&self, call_id: &str, out: &WebhookOutcome) -> Result<(), IngestError> {
        let jobs = [
            (
                out.schedule_enrichment,
                JobKind::Enrich,
                self.timing.enrichment_delays[0],
            ),
            (out.schedule_persist, JobKind::Persist, Duration::ZERO),
        ];
        for (kind, delay) in jobs.into_iter().filter(|j| j.0).map(|j| (j.1, j.2)) {
            let job = EnrichmentJob {
                call_id: call_id.to_owned(),
                attempt: 1,
                kind,
                event_id: None,
            };
            if let Err(e) = self.queue.schedule(&job, delay).await {
                warn!(call_id, error = %e, ?kind, "job not queued; Vapi's retry will send it again");
                return Err(IngestError::Unavailable(e.to_string()));
            }
        }
        Ok(())
    }
}
