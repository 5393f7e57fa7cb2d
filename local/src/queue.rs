//! The queues of the local runner, enrichment's and push jobs': each the in-process delay queue
//! (saved to `$RINGBACK_DATA_DIR/queue.json`, resp. `push-queue.json`, on stop and loaded at start,
//! so a restart loses nothing), or SQS at `AWS_ENDPOINT_URL[_SQS]` with its dead-letter queue,
//! created if missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringback::adapters::memory_queue::MemoryQueue;
use ringback::adapters::sqs::{
    ensure_queue_with_dlq, queue_name_of, QueueSettings, QueueUrls, SqsGauge, SqsQueue,
};
use ringback::config::Env;
use ringback::ports::EnrichmentQueue;
use ringback::stats::{QueueDepth, QueueDepths, QueueGauge};

use crate::options::LocalOptions;
use crate::queue_counts::{CountedQueue, QueueRequestCounts, QueueRequests};
use crate::storage::sdk_config;

/// The in-process queue's depth: its messages (waiting, delayed or in flight) as `visible`.
struct MemoryGauge(Arc<MemoryQueue>);

#[async_trait::async_trait]
impl QueueGauge for MemoryGauge {
    async fn depths(&self) -> Result<QueueDepths, String> {
        let depth = |n: usize| QueueDepth {
            visible: n as u64,
            ..QueueDepth::default()
        };
        Ok(QueueDepths {
            enrichment: depth(self.0.len()),
            dead_letter: depth(self.0.dlq_len()),
        })
    }
}

/// Which of the runner's two queues, as the functions have them: enrichment jobs, and push jobs
/// (delivering events to receivers) apart from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    Enrichment,
    Push,
}

impl QueueRole {
    /// The variables' prefix: `ENRICHMENT_QUEUE_URL`, `PUSH_QUEUE_URL`, ...
    fn prefix(self) -> &'static str {
        match self {
            Self::Enrichment => "ENRICHMENT",
            Self::Push => "PUSH",
        }
    }

    fn default_name(self) -> &'static str {
        match self {
            Self::Enrichment => "ringback-enrichment",
            Self::Push => "ringback-push",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Self::Enrichment => "queue.json",
            Self::Push => "push-queue.json",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrichment => "enrichment",
            Self::Push => "push",
        }
    }
}

#[derive(Clone)]
pub enum LocalQueue {
    Memory {
        queue: Arc<MemoryQueue>,
        file: Option<PathBuf>,
        requests: Arc<QueueRequests>,
    },
    Sqs {
        client: aws_sdk_sqs::Client,
        urls: QueueUrls,
        requests: Arc<QueueRequests>,
    },
}

impl LocalQueue {
    pub async fn start(opts: &LocalOptions, role: QueueRole) -> Result<Self, String> {
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
                let names = QueueNames::from_env(&opts.env, role)?;
                let mut urls = ensure_queue_with_dlq(&client, &names.queue, &names.dlq, settings)
                    .await
                    .map_err(|e| format!("cannot create the queue: {e}"))?;
                // Send to the URL the user gave, not a spelling of it the endpoint prefers.
                if let Some(given) = names.queue_url {
                    urls.queue_url = given;
                }
                Ok(Self::Sqs {
                    client,
                    urls,
                    requests: Arc::default(),
                })
            }
            None => {
                let queue = Arc::new(MemoryQueue::new(settings.max_receive_count));
                let file = (!opts.in_memory).then(|| opts.data_dir.join(role.file()));
                if let Some(f) = file.as_ref().filter(|f| f.exists()) {
                    let n = queue
                        .load(f)
                        .map_err(|e| format!("cannot load {}: {e}", f.display()))?;
                    if n > 0 {
                        tracing::info!(
                            messages = n,
                            queue = role.as_str(),
                            "queued jobs restored from the last run"
                        );
                    }
                }
                Ok(Self::Memory {
                    queue,
                    file,
                    requests: Arc::default(),
                })
            }
        }
    }

    /// The port the services send to.
    pub fn port(&self) -> Arc<dyn EnrichmentQueue> {
        let inner: Arc<dyn EnrichmentQueue> = match self {
            Self::Memory { queue, .. } => queue.clone(),
            Self::Sqs { client, urls, .. } => {
                Arc::new(SqsQueue::new(client.clone(), urls.queue_url.clone()))
            }
        };
        Arc::new(CountedQueue {
            inner,
            requests: self.request_counter().clone(),
        })
    }

    fn request_counter(&self) -> &Arc<QueueRequests> {
        match self {
            Self::Memory { requests, .. } | Self::Sqs { requests, .. } => requests,
        }
    }

    /// The queue requests made since start (sends through [`Self::port`], and the consumer's).
    pub fn requests(&self) -> QueueRequestCounts {
        self.request_counter().snapshot()
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

    /// What `GET /api/v1/vapi/stats` reads of this queue and its dead letters.
    pub fn gauge(&self) -> Arc<dyn QueueGauge> {
        match self {
            Self::Memory { queue, .. } => Arc::new(MemoryGauge(queue.clone())),
            Self::Sqs { client, urls, .. } => Arc::new(SqsGauge::new(
                client.clone(),
                urls.queue_url.clone(),
                urls.dlq_url.clone(),
            )),
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
            ..
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

/// The queues at an SQS endpoint: `ENRICHMENT_QUEUE_URL` / `ENRICHMENT_DLQ_URL` as the functions
/// read them (api.md §6), else `ENRICHMENT_QUEUE_NAME`; whichever is given is used, never ignored.
/// The push queue likewise, from `PUSH_QUEUE_URL`, `PUSH_DLQ_URL` and `PUSH_QUEUE_NAME`.
#[derive(Debug, PartialEq)]
struct QueueNames {
    queue: String,
    dlq: String,
    queue_url: Option<String>,
}

impl QueueNames {
    fn from_env(env: &Env, role: QueueRole) -> Result<Self, String> {
        let p = role.prefix();
        let (url_var, dlq_var, name_var) = (
            format!("{p}_QUEUE_URL"),
            format!("{p}_DLQ_URL"),
            format!("{p}_QUEUE_NAME"),
        );
        let given = |var: &str| env.get(var).filter(|v| !v.trim().is_empty());
        let name_in = |var: &str, url: &str| {
            queue_name_of(url)
                .map(str::to_owned)
                .ok_or_else(|| format!("{var} ({url}) does not end in a queue name"))
        };
        let queue_url = given(&url_var).map(str::to_owned);
        let by_url = queue_url
            .as_deref()
            .map(|url| name_in(&url_var, url))
            .transpose()?;
        let queue = match (by_url, env.get(&name_var)) {
            (Some(u), Some(n)) if u != n => {
                return Err(format!(
                    "{url_var} names queue {u}, {name_var} {n}: set one"
                ));
            }
            (Some(q), _) => q,
            (None, Some(n)) => n.to_owned(),
            (None, None) => role.default_name().to_owned(),
        };
        let dlq = match given(&dlq_var) {
            Some(url) => name_in(&dlq_var, url)?,
            None => format!("{queue}-dlq"),
        };
        Ok(Self {
            queue,
            dlq,
            queue_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_urls_the_functions_read_name_the_local_queues() {
        let names = |pairs: &[(&str, &str)]| {
            QueueNames::from_env(
                &Env::from_pairs(pairs.iter().copied()),
                QueueRole::Enrichment,
            )
        };
        let url = "http://127.0.0.1:5000/123456789012/jobs";
        assert_eq!(
            names(&[("ENRICHMENT_QUEUE_URL", url)]).unwrap(),
            QueueNames {
                queue: "jobs".into(),
                dlq: "jobs-dlq".into(),
                queue_url: Some(url.into())
            }
        );
        let both = names(&[
            ("ENRICHMENT_QUEUE_URL", url),
            (
                "ENRICHMENT_DLQ_URL",
                "http://127.0.0.1:5000/123456789012/dead",
            ),
        ])
        .unwrap();
        assert_eq!(both.dlq, "dead");
        assert_eq!(names(&[("ENRICHMENT_QUEUE_NAME", "q")]).unwrap().queue, "q");
        assert_eq!(names(&[]).unwrap().queue, "ringback-enrichment");
        for bad in [
            vec![
                ("ENRICHMENT_QUEUE_URL", url),
                ("ENRICHMENT_QUEUE_NAME", "other"),
            ],
            vec![("ENRICHMENT_QUEUE_URL", "http://127.0.0.1:5000/")],
        ] {
            let err = names(&bad).unwrap_err();
            assert!(err.contains("ENRICHMENT_QUEUE_URL"), "{err}");
        }
    }

    #[test]
    fn the_push_queue_is_named_by_its_own_variables() {
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().copied());
        let url = "http://127.0.0.1:5000/123456789012/pushes";
        let enrichment = "http://127.0.0.1:5000/123456789012/jobs";
        let both = env(&[
            ("ENRICHMENT_QUEUE_URL", enrichment),
            ("PUSH_QUEUE_URL", url),
        ]);
        assert_eq!(
            QueueNames::from_env(&both, QueueRole::Push).unwrap(),
            QueueNames {
                queue: "pushes".into(),
                dlq: "pushes-dlq".into(),
                queue_url: Some(url.into())
            }
        );
        let none = QueueNames::from_env(&env(&[]), QueueRole::Push).unwrap();
        assert_eq!(
            (none.queue.as_str(), none.dlq.as_str()),
            ("ringback-push", "ringback-push-dlq")
        );
        let bad = env(&[("PUSH_QUEUE_URL", url), ("PUSH_QUEUE_NAME", "other")]);
        let err = QueueNames::from_env(&bad, QueueRole::Push).unwrap_err();
        assert!(err.contains("PUSH_QUEUE_URL"), "{err}");
    }
}
