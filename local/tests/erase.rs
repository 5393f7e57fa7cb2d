//! Erasing a call, end to end through `ringback-local` as a new user would: a simulated call with
//! a `callbackUrl` completes and is pushed, then is erased; Vapi's webhooks for it are sent again,
//! a replay is asked for and the cleanup runs: every route and table shows it erased, nothing is
//! pushed after the erase, and `stats` no longer counts it.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::*;

async fn delete(api: &Api, id: &str, query: &str) -> (StatusCode, Value) {
    let r = api
        .http
        .delete(format!("{}{CALLS_PATH}/{id}{query}", api.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("DELETE");
    let status = r.status();
    (status, r.json().await.expect("JSON"))
}

async fn received(api: &Api, id: &str) -> Vec<Value> {
    let r = api.get("/dev/callbacks", None).await;
    let all = r.data()["received"].as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|e| e["callId"] == id).collect()
}

async fn stats_total(api: &Api) -> i64 {
    let r = api.get("/api/v1/vapi/stats", Some(API_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data()["calls"]["total"].as_i64().expect("a total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_call_stays_erased_through_late_webhooks_replay_and_the_cleanup() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let mut req = call_request("answered");
    req["callbackUrl"] = json!(format!("{}/dev/callbacks", sys.base_url));
    let id = api.start_call(&req).await;
    let settled = api.wait_settled(&id).await;
    assert_eq!(settled["dataStatus"], "complete", "{settled:#}");
    // The settling event arrives (its push runs after the settle).
    let started = std::time::Instant::now();
    while received(&api, &id).await.is_empty() {
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "call.completed never pushed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kept = ringback::adapters::dynamodb::EventsTable::new(
        sys.dynamo.clone(),
        "ringback-events".into(),
        Duration::from_secs(86_400),
        std::sync::Arc::new(ringback::ports::SystemClock),
    );
    let bodies = ringback::ports::WebhookArchive::webhooks(&kept, &id)
        .await
        .unwrap();
    assert!(!bodies.is_empty(), "the simulator's webhooks were kept");
    let counted = stats_total(&api).await;

    let (status, first) = delete(&api, &id, "?vapi=true").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let e = &first["data"];
    assert_eq!(e["erased"], true);
    assert!(
        e["historyItemsDeleted"].as_u64().unwrap() > bodies.len() as u64,
        "{e}"
    );
    assert_eq!(e["providerRow"], true, "{e}");
    assert_eq!(e["interactionLog"], true, "{e}");
    // A call a day old at most: a client retrying its request must still find it at Vapi.
    assert_eq!(e["vapi"]["result"], "later", "{e}");
    assert!(
        e["vapi"]["after"].as_str().unwrap() > e["erasedAt"].as_str().unwrap(),
        "{e}"
    );
    let pushed = received(&api, &id).await.len();

    // Idempotent: the same erase time, nothing left to delete.
    let (status, again) = delete(&api, &id, "").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["erasedAt"], e["erasedAt"]);
    assert_eq!(again["data"]["historyItemsDeleted"], 0);
    assert!(again["data"].get("vapi").is_none(), "{again}");

    // Vapi's webhooks again, a replay, the cleanup: none brings anything back.
    for w in &bodies {
        let r = api.post_webhook(&w.body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["ignored"], true, "{}", r.body);
    }
    let replay = api
        .http
        .post(format!("{}{CALLS_PATH}/{id}/replay", api.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::GONE);
    sys.cleanup.run_once().await.expect("a cleanup run");

    let polled = api.get_call(&id).await;
    assert_eq!(polled.status, StatusCode::GONE, "{}", polled.body);
    assert_eq!(polled.error_code(), "gone");
    let t = api
        .get(&format!("{CALLS_PATH}/{id}/events"), Some(API_TOKEN))
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(
        t.data()["timeline"],
        json!([{"what": "call.erased", "at": e["erasedAt"]}]),
        "the erase is the one thing left"
    );
    let request = req["serviceRequestId"].as_str().unwrap();
    let listed = api
        .get(
            &format!("{CALLS_PATH}?serviceRequestId={request}"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(listed.data()["calls"], json!([]), "{}", listed.body);
    assert_eq!(
        stats_total(&api).await,
        counted - 1,
        "stats no longer count it"
    );

    // The tables themselves.
    let history: Vec<String> = scan(&sys, "ringback-events")
        .await
        .iter()
        .filter(|i| attr_s(i, "callId") == Some(id.as_str()))
        .filter_map(|i| attr_s(i, "sk").map(str::to_owned))
        .collect();
    assert_eq!(history, ["erased"], "only the erasure mark is left");
    let record = scan(&sys, "ringback-calls").await;
    let tomb = record
        .iter()
        .find(|i| attr_s(i, "callId") == Some(id.as_str()))
        .expect("the tombstone");
    assert!(tomb.contains_key("erasedAt"));
    let stored = sys.store.get(&id).await.unwrap().expect("readable");
    let text = serde_json::to_string(&stored.record.result).unwrap();
    for gone in ["+14155550123", "Acme", "Licensed", "dev/callbacks"] {
        assert!(
            !text.contains(gone),
            "{gone} is still in the tombstone: {text}"
        );
    }
    if let Some(t) = settled["transcript"].as_str() {
        assert!(!text.contains(t));
    }
    let provider = provider_row(&sys, req["providerId"].as_str().unwrap())
        .await
        .expect("the provider row");
    for field in ["call_transcript", "call_summary", "call_result"] {
        assert!(
            provider.get(field).is_none_or(|v| v.is_null()),
            "{field}: {provider:?}"
        );
    }
    let logs = interaction_logs(&sys, request, &id).await;
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0].get("transcript").is_none_or(|v| v.is_null()),
        "{:?}",
        logs[0]
    );

    assert_eq!(
        received(&api, &id).await.len(),
        pushed,
        "nothing pushed after the erase"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_call_is_404_and_bad_parameters_are_400() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let (status, body) = delete(&api, "no-such-call", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = delete(&api, "no-such-call", "?vapi=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unauthorized = api
        .http
        .delete(format!("{}{CALLS_PATH}/x", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let bad = api
        .get("/api/v1/vapi/stats?since=yesterday", Some(API_TOKEN))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    sys.stop().await;
}
