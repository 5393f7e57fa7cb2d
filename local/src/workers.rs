//! The background work of the local runner: the consumers of the enrichment queue and of the push
//! queue behind the event-source-mapping emulation (one handler, two event sources, as the
//! enrichment function has them), and the cleanup on its schedule. All stop when the stop signal
//! is raised, finishing the work in flight.

use std::sync::Arc;
use std::time::Duration;

use ringback::service::cleanup::CleanupService;
use ringback::service::enrichment::{handle_batch, EnrichmentService};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::esm::{self, EsmConfig, SqsSource};
use crate::queue::{LocalQueue, QueueRole};
use crate::queue_counts::CountedSource;

pub fn start_consumer(
    role: QueueRole,
    queue: &LocalQueue,
    svc: Arc<EnrichmentService>,
    visibility: Duration,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let handler = move |event| {
        let svc = svc.clone();
        async move { Ok::<_, std::convert::Infallible>(handle_batch(&svc, event).await) }
    };
    let stopped = async move {
        let mut stop = stop;
        let _ = stop.wait_for(|s| *s).await;
    };
    match queue.clone() {
        LocalQueue::Memory {
            queue, requests, ..
        } => tokio::spawn(async move {
            let source = Arc::new(CountedSource {
                inner: queue,
                requests,
            });
            let stats = esm::run(source, handler, EsmConfig::memory(visibility), stopped).await;
            tracing::info!(?stats, queue = role.as_str(), "consumer stopped");
        }),
        LocalQueue::Sqs {
            client,
            urls,
            requests,
        } => tokio::spawn(async move {
            let source = Arc::new(CountedSource {
                inner: Arc::new(SqsSource::new(client, urls.queue_url)),
                requests,
            });
            // Short polls keep Ctrl-C quick; the cost is a few more requests to a local emulator.
            let config = EsmConfig {
                wait: Duration::from_secs(2),
                ..EsmConfig::sqs(visibility)
            };
            let stats = esm::run(source, handler, config, stopped).await;
            tracing::info!(?stats, queue = role.as_str(), "consumer stopped");
        }),
    }
}

pub fn start_cleanup(
    svc: Arc<CleanupService>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                changed = stop.changed() => if changed.is_err() { return },
            }
            if *stop.borrow() {
                return;
            }
            if let Err(e) = svc.run_once().await {
                tracing::warn!(error = %e, "cleanup run failed; the next one retries");
            }
        }
    })
}
