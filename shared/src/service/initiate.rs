//! Starting a call: validate the request strictly, place it with Vapi at most once per
//! idempotency key, write the `pending` record and schedule the watchdog that notices a call
//! whose webhooks never come.
//!
//! ## A key never places two calls (api.md §8, "idempotency in doubt")
//! The key is taken before Vapi is asked, by an [`Attempt`] whose id travels in the call's
//! metadata (`ringbackAttemptId`). Then:
//! - Vapi answers with the call: it is recorded, and the answer saved under the key;
//! - Vapi refuses (a 4xx): nothing was placed, the key is released, the client gets 502;
//! - no answer to trust (a timeout, a 5xx, a reset after sending, or the process died): the call
//!   may exist, so the key stays held. ringback looks for the call (`GET /call` by phone number
//!   and creation window, matching the attempt id) and adopts it when found; otherwise the client
//!   gets 503 with `Retry-After`.
//!
//! A repeat with the key gets the saved answer; else it looks for the holder's call in Vapi
//! (found: adopted, 202). Once [`InitiatorService::in_doubt_after`] has passed since the holder's
//! attempt began, its `POST /call` can no longer land: a call not found then certainly does not
//! exist, and the key passes to a new attempt that places it. Before that, the repeat waits up to
//! `idempotency_wait` for the holder to finish, then gets 409 with `Retry-After`. So a client that
//! retries learns the call id at most `in_doubt_after` after the first attempt began (while Vapi
//! answers the listing), even when the first request's process died.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::placed::{attempt_of, search_window};
use super::{deadline_for, WRITE_RETRIES};
use crate::config::Timing;
use crate::domain::{parse_call_request, to_iso, CallRecord, CallRequest, CallStatus, FieldError};
use crate::metrics::Metrics;
use crate::ports::{
    Attempt, CallStore, Clock, EnrichmentJob, EnrichmentQueue, IdempotencyRecord, IdempotencyStore,
    JobKind, SavedResponse, StoreError, VapiApi, VapiError, MAX_QUEUE_DELAY,
};
use crate::vapi::{create_call_body, CallSettings};

/// Slack on each side of an attempt's creation window, for clock skew between us and Vapi.
const CLOCK_SKEW: Duration = Duration::from_secs(120);

pub struct InitiatorService {
    pub store: Arc<dyn CallStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub queue: Arc<dyn EnrichmentQueue>,
    pub vapi: Arc<dyn VapiApi>,
    pub clock: Arc<dyn Clock>,
    pub settings: CallSettings,
    pub timing: Timing,
    /// How long a repeat waits for the request holding its key before answering 409.
    pub idempotency_wait: Duration,
    /// After this long, an attempt's `POST /call` can no longer create a call (longer than the
    /// Vapi client's own timeout, with slack): a call not found then was never placed.
    pub in_doubt_after: Duration,
    pub metrics: Metrics,
    /// Which `callbackUrl`s a request may carry.
    pub callbacks: Callbacks,
}

/// Whether call requests may ask for pushed events, and to which URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callbacks {
    /// No signing secret is configured: a `callbackUrl` is refused, not silently ignored.
    Off,
    On {
        hosts: crate::domain::callback_host::CallbackHosts,
    },
}

impl Callbacks {
    fn check(self, r: &CallRequest) -> Result<(), FieldError> {
        let Some(url) = r.callback_url.as_deref() else {
            return Ok(());
        };
        let problem = match self {
            Self::Off => "pushed events are not configured on this deployment \
                          (CALLBACK_SIGNING_SECRET); leave callbackUrl out and poll"
                .to_owned(),
            Self::On { hosts } => match crate::domain::push::check_callback_url(url, hosts) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            },
        };
        Err(FieldError {
            path: "$.callbackUrl".into(),
            problem,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitiateError {
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// Another request with this key may still be placing the call.
    #[error("a request with this Idempotency-Key is still placing the call")]
    InProgress { retry_after: Duration },
    /// Vapi refused or failed before placing anything; nothing was written.
    #[error("Vapi could not start the call: {0}")]
    Upstream(String),
    /// The call may have been placed: the client should retry with the same key.
    #[error("{message}")]
    InDoubt {
        retry_after: Duration,
        message: String,
    },
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

/// The idempotency key a request holds, with its attempt.
type Held<'a> = Option<(&'a str, Attempt)>;

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
                InitiateError::Conflict(_) | InitiateError::InProgress { .. } => "conflict",
                InitiateError::Invalid(_) => "invalid",
                InitiateError::InDoubt { .. } => "in_doubt",
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
        self.callbacks
            .check(&request)
            .map_err(|e| InitiateError::Invalid(vec![e]))?;
        let attempt = Attempt::new(self.clock.now());
        let Some(key) = idempotency_key else {
            return self.place(&request, attempt, None).await;
        };
        if key.is_empty() || key.len() > 200 {
            return Err(InitiateError::Invalid(vec![FieldError {
                path: "Idempotency-Key".into(),
                problem: "must be 1-200 characters".into(),
            }]));
        }
        // Keys of serde_json's map are sorted, so the same JSON in another key order hashes the same.
        let hash = hex::encode(Sha256::digest(value.to_string().as_bytes()));
        match self.idempotency.begin(key, &hash, &attempt).await? {
            Ok(()) => {
                self.place(&request, attempt.clone(), Some((key, attempt)))
                    .await
            }
            Err(held) if held.request_hash != hash => Err(InitiateError::Conflict(
                "this Idempotency-Key was used with a different body".into(),
            )),
            Err(held) => self.follow(key, &request, held).await,
        }
    }

    /// A repeat: the saved answer, the holder's call once found, or a new attempt once the
    /// holder's can no longer have placed one.
    async fn follow(
        &self,
        key: &str,
        request: &CallRequest,
        mut held: IdempotencyRecord,
    ) -> Result<Started, InitiateError> {
        let give_up = tokio::time::Instant::now() + self.idempotency_wait;
        let mut looked = false;
        loop {
            if let Some(saved) = held.response {
                info!("repeated request answered from its idempotency record");
                return Ok(saved);
            }
            let Some(attempt) = held.attempt else {
                // A key taken before attempts were recorded: nothing to look for; it expires.
                return Err(InitiateError::InProgress {
                    retry_after: Duration::from_secs(60),
                });
            };
            let certain = self.past_doubt(&attempt);
            if !looked || certain {
                looked = true;
                match self.find(&attempt).await {
                    Ok(Some(call)) => {
                        info!("the call of an earlier attempt found in Vapi; adopting it");
                        return self.adopt(request, &call, Some(key)).await;
                    }
                    Ok(None) if certain => {
                        let next = Attempt::new(self.clock.now());
                        match self.idempotency.reattempt(key, &attempt.id, &next).await {
                            Ok(()) => {
                                info!("the earlier attempt placed no call; placing it now");
                                return self.place(request, next.clone(), Some((key, next))).await;
                            }
                            // Another request took over, or completed: look at the key again.
                            Err(StoreError::Conflict) => looked = false,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok(None) => {}
                    Err(e) if certain => {
                        return Err(InitiateError::InDoubt {
                            retry_after: Duration::from_secs(5),
                            message: format!(
                                "Vapi cannot tell yet whether the call was placed ({e}); retry with the same Idempotency-Key"
                            ),
                        })
                    }
                    Err(_) => {}
                }
            }
            if looked && tokio::time::Instant::now() >= give_up {
                return Err(InitiateError::InProgress {
                    retry_after: self.left(&attempt),
                });
            }
            if looked {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            held = match self.idempotency.lookup(key).await? {
                Some(h) => h,
                // Released (Vapi refused the first request) or expired: start afresh next time.
                None => {
                    return Err(InitiateError::InProgress {
                        retry_after: Duration::from_secs(1),
                    })
                }
            };
        }
    }

    /// Asks Vapi to place the call under `attempt`; `held` is the key this request holds.
    async fn place(
        &self,
        request: &CallRequest,
        attempt: Attempt,
        held: Held<'_>,
    ) -> Result<Started, InitiateError> {
        let key = held.as_ref().map(|(k, _)| *k);
        let body = create_call_body(request, &self.settings, &attempt.id);
        let lost = match self.vapi.create_call(&body).await {
            Ok(created)
                if created
                    .get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()) =>
            {
                // Counted here, not in `adopt`: a repeat that finds the call placed none.
                self.metrics.count("CallsStarted", 1, &[]);
                return self.adopt(request, &created, key).await;
            }
            Ok(_) => "Vapi's answer has no call id".to_owned(),
            Err(VapiError::Transient { message, .. }) => message,
            Err(
                e @ (VapiError::Rejected { .. }
                | VapiError::NotFound
                | VapiError::Unreachable { .. }),
            ) => {
                // Vapi placed nothing: free the key so a retry can run.
                if let Some(k) = key {
                    if let Err(release) = self.idempotency.release(k, &attempt.id).await {
                        warn!(error = %release, "idempotency key not released; it expires with its record");
                    }
                }
                return Err(InitiateError::Upstream(match e {
                    VapiError::Rejected { message, .. } => message,
                    VapiError::NotFound => "Vapi answered 404 to POST /call".into(),
                    other => other.to_string(),
                }));
            }
        };
        // The call may exist: look for it before answering.
        warn!(reason = %lost, "Vapi's answer to POST /call was lost; looking for the call");
        self.metrics.count("CallStartsInDoubt", 1, &[]);
        if let Ok(Some(call)) = self.find(&attempt).await {
            self.metrics.count("CallsStarted", 1, &[]);
            return self.adopt(request, &call, key).await;
        }
        Err(InitiateError::InDoubt {
            retry_after: self.left(&attempt),
            message: match key {
                Some(_) => format!(
                    "Vapi's answer was lost ({lost}): the call may have been placed. \
                     Retry with the same Idempotency-Key to learn its callId; no second call is placed"
                ),
                None => format!(
                    "Vapi's answer was lost ({lost}): the call may have been placed. \
                     Send an Idempotency-Key so that a retry cannot place a second call"
                ),
            },
        })
    }

    /// The call Vapi placed for an attempt, looked for in `GET /call` by phone number and
    /// creation window; `None` when the whole window holds no call of this attempt (however many
    /// calls it holds: `placed::Listing`). A call with our attempt id but another deployment's
    /// identity is not ours.
    async fn find(&self, attempt: &Attempt) -> Result<Option<Value>, VapiError> {
        let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        let doubt = chrono::Duration::from_std(self.in_doubt_after).unwrap_or_default();
        let mut found = None;
        search_window(
            self.vapi.as_ref(),
            &self.settings.phone_number_id,
            attempt.started_at - skew,
            attempt.started_at + doubt + skew,
            |call| {
                let ours =
                    attempt_of(call, &self.settings.deployment_id) == Some(attempt.id.as_str());
                if ours {
                    found = Some(call.clone());
                }
                ours
            },
        )
        .await?;
        Ok(found)
    }

    /// An attempt's `POST /call` can no longer create a call.
    fn past_doubt(&self, attempt: &Attempt) -> bool {
        let doubt = chrono::Duration::from_std(self.in_doubt_after).unwrap_or_default();
        self.clock.now() >= attempt.started_at + doubt
    }

    /// Until the attempt is no longer in doubt (at least a second).
    fn left(&self, attempt: &Attempt) -> Duration {
        let doubt = chrono::Duration::from_std(self.in_doubt_after).unwrap_or_default();
        (attempt.started_at + doubt - self.clock.now())
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }

    /// A call Vapi placed, made ours: its record, its watchdog, and the answer saved under `key`.
    async fn adopt(
        &self,
        request: &CallRequest,
        call: &Value,
        key: Option<&str>,
    ) -> Result<Started, InitiateError> {
        let call_id = call["id"].as_str().unwrap_or_default().to_owned();
        tracing::Span::current().record("call_id", call_id.as_str());
        info!(call_id, "call placed with Vapi");

        // From here on the phone is ringing. Either a record (its deadline keeps it in the
        // cleanup's sight) or the watchdog (its consumer builds the record from Vapi) is enough
        // for the call to be finished.
        let job = EnrichmentJob {
            call_id: call_id.clone(),
            attempt: 1,
            kind: JobKind::Watchdog,
            event_id: None,
        };
        let watchdog_delay = self.timing.watchdog_delay.min(MAX_QUEUE_DELAY);
        // Independent of each other: one round trip for both.
        let (recorded, watched) = tokio::join!(
            self.write_pending(&call_id, request, call),
            self.queue.schedule(&job, watchdog_delay)
        );
        let recorded = match recorded {
            Ok(()) => true,
            Err(e) => {
                warn!(call_id, error = %e, "call record not written; the watchdog or the webhooks will create it");
                false
            }
        };
        let watched = match watched {
            Ok(()) => true,
            Err(e) => {
                warn!(call_id, error = %e, "watchdog not scheduled; the cleanup will check this call");
                false
            }
        };
        if !recorded && !watched {
            // Neither: only its webhooks or the cleanup's reconciliation with Vapi could find it.
            // With a key, the client's retry finds it by its attempt and records it (the key stays
            // uncompleted); a 202 now would end the client's retries.
            self.metrics.count("CallsUnrecorded", 1, &[]);
            if key.is_some() {
                return Err(InitiateError::InDoubt {
                    retry_after: Duration::from_secs(5),
                    message: "the call was placed but could not be recorded yet; retry with the \
                              same Idempotency-Key to get its callId"
                        .into(),
                });
            }
            tracing::error!(call_id, "call placed but neither recorded nor watched");
        }
        let poll = format!("{}/{}", crate::api::CALLS_PATH, call_id);
        let started = SavedResponse {
            status: 202,
            body: json!({"success": true, "data": crate::api::wire::CallAccepted {
                call_id: call_id.clone(),
                status: crate::domain::CallStatus::Queued,
                data_status: crate::domain::DataStatus::Pending,
                poll_url: poll.clone(),
            }}),
            headers: vec![("location".into(), poll)],
        };
        if let Some(k) = key {
            if let Err(e) = self.idempotency.complete(k, &started).await {
                // A repeat finds the call in Vapi by its attempt and answers the same.
                warn!(error = %e, "idempotency record not completed");
            }
        }
        Ok(started)
    }

    /// The record for a call we started. A webhook may have beaten us to it: then the request's
    /// details are added to what the webhook wrote, and its state is kept.
    async fn write_pending(
        &self,
        call_id: &str,
        r: &CallRequest,
        created: &Value,
    ) -> Result<(), InitiateError> {
        for tried in 0..WRITE_RETRIES {
            let now = self.clock.now();
            // A call Vapi has just placed has no record unless a webhook beat us to it: write
            // first (only if none is there) and read only when one was.
            let current = match tried {
                0 => None,
                _ => self.store.get(call_id).await?,
            };
            if current
                .as_ref()
                .is_some_and(|v| crate::domain::erase::is_erased(&v.record))
            {
                // Erased as soon as it was placed: what the client asked for is not written.
                return Ok(());
            }
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
            res.callback_url = r.callback_url.clone();
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
