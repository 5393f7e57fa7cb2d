//! Request counters of the enrichment queue: what the services send and the event source mapping
//! receives, deletes and releases, counted as SQS bills them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ringback::adapters::memory_queue::Delivery;
use ringback::ports::{EnrichmentJob, EnrichmentQueue, QueueError};

use crate::esm::{QueueSource, SourceError};

/// The queue requests made since start, counted as SQS bills them (each one request, a batch of up
/// to 10 included): what the cost test (`local/tests/cost/`, docs/cost.md) reads.
#[derive(Debug, Default)]
pub struct QueueRequests {
    sends: AtomicU64,
    receives: AtomicU64,
    empty_receives: AtomicU64,
    deletes: AtomicU64,
    releases: AtomicU64,
}

/// A snapshot of [`QueueRequests`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueRequestCounts {
    /// `SendMessage`: enrichment, watchdog and re-driven jobs.
    pub sends: u64,
    /// `ReceiveMessage` answered with messages: one batch each, so one enrichment invocation.
    pub receives: u64,
    /// `ReceiveMessage` answered empty (idle polling; Lambda's pollers do this on AWS too).
    pub empty_receives: u64,
    /// `DeleteMessageBatch` (up to 10 messages each).
    pub deletes: u64,
    /// `ChangeMessageVisibilityBatch` (up to 10 messages each).
    pub releases: u64,
}

impl QueueRequests {
    pub fn snapshot(&self) -> QueueRequestCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QueueRequestCounts {
            sends: get(&self.sends),
            receives: get(&self.receives),
            empty_receives: get(&self.empty_receives),
            deletes: get(&self.deletes),
            releases: get(&self.releases),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Counts the sends of the port the services use.
pub(crate) struct CountedQueue {
    pub(crate) inner: Arc<dyn EnrichmentQueue>,
    pub(crate) requests: Arc<QueueRequests>,
}

#[async_trait]
impl EnrichmentQueue for CountedQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        QueueRequests::add(&self.requests.sends, 1);
        self.inner.schedule(job, delay).await
    }
}

/// Counts the requests of the event source mapping.
pub(crate) struct CountedSource<S: ?Sized> {
    pub(crate) inner: Arc<S>,
    pub(crate) requests: Arc<QueueRequests>,
}

#[async_trait]
impl<S: QueueSource + ?Sized> QueueSource for CountedSource<S> {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        let batch = self.inner.receive(max, wait, visibility).await?;
        let counter = match batch.is_empty() {
            true => &self.requests.empty_receives,
            false => &self.requests.receives,
        };
        QueueRequests::add(counter, 1);
        Ok(batch)
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), SourceError> {
        QueueRequests::add(&self.requests.deletes, receipts.len().div_ceil(10));
        self.inner.delete(receipts).await
    }

    async fn release(&self, receipts: &[String]) -> Result<(), SourceError> {
        QueueRequests::add(&self.requests.releases, receipts.len().div_ceil(10));
        self.inner.release(receipts).await
    }

    fn event_source_arn(&self) -> String {
        self.inner.event_source_arn()
    }

    fn aws_region(&self) -> String {
        self.inner.aws_region()
    }
}
