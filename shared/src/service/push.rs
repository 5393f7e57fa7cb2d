//! Pushing a call's completion events to its `callbackUrl` (api.md §8 "Push"), at least once, one
//! `webhook-id` per event. The rules are in [`crate::domain::push`]; this file does the I/O.
//!
//! ## Nothing lost, nothing made twice
//! - **Making an event** ([`PushService::emit`]) happens from committed state only: a settle
//!   commits the record owing its event and makes it right after (`super::owed`); a `persist` job
//!   makes `call.updated` from late data already committed. It keeps the event in the events table
//!   (a conditional create: the id is derived from the data, so a step run again makes the same
//!   event, not a second one) and queues its first delivery job. If either fails, the step is
//!   retried through SQS, or the cleanup re-drives the record still owing the event.
//! - **Delivering** ([`PushService::deliver`]) is a `push` job, `{callId, eventId, attempt}`, on
//!   the push queue (`PushService::queue`): a queue and event source of their own, so that a
//!   receiver that hangs holds only push batches, never a call's enrichment (api.md §9). Job `n` is
//!   the `n`th attempt; it POSTs the event and records the attempt with one conditional write
//!   (the event must still have `n - 1` attempts and be pending), then queues job `n + 1` for the
//!   retry, if one is due. A job whose attempt is already recorded only makes sure its follow-up
//!   is queued (the queue send may have failed after the write), so duplicates converge on the
//!   conditional write instead of multiplying.
//! - **Retries** back off exponentially with jitter over hours (`CALLBACK_RETRY_DELAYS`). SQS
//!   delays stop at 900 s, so a job that arrives before its event's `nextAttemptAt` is queued again
//!   for the rest of the wait. A 2xx ends it, a 410 stops it (`gone`), and an event out of attempts
//!   is `failed`: dead-lettered in the events table, counted (`CallbackDeadLettered`, alarmed) and
//!   redeliverable by an operator ([`super::redeliver::Redelivery`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::domain::callback_host::CallbackHosts;
use crate::domain::push::{
    check_callback_url, event_id, retry_delay, verdict, CallEvent, EventType, SigningSecret,
    Verdict,
};
use crate::domain::{to_iso, CallResult};
use crate::metrics::Metrics;
use crate::ports::{
    CallbackSender, Clock, DeliveryAttempt, EnrichmentJob, EnrichmentQueue, EventBus, JobKind,
    PushRecord, PushState, PushStore, QueueError, StoreError, MAX_QUEUE_DELAY,
};

pub struct PushService {
    pub store: Arc<dyn PushStore>,
    /// The push queue: every job this service queues goes there.
    pub queue: Arc<dyn EnrichmentQueue>,
    pub sender: Arc<dyn CallbackSender>,
    /// Signs callbacks; `None`: no callback URLs here, only the bus.
    pub secret: Option<SigningSecret>,
    /// Every event is also published here (EventBridge), before the step that makes it goes on.
    pub bus: Option<Arc<dyn EventBus>>,
    pub clock: Arc<dyn Clock>,
    /// `CALLBACK_RETRY_DELAYS`: the wait before each retry; its length is the retry budget.
    pub retry_delays: Vec<Duration>,
    /// Which hosts callbacks may go to (public ones; loopback too in the local runner): checked
    /// before an event is made and before each attempt, and by the sender when it connects.
    pub hosts: CallbackHosts,
    /// A number in `[-1, 1]` scaling each retry's jitter (random in production, fixed in tests).
    pub jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("events table: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("event bus: {0}")]
    Bus(String),
}

/// What a push job came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Attempted; the event is now in this state.
    Attempted(PushState),
    /// Not due yet: queued again for the rest of its wait.
    Waiting,
    /// Nothing to do (unknown or settled event, stale job, or another delivery won the race).
    Skipped(&'static str),
}

/// Random jitter in `[-1, 1]` (from the OS-seeded RNG behind UUID v4).
pub fn random_jitter() -> f64 {
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    (r as f64 / u64::MAX as f64) * 2.0 - 1.0
}

/// Job `attempt` of delivering `event_id`.
pub(crate) fn push_job(call_id: &str, event_id: &str, attempt: u32) -> EnrichmentJob {
    EnrichmentJob {
        call_id: call_id.to_owned(),
        attempt,
        kind: JobKind::Push,
        event_id: Some(event_id.to_owned()),
    }
}

impl PushService {
    /// Whether settling `result` makes an event here (a bus, or a callback URL to sign for):
    /// only then does a settle commit owing one.
    pub fn makes_events_for(&self, result: &CallResult) -> bool {
        self.bus.is_some() || (self.secret.is_some() && result.callback_url.is_some())
    }

    /// Makes `kind`'s event for `result`: keeps it (the outbox: its body is fixed from then on),
    /// publishes the kept body to the bus, if there is one, and, if the call has a callback
    /// URL, queues its delivery. Made again (a step that runs again, perhaps after late data
    /// changed the record), the kept event stands: the bus gets the same body again, never
    /// another body under the same id.
    pub async fn emit(&self, result: &CallResult, kind: EventType) -> Result<(), PushError> {
        let Some(kept) = self.make(result, kind).await? else {
            return Ok(());
        };
        if kind != EventType::Updated && kept.event.data.updated_at != result.updated_at {
            // Settled before with other data (a replay re-enriched the call): the settling event
            // stands as receivers have it, and the corrected data goes out as an update.
            self.make(result, EventType::Updated).await?;
        }
        Ok(())
    }

    /// [`Self::emit`]'s one event; the kept one when it was made before.
    async fn make(
        &self,
        result: &CallResult,
        kind: EventType,
    ) -> Result<Option<PushRecord>, PushError> {
        let url = self.callback_url(result);
        if url.is_none() && self.bus.is_none() {
            return Ok(None);
        }
        let id = event_id(result, kind);
        let now = to_iso(self.clock.now());
        let push = PushRecord {
            event: CallEvent {
                kind,
                id: id.clone(),
                timestamp: result.updated_at.clone(),
                data: result.clone(),
            },
            // A bus-only event is kept to fix its body; it has nothing to deliver by HTTP.
            state: if url.is_some() {
                PushState::Pending
            } else {
                PushState::Delivered
            },
            next_attempt_at: url.is_some().then(|| now.clone()),
            url: url.unwrap_or_default(),
            attempts: Vec::new(),
            round_start: 0,
        };
        let created = self.store.create(&push).await?;
        if created {
            info!(call_id = %result.call_id, event_id = %id, kind = kind.as_str(), "event made");
            self.publish(&push).await?;
            if push.state == PushState::Pending {
                let job = push_job(&result.call_id, &id, 1);
                self.queue.schedule(&job, Duration::ZERO).await?;
            }
            return Ok(None);
        }
        // Made before (this step runs again): send what was kept, in case that was lost.
        let kept = self.store.get(&result.call_id, &id).await?;
        if let Some(kept) = &kept {
            self.resend(kept).await?;
        }
        Ok(kept)
    }

    /// Where `result`'s events are POSTed, if anywhere.
    fn callback_url(&self, result: &CallResult) -> Option<String> {
        let url = result.callback_url.as_deref()?;
        if self.secret.is_none() {
            warn!(call_id = %result.call_id, "callback URL but no CALLBACK_SIGNING_SECRET; not pushed");
            return None;
        }
        if let Err(why) = check_callback_url(url, self.hosts) {
            // Only a URL read back from Vapi's metadata can get here; the initiator refuses these.
            warn!(call_id = %result.call_id, reason = %why, "callback URL refused; no event pushed");
            self.metrics.count("CallbackUrlRefused", 1, &[]);
            return None;
        }
        Some(url.to_owned())
    }

    /// Publishes a kept event to the bus, if there is one. At least once: a failure fails the
    /// step, whose retry publishes the kept body again (same id, same body).
    async fn publish(&self, kept: &PushRecord) -> Result<(), PushError> {
        match &self.bus {
            Some(bus) => bus.publish(&kept.event).await.map_err(PushError::Bus),
            None => Ok(()),
        }
    }

    /// Sends a kept event again where it may have been lost: to the bus, and, while it is still
    /// pending, as its next delivery job (a send that failed after the event was kept).
    /// Duplicate jobs converge on the conditional write of the attempt.
    pub async fn resend(&self, kept: &PushRecord) -> Result<(), PushError> {
        self.publish(kept).await?;
        if kept.state != PushState::Pending {
            return Ok(());
        }
        let next = push_job(
            &kept.event.data.call_id,
            &kept.event.id,
            kept.attempts.len() as u32 + 1,
        );
        self.queue.schedule(&next, Duration::ZERO).await?;
        Ok(())
    }

    /// Handles one `push` job. `Err`: report the message failed, so SQS delivers it again.
    pub async fn deliver(&self, job: &EnrichmentJob) -> Result<Delivery, PushError> {
        let Some(id) = job.event_id.as_deref() else {
            return Ok(Delivery::Skipped("no_event_id"));
        };
        let Some(push) = self.store.get(&job.call_id, id).await? else {
            warn!(
                event_id = id,
                "push job for an event that is not kept (expired?)"
            );
            return Ok(Delivery::Skipped("unknown_event"));
        };
        if push.state != PushState::Pending {
            return Ok(Delivery::Skipped("settled"));
        }
        let done = push.attempts.len() as u32;
        let now = self.clock.now();
        let due = push.next_attempt_at.as_deref().and_then(parse_iso);
        if job.attempt == done && due.is_some() {
            // Our attempt is recorded; its follow-up's send may have been lost: queue it again.
            self.wait_for(&push, done + 1, now).await?;
            return Ok(Delivery::Waiting);
        }
        if job.attempt != done + 1 {
            return Ok(Delivery::Skipped("stale"));
        }
        if due.is_some_and(|d| d > now) {
            self.wait_for(&push, job.attempt, now).await?;
            return Ok(Delivery::Waiting);
        }

        let answer = self.post(&push).await;
        let at = self.clock.now();
        let outcome = verdict(answer.status);
        let (state, next) = match outcome {
            Verdict::Delivered => (PushState::Delivered, None),
            Verdict::Gone => (PushState::Gone, None),
            Verdict::Retry => {
                let in_round = job.attempt + 1 - push.round_start;
                match retry_delay(&self.retry_delays, in_round, (self.jitter)() * 0.2) {
                    Some(wait) => (PushState::Pending, Some(at + to_chrono(wait))),
                    None => (PushState::Failed, None),
                }
            }
        };
        let attempt = DeliveryAttempt {
            attempt: job.attempt,
            at: to_iso(at),
            status: answer.status,
            latency_ms: u64::try_from(answer.latency.as_millis()).unwrap_or(u64::MAX),
            error: answer.error.clone(),
        };
        let next_iso = next.map(to_iso);
        match self
            .store
            .record_attempt(
                &job.call_id,
                id,
                PushState::Pending,
                &attempt,
                state,
                next_iso.as_deref(),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) if !self.landed(&job.call_id, id, &attempt).await? => {
                return Ok(Delivery::Skipped("raced"))
            }
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        self.log_attempt(&push, &attempt, state);
        if let Some(next) = next {
            let wait = (next - at)
                .to_std()
                .unwrap_or_default()
                .min(MAX_QUEUE_DELAY);
            self.queue
                .schedule(&push_job(&job.call_id, id, job.attempt + 1), wait)
                .await?;
        }
        Ok(Delivery::Attempted(state))
    }

    /// Queues job `attempt` for when `push` is due (at most SQS's 900 s from now).
    async fn wait_for(
        &self,
        push: &PushRecord,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<(), PushError> {
        let due = push.next_attempt_at.as_deref().and_then(parse_iso);
        let wait = due
            .and_then(|d| (d - now).to_std().ok())
            .unwrap_or_default()
            .min(MAX_QUEUE_DELAY);
        let job = push_job(&push.event.data.call_id, &push.event.id, attempt);
        self.queue.schedule(&job, wait).await?;
        Ok(())
    }

    async fn post(&self, push: &PushRecord) -> crate::ports::CallbackAnswer {
        if let Err(why) = check_callback_url(&push.url, self.hosts) {
            return crate::ports::CallbackAnswer {
                status: None,
                error: Some(format!("callback URL refused: {why}")),
                latency: Duration::ZERO,
            };
        }
        let Some(secret) = &self.secret else {
            return crate::ports::CallbackAnswer {
                status: None,
                error: Some("no CALLBACK_SIGNING_SECRET to sign with".into()),
                latency: Duration::ZERO,
            };
        };
        let body = serde_json::to_vec(&push.event).expect("events serialise");
        let ts = self.clock.now().timestamp();
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("webhook-id", push.event.id.clone()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", secret.sign(&push.event.id, ts, &body)),
        ];
        self.sender.post(&push.url, &headers, &body).await
    }

    /// Whether `attempt` is recorded as this job made it: a write that landed and lost only its
    /// answer (the SDK's retry then met its own condition) reports a conflict. Taken for a race,
    /// the job was dropped and the event stayed pending with no job for ever. A twin job (a
    /// duplicate SQS delivery) records an attempt of its own time and latency, and the rare twin
    /// identical to the millisecond only makes a second chain, which at-least-once allows.
    async fn landed(
        &self,
        call_id: &str,
        event_id: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, PushError> {
        let kept = self.store.get(call_id, event_id).await?;
        Ok(kept.is_some_and(|p| {
            p.attempts.len() == attempt.attempt as usize && p.attempts.last() == Some(attempt)
        }))
    }

    fn log_attempt(&self, push: &PushRecord, a: &DeliveryAttempt, state: PushState) {
        let (call_id, event_id) = (&push.event.data.call_id, &push.event.id);
        self.metrics
            .count("CallbackAttempts", 1, &[("state", state.as_str())]);
        match state {
            PushState::Delivered => {
                self.metrics
                    .millis("CallbackLatency", a.latency_ms as f64, &[]);
                info!(%call_id, %event_id, attempt = a.attempt, status = a.status, "event delivered")
            }
            PushState::Pending => {
                warn!(%call_id, %event_id, attempt = a.attempt, status = a.status,
                error = a.error.as_deref().unwrap_or(""), "event delivery failed; will retry")
            }
            PushState::Gone => {
                warn!(%call_id, %event_id, "receiver answered 410 Gone; event dropped")
            }
            PushState::Failed => {
                self.metrics.count("CallbackDeadLettered", 1, &[]);
                error!(%call_id, %event_id, attempts = a.attempt, "event out of attempts; dead-lettered")
            }
        }
    }
}

fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
