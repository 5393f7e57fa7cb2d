//! Where webhooks go, which ones, and what happens when delivery fails.

use std::sync::atomic::Ordering;

use serde_json::json;
use vapi_simulator::{SimulatorConfig, Timings};

use crate::helpers::*;

#[tokio::test]
async fn server_messages_limits_what_is_sent() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let mut body = call_body("Acme Plumbing", &rx.url);
    body["assistantOverrides"]["serverMessages"] = json!(["end-of-call-report"]);
    let id = place(&sim, &body).await;
    let hooks = rx.all_after(&sim, &id).await;
    let labels: Vec<String> = hooks.iter().map(Hook::label).collect();
    assert_eq!(labels, ["end-of-call-report"]);
}

#[tokio::test]
async fn url_precedence_override_then_assistant_then_default() {
    let (mut over, mut inline, mut default) =
        (receiver().await, receiver().await, receiver().await);
    let sim = start_with(SimulatorConfig {
        default_webhook_url: Some(default.url.clone()),
        timings: Timings::fast(),
        ..Default::default()
    })
    .await;
    let inline_assistant = json!({
        "name": "Provider search",
        "firstMessage": "Hi {{provider}}, do you have a minute?",
        "server": { "url": inline.url, "headers": { "X-Hook-Token": "inline" } },
        "metadata": { "tenant": "t1" }
    });

    // 1. The per-call override wins over the inline assistant's server.
    let mut body = call_body("Acme Plumbing", &over.url);
    body.as_object_mut().unwrap().remove("assistantId");
    body["assistant"] = inline_assistant.clone();
    body["assistantOverrides"]["variableValues"] = json!({"provider": "Acme"});
    let id = place(&sim, &body).await;
    let hooks = over.all_after(&sim, &id).await;
    assert_eq!(hooks.len(), 4);
    assert_eq!(hooks[0].headers["x-hook-token"], "s3cr3t");
    // The webhook's assistant carries its own metadata merged with the overrides'.
    let meta = &hooks[0].msg()["assistant"]["metadata"];
    assert_eq!(
        (meta["tenant"].as_str(), meta["requestId"].as_str()),
        (Some("t1"), Some("req_7f3a91"))
    );
    let (_, call, _) = fetch(&sim, &id).await;
    assert!(call["artifact"]["transcript"]
        .as_str()
        .unwrap()
        .starts_with("AI: Hi Acme, do you have a minute?"));

    // 2. Without an override server, the inline assistant's server is used.
    body["assistantOverrides"]
        .as_object_mut()
        .unwrap()
        .remove("server");
    let id = place(&sim, &body).await;
    let hooks = inline.all_after(&sim, &id).await;
    assert_eq!(hooks.len(), 4);
    assert_eq!(hooks[0].headers["x-hook-token"], "inline");

    // 3. With neither, the simulator's default URL.
    let mut body = call_body("Acme Plumbing", "unused");
    body["assistantOverrides"]
        .as_object_mut()
        .unwrap()
        .remove("server");
    let id = place(&sim, &body).await;
    assert_eq!(default.all_after(&sim, &id).await.len(), 4);
    assert_eq!(sim.stats().webhook_failures, 0);
}

#[tokio::test]
async fn a_refusing_receiver_is_counted_and_not_retried_by_default() {
    let mut rx = receiver().await;
    rx.fail_next.store(100, Ordering::SeqCst);
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme Plumbing", &rx.url)).await;
    assert_eq!(
        rx.all_after(&sim, &id).await.len(),
        4,
        "one attempt per message"
    );
    let stats = sim.stats();
    assert_eq!((stats.webhooks_sent[&id], stats.webhook_failures), (4, 4));
}

#[tokio::test]
async fn a_backoff_plan_retries_until_the_receiver_accepts() {
    let mut rx = receiver().await;
    rx.fail_next.store(2, Ordering::SeqCst);
    let sim = start(Timings::fast()).await;
    let mut body = call_body("Acme Plumbing", &rx.url);
    body["assistantOverrides"]["server"]["backoffPlan"] =
        json!({"type": "exponential", "maxRetries": 3, "baseDelaySeconds": 1});
    let id = place(&sim, &body).await;
    let labels: Vec<String> = rx
        .all_after(&sim, &id)
        .await
        .iter()
        .map(Hook::label)
        .collect();
    // The first message fails twice, then every message goes through once.
    assert_eq!(&labels[..3], ["status-update:ringing"; 3]);
    assert_eq!(labels.len(), 6);
    assert_eq!(sim.stats().webhook_failures, 2);
}

#[tokio::test]
async fn non_loopback_urls_are_never_contacted() {
    let sim = start(Timings::fast()).await;
    let id = place(
        &sim,
        &call_body("Acme Plumbing", "https://hooks.example.com/vapi/events"),
    )
    .await;
    finished(&sim, &id).await;
    let stats = sim.stats();
    assert_eq!((stats.webhooks_sent[&id], stats.webhook_failures), (4, 4));
}

#[tokio::test]
async fn recording_links_resolve_on_loopback() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme Plumbing", &rx.url)).await;
    rx.all_after(&sim, &id).await;
    let (_, call, _) = fetch(&sim, &id).await;
    let url = call["artifact"]["recordingUrl"].as_str().unwrap();
    let res = client().get(url).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "audio/wav");
    assert!(res.bytes().await.unwrap().starts_with(b"RIFF"));
}
