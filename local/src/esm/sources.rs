//! The two queues the event source mapping reads: the in-process delay queue and SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use chrono::{DateTime, Utc};
use ringback::adapters::memory_queue::{Delivery, MemoryQueue};

use super::{QueueSource, SourceError};

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
pub(super) fn arn_from_url(queue_url: &str, region: &str) -> String {
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
        batch_result("DeleteMessageBatch", failed)
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
        batch_result("ChangeMessageVisibilityBatch", failed)
    }

    fn event_source_arn(&self) -> String {
        self.arn.clone()
    }

    fn aws_region(&self) -> String {
        self.region.clone()
    }
}

/// SQS batch calls succeed as a whole but may fail entry by entry: any failed entry fails the call.
fn batch_result(operation: &str, failed: Vec<String>) -> Result<(), SourceError> {
    if failed.is_empty() {
        return Ok(());
    }
    Err(SourceError(format!(
        "{operation}: {} entries failed ({})",
        failed.len(),
        failed.join(", ")
    )))
}
