//! `ringback-local` against DynamoDB and SQS at `AWS_ENDPOINT_URL` (api.md §7) instead of the
//! embedded store and queue: moto's server, started by the test command, stands in for AWS. It
//! creates its tables and queue, and a simulated call goes the whole way through real SQS
//! (SendMessage with DelaySeconds, the event-source-mapping emulation's receives and deletes).

mod common;

use common::{attr_s, call_request, scan, start, Api, API_TOKEN, CALLS_PATH};

fn moto() -> String {
    std::env::var("RINGBACK_TEST_SQS_ENDPOINT")
        .expect("these tests need moto's server: run ./scripts/test.sh (it starts one and sets RINGBACK_TEST_SQS_ENDPOINT)")
}

#[tokio::test]
async fn a_call_completes_with_dynamodb_and_sqs_at_an_endpoint() {
    let endpoint = moto();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (calls, providers, logs, queue, pushes) = (
        format!("calls-{suffix}"),
        format!("providers-{suffix}"),
        format!("logs-{suffix}"),
        format!("enrichment-{suffix}"),
        format!("push-{suffix}"),
    );
    let sys = start(&[
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("CALLS_TABLE", calls.as_str()),
        ("PROVIDERS_TABLE", providers.as_str()),
        ("INTERACTION_LOGS_TABLE", logs.as_str()),
        ("ENRICHMENT_QUEUE_NAME", queue.as_str()),
        ("PUSH_QUEUE_NAME", pushes.as_str()),
    ])
    .await;
    assert!(sys.storage.contains(&endpoint), "{}", sys.storage);
    assert!(
        sys.queue.describe().contains(&queue),
        "{}",
        sys.queue.describe()
    );
    assert!(
        sys.push_queue.describe().contains(&pushes),
        "{}",
        sys.push_queue.describe()
    );

    let api = Api::new(&sys);
    let request = call_request("answered");
    let id = api.start_call(&request).await;
    let record = api.wait_settled(&id).await;
    assert_eq!(record["dataStatus"], "complete", "{record}");
    assert_eq!(record["status"], "completed", "{record}");

    // Everything landed in the endpoint's tables, created by the runner itself.
    let stored = scan(&sys, &calls).await;
    assert!(
        stored
            .iter()
            .any(|i| attr_s(i, "callId") == Some(id.as_str())),
        "no call item"
    );
    let logs = scan(&sys, &logs).await;
    assert_eq!(logs.len(), 1, "one interaction log");
    assert_eq!(attr_s(&logs[0], "status"), Some("success"));
    let providers = scan(&sys, &providers).await;
    assert_eq!(providers.len(), 1, "one provider row");
    assert_eq!(attr_s(&providers[0], "call_id"), Some(id.as_str()));
    sys.stop().await;
}

#[tokio::test]
async fn the_queue_url_the_functions_use_is_the_queue_the_runner_uses() {
    let endpoint = moto();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let url = format!("{endpoint}/123456789012/jobs-{suffix}");
    let dlq = format!("{endpoint}/123456789012/dead-{suffix}");
    let push_url = format!("{endpoint}/123456789012/pushes-{suffix}");
    let push_dlq = format!("{endpoint}/123456789012/dead-pushes-{suffix}");
    let sys = start(&[
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("ENRICHMENT_QUEUE_URL", url.as_str()),
        ("ENRICHMENT_DLQ_URL", dlq.as_str()),
        ("PUSH_QUEUE_URL", push_url.as_str()),
        ("PUSH_DLQ_URL", push_dlq.as_str()),
    ])
    .await;
    // Created, with its dead-letter queue, under the names the URLs give; push jobs' apart.
    assert_eq!(
        sys.queue.describe(),
        format!("SQS {url} (dead letters: {dlq})")
    );
    assert_eq!(
        sys.push_queue.describe(),
        format!("SQS {push_url} (dead letters: {push_dlq})")
    );
    let sqs = aws_sdk_sqs::Client::new(&ringback_local::sdk_config(Some(&endpoint)).await);
    let policy = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .expect("the queue exists at the given URL");
    let policy = policy
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy))
        .cloned()
        .unwrap_or_default();
    assert!(policy.contains(&format!("dead-{suffix}")), "{policy}");

    let api = Api::new(&sys);
    let id = api.start_call(&call_request("answered")).await;
    assert_eq!(api.wait_settled(&id).await["dataStatus"], "complete");
    sys.stop().await;
}

/// `EVENT_BUS_NAME` set: a call's completion event is published to the EventBridge bus (moto's),
/// where a rule hands it to an SQS queue the test reads.
#[tokio::test]
async fn a_settled_call_is_published_to_the_event_bus() {
    use serde_json::{json, Value};
    let endpoint = moto();
    let name = format!("ringback-bus-{}", uuid::Uuid::new_v4().simple());
    let sdk = ringback::adapters::aws_config().await;
    let sdk = sdk.into_builder().endpoint_url(&endpoint).build();
    let bus = ringback::adapters::eventbridge::EventBridgeBus::new(
        &sdk,
        name.clone(),
        Some(endpoint.clone()),
    )
    .unwrap();
    bus.call("CreateEventBus", &json!({"Name": name}))
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let pattern = json!({"source": ["ringback"], "detail-type": ["call.completed"]}).to_string();
    bus.call(
        "PutRule",
        &json!({"Name": name, "EventBusName": name, "EventPattern": pattern}),
    )
    .await
    .unwrap();
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    bus.call(
        "PutTargets",
        &json!({"Rule": name, "EventBusName": name, "Targets": [{"Id": "q", "Arn": arn}]}),
    )
    .await
    .unwrap();

    let sys = start(&[
        ("EVENT_BUS_NAME", name.as_str()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint.as_str()),
    ])
    .await;
    let api = Api::new(&sys);
    let id = api.start_call(&call_request("answered")).await;
    let record = api.wait_settled(&id).await;
    assert_eq!(record["dataStatus"], "complete", "{record}");

    let started = std::time::Instant::now();
    let event: Value = loop {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages().first() {
            break serde_json::from_str(m.body().unwrap_or_default()).unwrap();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no event on the bus"
        );
    };
    assert_eq!(event["detail-type"], "call.completed", "{event}");
    assert_eq!(event["detail"]["data"]["callId"], id.as_str(), "{event}");
    let event_id = event["detail"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(event_id.starts_with("evt_"), "{event}");
    assert_eq!(
        event["detail"]["timestamp"], event["detail"]["data"]["updatedAt"],
        "an event tells when its state was committed, the same on every publish"
    );

    // Kept only to fix what the bus gets: no delivery to list, nothing to redeliver.
    let timeline = api
        .get(&format!("{CALLS_PATH}/{id}/events"), Some(API_TOKEN))
        .await;
    assert_eq!(timeline.status, http::StatusCode::OK, "{}", timeline.body);
    assert_eq!(timeline.data()["pushes"], json!([]), "{}", timeline.body);
    let redeliver = api
        .http
        .post(format!(
            "{}/api/v1/vapi/callbacks/{event_id}/redeliver",
            api.base
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(redeliver.status(), http::StatusCode::CONFLICT);
    let body: Value = redeliver.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("event bus only")),
        "{body}"
    );
    sys.stop().await;
}
