//! One test per scenario, asserting what a webhook receiver and an API client would see.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use vapi_simulator::Timings;

use crate::helpers::*;

fn labels(hooks: &[Hook]) -> Vec<String> {
    hooks.iter().map(Hook::label).collect()
}

/// Every webhook of the call carries the call id, the metadata as sent, and the server headers.
fn assert_correlated(hooks: &[Hook], id: &str, body: &Value) {
    for h in hooks {
        let m = h.msg();
        assert_eq!(m["call"]["id"], id, "{}", h.label());
        assert_eq!(
            m["call"]["assistantOverrides"]["metadata"],
            body["assistantOverrides"]["metadata"]
        );
        assert_eq!(m["customer"]["number"], body["customer"]["number"]);
        assert!(
            m["timestamp"]
                .as_i64()
                .is_some_and(|t| t > 1_700_000_000_000),
            "epoch ms"
        );
        assert_eq!(h.headers["x-hook-token"], "s3cr3t");
        assert_eq!(h.headers["content-type"], "application/json");
    }
}

fn report(hooks: &[Hook]) -> &Value {
    hooks
        .iter()
        .find(|h| h.label() == "end-of-call-report")
        .expect("a report")
        .msg()
}

#[tokio::test]
async fn answered_call_sends_the_status_updates_and_one_report_then_completes() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let body = call_body("Acme Plumbing", &rx.url);
    let id = place(&sim, &body).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert_eq!(
        labels(&hooks),
        [
            "status-update:ringing",
            "status-update:in-progress",
            "status-update:ended",
            "end-of-call-report"
        ]
    );
    assert_correlated(&hooks, &id, &body);
    let ended = hooks[2].msg();
    assert!(["assistant-ended-call", "customer-ended-call"]
        .contains(&ended["endedReason"].as_str().unwrap()));
    let r = report(&hooks);
    assert_eq!(r["endedReason"], ended["endedReason"]);
    let transcript = r["artifact"]["transcript"].as_str().unwrap();
    assert!(
        transcript.starts_with("AI: ") && transcript.contains("\nUser: ") && transcript.len() > 50
    );
    assert_eq!(r["transcript"], transcript, "legacy duplicate");
    let roles: Vec<&str> = r["artifact"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(&roles[..3], ["system", "bot", "user"]);
    for k in [
        "startedAt",
        "endedAt",
        "cost",
        "recordingUrl",
        "durationSeconds",
        "costBreakdown",
        "summary",
    ] {
        assert!(r.get(k).is_some_and(|v| !v.is_null()), "report has {k}");
    }
    // The report's analysis lags: no structured data yet.
    assert!(r["analysis"].get("structuredData").is_none());
    assert!(!is_complete(
        &json!({"status": "ended", "transcript": transcript, "analysis": r["analysis"]})
    ));

    let (status, call, _) = fetch(&sim, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_complete(&call), "{call:#}");
    let data = &call["analysis"]["structuredData"];
    for k in [
        "availability",
        "estimated_rate",
        "single_person_found",
        "all_criteria_met",
        "call_outcome",
        "recommended",
    ] {
        assert!(data.get(k).is_some(), "structuredData.{k}");
    }
    assert!(call["artifact"]["recording"]["mono"]["combinedUrl"]
        .as_str()
        .unwrap()
        .starts_with(&sim.base_url()));
    assert_eq!(
        call["assistantOverrides"]["metadata"],
        body["assistantOverrides"]["metadata"]
    );
    let stats = sim.stats();
    assert_eq!(
        (
            stats.webhooks_sent.get(&id).copied(),
            stats.webhook_failures
        ),
        (Some(4), 0)
    );
}

#[tokio::test]
async fn report_arrives_while_get_is_still_incomplete() {
    let mut rx = receiver().await;
    let lagging = Timings {
        analysis_delay: Duration::from_secs(60),
        ..Timings::fast()
    };
    let sim = start(lagging).await;
    let id = place(&sim, &call_body("Acme Plumbing", &rx.url)).await;
    while rx.next().await.label() != "end-of-call-report" {}
    let (_, call, _) = fetch(&sim, &id).await;
    assert_eq!(call["status"], "ended");
    assert!(call["artifact"]["transcript"].as_str().unwrap().len() > 50);
    assert!(
        !is_complete(&call),
        "analysis not ready yet: {}",
        call["analysis"]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_webhooks_sends_each_message_twice() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(
        &sim,
        &call_body("Acme Plumbing [duplicate-webhooks]", &rx.url),
    )
    .await;
    let hooks = rx.all_after(&sim, &id).await;
    let l = labels(&hooks);
    assert_eq!(l.len(), 8, "{l:?}");
    for pair in hooks.chunks(2) {
        assert_eq!(pair[0].body, pair[1].body, "identical deliveries");
    }
    assert_eq!(l.iter().filter(|x| *x == "end-of-call-report").count(), 2);
    assert!(is_complete(&fetch(&sim, &id).await.1));
}

#[tokio::test]
async fn out_of_order_sends_the_report_first_and_a_late_in_progress() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme Plumbing [out-of-order]", &rx.url)).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert_eq!(
        labels(&hooks),
        [
            "end-of-call-report",
            "status-update:ringing",
            "status-update:in-progress",
            "status-update:ended",
            "status-update:in-progress",
        ]
    );
    let ts: Vec<i64> = hooks
        .iter()
        .map(|h| h.msg()["timestamp"].as_i64().unwrap())
        .collect();
    assert!(
        ts[4] >= ts[3],
        "the late in-progress is stamped after the end"
    );
    assert!(is_complete(&fetch(&sim, &id).await.1));
}

#[tokio::test]
async fn no_webhook_call_completes_without_any_delivery() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("no-webhook", &rx.url)).await;
    assert!(rx.all_after(&sim, &id).await.is_empty());
    assert_eq!(sim.stats().webhooks_sent_total(), 0);
    let (_, call, _) = fetch(&sim, &id).await;
    assert!(is_complete(&call), "{call:#}");
}

#[tokio::test]
async fn api_flaky_fails_three_gets_then_answers() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme [api-flaky]", &rx.url)).await;
    assert_eq!(
        rx.all_after(&sim, &id).await.len(),
        4,
        "webhooks are normal"
    );
    for _ in 0..3 {
        let (status, err, _) = fetch(&sim, &id).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err["statusCode"], 500);
    }
    let (status, call, _) = fetch(&sim, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_complete(&call));
    assert_eq!(sim.get_calls_for(&id), 4);
}

#[tokio::test]
async fn busy_ends_right_after_queued() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme Plumbing [busy]", &rx.url)).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert_eq!(
        labels(&hooks),
        ["status-update:ended", "end-of-call-report"]
    );
    assert_eq!(hooks[0].msg()["endedReason"], "customer-busy");
    let (_, call, _) = fetch(&sim, &id).await;
    assert_eq!(
        (call["status"].as_str(), call["endedReason"].as_str()),
        (Some("ended"), Some("customer-busy"))
    );
    assert!(call.get("startedAt").is_none(), "never answered");
    assert!(!is_complete(&call));
}

#[tokio::test]
async fn voicemail_transcript_is_the_greeting() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme Plumbing [voicemail]", &rx.url)).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert_eq!(hooks.last().unwrap().label(), "end-of-call-report");
    assert_eq!(report(&hooks)["endedReason"], "voicemail");
    let (_, call, _) = fetch(&sim, &id).await;
    let t = call["artifact"]["transcript"].as_str().unwrap();
    assert!(
        t.starts_with("User: Hi, you've reached Acme Plumbing") && t.contains("leave"),
        "{t}"
    );
    assert!(is_complete(&call));
    assert_eq!(
        call["analysis"]["structuredData"]["call_outcome"],
        "voicemail"
    );
}

#[tokio::test]
async fn no_answer_rings_then_ends_with_nothing_to_analyse() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme Plumbing [no-answer]", &rx.url)).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert_eq!(
        labels(&hooks),
        [
            "status-update:ringing",
            "status-update:ended",
            "end-of-call-report"
        ]
    );
    assert_eq!(hooks[1].msg()["endedReason"], "customer-did-not-answer");
    let (_, call, _) = fetch(&sim, &id).await;
    assert_eq!(call["status"], "ended");
    assert_eq!(call["artifact"]["transcript"], "");
    assert!(call["analysis"].get("summary").is_none());
    assert!(!is_complete(&call), "can never be complete");
}

#[tokio::test]
async fn never_complete_keeps_get_incomplete_but_the_report_is_full() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let id = place(&sim, &call_body("Acme [never-complete]", &rx.url)).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert!(
        report(&hooks)["artifact"]["transcript"]
            .as_str()
            .unwrap()
            .len()
            > 50
    );
    for _ in 0..3 {
        let (status, call, _) = fetch(&sim, &id).await;
        assert_eq!(
            (status, call["status"].as_str()),
            (StatusCode::OK, Some("ended"))
        );
        assert!(!is_complete(&call), "{call:#}");
    }
}

#[tokio::test]
async fn number_suffix_selects_a_scenario_when_the_name_does_not() {
    let mut rx = receiver().await;
    let sim = start(Timings::fast()).await;
    let mut body = call_body("Acme Plumbing", &rx.url);
    body["customer"]["number"] = json!("+14155550002");
    let id = place(&sim, &body).await;
    let hooks = rx.all_after(&sim, &id).await;
    assert_eq!(hooks[0].msg()["endedReason"], "customer-busy");
}
