//! Starting a call: validate the request strictly, place it with Vapi once per idempotency key,
//! write the `pending` record and schedule the watchdog that notices a call whose webhooks never come.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{deadline_for, WRITE_RETRIES};
use crate::config::Timing;
use crate::domain::{parse_call_request, to_iso, CallRecord, CallRequest, CallStatus, FieldError};
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, IdempotencyStore, JobKind, SavedResponse,
    StoreError, VapiApi, VapiError, MAX_QUEUE_DELAY,
};
use crate::vapi::{create_call_body, CallSettings};

pub struct InitiatorService {
    pub store: Arc<dyn CallStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub vapi: Arc<dyn VapiApi>,
    pub clock: Arc<dyn Clock>,
    pub settings: CallSettings,
    pub timing: Timing,
    /// How long a repeat waits for the first request with its key to finish.
    pub idempotency_wait: Duration,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum InitiateError {
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// Vapi refused or failed; nothing was written.
    #[error("Vapi could not start the call: {0}")]
    Upstream(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for InitiateError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The 202 answer, kept whole so a repeat returns exactly the first answer.
pub type Started = SavedResponse;

impl InitiatorService {
    pub async fn start(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<Started, InitiateError> {
        let result = self.start_once(body, idempotency_key).await;
        if let Err(e) = &result {
            let reason = match e {
                InitiateError::Upstream(_) => "upstream",
                InitiateError::Conflict(_) => "conflict",
                InitiateError::Invalid(_) => "invalid",
                InitiateError::Unavailable(_) => "unavailable",
            };
            self.metrics
                .count("CallStartFailures", 1, &[("reason", reason)]);
        }
        result
    }

    async fn start_once(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<Started, InitiateError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            InitiateError::Invalid(vec![FieldError {
                path: "$".into(),
                problem: format!("is not valid JSON: {e}"),
            }])
        })?;
        let request = parse_call_request(&value).map_err(InitiateError::Invalid)?;
        let Some(key) = idempotency_key else {
            return self.place(&request).await;
        };
        if key.is_empty() || key.len() > 200 {
            return Err(InitiateError::Invalid(vec![FieldError {
                path: "Idempotency-Key".into(),
                problem: "must be 1-200 characters".into(),
            }]));
        }
        // Keys of serde_json's map are sorted, so the same JSON in another key order hashes the same.
        let hash = hex::encode(Sha256::digest(value.to_string().as_bytes()));
        let deadline = tokio::time::Instant::now() + self.idempotency_wait;
        loop {
            match self.idempotency.begin(key, &hash).await? {
                Ok(()) => break,
                Err(held) if held.request_hash != hash => {
                    return Err(InitiateError::Conflict(
                        "this Idempotency-Key was used with a different body".into(),
                    ))
                }
                Err(held) => {
                    if let Some(saved) = held.response {
                        info!("repeated request answered from its idempotency record");
                        return Ok(saved);
                    }
                    // The first request is still placing the call: wait for its answer rather than place another.
                    if tokio::time::Instant::now() >= deadline {
                        return Err(InitiateError::Conflict(
                            "a request with this Idempotency-Key is still in progress; retry shortly".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        match self.place(&request).await {
            Ok(started) => {
                if let Err(e) = self.idempotency.complete(key, &started).await {
                    // The call is placed; a repeat would wait, then get 409 rather than a second call.
                    warn!(error = %e, "idempotency record not completed");
                }
                Ok(started)
            }
            Err(e) => {
                if let Err(release) = self.idempotency.release(key).await {
                    warn!(error = %release, "idempotency key not released; it expires with its record");
                }
                Err(e)
            }
        }
    }

    async fn place(&self, request: &CallRequest) -> Result<Started, InitiateError> {
        let body = create_call_body(request, &self.settings);
        let created = self.vapi.create_call(&body).await.map_err(|e| match e {
            VapiError::Rejected { message, .. } => InitiateError::Upstream(message),
            VapiError::NotFound => {
                InitiateError::Upstream("Vapi answered 404 to POST /call".into())
            }
            VapiError::Transient { message, .. } => InitiateError::Upstream(message),
        })?;
        let Some(call_id) = created
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return Err(InitiateError::Upstream(
                "Vapi's answer has no call id".into(),
            ));
        };
        let call_id = call_id.to_owned();
        tracing::Span::current().record("call_id", call_id.as_str());
        info!(call_id, "call placed with Vapi");
        // Counted here, not in `start`: a repeat answered from its idempotency record places no call.
        self.metrics.count("CallsStarted", 1, &[]);

        // From here on the phone is ringing: nothing may fail the request, or the client's retry
        // (with its key released) would dial the provider again. Without a record, the webhooks or
        // the watchdog build one from Vapi's data, the correlation ids included (they travel in
        // the call's metadata).
        if let Err(e) = self.write_pending(&call_id, request, &created).await {
            warn!(call_id, error = %e, "call record not written; its webhooks or the watchdog will create it");
        }

        let job = EnrichmentJob {
            call_id: call_id.clone(),
            attempt: 1,
            kind: JobKind::Watchdog,
        };
        if let Err(e) = self
            .queue
            .schedule(&job, self.timing.watchdog_delay.min(MAX_QUEUE_DELAY))
            .await
        {
            // The record's deadline keeps it in the cleanup's sight, so the call is not lost (unless
            // the record could not be written either: then only its webhooks remain).
            warn!(call_id, error = %e, "watchdog not scheduled; the cleanup will check this call");
        }
        let poll = format!("{}/{}", crate::api::CALLS_PATH, call_id);
        Ok(SavedResponse {
            status: 202,
            body: json!({"success": true, "data": {
                "callId": call_id, "status": "queued", "dataStatus": "pending", "pollUrl": poll,
            }}),
            headers: vec![("location".into(), poll)],
        })
    }

    /// The record for a call we started. A webhook may have beaten us to it: then the request's
    /// details are added to what the webhook wrote, and its state is kept.
    async fn write_pending(
        &self,
        call_id: &str,
        r: &CallRequest,
        created: &Value,
    ) -> Result<(), InitiateError> {
        for _ in 0..WRITE_RETRIES {
            let now = self.clock.now();
            let current = self.store.get(call_id).await?;
            let expected = current.as_ref().map(|v| v.version);
            let mut rec = current
                .map(|v| v.record)
                .unwrap_or_else(|| CallRecord::new(call_id, &to_iso(now)));
            let res = &mut rec.result;
            res.provider.name = Some(r.provider_name.clone());
            res.provider.phone = Some(r.provider_phone.as_str().to_owned());
            res.provider.service = Some(r.service_needed.clone());
            res.provider.location = Some(r.location.clone());
            res.request.criteria = Some(r.user_criteria.clone());
            res.request.urgency = Some(r.urgency.as_str().to_owned());
            res.provider_id = r.provider_id.clone();
            res.service_request_id = r.service_request_id.clone();
            if let Some(s) = created
                .get("status")
                .and_then(Value::as_str)
                .and_then(CallStatus::parse)
            {
                res.call_status = res.call_status.max(s);
            }
            res.updated_at = to_iso(now);
            let deadline = deadline_for(&rec, now, &self.timing);
            match self.store.put(&rec, expected, deadline).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(InitiateError::Unavailable(
            "the call record kept changing under concurrent writes".into(),
        ))
    }
}
