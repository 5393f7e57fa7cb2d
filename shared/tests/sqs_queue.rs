//! The SQS adapter against moto's SQS server (a real-protocol server, started by ./scripts/test.sh,
//! which exports `RINGBACK_TEST_SQS_ENDPOINT`). Each test creates its own uniquely named queues.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use ringback::adapters::sqs::{ensure_queue, redrive, QueueSettings, SqsQueue};
use ringback::ports::{EnrichmentJob, EnrichmentQueue, JobKind};
use serde_json::Value;

fn client() -> Client {
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
    Client::from_conf(config)
}

fn unique(prefix: &str) -> String {
    format!("ringback-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn job(call_id: &str, attempt: u32) -> EnrichmentJob {
    EnrichmentJob {
        call_id: call_id.into(),
        attempt,
        kind: JobKind::Enrich,
        event_id: None,
    }
}

const FAST: QueueSettings = QueueSettings {
    max_receive_count: 5,
    visibility_timeout: Duration::from_secs(30),
};

/// One receive: `wait` seconds of long poll, messages hidden for `visibility` seconds.
async fn receive(
    client: &Client,
    url: &str,
    wait: i32,
    visibility: i32,
) -> Vec<aws_sdk_sqs::types::Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default()
}

/// Receives (and deletes) until `want` messages arrived or `bound` passed; returns their bodies.
async fn drain(client: &Client, url: &str, want: usize, bound: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut bodies = Vec::new();
    while bodies.len() < want && start.elapsed() < bound {
        for m in receive(client, url, 1, 30).await {
            bodies.push(m.body().unwrap_or_default().to_owned());
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    bodies
}

async fn attribute(client: &Client, url: &str, name: QueueAttributeName) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&name).cloned())
        .unwrap_or_else(|| panic!("no {name:?} attribute"))
}

#[tokio::test]
async fn schedule_sends_ids_only_and_the_delay_hides_the_message() {
    let client = client();
    let urls = ensure_queue(&client, &unique("delay"), FAST).await.unwrap();
    let queue = SqsQueue::new(client.clone(), urls.queue_url.clone());

    let sent = Instant::now();
    queue
        .schedule(&job("call-delay", 2), Duration::from_secs(2))
        .await
        .unwrap();

    assert!(
        receive(&client, &urls.queue_url, 0, 30).await.is_empty(),
        "visible before its DelaySeconds"
    );
    let mut got = Vec::new();
    while got.is_empty() && sent.elapsed() < Duration::from_secs(10) {
        got = receive(&client, &urls.queue_url, 5, 30).await;
    }
    let waited = sent.elapsed();
    assert_eq!(
        got.len(),
        1,
        "the delayed message never arrived (waited {waited:?})"
    );
    assert!(
        waited >= Duration::from_millis(1_900),
        "delivered after {waited:?}, before its 2 s delay"
    );

    let body: Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["attempt", "callId", "kind"]),
        "the message carries more than ids: {body}"
    );
    assert_eq!(
        body,
        serde_json::json!({"callId": "call-delay", "attempt": 2, "kind": "enrich"})
    );
    let job: EnrichmentJob = serde_json::from_value(body).unwrap();
    assert_eq!(job, self::job("call-delay", 2));
}

#[tokio::test]
async fn every_scheduled_job_arrives_once() {
    let client = client();
    let urls = ensure_queue(&client, &unique("many"), FAST).await.unwrap();
    let queue = SqsQueue::new(client.clone(), urls.queue_url.clone());

    const N: u32 = 20;
    let start = Instant::now();
    for i in 0..N {
        queue
            .schedule(&job(&format!("call-{i}"), 1), Duration::ZERO)
            .await
            .unwrap();
    }
    let per_send = start.elapsed() / N;
    eprintln!(
        "SqsQueue::schedule against moto: {per_send:?} per SendMessage ({N} sequential sends)"
    );

    let bodies = drain(
        &client,
        &urls.queue_url,
        N as usize,
        Duration::from_secs(15),
    )
    .await;
    let ids: BTreeSet<String> = bodies
        .iter()
        .map(|b| serde_json::from_str::<EnrichmentJob>(b).unwrap().call_id)
        .collect();
    assert_eq!(
        bodies.len(),
        N as usize,
        "{} of {N} jobs arrived",
        bodies.len()
    );
    assert_eq!(
        ids,
        (0..N).map(|i| format!("call-{i}")).collect::<BTreeSet<_>>()
    );
}

#[tokio::test]
async fn a_delay_beyond_900_seconds_is_capped_not_rejected() {
    let client = client();
    let urls = ensure_queue(&client, &unique("cap"), FAST).await.unwrap();
    let queue = SqsQueue::new(client.clone(), urls.queue_url.clone());

    queue
        .schedule(&job("call-late", 1), Duration::from_secs(3_600))
        .await
        .expect("a 1 h delay was refused");

    assert_eq!(
        attribute(
            &client,
            &urls.queue_url,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed
        )
        .await,
        "1"
    );
    assert!(
        receive(&client, &urls.queue_url, 1, 30).await.is_empty(),
        "the capped message is not delayed"
    );
}

#[tokio::test]
async fn a_send_to_a_missing_queue_is_a_queue_error_with_context() {
    let client = client();
    let missing = format!(
        "{}/123456789012/{}",
        std::env::var("RINGBACK_TEST_SQS_ENDPOINT").unwrap(),
        unique("missing")
    );
    let err = SqsQueue::new(client, missing)
        .schedule(&job("c", 1), Duration::ZERO)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("queue unavailable: SendMessage"), "{text}");
    assert!(
        text.contains("NonExistentQueue") || text.contains("QueueDoesNotExist"),
        "no service error in: {text}"
    );
}

#[tokio::test]
async fn ensure_queue_is_idempotent_and_its_redrive_policy_dead_letters_after_max_receive_count() {
    let client = client();
    let name = unique("redrive-policy");
    let settings = QueueSettings {
        max_receive_count: 2,
        visibility_timeout: Duration::from_secs(7),
    };
    let urls = ensure_queue(&client, &name, settings).await.unwrap();
    assert!(urls.queue_url.ends_with(&name), "{}", urls.queue_url);
    assert!(
        urls.dlq_url.ends_with(&format!("{name}-dlq")),
        "{}",
        urls.dlq_url
    );
    assert_eq!(
        ensure_queue(&client, &name, settings).await.unwrap(),
        urls,
        "a second call changed the URLs"
    );

    let dlq_arn = attribute(&client, &urls.dlq_url, QueueAttributeName::QueueArn).await;
    let policy: Value = serde_json::from_str(
        &attribute(&client, &urls.queue_url, QueueAttributeName::RedrivePolicy).await,
    )
    .unwrap();
    assert_eq!(policy["deadLetterTargetArn"], dlq_arn);
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "2");
    assert_eq!(
        attribute(
            &client,
            &urls.queue_url,
            QueueAttributeName::VisibilityTimeout
        )
        .await,
        "7"
    );

    SqsQueue::new(client.clone(), urls.queue_url.clone())
        .schedule(&job("call-poison", 1), Duration::ZERO)
        .await
        .unwrap();
    // Visibility 0 on each receive: visible again at once, so each receive is one more delivery.
    for count in ["1", "2"] {
        let got = receive(&client, &urls.queue_url, 2, 0).await;
        assert_eq!(got.len(), 1, "delivery {count} missing");
        let seen = got[0]
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
        assert_eq!(seen.map(String::as_str), Some(count));
    }
    assert!(
        receive(&client, &urls.queue_url, 1, 0).await.is_empty(),
        "delivered beyond maxReceiveCount"
    );
    let dead = drain(&client, &urls.dlq_url, 1, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1, "the message is not in the dead-letter queue");
    assert_eq!(
        serde_json::from_str::<EnrichmentJob>(&dead[0]).unwrap(),
        job("call-poison", 1)
    );
}

#[tokio::test]
async fn redrive_moves_every_dead_letter_back_to_the_queue() {
    let client = client();
    let urls = ensure_queue(&client, &unique("redrive"), FAST)
        .await
        .unwrap();
    let dlq = SqsQueue::new(client.clone(), urls.dlq_url.clone());
    const N: usize = 13; // more than one receive batch of 10
    for i in 0..N {
        dlq.schedule(&job(&format!("dead-{i}"), 3), Duration::ZERO)
            .await
            .unwrap();
    }

    let moved = redrive(&client, &urls.dlq_url, &urls.queue_url)
        .await
        .unwrap();
    assert_eq!(moved, N);
    assert_eq!(
        attribute(
            &client,
            &urls.dlq_url,
            QueueAttributeName::ApproximateNumberOfMessages
        )
        .await,
        "0"
    );
    assert_eq!(
        attribute(
            &client,
            &urls.dlq_url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "0"
    );

    let bodies = drain(&client, &urls.queue_url, N, Duration::from_secs(15)).await;
    let ids: BTreeSet<String> = bodies
        .iter()
        .map(|b| serde_json::from_str::<EnrichmentJob>(b).unwrap().call_id)
        .collect();
    assert_eq!(bodies.len(), N);
    assert_eq!(
        ids,
        (0..N).map(|i| format!("dead-{i}")).collect::<BTreeSet<_>>()
    );

    assert_eq!(
        redrive(&client, &urls.dlq_url, &urls.queue_url)
            .await
            .unwrap(),
        0,
        "an empty DLQ moved messages"
    );
}
