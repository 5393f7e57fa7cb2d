//! Every authenticated webhook kept raw, and an operator's replay, end to end through
//! `ringback-local`: the kept deliveries say what each did, a body too big for one item comes back
//! whole, and a replay after a bug rebuilds the record with one interaction log, however often.

mod common;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use ringback::adapters::dynamodb::EventsTable;
use ringback::ports::{SystemClock, WebhookArchive};
use serde_json::{json, Value};

use common::*;

const SAMPLE_CALL: &str = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";

fn archive(sys: &ringback_local::System) -> EventsTable {
    EventsTable::new(
        sys.dynamo.clone(),
        "ringback-events".into(),
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    )
}

async fn timeline(api: &Api, id: &str) -> Value {
    let r = api
        .get(&format!("{CALLS_PATH}/{id}/events"), Some(API_TOKEN))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data().clone()
}

async fn replay(api: &Api, id: &str) -> Value {
    let r = api
        .http
        .post(format!("{}{CALLS_PATH}/{id}/replay", api.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("POST replay");
    let status = r.status();
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authenticated_webhook_is_kept_raw_with_what_it_did() {
    let sys = start(&[("ENRICHMENT_DELAYS", "60")]).await;
    let api = Api::new(&sys);
    let report = sample("end-of-call-report.json");
    assert_eq!(api.post_webhook(&report).await.status, StatusCode::OK);
    assert_eq!(api.post_webhook(&report).await.status, StatusCode::OK);
    let forged = api
        .http
        .post(format!("{}{WEBHOOK_PATH}", api.base))
        .header("x-vapi-secret", "wrong")
        .body(report.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let chatter = json!({"message": {"type": "speech-update", "call": {"id": SAMPLE_CALL}}});
    let r = api.post_webhook(chatter.to_string().as_bytes()).await;
    assert_eq!(r.data()["ignored"], true);

    let t = timeline(&api, SAMPLE_CALL).await;
    let kept: Vec<&Value> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "webhook.received")
        .collect();
    let outcomes: Vec<&str> = kept
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    // The re-sent report is the same body, not stored twice; the chatter is not stored.
    assert_eq!(outcomes, ["applied"], "{t:#}");
    assert_eq!(t["webhooks"], json!({"kept": 1, "notKept": 0}), "{t:#}");
    assert!(kept.iter().all(|e| e["auth"] == "x-vapi-secret"), "{t:#}");
    assert_eq!(kept[0]["messageType"], "end-of-call-report");

    let bodies = archive(&sys).webhooks(SAMPLE_CALL).await.unwrap();
    assert_eq!(
        bodies.len(),
        1,
        "the forged delivery and the chatter are not kept"
    );
    assert_eq!(bodies[0].body, report, "kept byte for byte");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_big_for_one_item_is_kept_whole() {
    let sys = start(&[("ENRICHMENT_DELAYS", "60")]).await;
    let api = Api::new(&sys);
    // ~900 KB of hex from UUIDs: gzip leaves about half, more than one 400 KB item holds.
    let noise: String = (0..28_000)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let mut report: Value = serde_json::from_slice(&sample("end-of-call-report.json")).unwrap();
    report["message"]["artifact"]["transcript"] = json!(format!("AI: {noise}"));
    let body = serde_json::to_vec(&report).unwrap();
    assert!(body.len() > 850_000 && body.len() < 1_048_576);
    assert_eq!(api.post_webhook(&body).await.status, StatusCode::OK);

    let kept = archive(&sys).webhooks(SAMPLE_CALL).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, body);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_a_bug_gives_the_corrected_record_with_one_interaction_log() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("answered");
    let id = api.start_call(&req).await;
    let good = api.wait_settled(&id).await;
    assert_eq!(good["dataStatus"], "complete", "{good:#}");

    // The bug: a release that read the outcome and transcript wrongly wrote this.
    let stored = sys.store.get(&id).await.unwrap().expect("the record");
    let mut bad = stored.record.clone();
    bad.result.status = Some(ringback::domain::Outcome::Error);
    bad.result.transcript = Some("garbage".into());
    sys.store
        .put(&bad, Some(stored.version), None)
        .await
        .expect("the buggy write");
    assert_eq!(api.get_call(&id).await.data()["transcript"], "garbage");

    for round in 1..=2 {
        let started = replay(&api, &id).await;
        assert_eq!(started["callId"], id.as_str());
        assert!(
            started["replayedEvents"].as_u64().unwrap() >= 1,
            "{started}"
        );
        let fixed = api.wait_settled(&id).await;
        assert_eq!(fixed["dataStatus"], "complete", "round {round}: {fixed:#}");
        assert_eq!(fixed["status"], "completed", "round {round}");
        assert_eq!(fixed["transcript"], good["transcript"], "round {round}");
        assert_eq!(fixed["analysis"], good["analysis"], "round {round}");
        assert_eq!(fixed["createdAt"], good["createdAt"], "round {round}");
        assert_one_log(&sys, &req, &id, "success").await;
    }

    let unknown = api
        .http
        .post(format!("{}{CALLS_PATH}/no-such-call/replay", api.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    sys.stop().await;
}
