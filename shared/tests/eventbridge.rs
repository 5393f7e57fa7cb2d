//! The EventBridge adapter against moto (a real-protocol server, started by ./scripts/test.sh,
//! which exports `RINGBACK_TEST_SQS_ENDPOINT`; moto serves EventBridge on the same port). A rule on
//! a fresh bus sends `ringback` events to a fresh SQS queue, where the test reads what was published.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use ringback::adapters::eventbridge::EventBridgeBus;
use ringback::domain::push::{CallEvent, EventType};
use ringback::domain::CallResult;
use ringback::ports::EventBus;
use serde_json::{json, Value};

fn endpoint() -> String {
    std::env::var("RINGBACK_TEST_SQS_ENDPOINT").expect(
        "RINGBACK_TEST_SQS_ENDPOINT is not set: these tests need moto: run ./scripts/test.sh",
    )
}

fn sdk() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "test",
                "test",
                None,
                None,
                "ringback-tests",
            )),
        )
        .endpoint_url(endpoint())
        .build()
}

fn event(transcript: &str) -> CallEvent {
    let mut data = CallResult::new("call-eb-1", "2026-12-03T00:00:00.000Z");
    data.transcript = Some(transcript.to_owned());
    CallEvent {
        kind: EventType::Completed,
        id: "evt_eventbridge_1".into(),
        timestamp: "2026-12-03T00:00:05.000Z".into(),
        data,
    }
}

#[tokio::test]
async fn published_events_reach_a_rule_target_with_their_id_and_type() {
    let name = format!("ringback-{}", uuid::Uuid::new_v4().simple());
    let sdk = sdk();
    let bus = EventBridgeBus::new(&sdk, name.clone(), Some(endpoint())).unwrap();
    bus.call("CreateEventBus", &json!({"Name": name}))
        .await
        .unwrap();

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs.create_queue().queue_name(&name).send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    let pattern = json!({"source": ["ringback"]}).to_string();
    bus.call(
        "PutRule",
        &json!({"Name": name, "EventBusName": name, "EventPattern": pattern}),
    )
    .await
    .unwrap();
    bus.call(
        "PutTargets",
        &json!({"Rule": name, "EventBusName": name, "Targets": [{"Id": "q", "Arn": arn}]}),
    )
    .await
    .unwrap();

    bus.publish(&event("AI: hello")).await.expect("published");

    let started = Instant::now();
    let body = loop {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages().first() {
            break m.body().unwrap_or_default().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing reached the target"
        );
    };
    let delivered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(delivered["source"], "ringback");
    assert_eq!(delivered["detail-type"], "call.completed");
    assert_eq!(delivered["detail"]["id"], "evt_eventbridge_1");
    assert_eq!(delivered["detail"]["data"]["callId"], "call-eb-1");
    assert_eq!(delivered["detail"]["data"]["transcript"], "AI: hello");
}

#[tokio::test]
async fn a_bus_that_does_not_exist_is_an_error_to_retry() {
    let bus = EventBridgeBus::new(&sdk(), "ringback-no-such-bus".into(), Some(endpoint())).unwrap();
    let err = bus.publish(&event("AI: hi")).await;
    assert!(err.is_err(), "{err:?}");
}
