//! The enrichment queue of the local runner: the in-process delay queue (saved to
//! `$RINGBACK_DATA_DIR/queue.json` on stop and loaded at start, so a restart loses nothing), or SQS
//! at `AWS_ENDPOINT_URL[_SQS]` with its dead-letter queue, created if missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringback::adapters::memory_queue::MemoryQueue;
use ringback::adapters::sqs::{ensure_queue, QueueSettings, QueueUrls, SqsQueue};
use ringback::ports::EnrichmentQueue;

use crate::options::LocalOptions;
use crate::storage::sdk_config;

#[derive(Clone)]
pub enum LocalQueue {
    Memory {
        queue: Arc<MemoryQueue>,
        file: Option<PathBuf>,
    },
    Sqs {
        client: aws_sdk_sqs::Client,
        urls: QueueUrls,
    },
}

impl LocalQueue {
    pub async fn start(opts: &LocalOptions) -> Result<Self, String> {
        let settings = QueueSettings {
            max_receive_count: opts
                .env
                .parse_or("MAX_RECEIVE_COUNT", 5u32)
                .map_err(|e| e.to_string())?,
            visibility_timeout: opts.visibility_timeout,
        };
        match &opts.sqs_endpoint {
            Some(url) => {
                let client = aws_sdk_sqs::Client::new(&sdk_config(Some(url)).await);
                let name = opts
                    .env
                    .get("ENRICHMENT_QUEUE_NAME")
                    .unwrap_or("ringback-enrichment");
                let urls = ensure_queue(&client, name, settings)
                    .await
                    .map_err(|e| format!("cannot create the queue: {e}"))?;
                Ok(Self::Sqs { client, urls })
            }
            None => {
                let queue = Arc::new(MemoryQueue::new(settings.max_receive_count));
                let file = (!opts.in_memory).then(|| opts.data_dir.join("queue.json"));
                if let Some(f) = file.as_ref().filter(|f| f.exists()) {
                    let n = queue
                        .load(f)
                        .map_err(|e| format!("cannot load {}: {e}", f.display()))?;
                    if n > 0 {
                        tracing::info!(
                            messages = n,
                            "queued enrichment jobs restored from the last run"
                        );
                    }
                }
                Ok(Self::Memory { queue, file })
            }
        }
    }

    /// The port the services send to.
    pub fn port(&self) -> Arc<dyn EnrichmentQueue> {
        match self {
            Self::Memory { queue, .. } => queue.clone(),
            Self::Sqs { client, urls } => {
                Arc::new(SqsQueue::new(client.clone(), urls.queue_url.clone()))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Memory { file: Some(f), .. } => {
                format!("in-process delay queue (saved to {} on stop)", f.display())
            }
            Self::Memory { file: None, .. } => "in-process delay queue (in memory)".into(),
            Self::Sqs { urls, .. } => {
                format!("SQS {} (dead letters: {})", urls.queue_url, urls.dlq_url)
            }
        }
    }

    /// Messages waiting or in flight, and dead letters (the in-process queue only).
    pub fn depth(&self) -> Option<(usize, usize)> {
        match self {
            Self::Memory { queue, .. } => Some((queue.len(), queue.dlq_len())),
            Self::Sqs { .. } => None,
        }
    }

    pub async fn stop(&self) {
        if let Self::Memory {
            queue,
            file: Some(f),
        } = self
        {
            match queue.save(f) {
                Ok(n) => tracing::info!(messages = n, file = %f.display(), "queue saved"),
                Err(e) => {
                    tracing::error!(error = %e, file = %f.display(), "queue NOT saved; the cleanup will re-drive its calls")
                }
            }
        }
    }
}

/// Visibility timeout of the local consumer: short, so a failed fetch is retried within seconds.
pub const DEFAULT_LOCAL_VISIBILITY: Duration = Duration::from_secs(5);
