//! `DELETE /api/v1/vapi/calls/{id}`: erase a call everywhere ringback wrote it.
//!
//! In this order, each step idempotent, so a repeat (the client's retry after a 503, or the
//! cleanup, which finds an unfinished erase by its deadline) finishes what a failed one left:
//! 1. the record becomes its tombstone ([`crate::domain::erase`]), in the same transaction as its
//!    parts' and its listing summary's deletes and the counts they move; it carries a deadline
//!    until step 5;
//! 2. the events table: the erasure mark first (every later keep or pushed event is refused on
//!    it), then every kept webhook, pushed event and attempt of the call;
//! 3. the provider row and the interaction log lose their texts, marked erased;
//! 4. (`?vapi=true`) Vapi's copy, `DELETE /call/{id}`, reported apart: ringback's erase does not
//!    depend on it. Not within a day of the call's creation (`later`): a client still retrying the
//!    request that placed it finds its call at Vapi by the attempt id, and a call deleted there
//!    would be placed again;
//! 5. the tombstone's deadline is cleared.
//!
//! Every path that writes a call reads or conditions on what step 1 and 2 leave, so none brings
//! the data back: a webhook, a job, a replay or the cleanup that finds the tombstone stops.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use super::WRITE_RETRIES;
use crate::domain::erase::{from_summary, is_erased, tombstone};
use crate::domain::{to_iso, CallId, CallRecord, CallStatus, DataStatus};
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, ErasureMark, ResultSink, StoreError, VapiApi, VapiError, WebhookArchive,
};
use crate::search::CallIndex;

/// How long an erase may take before the cleanup finishes it.
const FINISH_WITHIN: Duration = Duration::from_secs(300);

pub struct EraseService {
    pub store: Arc<dyn CallStore>,
    /// Finds a call whose record expired by its durable summary; `None`: no listing.
    pub index: Option<Arc<dyn CallIndex>>,
    /// The events table; `None`: no history kept.
    pub archive: Option<Arc<dyn WebhookArchive>>,
    pub sink: Arc<dyn ResultSink>,
    pub vapi: Arc<dyn VapiApi>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    /// How long the tombstone is kept ([`crate::domain::erase::tombstone_lifetime`]).
    pub lifetime: Duration,
    /// How long after its record is written a call may still be in its initiator's hands.
    pub placing: Duration,
    /// How long after a call is created Vapi's copy is kept: a client retrying its request with
    /// the same `Idempotency-Key` finds its call at Vapi, and one deleted there would be placed
    /// again. The key's lifetime (24 h) in a deployment.
    pub vapi_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no call {0}")]
    NotFound(String),
    /// The initiator may still be writing what the client asked for: erasing now would race it.
    #[error("call {call_id} is still being placed; erase it after {retry_after:?}")]
    BeingPlaced {
        call_id: String,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for EraseError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// What Vapi said to `DELETE /call/{id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum VapiDeletion {
    Deleted,
    /// Vapi has no such call (deleted before).
    NotFound,
    /// Not deleted at Vapi; ringback's erase stands. Retry with `?vapi=true`.
    Failed {
        message: String,
    },
    /// Kept at Vapi until `after` (ISO-8601): until then a client retrying the request that placed
    /// the call must find it there, or it would be placed twice. Erase again with `?vapi=true`
    /// after then.
    Later {
        after: String,
    },
}

/// What an erase did.
#[derive(Debug, Clone, PartialEq)]
pub struct Erased {
    pub call_id: String,
    /// When the call was first erased.
    pub erased_at: String,
    /// Kept webhooks, pushed events and their parts deleted by this request.
    pub history_items: u64,
    pub provider_row: bool,
    pub interaction_log: bool,
    /// `None` unless asked for.
    pub vapi: Option<VapiDeletion>,
}

impl EraseService {
    pub async fn erase(&self, raw_id: &str, at_vapi: bool) -> Result<Erased, EraseError> {
        let id = CallId::parse(raw_id).map_err(|_| EraseError::NotFound(raw_id.to_owned()))?;
        let (tomb, version) = self.tombstone(id.as_str()).await?;
        let created = crate::domain::parse_timestamp(&serde_json::Value::String(
            tomb.result.created_at.clone(),
        ));
        let mut done = self.finish(tomb, version).await?;
        if at_vapi {
            let keep = chrono::Duration::from_std(self.vapi_after).unwrap_or_default();
            done.vapi = Some(match created.map(|c| c + keep) {
                Some(after) if after > self.clock.now() => VapiDeletion::Later {
                    after: to_iso(after),
                },
                _ => self.delete_at_vapi(id.as_str()).await,
            });
        }
        Ok(done)
    }

    /// Steps 2, 3 and 5 for a tombstone at `version`; the cleanup calls this for one it finds
    /// overdue.
    pub async fn finish(&self, tomb: CallRecord, version: u64) -> Result<Erased, EraseError> {
        let id = tomb.result.call_id.clone();
        let erased_at = tomb.book.erased_at.clone().unwrap_or_default();
        let until = self.until(&erased_at);
        let history_items = match &self.archive {
            Some(a) => {
                let mark = ErasureMark {
                    erased_at: erased_at.clone(),
                    until,
                };
                a.erase(&id, &mark).await?
            }
            None => 0,
        };
        let rows = self
            .sink
            .erase(&tomb.result)
            .await
            .map_err(|e| EraseError::Unavailable(e.to_string()))?;
        match self.store.erase(&tomb, Some(version), until, None).await {
            // A concurrent erase (or the cleanup) finished it too.
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        info!(call_id = %id, history_items, "call erased");
        Ok(Erased {
            call_id: id,
            erased_at,
            history_items,
            provider_row: rows.provider_row,
            interaction_log: rows.interaction_log,
            vapi: None,
        })
    }

    /// The call's tombstone and its version: written now (step 1), or found.
    async fn tombstone(&self, id: &str) -> Result<(CallRecord, u64), EraseError> {
        for _ in 0..WRITE_RETRIES {
            let now = self.clock.now();
            let (base, expected) = match self.store.get(id).await? {
                Some(v) if is_erased(&v.record) => return Ok((v.record, v.version)),
                Some(v) => {
                    self.placed(&v.record, now)?;
                    (v.record, Some(v.version))
                }
                // The record expired: the durable summary knows the ids its rows are under.
                None => match self.summary(id).await? {
                    Some(rec) => (rec, None),
                    None => return Err(EraseError::NotFound(id.to_owned())),
                },
            };
            let tomb = tombstone(&base, &to_iso(now));
            let finish_by = now + chrono::Duration::from_std(FINISH_WITHIN).unwrap_or_default();
            let until = self.until(&to_iso(now));
            match self
                .store
                .erase(&tomb, expected, until, Some(finish_by))
                .await
            {
                Ok(version) => {
                    self.metrics.count("CallsErased", 1, &[]);
                    return Ok((tomb, version));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EraseError::Unavailable(
            "the record kept changing under concurrent writes".into(),
        ))
    }

    async fn summary(&self, id: &str) -> Result<Option<CallRecord>, EraseError> {
        let Some(index) = &self.index else {
            return Ok(None);
        };
        Ok(index.summary(id).await?.map(|s| from_summary(&s)))
    }

    /// A record the initiator wrote moments ago, with no word from Vapi since: it may still be
    /// adding what the client asked for.
    fn placed(&self, rec: &CallRecord, now: DateTime<Utc>) -> Result<(), EraseError> {
        let r = &rec.result;
        if r.data_status != DataStatus::Pending || r.call_status != CallStatus::Queued {
            return Ok(());
        }
        let created =
            crate::domain::parse_timestamp(&serde_json::Value::String(r.created_at.clone()));
        let Some(age) = created.map(|c| now - c) else {
            return Ok(());
        };
        let placing = chrono::Duration::from_std(self.placing).unwrap_or_default();
        if age >= placing || age < chrono::Duration::zero() {
            return Ok(());
        }
        Err(EraseError::BeingPlaced {
            call_id: r.call_id.clone(),
            retry_after: (placing - age).to_std().unwrap_or_default() + Duration::from_secs(1),
        })
    }

    fn until(&self, erased_at: &str) -> DateTime<Utc> {
        let at = crate::domain::parse_timestamp(&serde_json::Value::String(erased_at.to_owned()))
            .unwrap_or_else(|| self.clock.now());
        at + chrono::Duration::from_std(self.lifetime).unwrap_or(chrono::Duration::MAX)
    }

    async fn delete_at_vapi(&self, id: &str) -> VapiDeletion {
        match self.vapi.delete_call(id).await {
            Ok(()) => VapiDeletion::Deleted,
            Err(VapiError::NotFound) => VapiDeletion::NotFound,
            Err(e) => {
                warn!(call_id = id, error = %e, "call not deleted at Vapi");
                self.metrics.count("VapiDeletesFailed", 1, &[]);
                VapiDeletion::Failed {
                    message: e.to_string(),
                }
            }
        }
    }
}
