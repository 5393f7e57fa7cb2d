//! The enrichment queue on Amazon SQS: one `SendMessage` per job with `DelaySeconds`, plus the
//! operator's helpers (create the queue and its dead-letter queue, redrive the dead letters).
//!
//! Messages carry ids only (`{"callId","attempt","kind"}`): the record itself stays in DynamoDB.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use serde_json::json;

use crate::ports::{EnrichmentJob, EnrichmentQueue, QueueError, MAX_QUEUE_DELAY};

/// [`EnrichmentQueue`] on an SQS standard queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// `DelaySeconds` for a delay: rounded up (a job is never delivered early) and capped at 900 s,
/// so a longer delay is delivered after 900 s rather than refused.
pub fn delay_seconds(delay: Duration) -> i32 {
    let clamped = delay.min(MAX_QUEUE_DELAY);
    let secs = clamped.as_secs() + u64::from(clamped.subsec_nanos() > 0);
    secs.min(MAX_QUEUE_DELAY.as_secs()) as i32
}

#[async_trait]
impl EnrichmentQueue for SqsQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(job)
            .map_err(|e| QueueError(format!("job is not serialisable: {e}")))?;
        let seconds = delay_seconds(delay);
        if delay > MAX_QUEUE_DELAY {
            tracing::debug!(call_id = %job.call_id, requested_s = delay.as_secs(), "enrichment delay capped at 900 s");
        }
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| QueueError(format!("SendMessage: {}", DisplayErrorContext(&e))))?;
        tracing::debug!(
            call_id = %job.call_id,
            attempt = job.attempt,
            kind = ?job.kind,
            delay_s = seconds,
            message_id = out.message_id().unwrap_or_default(),
            "enrichment job scheduled"
        );
        Ok(())
    }
}

/// How [`ensure_queue`] configures the queue it creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// Receives before a message is moved to the dead-letter queue (`maxReceiveCount`).
    pub max_receive_count: u32,
    /// How long a received message stays hidden from other consumers.
    pub visibility_timeout: Duration,
}

impl Default for QueueSettings {
    /// The deployed values (template.yaml): 5 receives, 180 s (>= 6 x the 30 s function timeout).
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(180),
        }
    }
}

/// The queue's name: the last segment of its URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
pub fn queue_name_of(url: &str) -> Option<&str> {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !n.contains(':'))
}

/// The URLs [`ensure_queue`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueUrls {
    pub queue_url: String,
    pub dlq_url: String,
}

/// Dead-letter retention: 14 days, the SQS maximum (time to investigate and redrive).
const DLQ_RETENTION_SECONDS: u32 = 1_209_600;

/// Creates the standard queue `name` and its dead-letter queue `name-dlq` when missing, and returns
/// both URLs. Idempotent: on an existing queue the redrive policy and visibility timeout are set to
/// `settings` (so a changed setting takes effect), nothing else is touched.
pub async fn ensure_queue(
    client: &Client,
    name: &str,
    settings: QueueSettings,
) -> Result<QueueUrls, QueueError> {
    ensure_queue_with_dlq(client, name, &format!("{name}-dlq"), settings).await
}

/// [`ensure_queue`] with a dead-letter queue named by the caller.
pub async fn ensure_queue_with_dlq(
    client: &Client,
    name: &str,
    dlq_name: &str,
    settings: QueueSettings,
) -> Result<QueueUrls, QueueError> {
    let dlq_attributes = HashMap::from([(
        QueueAttributeName::MessageRetentionPeriod,
        DLQ_RETENTION_SECONDS.to_string(),
    )]);
    let dlq_url = get_or_create(client, dlq_name, dlq_attributes).await?;

    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            QueueError(format!(
                "GetQueueAttributes {dlq_name}: {}",
                DisplayErrorContext(&e)
            ))
        })?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| QueueError(format!("queue {dlq_name} has no QueueArn attribute")))?;

    let redrive =
        json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count })
            .to_string();
    let attributes = HashMap::from([
        (QueueAttributeName::RedrivePolicy, redrive),
        (
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout.as_secs().to_string(),
        ),
    ]);
    let queue_url = match queue_url(client, name).await? {
        Some(url) => {
            client
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(|e| {
                    QueueError(format!(
                        "SetQueueAttributes {name}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            url
        }
        None => create(client, name, attributes).await?,
    };
    Ok(QueueUrls { queue_url, dlq_url })
}

async fn queue_url(client: &Client, name: &str) -> Result<Option<String>, QueueError> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url().map(str::to_owned)),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), GetQueueUrlError::QueueDoesNotExist(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(QueueError(format!(
            "GetQueueUrl {name}: {}",
            DisplayErrorContext(&e)
        ))),
    }
}

async fn create(
    client: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, QueueError> {
    let out = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| QueueError(format!("CreateQueue {name}: {}", DisplayErrorContext(&e))))?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or_else(|| QueueError(format!("CreateQueue {name} returned no URL")))
}

async fn get_or_create(
    client: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, QueueError> {
    match queue_url(client, name).await? {
        Some(url) => Ok(url),
        None => create(client, name, attributes).await,
    }
}

/// Receive rounds [`redrive`] makes at most in one call (10 messages each); run it again for more.
pub const MAX_REDRIVE_ROUNDS: usize = 1_000;

/// Moves every message of the dead-letter queue back to the main queue (receive, send, delete), for
/// the operator once the cause is fixed. Each moved message starts again with a receive count of 0.
/// Stops when the dead-letter queue answers empty, or after [`MAX_REDRIVE_ROUNDS`]. Returns how
/// many messages were moved. A message that could not be sent stays in the dead-letter queue.
pub async fn redrive(client: &Client, dlq_url: &str, queue_url: &str) -> Result<usize, QueueError> {
    let mut moved = 0;
    let mut not_sent = Vec::new();
    for _ in 0..MAX_REDRIVE_ROUNDS {
        let received = client
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            // Hidden long enough that a message whose send failed is not received again in this run.
            .visibility_timeout(300)
            .send()
            .await
            .map_err(|e| {
                QueueError(format!(
                    "ReceiveMessage (dead-letter queue): {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }

        let mut entries = Vec::with_capacity(messages.len());
        let mut receipts = HashMap::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let (Some(body), Some(receipt)) = (m.body(), m.receipt_handle()) else {
                continue;
            };
            let id = i.to_string();
            receipts.insert(id.clone(), receipt.to_owned());
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .build()
                    .map_err(|e| QueueError(format!("redrive entry: {e}")))?,
            );
        }
        if entries.is_empty() {
            continue;
        }
        let sent = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                QueueError(format!(
                    "SendMessageBatch (redrive): {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        not_sent.extend(
            sent.failed()
                .iter()
                .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default())),
        );

        let deletes = sent
            .successful()
            .iter()
            .filter_map(|ok| receipts.get(ok.id()).map(|r| (ok.id(), r)))
            .map(|(id, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError(format!("redrive delete entry: {e}")))?;
        if deletes.is_empty() {
            continue;
        }
        let count = deletes.len();
        let deleted = client
            .delete_message_batch()
            .queue_url(dlq_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(|e| {
                QueueError(format!(
                    "DeleteMessageBatch (dead-letter queue): {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        // A message sent but not deleted is delivered twice: harmless (the consumer is idempotent),
        // but worth a line.
        for f in deleted.failed() {
            tracing::warn!(
                code = f.code(),
                "redriven message was not deleted from the dead-letter queue"
            );
        }
        moved += count;
    }
    if !not_sent.is_empty() {
        return Err(QueueError(format!(
            "redrive moved {moved} message(s); {} could not be sent and stay in the dead-letter queue: {}",
            not_sent.len(),
            not_sent.join("; ")
        )));
    }
    tracing::info!(moved, "dead-letter queue redriven");
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_rounded_up_and_capped() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(3), 3),
            (Duration::from_millis(3_500), 4),
            (Duration::from_secs(900), 900),
            (Duration::from_millis(899_001), 900),
            (Duration::from_secs(901), 900),
            (Duration::from_secs(86_400), 900),
            (Duration::MAX, 900),
        ];
        for (delay, want) in cases {
            assert_eq!(delay_seconds(delay), want, "{delay:?}");
        }
    }
}

/// Parks poison messages on an SQS queue (the enrichment dead-letter queue).
#[derive(Clone, Debug)]
pub struct SqsPoisonSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsPoisonSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl crate::ports::PoisonSink for SqsPoisonSink {
    async fn park(&self, message_id: &str, body: &str) -> Result<(), String> {
        use aws_sdk_sqs::types::MessageAttributeValue;
        let original = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(message_id)
            .build()
            .map_err(|e| e.to_string())?;
        // SQS refuses an empty body: park a marker instead, with the original id attached.
        let body = if body.is_empty() {
            "(empty body)"
        } else {
            body
        };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("originalMessageId", original)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SendMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(())
    }
}

/// [`crate::stats::QueueGauge`] over SQS: one `GetQueueAttributes` per queue, both at once.
pub struct SqsGauge {
    client: Client,
    enrichment: String,
    dead_letter: String,
}

impl SqsGauge {
    pub fn new(client: Client, enrichment: String, dead_letter: String) -> Self {
        Self {
            client,
            enrichment,
            dead_letter,
        }
    }

    async fn depth(&self, url: &str) -> Result<crate::stats::QueueDepth, String> {
        use QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| format!("GetQueueAttributes: {}", DisplayErrorContext(&e)))?;
        let read = |a: A| {
            out.attributes()
                .and_then(|m| m.get(&a))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(crate::stats::QueueDepth {
            visible: read(A::ApproximateNumberOfMessages),
            in_flight: read(A::ApproximateNumberOfMessagesNotVisible),
            delayed: read(A::ApproximateNumberOfMessagesDelayed),
        })
    }
}

#[async_trait::async_trait]
impl crate::stats::QueueGauge for SqsGauge {
    async fn depths(&self) -> Result<crate::stats::QueueDepths, String> {
        let (enrichment, dead_letter) =
            tokio::join!(self.depth(&self.enrichment), self.depth(&self.dead_letter));
        Ok(crate::stats::QueueDepths {
            enrichment: enrichment?,
            dead_letter: dead_letter?,
        })
    }
}
