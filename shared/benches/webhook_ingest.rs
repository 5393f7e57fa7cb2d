//! Webhook ingest through the real handler (`api::post_webhook`: auth, parse, conditional write,
//! enqueue) and the real DynamoDB adapter against the embedded dynoxide store on loopback.
//! Prints requests/s and latency percentiles; run with `cargo bench -p ringback --bench webhook_ingest`.
//! `BENCH_REQUESTS` (default 2000) and `BENCH_CONCURRENCY` (default 1,8,32) change the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use http::{HeaderMap, HeaderValue};
use ringback::adapters::dynamodb::{ensure_tables, CallsTable};
use ringback::api;
use ringback::config::Timing;
use ringback::ports::{EnrichmentJob, EnrichmentQueue, QueueError, SystemClock};
use ringback::service::webhook::WebhookService;
use ringback::vapi::WebhookAuth;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts sends: the queue's own latency is measured by the SQS adapter tests, not here.
#[derive(Default)]
struct CountingQueue(AtomicU64);

#[async_trait]
impl EnrichmentQueue for CountingQueue {
    async fn schedule(&self, _: &EnrichmentJob, _: Duration) -> Result<(), QueueError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,8,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dynoxide::server::serve_on(
        listener,
        dynoxide::Database::memory().unwrap(),
    ));
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(&endpoint)
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    ensure_tables(&client, "calls", "providers", "logs")
        .await
        .unwrap();

    let queue = Arc::new(CountingQueue::default());
    let svc = Arc::new(WebhookService {
        store: Arc::new(CallsTable::new(
            client,
            "calls".into(),
            Duration::from_secs(1800),
            Arc::new(SystemClock),
        )),
        queue: queue.clone(),
        clock: Arc::new(SystemClock),
        auth: WebhookAuth::new(["bench-secret".to_string()], "x-vapi-signature"),
        max_bytes: 1 << 20,
        timing: Timing::default(),
        metrics: ringback::metrics::Metrics::off(),
        archive: None,
    });
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/vapi/end-of-call-report.json"
    ))
    .expect("fixtures/vapi in the repository");
    let mut headers = HeaderMap::new();
    headers.insert("x-vapi-secret", HeaderValue::from_static("bench-secret"));
    let headers = Arc::new(headers);

    println!("webhook ingest: end-of-call-report ({} bytes), {requests} requests per run, embedded dynoxide on loopback", sample.len());
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "run", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (label, distinct) in [("new calls", true), ("duplicate deliveries", false)] {
        for &conc in &levels {
            let run = format!("{label}, concurrency {conc}");
            let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
                (0..requests)
                    .map(|i| {
                        let id = if distinct {
                            format!("bench-{conc}-{i}")
                        } else {
                            format!("bench-dup-{conc}")
                        };
                        sample
                            .replace("5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34", &id)
                            .into_bytes()
                    })
                    .collect(),
            );
            let next = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let workers: Vec<_> = (0..conc)
                .map(|_| {
                    let (svc, bodies, next, headers) =
                        (svc.clone(), bodies.clone(), next.clone(), headers.clone());
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                            if i >= bodies.len() {
                                return lat;
                            }
                            let t = Instant::now();
                            let resp = api::post_webhook(&svc, &headers, &bodies[i]).await;
                            assert_eq!(resp.status(), 200, "{:?}", resp.body());
                            lat.push(t.elapsed());
                        }
                    })
                })
                .collect();
            let mut lat = Vec::with_capacity(requests);
            for w in workers {
                lat.extend(w.await.unwrap());
            }
            let elapsed = started.elapsed();
            lat.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{run:<34} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                requests as f64 / elapsed.as_secs_f64(),
                ms(percentile(&lat, 0.50)),
                ms(percentile(&lat, 0.90)),
                ms(percentile(&lat, 0.99)),
                ms(*lat.last().unwrap()),
            );
        }
    }
    println!(
        "enrichment jobs scheduled: {} (one per new call; duplicates schedule nothing)",
        queue.0.load(Ordering::Relaxed)
    );
}
