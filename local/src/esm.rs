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
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use chrono::{DateTime, Utc};
pub use ringback::adapters::memory_queue::Delivery;
use ringback::adapters::memory_queue::MemoryQueue;
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
                // Not deleted means delivered again: the handler is idempotent (SPEC §4).
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

// ---- the in-process queue ----

/// `eventSourceARN` of the records from the in-process queue.
pub const MEMORY_QUEUE_ARN: &str = "arn:aws:sqs:local:000000000000:ringback-enrichment";

#[async_trait]
impl QueueSource for MemoryQueue {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        Ok(MemoryQueue::receive(self, max, wait, visibility).await)
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), SourceError> {
        for receipt in receipts {
            // A stale receipt deletes nothing: the message was received again, as on SQS.
            if !MemoryQueue::delete(self, receipt) {
                tracing::debug!(
                    "delete with a stale receipt: the message was received again or is gone"
                );
            }
        }
        Ok(())
    }

    async fn release(&self, receipts: &[String]) -> Result<(), SourceError> {
        for receipt in receipts {
            MemoryQueue::release(self, receipt);
        }
        Ok(())
    }

    fn event_source_arn(&self) -> String {
        MEMORY_QUEUE_ARN.to_owned()
    }

    fn aws_region(&self) -> String {
        "local".to_owned()
    }
}

// ---- SQS ----

/// An SQS queue through the SDK (moto locally, or AWS).
#[derive(Debug, Clone)]
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    arn: String,
    region: String,
}

impl SqsSource {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        let region = client
            .config()
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
        let arn = arn_from_url(&queue_url, &region);
        Self {
            client,
            queue_url,
            arn,
            region,
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// `https://sqs.us-east-1.amazonaws.com/123456789012/name` → `arn:aws:sqs:us-east-1:123456789012:name`.
fn arn_from_url(queue_url: &str, region: &str) -> String {
    let path = queue_url
        .split_once("://")
        .map_or(queue_url, |(_, rest)| rest);
    let mut segments = path.split('/').skip(1).filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (Some(account), Some(name)) => format!("arn:aws:sqs:{region}:{account}:{name}"),
        _ => format!(
            "arn:aws:sqs:{region}:000000000000:{}",
            path.rsplit('/').next().unwrap_or_default()
        ),
    }
}

/// Whole seconds for SQS, rounded up, within `0..=max`.
fn seconds(d: Duration, max: u64) -> i32 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).min(max) as i32
}

#[async_trait]
impl QueueSource for SqsSource {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(seconds(wait, 20))
            .visibility_timeout(seconds(visibility, 43_200))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| SourceError(format!("ReceiveMessage: {}", DisplayErrorContext(&e))))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let attribute = |name| m.attributes().and_then(|a| a.get(&name));
                let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse().ok())
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .unwrap_or_else(Utc::now);
                Some(Delivery {
                    message_id: m.message_id()?.to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count,
                    sent_at,
                })
            })
            .collect())
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), SourceError> {
        let mut failed = Vec::new();
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SourceError(format!("DeleteMessageBatch entry: {e}")))?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    SourceError(format!("DeleteMessageBatch: {}", DisplayErrorContext(&e)))
                })?;
            failed.extend(out.failed().iter().map(|f| f.code().to_owned()));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(SourceError(format!(
                "DeleteMessageBatch: {} not deleted ({})",
                failed.len(),
                failed.join(", ")
            )))
        }
    }

    async fn release(&self, receipts: &[String]) -> Result<(), SourceError> {
        let mut failed = Vec::new();
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SourceError(format!("ChangeMessageVisibilityBatch entry: {e}")))?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    SourceError(format!(
                        "ChangeMessageVisibilityBatch: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            failed.extend(out.failed().iter().map(|f| f.code().to_owned()));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(SourceError(format!(
                "ChangeMessageVisibilityBatch: {} not changed ({})",
                failed.len(),
                failed.join(", ")
            )))
        }
    }

    fn event_source_arn(&self) -> String {
        self.arn.clone()
    }

    fn aws_region(&self) -> String {
        self.region.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use aws_lambda_events::event::sqs::BatchItemFailure;
    use tokio::sync::{mpsc, oneshot};
    use tokio::task::JoinHandle;

    use super::*;

    /// The bound on every awaited outcome: reaching it means the behaviour under test failed.
    const BOUND: Duration = Duration::from_secs(10);
    const VISIBILITY: Duration = Duration::from_millis(300);

    /// One record as the handler saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        id: String,
        body: String,
        count: u32,
        record: SqsMessage,
    }

    fn config() -> EsmConfig {
        EsmConfig {
            wait: Duration::from_secs(1),
            ..EsmConfig::memory(VISIBILITY)
        }
    }

    fn seen(record: &SqsMessage) -> Seen {
        Seen {
            id: record.message_id.clone().unwrap(),
            body: record.body.clone().unwrap(),
            count: record.attributes["ApproximateReceiveCount"]
                .parse()
                .unwrap(),
            record: record.clone(),
        }
    }

    fn failure(id: &str) -> BatchItemFailure {
        let mut f = BatchItemFailure::default();
        f.item_identifier = id.to_owned();
        f
    }

    /// A handler that reports every record on `tx` and fails the ones `fails` picks.
    fn reporting<P>(
        tx: mpsc::UnboundedSender<Seen>,
        fails: P,
    ) -> impl Fn(SqsEvent) -> std::future::Ready<Result<SqsBatchResponse, String>> + Send + Sync + 'static
    where
        P: Fn(&Seen) -> bool + Send + Sync + 'static,
    {
        move |event: SqsEvent| {
            let mut response = SqsBatchResponse::default();
            for record in &event.records {
                let s = seen(record);
                if fails(&s) {
                    response.batch_item_failures.push(failure(&s.id));
                }
                let _ = tx.send(s);
            }
            std::future::ready(Ok(response))
        }
    }

    fn start<S, F, Fut>(
        source: Arc<S>,
        handler: F,
        config: EsmConfig,
    ) -> (oneshot::Sender<()>, JoinHandle<EsmStats>)
    where
        S: QueueSource,
        F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SqsBatchResponse, String>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let runner = tokio::spawn(run(source, handler, config, async move {
            let _ = stopped.await;
        }));
        (stop, runner)
    }

    async fn stop(stop: oneshot::Sender<()>, runner: JoinHandle<EsmStats>) -> EsmStats {
        let _ = stop.send(());
        tokio::time::timeout(BOUND, runner)
            .await
            .expect("the runner did not stop")
            .expect("the runner panicked")
    }

    /// Waits for records until `done` says the outcome arrived; returns every record seen.
    async fn until(
        rx: &mut mpsc::UnboundedReceiver<Seen>,
        what: &str,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        let mut all = Vec::new();
        tokio::time::timeout(BOUND, async {
            while !done(&all) {
                all.push(rx.recv().await.expect("the handler is gone"));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {all:?}"));
        all
    }

    fn counts(all: &[Seen], body: &str) -> Vec<u32> {
        all.iter()
            .filter(|s| s.body == body)
            .map(|s| s.count)
            .collect()
    }

    fn rest(rx: &mut mpsc::UnboundedReceiver<Seen>, mut all: Vec<Seen>) -> Vec<Seen> {
        while let Ok(s) = rx.try_recv() {
            all.push(s);
        }
        all
    }

    #[tokio::test]
    async fn successful_messages_are_deleted_once() {
        let queue = Arc::new(MemoryQueue::default());
        let sent: HashSet<String> = (0..15)
            .map(|i| queue.send(format!("m{i}"), Duration::ZERO))
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, runner) = start(queue.clone(), reporting(tx, |_| false), config());

        let all = until(&mut rx, "15 deliveries", |all| all.len() >= 15).await;
        let stats = stop(stop_tx, runner).await;
        let all = rest(&mut rx, all);

        assert_eq!(all.len(), 15, "a message was delivered twice: {all:?}");
        assert_eq!(
            all.iter().map(|s| s.id.clone()).collect::<HashSet<_>>(),
            sent
        );
        assert!(all.iter().all(|s| s.count == 1));
        assert!(queue.is_empty(), "{} message(s) not deleted", queue.len());
        assert_eq!((stats.received, stats.deleted, stats.failed), (15, 15, 0));
        assert!(
            stats.batches >= 2,
            "15 messages fit in one batch of 10: {stats:?}"
        );
    }

    #[tokio::test]
    async fn a_reported_failure_is_redelivered_until_it_succeeds_and_its_batch_mates_are_not() {
        let queue = Arc::new(MemoryQueue::new(5));
        queue.send("ok", Duration::ZERO);
        queue.send("flaky", Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handler = reporting(tx, |s| s.body == "flaky" && s.count <= 2);
        let (stop_tx, runner) = start(queue.clone(), handler, config());

        let all = until(
            &mut rx,
            "the third delivery of the failing message",
            |all| counts(all, "flaky").contains(&3),
        )
        .await;
        let stats = stop(stop_tx, runner).await;
        let all = rest(&mut rx, all);

        assert_eq!(counts(&all, "flaky"), [1, 2, 3]);
        assert_eq!(
            counts(&all, "ok"),
            [1],
            "the successful batch mate was redelivered"
        );
        assert!(
            queue.is_empty(),
            "the message that finally succeeded was not deleted"
        );
        assert_eq!(queue.dlq_len(), 0);
        assert_eq!(
            (stats.deleted, stats.failed, stats.handler_errors),
            (2, 2, 0)
        );
    }

    #[tokio::test]
    async fn a_message_that_always_fails_is_dead_lettered_after_max_receive_count() {
        let queue = Arc::new(MemoryQueue::new(3));
        let poison = queue.send("poison", Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, runner) = start(
            queue.clone(),
            reporting(tx, |s| s.body == "poison"),
            config(),
        );

        let mut all = until(&mut rx, "the third delivery", |all| {
            counts(all, "poison").contains(&3)
        })
        .await;
        // Due after the poison message's last visibility timeout: the receive that delivers the
        // marker has met the poison message first.
        queue.send("marker", VISIBILITY * 2);
        all.extend(until(&mut rx, "the marker", |all| counts(all, "marker") == [1]).await);
        let stats = stop(stop_tx, runner).await;
        let all = rest(&mut rx, all);

        assert_eq!(
            counts(&all, "poison"),
            [1, 2, 3],
            "delivered beyond maxReceiveCount"
        );
        let dead = queue.drain_dlq();
        assert_eq!(dead.len(), 1, "not dead-lettered");
        assert_eq!(
            (dead[0].message_id.as_str(), dead[0].receive_count),
            (poison.as_str(), 3)
        );
        assert!(queue.is_empty());
        assert_eq!((stats.failed, stats.deleted), (3, 1));
    }

    #[tokio::test]
    async fn release_failures_makes_a_failure_visible_at_once() {
        let queue = Arc::new(MemoryQueue::new(5));
        queue.send("flaky", Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = EsmConfig {
            release_failures: true,
            visibility_timeout: Duration::from_secs(3_600),
            ..config()
        };
        let (stop_tx, runner) = start(queue.clone(), reporting(tx, |s| s.count == 1), config);

        // With an hour of visibility, only the release can bring it back within the bound.
        until(&mut rx, "the released redelivery", |all| {
            counts(all, "flaky") == [1, 2]
        })
        .await;
        stop(stop_tx, runner).await;
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_handler_error_leaves_the_whole_batch() {
        let queue = Arc::new(MemoryQueue::new(5));
        queue.send("a", Duration::ZERO);
        queue.send("b", Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let failed_once = Arc::new(AtomicBool::new(false));
        let handler = move |event: SqsEvent| {
            for record in &event.records {
                let _ = tx.send(seen(record));
            }
            let first = !failed_once.swap(true, Ordering::SeqCst);
            std::future::ready(if first {
                Err("Vapi is down".to_owned())
            } else {
                Ok(SqsBatchResponse::default())
            })
        };
        let (stop_tx, runner) = start(queue.clone(), handler, config());

        let all = until(&mut rx, "both redelivered", |all| {
            all.iter().filter(|s| s.count == 2).count() == 2
        })
        .await;
        let stats = stop(stop_tx, runner).await;
        let all = rest(&mut rx, all);

        assert_eq!(
            (counts(&all, "a"), counts(&all, "b")),
            (vec![1, 2], vec![1, 2])
        );
        assert!(queue.is_empty());
        assert_eq!(
            (stats.handler_errors, stats.failed, stats.deleted),
            (1, 2, 2)
        );
    }

    #[tokio::test]
    async fn a_failure_naming_no_message_of_the_batch_leaves_the_whole_batch() {
        let queue = Arc::new(MemoryQueue::new(5));
        queue.send("a", Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handler = move |event: SqsEvent| {
            let mut response = SqsBatchResponse::default();
            for record in &event.records {
                let s = seen(record);
                if s.count == 1 {
                    response
                        .batch_item_failures
                        .push(failure("not-in-this-batch"));
                }
                let _ = tx.send(s);
            }
            std::future::ready(Ok::<_, String>(response))
        };
        let (stop_tx, runner) = start(queue.clone(), handler, config());

        until(&mut rx, "the redelivery", |all| counts(all, "a") == [1, 2]).await;
        let stats = stop(stop_tx, runner).await;
        assert!(queue.is_empty());
        assert_eq!((stats.failed, stats.deleted), (1, 1));
    }

    #[tokio::test]
    async fn a_panicking_handler_leaves_its_batch_and_the_runner_goes_on() {
        let queue = Arc::new(MemoryQueue::new(5));
        queue.send("a", Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handler = move |event: SqsEvent| {
            let s = seen(&event.records[0]);
            let _ = tx.send(s.clone());
            assert!(
                s.count > 1,
                "test panic: the first delivery crashes the handler"
            );
            std::future::ready(Ok::<_, String>(SqsBatchResponse::default()))
        };
        let (stop_tx, runner) = start(queue.clone(), handler, config());

        until(&mut rx, "the redelivery after the panic", |all| {
            counts(all, "a") == [1, 2]
        })
        .await;
        let stats = stop(stop_tx, runner).await;
        assert!(queue.is_empty());
        assert_eq!((stats.handler_errors, stats.deleted), (1, 1));
    }

    /// A handler that reports each batch's start and then waits for a permit of `gate`.
    fn gated(
        started: mpsc::UnboundedSender<String>,
        gate: Arc<Semaphore>,
        in_flight: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    ) -> impl Fn(
        SqsEvent,
    )
        -> std::pin::Pin<Box<dyn Future<Output = Result<SqsBatchResponse, String>> + Send>>
           + Send
           + Sync {
        move |event: SqsEvent| {
            let (started, gate, in_flight, peak) = (
                started.clone(),
                gate.clone(),
                in_flight.clone(),
                peak.clone(),
            );
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for record in &event.records {
                    let _ = started.send(record.body.clone().unwrap());
                }
                gate.acquire().await.expect("gate closed").forget();
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(SqsBatchResponse::default())
            })
        }
    }

    #[tokio::test]
    async fn stop_finishes_the_batch_in_flight_and_receives_nothing_more() {
        let queue = Arc::new(MemoryQueue::default());
        queue.send("in-flight", Duration::ZERO);
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let zero = || Arc::new(AtomicUsize::new(0));
        let (stop_tx, mut runner) = start(
            queue.clone(),
            gated(started_tx, gate.clone(), zero(), zero()),
            config(),
        );

        let first = tokio::time::timeout(BOUND, started.recv())
            .await
            .expect("the batch never started");
        assert_eq!(first.as_deref(), Some("in-flight"));
        stop_tx.send(()).unwrap();
        let late = queue.send("after-stop", Duration::ZERO);

        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut runner)
                .await
                .is_err(),
            "the runner returned with a batch still in its handler"
        );
        gate.add_permits(10);
        let stats = tokio::time::timeout(BOUND, runner)
            .await
            .expect("the runner did not stop")
            .unwrap();

        assert_eq!(
            (stats.batches, stats.deleted),
            (1, 1),
            "the batch in flight was not finished"
        );
        assert_eq!(queue.len(), 1);
        let left = queue.snapshot().messages;
        assert_eq!(
            (left[0].message_id.as_str(), left[0].receive_count),
            (late.as_str(), 0),
            "received after the stop"
        );
    }

    #[tokio::test]
    async fn at_most_max_concurrency_batches_are_in_flight() {
        let queue = Arc::new(MemoryQueue::default());
        for i in 0..3 {
            queue.send(format!("m{i}"), Duration::ZERO);
        }
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let config = EsmConfig {
            batch_size: 1,
            max_concurrency: 2,
            visibility_timeout: Duration::from_secs(60),
            ..config()
        };
        let handler = gated(started_tx, gate.clone(), in_flight, peak.clone());
        let (stop_tx, runner) = start(queue.clone(), handler, config);

        for _ in 0..2 {
            tokio::time::timeout(BOUND, started.recv())
                .await
                .expect("two batches should run at once");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), started.recv())
                .await
                .is_err(),
            "a third batch started while two were in flight"
        );
        gate.add_permits(3);
        tokio::time::timeout(BOUND, started.recv())
            .await
            .expect("the third batch never ran");
        let stats = stop(stop_tx, runner).await;

        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!((stats.batches, stats.deleted), (3, 3));
        assert!(queue.is_empty());
    }

    #[test]
    fn the_event_has_the_shape_lambda_delivers() {
        let sent_at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap();
        let delivery = Delivery {
            message_id: "m-1".into(),
            receipt: "r-1".into(),
            body: r#"{"callId":"c-1","attempt":1,"kind":"enrich"}"#.into(),
            receive_count: 2,
            sent_at,
        };
        let event = to_event(
            &[delivery],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        let json = serde_json::to_value(&event).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["receiptHandle"], "r-1");
        assert_eq!(
            record["body"],
            r#"{"callId":"c-1","attempt":1,"kind":"enrich"}"#
        );
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["attributes"]["SentTimestamp"], "1700000000123");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(record["awsRegion"], "us-east-1");
        // What the Lambda runtime would hand the function parses back to the same event.
        assert_eq!(serde_json::from_value::<SqsEvent>(json).unwrap(), event);
    }

    #[test]
    fn the_arn_comes_from_the_queue_url() {
        let cases = [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
                "arn:aws:sqs:eu-west-1:123456789012:jobs",
            ),
            (
                "http://127.0.0.1:5000/123456789012/jobs-dlq",
                "arn:aws:sqs:eu-west-1:123456789012:jobs-dlq",
            ),
            (
                "http://localhost:4566/000000000000/q/",
                "arn:aws:sqs:eu-west-1:000000000000:q",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(arn_from_url(url, "eu-west-1"), want, "{url}");
        }
    }

    // ---- SQS through moto ----

    fn sqs_client() -> aws_sdk_sqs::Client {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let endpoint = std::env::var("RINGBACK_TEST_SQS_ENDPOINT")
            .expect("RINGBACK_TEST_SQS_ENDPOINT is not set: SQS adapter tests need moto: run ./scripts/test.sh");
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "ringback-tests",
            ))
            .endpoint_url(endpoint)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn the_sqs_source_redelivers_failures_and_its_queue_dead_letters_them() {
        use ringback::adapters::sqs::{ensure_queue, QueueSettings, SqsQueue};
        use ringback::ports::{EnrichmentJob, EnrichmentQueue, JobKind};

        let client = sqs_client();
        let name = format!("ringback-esm-{}", uuid::Uuid::new_v4().simple());
        let settings = QueueSettings {
            max_receive_count: 2,
            visibility_timeout: Duration::from_secs(1),
        };
        let urls = ensure_queue(&client, &name, settings).await.unwrap();
        let queue = SqsQueue::new(client.clone(), urls.queue_url.clone());
        for call_id in ["esm-ok", "esm-fail"] {
            let job = EnrichmentJob {
                call_id: call_id.into(),
                attempt: 1,
                kind: JobKind::Enrich,
            };
            queue.schedule(&job, Duration::ZERO).await.unwrap();
        }

        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = EsmConfig {
            wait: Duration::from_secs(1),
            ..EsmConfig::sqs(Duration::from_secs(1))
        };
        let source = Arc::new(SqsSource::new(client.clone(), urls.queue_url.clone()));
        let (stop_tx, runner) = start(
            source,
            reporting(tx, |s| s.body.contains("esm-fail")),
            config,
        );

        let fail = r#"{"callId":"esm-fail","attempt":1,"kind":"enrich"}"#;
        let ok = r#"{"callId":"esm-ok","attempt":1,"kind":"enrich"}"#;
        let all = until(&mut rx, "two deliveries of the failing job", |all| {
            counts(all, fail) == [1, 2]
        })
        .await;
        // The runner's next receive after the visibility timeout moves it to the dead-letter queue.
        let dlq = SqsSource::new(client.clone(), urls.dlq_url.clone());
        let start_wait = std::time::Instant::now();
        let mut dead = Vec::new();
        while dead.is_empty() && start_wait.elapsed() < BOUND {
            dead = dlq
                .receive(10, Duration::from_secs(2), Duration::from_secs(30))
                .await
                .unwrap();
        }
        let stats = stop(stop_tx, runner).await;
        let all = rest(&mut rx, all);

        assert_eq!(
            counts(&all, fail),
            [1, 2],
            "delivered beyond maxReceiveCount"
        );
        assert_eq!(counts(&all, ok), [1], "the successful job was redelivered");
        assert_eq!(
            dead.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
            [fail],
            "not dead-lettered"
        );
        assert_eq!(stats.deleted, 1);

        let record = &all[0].record;
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some(format!("arn:aws:sqs:us-east-1:123456789012:{name}").as_str())
        );
        assert_eq!(record.aws_region.as_deref(), Some("us-east-1"));
        let sent: i64 = record.attributes["SentTimestamp"].parse().unwrap();
        assert!(
            (Utc::now().timestamp_millis() - sent).abs() < 120_000,
            "SentTimestamp {sent} is not the send time"
        );
    }

    #[tokio::test]
    async fn the_sqs_source_releases_and_deletes_by_receipt() {
        use ringback::adapters::sqs::{ensure_queue, QueueSettings};

        let client = sqs_client();
        let name = format!("ringback-esm-{}", uuid::Uuid::new_v4().simple());
        let urls = ensure_queue(&client, &name, QueueSettings::default())
            .await
            .unwrap();
        client
            .send_message()
            .queue_url(&urls.queue_url)
            .message_body("m")
            .send()
            .await
            .unwrap();
        let source = SqsSource::new(client.clone(), urls.queue_url.clone());

        let first = source
            .receive(10, Duration::from_secs(2), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        assert!(
            source
                .receive(10, Duration::ZERO, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty(),
            "not hidden"
        );

        let start = std::time::Instant::now();
        source.release(&[first[0].receipt.clone()]).await.unwrap();
        let again = source
            .receive(10, Duration::from_secs(2), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "not visible after the release");
        assert_eq!(again[0].receive_count, 2);
        assert!(start.elapsed() < Duration::from_secs(10));

        source.delete(&[again[0].receipt.clone()]).await.unwrap();
        assert!(
            source
                .receive(10, Duration::from_secs(1), Duration::ZERO)
                .await
                .unwrap()
                .is_empty(),
            "not deleted"
        );
    }
}
