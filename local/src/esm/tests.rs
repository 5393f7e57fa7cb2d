use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use aws_lambda_events::event::sqs::BatchItemFailure;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use chrono::{DateTime, Utc};
use ringback::adapters::memory_queue::MemoryQueue;

use super::sources::arn_from_url;
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
) -> std::pin::Pin<Box<dyn Future<Output = Result<SqsBatchResponse, String>> + Send>>
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
    let endpoint = std::env::var("RINGBACK_TEST_SQS_ENDPOINT").expect(
        "RINGBACK_TEST_SQS_ENDPOINT is not set: SQS adapter tests need moto: run ./scripts/test.sh",
    );
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client())
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
            event_id: None,
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
