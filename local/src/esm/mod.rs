//! What AWS Lambda's SQS event source mapping does, in process, so the enrichment handler the
//! Lambda runs also runs locally, unchanged:
//!
//! - long-poll the queue for batches of up to `batch_size` messages, each hidden for the visibility
//!   timeout, with up to `max_concurrency` batches in flight;
//! - hand each batch to the handler as an [`SqsEvent`] (the records Lambda would send);
//! - delete the messages the handler did not report in `batchItemFailures`; leave the reported
//!   ones to reappear after the visibility timeout, and the source dead-letters them after
//!   `maxReceiveCount` (the queue's job, as on AWS);
//! - a handler `Err` (or panic), or a failure id that names no message of the batch, leaves the
//!   whole batch, as Lambda does.
//!
//! Stopping: when the `shutdown` future completes, no further batch is received, the batches in
//! flight finish (handler, then deletes), and [`run`] returns. A receive still waiting is dropped:
//! [`MemoryQueue::receive`] loses nothing when dropped; an SQS long poll dropped mid-answer only
//! hides its messages for one visibility timeout.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
pub use ringback::adapters::memory_queue::Delivery;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// A receive, delete or visibility change the queue refused.
#[derive(Debug, thiserror::Error)]
#[error("queue source: {0}")]
pub struct SourceError(pub String);

/// The queue side of the event source mapping.
#[async_trait]
pub trait QueueSource: Send + Sync + 'static {
    /// Up to `max` messages, each hidden for `visibility`; waits up to `wait` for the first one.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, SourceError>;
    /// Deletes processed messages by receipt.
    async fn delete(&self, receipts: &[String]) -> Result<(), SourceError>;
    /// Makes messages visible again now (visibility timeout 0).
    async fn release(&self, receipts: &[String]) -> Result<(), SourceError>;
    /// `eventSourceARN` of the records.
    fn event_source_arn(&self) -> String;
    /// `awsRegion` of the records.
    fn aws_region(&self) -> String;
}

/// How the runner polls and hands out batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EsmConfig {
    /// Messages per batch (1..=10, SQS's receive limit).
    pub batch_size: usize,
    /// Long-poll wait of one receive (SQS allows up to 20 s).
    pub wait: Duration,
    /// How long a received message stays hidden: a reported failure reappears after it.
    pub visibility_timeout: Duration,
    /// Batches in flight at once (at least 1).
    pub max_concurrency: usize,
    /// Lambda leaves failed messages for the visibility timeout (`false`, the default); `true`
    /// makes them visible again at once (they still count towards `maxReceiveCount`).
    pub release_failures: bool,
    /// Pause after a failed receive before the next one.
    pub error_backoff: Duration,
}

impl EsmConfig {
    /// For the in-process [`MemoryQueue`]: 1 s polls keep shutdown quick.
    pub fn memory(visibility_timeout: Duration) -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_secs(1),
            visibility_timeout,
            max_concurrency: 2,
            release_failures: false,
            error_backoff: Duration::from_secs(1),
        }
    }

    /// For SQS: 20 s long polls, the fewest requests.
    pub fn sqs(visibility_timeout: Duration) -> Self {
        Self {
            wait: Duration::from_secs(20),
            ..Self::memory(visibility_timeout)
        }
    }
}

impl Default for EsmConfig {
    fn default() -> Self {
        Self::memory(Duration::from_secs(30))
    }
}

/// What one run did, for the log line at stop and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EsmStats {
    /// Batches handed to the handler.
    pub batches: u64,
    /// Messages handed to the handler (a redelivery counts again).
    pub received: u64,
    /// Messages deleted after the handler succeeded for them.
    pub deleted: u64,
    /// Messages left for redelivery (reported failures, failed batches).
    pub failed: u64,
    /// Batches whose handler returned `Err` or panicked.
    pub handler_errors: u64,
}

impl EsmStats {
    fn add(&mut self, other: EsmStats) {
        self.batches += other.batches;
        self.received += other.received;
        self.deleted += other.deleted;
        self.failed += other.failed;
        self.handler_errors += other.handler_errors;
    }
}

/// Runs the event source mapping until `shutdown` completes, then finishes the batches in flight
/// and returns what it did. `handler` is the Lambda's: it gets an [`SqsEvent`] and answers with the
/// failed message ids.
pub async fn run<S, F, Fut, E>(
    source: Arc<S>,
    handler: F,
    config: EsmConfig,
    shutdown: impl Future<Output = ()>,
) -> EsmStats
where
    S: QueueSource + ?Sized,
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SqsBatchResponse, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let config = EsmConfig {
        batch_size: config.batch_size.clamp(1, 10),
        max_concurrency: config.max_concurrency.max(1),
        ..config
    };
    let handler = Arc::new(handler);
    let slots = Arc::new(Semaphore::new(config.max_concurrency));
    let mut in_flight: JoinSet<EsmStats> = JoinSet::new();
    let mut stats = EsmStats::default();
    tokio::pin!(shutdown);
    tracing::debug!(source = %source.event_source_arn(), ?config, "event source mapping started");

    loop {
        while let Some(done) = in_flight.try_join_next() {
            stats.add(batch_stats(done));
        }
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let received = tokio::select! {
            biased;
            () = &mut shutdown => break,
            received = source.receive(config.batch_size, config.wait, config.visibility_timeout) => received,
        };
        match received {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => {
                in_flight.spawn(handle_batch(
                    source.clone(),
                    handler.clone(),
                    batch,
                    config,
                    slot,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "receive failed; retrying");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(config.error_backoff) => {}
                }
            }
        }
    }

    let finishing = in_flight.len();
    if finishing > 0 {
        tracing::debug!(
            batches = finishing,
            "stopping: finishing the batches in flight"
        );
    }
    while let Some(done) = in_flight.join_next().await {
        stats.add(batch_stats(done));
    }
    tracing::debug!(?stats, "event source mapping stopped");
    stats
}

fn batch_stats(done: Result<EsmStats, tokio::task::JoinError>) -> EsmStats {
    done.unwrap_or_else(|e| {
        // The batch task panicked in the handler: its messages stay, as after a crashed Lambda.
        tracing::warn!(error = %e, "batch handler panicked: the batch is left for redelivery");
        EsmStats {
            handler_errors: 1,
            ..EsmStats::default()
        }
    })
}

async fn handle_batch<S, F, Fut, E>(
    source: Arc<S>,
    handler: Arc<F>,
    batch: Vec<Delivery>,
    config: EsmConfig,
    _slot: OwnedSemaphorePermit,
) -> EsmStats
where
    S: QueueSource + ?Sized,
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SqsBatchResponse, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let ids: Vec<&str> = batch.iter().map(|d| d.message_id.as_str()).collect();
    let counts: Vec<u32> = batch.iter().map(|d| d.receive_count).collect();
    tracing::debug!(size = batch.len(), message_ids = ?ids, receive_counts = ?counts, "batch received");
    let mut stats = EsmStats {
        batches: 1,
        received: batch.len() as u64,
        ..EsmStats::default()
    };

    let event = to_event(&batch, &source.event_source_arn(), &source.aws_region());
    let failed: HashSet<String> = match handler(event).await {
        Ok(response) => {
            let reported: HashSet<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            let known: HashSet<&str> = ids.iter().copied().collect();
            if reported.iter().any(|id| !known.contains(id.as_str())) {
                tracing::warn!(reported = ?reported, message_ids = ?ids, "a reported failure names no message of the batch: the whole batch is left for redelivery");
                ids.iter().map(|id| id.to_string()).collect()
            } else {
                reported
            }
        }
        Err(e) => {
            stats.handler_errors = 1;
            tracing::warn!(error = %e, message_ids = ?ids, "handler failed: the whole batch is left for redelivery");
            ids.iter().map(|id| id.to_string()).collect()
        }
    };

    let (left, done): (Vec<&Delivery>, Vec<&Delivery>) =
        batch.iter().partition(|d| failed.contains(&d.message_id));
    if !left.is_empty() {
        let left_ids: Vec<&str> = left.iter().map(|d| d.message_id.as_str()).collect();
        let left_counts: Vec<u32> = left.iter().map(|d| d.receive_count).collect();
        tracing::warn!(message_ids = ?left_ids, receive_counts = ?left_counts, "messages failed: redelivered after the visibility timeout");
        stats.failed = left.len() as u64;
        if config.release_failures {
            let receipts: Vec<String> = left.iter().map(|d| d.receipt.clone()).collect();
            if let Err(e) = source.release(&receipts).await {
                tracing::warn!(error = %e, message_ids = ?left_ids, "could not release failed messages");
            }
        }
    }
    if !done.is_empty() {
        let receipts: Vec<String> = done.iter().map(|d| d.receipt.clone()).collect();
        match source.delete(&receipts).await {
            Ok(()) => stats.deleted = done.len() as u64,
            Err(e) => {
                // Not deleted means delivered again: the handler is idempotent (api.md §4).
                let done_ids: Vec<&str> = done.iter().map(|d| d.message_id.as_str()).collect();
                tracing::warn!(error = %e, message_ids = ?done_ids, "could not delete processed messages");
            }
        }
    }
    stats
}

/// The event Lambda would deliver for `batch`.
pub fn to_event(batch: &[Delivery], event_source_arn: &str, aws_region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|d| {
            let mut record = SqsMessage::default();
            record.message_id = Some(d.message_id.clone());
            record.receipt_handle = Some(d.receipt.clone());
            record.body = Some(d.body.clone());
            record.attributes = HashMap::from([
                (
                    "ApproximateReceiveCount".to_owned(),
                    d.receive_count.to_string(),
                ),
                (
                    "SentTimestamp".to_owned(),
                    d.sent_at.timestamp_millis().to_string(),
                ),
            ]);
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(event_source_arn.to_owned());
            record.aws_region = Some(aws_region.to_owned());
            record
        })
        .collect();
    event
}

mod sources;

pub use sources::{SqsSource, MEMORY_QUEUE_ARN};

#[cfg(test)]
mod tests;
