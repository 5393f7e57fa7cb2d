//! The REST surface: shapes, validation, auth, errors.

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::{json, Value};
use vapi_simulator::{SimulatorConfig, Timings};

use crate::helpers::*;

fn assert_vapi_time(v: &Value) {
    let s = v.as_str().expect("a timestamp string");
    // e.g. 2026-03-02T15:04:05.120Z: millisecond precision and a Z.
    assert!(
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.',
        "{s}"
    );
    DateTime::parse_from_rfc3339(s).expect("ISO-8601");
}

#[tokio::test]
async fn post_call_answers_201_with_a_queued_vapi_call() {
    let sim = start(Timings::fast()).await;
    let body = call_body("Acme Plumbing", "http://127.0.0.1:9/hook");
    let (status, call) = create(&sim, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = call["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert!(call["orgId"].is_string());
    assert_eq!(call["type"], "outboundPhoneCall");
    assert_eq!(call["status"], "queued");
    assert_vapi_time(&call["createdAt"]);
    assert_vapi_time(&call["updatedAt"]);
    for k in ["assistantId", "phoneNumberId", "customer", "name"] {
        assert_eq!(call[k], body[k], "{k} echoed");
    }
    assert_eq!(
        call["assistantOverrides"]["metadata"],
        body["assistantOverrides"]["metadata"]
    );
    assert!(call.get("endedReason").is_none());
    let stats = sim.stats();
    assert_eq!((stats.post_call, stats.post_call_refused), (1, 0));
}

#[tokio::test]
async fn unknown_property_is_refused_like_nestjs() {
    let sim = start(Timings::fast()).await;
    let mut body = call_body("Acme Plumbing", "http://127.0.0.1:9/hook");
    body["metadata"] = json!({"orderId": "1"});
    body["foo"] = json!(1);
    let (status, err) = create(&sim, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut msgs: Vec<&str> = err["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    msgs.sort();
    assert_eq!(
        msgs,
        [
            "property foo should not exist",
            "property metadata should not exist"
        ]
    );
    assert_eq!(
        (err["error"].as_str(), err["statusCode"].as_u64()),
        (Some("Bad Request"), Some(400))
    );
}

#[tokio::test]
async fn refused_scenario_is_400_and_creates_no_call() {
    let sim = start(Timings::fast()).await;
    let (status, err) = create(
        &sim,
        &call_body("Acme [refused]", "http://127.0.0.1:9/hook"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err["message"],
        json!(["customer.number must be a valid phone number"])
    );
    assert_eq!(err["statusCode"], 400);
    let list: Value = client()
        .get(format!("{}/call", sim.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    let stats = sim.stats();
    assert_eq!((stats.post_call, stats.post_call_refused), (1, 1));
}

#[tokio::test]
async fn missing_fields_and_bad_numbers_are_400() {
    let sim = start(Timings::fast()).await;
    let mut no_assistant = call_body("x", "http://127.0.0.1:9/hook");
    no_assistant.as_object_mut().unwrap().remove("assistantId");
    let mut bad_number = call_body("x", "http://127.0.0.1:9/hook");
    bad_number["customer"]["number"] = json!("555-0123");
    for body in [no_assistant, bad_number, json!([])] {
        let (status, err) = create(&sim, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            err["message"].is_string() || err["message"].is_array(),
            "{err}"
        );
    }
}

#[tokio::test]
async fn get_unknown_call_is_404() {
    let sim = start(Timings::fast()).await;
    let (status, err, _) = fetch(&sim, "00000000-0000-4000-8000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err,
        json!({"message": "Couldn't Get Call. Call Not Found", "error": "Not Found", "statusCode": 404})
    );
    assert_eq!(sim.stats().get_call_total, 1);
}

#[tokio::test]
async fn api_key_is_checked_when_configured() {
    let sim = start_with(SimulatorConfig {
        api_key: Some("right".into()),
        timings: Timings::fast(),
        ..Default::default()
    })
    .await;
    let body = call_body("Acme", "http://127.0.0.1:9/hook");
    let url = format!("{}/call", sim.base_url());
    for auth in [Some("Bearer wrong"), Some("Bearer "), None] {
        let mut req = client().post(&url).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(
            (err["error"].as_str(), err["statusCode"].as_u64()),
            (Some("Unauthorized"), Some(401))
        );
        assert!(err["message"].as_str().unwrap().starts_with("Invalid Key"));
    }
    let res = client()
        .post(&url)
        .bearer_auth("right")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(sim.stats().post_call_refused, 3);
}

#[tokio::test]
async fn every_answer_is_json_even_unknown_routes() {
    let sim = start(Timings::fast()).await;
    let res = client()
        .delete(format!("{}/nowhere", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["message"], "Cannot DELETE /nowhere");
}

#[tokio::test]
async fn get_shows_the_live_status_before_the_end() {
    let mut hooks = receiver().await;
    let slow_talk = Timings {
        talk: std::time::Duration::from_secs(60),
        ..Timings::fast()
    };
    let sim = start(slow_talk).await;
    let id = place(&sim, &call_body("Acme Plumbing", &hooks.url)).await;
    assert_eq!(hooks.next().await.label(), "status-update:ringing");
    assert_eq!(hooks.next().await.label(), "status-update:in-progress");
    let (status, call, _) = fetch(&sim, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call["status"], "in-progress");
    assert!(call.get("endedReason").is_none() && call.get("endedAt").is_none());
    assert_vapi_time(&call["startedAt"]);
    sim.shutdown().await;
}
