//! Seeded calls answered through each FetchScript.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use vapi_simulator::{FetchScript, Timings};

use crate::helpers::*;

fn complete_call(id: &str) -> Value {
    json!({
        "id": id, "orgId": "o", "type": "outboundPhoneCall", "status": "ended",
        "endedReason": "customer-ended-call",
        "createdAt": "2026-03-02T15:04:05.120Z", "updatedAt": "2026-03-02T15:05:19.402Z",
        "artifact": { "transcript": "AI: Hi, is this Acme Plumbing?\nUser: Yes it is, how can I help you today?" },
        "analysis": { "summary": "Acme can come tomorrow.", "structuredData": { "availability": "available" } },
        "assistantOverrides": { "metadata": { "providerId": "p1" } }
    })
}

#[tokio::test]
async fn always_returns_the_call_as_seeded_without_webhooks() {
    let sim = start(Timings::fast()).await;
    let seeded = complete_call("seed-always");
    let id = sim.seed_call(seeded.clone(), FetchScript::Always);
    assert!(
        sim.wait_call_finished(&id).await,
        "seeded calls are finished"
    );
    for _ in 0..2 {
        let (status, call, _) = fetch(&sim, &id).await;
        assert_eq!((status, &call), (StatusCode::OK, &seeded));
    }
    assert_eq!(
        (sim.get_calls_for(&id), sim.stats().webhooks_sent_total()),
        (2, 0)
    );
}

#[tokio::test]
async fn complete_on_nth_hides_the_analysis_before_that_get() {
    let sim = start(Timings::fast()).await;
    let id = sim.seed_call(complete_call("seed-nth"), FetchScript::CompleteOnNth(3));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, call, _) = fetch(&sim, &id).await;
        if !is_complete(&call) {
            assert!(call.get("analysis").is_none());
            assert!(call["artifact"]["transcript"].as_str().unwrap().len() < 50);
        }
        seen.push(is_complete(&call));
    }
    assert_eq!(seen, [false, false, true, true]);
}

#[tokio::test]
async fn fail_times_answers_the_status_then_the_call() {
    let sim = start(Timings::fast()).await;
    let id = sim.seed_call(
        complete_call("seed-429"),
        FetchScript::FailTimes {
            status: 429,
            times: 2,
        },
    );
    for _ in 0..2 {
        let (status, err, headers) = fetch(&sim, &id).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(err["statusCode"], 429);
    }
    let (status, call, _) = fetch(&sim, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_complete(&call));
}

#[tokio::test]
async fn never_stays_incomplete() {
    let sim = start(Timings::fast()).await;
    let id = sim.seed_call(complete_call("seed-never"), FetchScript::Never);
    for _ in 0..5 {
        let (status, call, _) = fetch(&sim, &id).await;
        assert_eq!(
            (status, call["status"].as_str()),
            (StatusCode::OK, Some("ended"))
        );
        assert!(!is_complete(&call));
    }
    assert_eq!(sim.get_calls_for(&id), 5);
}

#[tokio::test]
async fn slow_answers_after_the_delay_so_client_timeouts_fire() {
    let sim = start(Timings::fast()).await;
    let id = sim.seed_call(
        complete_call("seed-slow"),
        FetchScript::Slow(Duration::from_millis(400)),
    );
    let url = format!("{}/call/{id}", sim.base_url());
    let impatient = client()
        .get(&url)
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(50))
        .send()
        .await;
    assert!(impatient.is_err_and(|e| e.is_timeout()));
    let t0 = Instant::now();
    let (status, call, _) = fetch(&sim, &id).await;
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(status, StatusCode::OK);
    assert!(is_complete(&call));
}

#[tokio::test]
async fn seeding_without_an_id_assigns_one() {
    let sim = start(Timings::fast()).await;
    let mut call = complete_call("x");
    call.as_object_mut().unwrap().remove("id");
    let id = sim.seed_call(call, FetchScript::Always);
    let (status, got, _) = fetch(&sim, &id).await;
    assert_eq!(
        (status, got["id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
}
