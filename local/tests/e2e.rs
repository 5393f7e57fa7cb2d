//! End to end through `ringback-local`: a client starts calls over HTTP and polls them, the
//! built-in Vapi simulator plays one scenario per call, and the tests check what a user sees: the
//! call record, the provider row and the interaction log, and how often Vapi was asked.
//! Each test starts its own system (in memory, port 0), so they run in parallel.

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::*;

/// Waits (polling, with a timeout) until the queue holds nothing, dead letters included: every
/// job, the watchdog too, has run, so Vapi's request counts are final.
async fn wait_queue_drained(sys: &ringback_local::System) {
    let started = Instant::now();
    loop {
        let depth = sys.queue.depth();
        if depth == Some((0, 0)) {
            return;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "the queue never drained: {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Vapi GETs for a settled call, once every queued job has run; printed for the report.
async fn final_vapi_gets(sys: &ringback_local::System, call_id: &str, scenario: &str) -> u32 {
    sim_call_finished(sys, call_id).await;
    wait_queue_drained(sys).await;
    let gets = vapi_gets(sys, call_id);
    eprintln!("Vapi GET /call per call: {gets} ({scenario})");
    gets
}

fn assert_correlated(r: &Value, req: &Value) {
    assert_eq!(r["providerId"], req["providerId"], "{r:#}");
    assert_eq!(r["serviceRequestId"], req["serviceRequestId"], "{r:#}");
    assert_eq!(r["provider"]["name"], req["providerName"], "{r:#}");
    assert_eq!(r["provider"]["phone"], req["providerPhone"], "{r:#}");
    assert_eq!(r["request"]["urgency"], req["urgency"], "{r:#}");
    assert_eq!(r["callMethod"], "direct_vapi", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_completes_with_everything_persisted() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("answered");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(r["callStatus"], "ended", "{r:#}");
    assert!(text_len(&r["transcript"]) > 50, "transcript: {r:#}");
    assert!(text_len(&r["analysis"]["summary"]) > 0, "summary: {r:#}");
    assert!(
        r["analysis"]["structuredData"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "structuredData: {r:#}"
    );
    assert!(
        r["duration"].as_f64().is_some_and(|d| d > 0.0),
        "duration: {r:#}"
    );
    assert!(r["cost"].as_f64().is_some(), "cost: {r:#}");
    assert!(
        r["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "messages: {r:#}"
    );
    assert_correlated(&r, &req);

    let log = assert_one_log(&sys, &req, &id, "success").await;
    assert!(
        log.get("transcript")
            .and_then(|t| t.as_l().ok())
            .is_some_and(|l| !l.is_empty()),
        "{log:?}"
    );
    let row = assert_provider_row(&sys, &req, &id, "completed").await;
    assert!(
        attr_s(&row, "call_transcript").is_some_and(|t| t.len() > 50),
        "{row:?}"
    );

    let gets = final_vapi_gets(&sys, &id, "answered").await;
    assert!((1..=3).contains(&gets), "Vapi GET /call/{id}: {gets}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_ends_fetch_failed() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("no-answer");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "fetch_failed", "{r:#}");
    assert_eq!(r["status"], "no_answer", "{r:#}");
    assert_eq!(r["callStatus"], "ended", "{r:#}");
    assert_eq!(r["endedReason"], "customer-did-not-answer", "{r:#}");
    assert_correlated(&r, &req);
    assert_one_log(&sys, &req, &id, "warning").await;
    assert_provider_row(&sys, &req, &id, "no_answer").await;
    final_vapi_gets(&sys, &id, "no-answer").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_ends_fetch_failed_no_answer() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("busy");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "fetch_failed", "{r:#}");
    assert_eq!(r["status"], "no_answer", "{r:#}");
    assert_eq!(r["endedReason"], "customer-busy", "{r:#}");
    assert_one_log(&sys, &req, &id, "warning").await;
    assert_provider_row(&sys, &req, &id, "no_answer").await;
    final_vapi_gets(&sys, &id, "busy").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicemail_completes_as_voicemail() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("voicemail");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_eq!(r["status"], "voicemail", "{r:#}");
    assert!(text_len(&r["transcript"]) > 50, "{r:#}");
    assert_eq!(
        r["analysis"]["structuredData"]["call_outcome"], "voicemail",
        "{r:#}"
    );
    // Not a completed call, so the log is a warning (api.md §5).
    assert_one_log(&sys, &req, &id, "warning").await;
    assert_provider_row(&sys, &req, &id, "voicemail").await;
    final_vapi_gets(&sys, &id, "voicemail").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_webhook_completes_through_the_watchdog() {
    let sys = start(&[("WATCHDOG_DELAY_SECONDS", "2")]).await;
    let api = Api::new(&sys);
    let req = call_request("no-webhook");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(r["callStatus"], "ended", "{r:#}");
    assert!(text_len(&r["transcript"]) > 50, "{r:#}");
    assert!(
        r["webhookReceivedAt"].is_null(),
        "no webhook was sent: {r:#}"
    );
    assert_one_log(&sys, &req, &id, "success").await;
    assert_provider_row(&sys, &req, &id, "completed").await;
    let gets = final_vapi_gets(&sys, &id, "no-webhook").await;
    assert!(gets >= 1);
    assert_eq!(
        webhooks_sent(&sys, &id),
        0,
        "the simulator sent webhooks for a no-webhook call"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_webhooks_change_nothing_the_second_time() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("duplicate-webhooks");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_eq!(r["status"], "completed", "{r:#}");
    let gets = final_vapi_gets(&sys, &id, "duplicate-webhooks").await;
    let sent = webhooks_sent(&sys, &id);
    assert!(
        sent >= 4 && sent % 2 == 0,
        "every webhook twice, got {sent} deliveries"
    );
    // One enrichment chain: a second chain would ask Vapi again.
    assert!((1..=3).contains(&gets), "Vapi GET /call/{id}: {gets}");
    assert_one_log(&sys, &req, &id, "success").await;
    assert_provider_row(&sys, &req, &id, "completed").await;
    let after = api.get_call(&id).await;
    assert_eq!(after.data()["dataStatus"], "complete", "{:#}", after.body);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_webhooks_never_regress_the_call_status() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("out-of-order");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_eq!(r["status"], "completed", "{r:#}");
    // Every webhook delivered, the late `in-progress` included: still ended and complete.
    final_vapi_gets(&sys, &id, "out-of-order").await;
    assert!(webhooks_sent(&sys, &id) >= 5);
    let after = api.get_call(&id).await;
    let after = after.data();
    assert_eq!(after["callStatus"], "ended", "{after:#}");
    assert_eq!(after["dataStatus"], "complete", "{after:#}");
    assert_one_log(&sys, &req, &id, "success").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_flaky_completes_after_redelivery() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("api-flaky");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_eq!(r["status"], "completed", "{r:#}");
    assert!(text_len(&r["analysis"]["summary"]) > 0, "{r:#}");
    let gets = final_vapi_gets(&sys, &id, "api-flaky").await;
    // Three 500s, then the answer.
    assert!(gets >= 4, "Vapi GET /call/{id}: {gets}");
    assert_eq!(sys.queue.depth(), Some((0, 0)), "nothing dead-lettered");
    assert_one_log(&sys, &req, &id, "success").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_call_is_an_upstream_error_and_leaves_nothing() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("refused");
    let key = uuid::Uuid::new_v4().to_string();
    let r = api.post_call(&req, Some(&key)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.error_code(), "upstream_error");
    assert!(
        r.error_message()
            .contains("customer.number must be a valid phone number"),
        "Vapi's reason: {}",
        r.error_message()
    );
    // The key was released with the failure: a retry asks Vapi again rather than answer 409.
    let again = api.post_call(&req, Some(&key)).await;
    assert_eq!(again.status, StatusCode::BAD_GATEWAY, "{}", again.body);
    let stats = sys.simulator.as_ref().expect("simulator").stats();
    assert_eq!((stats.post_call, stats.post_call_refused), (2, 2));

    let items = scan(&sys, CALLS_TABLE).await;
    let calls: Vec<_> = items
        .iter()
        .filter(|i| attr_s(i, "kind") == Some("call"))
        .collect();
    assert!(calls.is_empty(), "a refused call left records: {calls:?}");
    assert!(
        items.is_empty(),
        "nothing half-written, idempotency records included: {items:?}"
    );
    assert!(scan(&sys, PROVIDERS_TABLE).await.is_empty());
    assert!(scan(&sys, LOGS_TABLE).await.is_empty());
    assert_eq!(
        sys.queue.depth(),
        Some((0, 0)),
        "no watchdog for a call that does not exist"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_complete_ends_fetch_failed_keeping_the_webhook_data() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("never-complete");
    let id = api.start_call(&req).await;

    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "fetch_failed", "{r:#}");
    assert_eq!(r["status"], "completed", "{r:#}");
    // The report's full transcript, not Vapi's cut one.
    assert!(text_len(&r["transcript"]) > 50, "transcript kept: {r:#}");
    assert!(r["fetchAttempts"].as_u64().is_some_and(|n| n >= 3), "{r:#}");
    assert!(!r["fetchError"].is_null(), "{r:#}");
    assert_one_log(&sys, &req, &id, "warning").await;
    let row = assert_provider_row(&sys, &req, &id, "completed").await;
    assert!(
        attr_s(&row, "call_transcript").is_some_and(|t| t.len() > 50),
        "{row:?}"
    );
    final_vapi_gets(&sys, &id, "never-complete").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_places_one_call() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("answered");
    let key = uuid::Uuid::new_v4().to_string();

    let (a, b) = tokio::join!(
        api.post_call(&req, Some(&key)),
        api.post_call(&req, Some(&key))
    );
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.body);
    let id = a.data()["callId"].as_str().expect("callId").to_owned();
    assert_eq!(
        b.data()["callId"],
        json!(id),
        "the repeat answers with the first call"
    );
    assert_eq!(a.body, b.body);
    assert_eq!(a.headers.get("location"), b.headers.get("location"));
    assert_eq!(
        sys.simulator.as_ref().expect("simulator").stats().post_call,
        1,
        "one call placed with Vapi"
    );

    let mut other = req.clone();
    other["location"] = json!("Oakland, CA");
    let c = api.post_call(&other, Some(&key)).await;
    assert_eq!(c.status, StatusCode::CONFLICT, "{}", c.body);
    assert_eq!(c.error_code(), "conflict");
    assert_eq!(
        sys.simulator.as_ref().expect("simulator").stats().post_call,
        1
    );

    let seen = api.get_call(&id).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_vapi_placed_the_call_rings_the_provider_once() {
    // The simulator places the call, then answers POST /call with 504 (its edge lost the answer).
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let req = call_request("lost-answer");
    let key = uuid::Uuid::new_v4().to_string();
    let first = api.post_call(&req, Some(&key)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let id = first.data()["callId"].as_str().expect("callId").to_owned();
    // The client retries, as it did when it got a 502 for this.
    let retry = api.post_call(&req, Some(&key)).await;
    assert_eq!(retry.data()["callId"], json!(id), "{}", retry.body);
    assert_eq!(
        sys.simulator.as_ref().expect("simulator").stats().post_call,
        1,
        "the provider's phone rang twice"
    );
    let r = api.wait_settled(&id).await;
    assert_eq!(r["dataStatus"], "complete", "{r:#}");
    assert_one_log(&sys, &req, &id, "success").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_and_missing_tokens_are_refused() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);

    let bad = json!({
        "providerName": "",
        "providerPhone": "555-1234",
        "serviceNeeded": "Plumbing",
        "userCriteria": "any",
        "urgency": "asap",
        "colour": "blue",
    });
    let r = api.post_call(&bad, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_payload");
    let msg = r.error_message();
    for field in [
        "providerName",
        "providerPhone",
        "location",
        "urgency",
        "colour",
    ] {
        assert!(msg.contains(field), "the message names {field}: {msg}");
    }
    assert!(
        !msg.contains("serviceNeeded"),
        "a valid field is not named: {msg}"
    );

    let not_json = api
        .http
        .post(format!("{}{CALLS_PATH}", api.base))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let no_token = api
        .http
        .post(format!("{}{CALLS_PATH}", api.base))
        .json(&call_request("answered"))
        .send()
        .await
        .expect("POST");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_token.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");

    let wrong = api
        .http
        .post(format!("{}{CALLS_PATH}", api.base))
        .bearer_auth("not-the-token")
        .json(&call_request("answered"))
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let get = api.get(&format!("{CALLS_PATH}/some-call"), None).await;
    assert_eq!(get.status, StatusCode::UNAUTHORIZED, "{}", get.body);
    assert_eq!(get.error_code(), "unauthorized");

    assert_eq!(
        sys.simulator.as_ref().expect("simulator").stats().post_call,
        0,
        "nothing reached Vapi"
    );
    sys.stop().await;
}

/// Issue 2: an end-of-call report is stored at once, whole, and the fetch is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_call_report_is_stored_partial_and_queued() {
    let sys = start(&[("ENRICHMENT_DELAYS", "60")]).await;
    let api = Api::new(&sys);
    let unsigned = api
        .http
        .post(format!("{}{WEBHOOK_PATH}", api.base))
        .header("content-type", "application/json")
        .body(sample("end-of-call-report.json"))
        .send()
        .await
        .expect("POST webhook");
    assert_eq!(
        unsigned.status(),
        StatusCode::UNAUTHORIZED,
        "a webhook without the secret"
    );
    assert_eq!(sys.queue.depth(), Some((0, 0)));

    let r = api.post_webhook(&sample("end-of-call-report.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";
    assert_eq!(r.data(), &json!({"callId": id, "dataStatus": "partial"}));

    let got = api.get_call(id).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let c = got.data();
    assert_eq!(c["dataStatus"], "partial", "{c:#}");
    assert_eq!(c["status"], "completed", "{c:#}");
    assert_eq!(c["callStatus"], "ended", "{c:#}");
    assert!(text_len(&c["transcript"]) > 50, "{c:#}");
    assert_eq!(
        c["analysis"]["summary"],
        "Bayside Plumbing can come Thursday between 8 and 10 am; the call-out fee is $95 and the repair is usually under $200.",
        "{c:#}"
    );
    let duration = c["duration"].as_f64().expect("duration");
    assert!(
        (duration - 1.26).abs() < 0.01,
        "duration {duration} (75.566 s in minutes)"
    );
    assert_eq!(c["cost"], json!(0.1372), "{c:#}");
    assert_eq!(
        sys.queue.depth(),
        Some((1, 0)),
        "the enrichment job waits on the queue"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_record_and_the_queued_job() {
    let dir = TempDir::new("restart");
    let data_dir = dir.path().to_str().expect("utf-8 temp dir").to_owned();
    let overrides = [
        ("RINGBACK_IN_MEMORY", "0"),
        ("RINGBACK_DATA_DIR", data_dir.as_str()),
        ("ENRICHMENT_DELAYS", "60"),
    ];
    let id = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";

    let sys = start(&overrides).await;
    let api = Api::new(&sys);
    let r = api.post_webhook(&sample("end-of-call-report.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(sys.queue.depth(), Some((1, 0)));
    sys.stop().await;

    let sys = start(&overrides).await;
    let api = Api::new(&sys);
    let got = api.get_call(id).await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "the record survived the restart: {}",
        got.body
    );
    let c = got.data();
    assert_eq!(c["dataStatus"], "partial", "{c:#}");
    assert!(text_len(&c["transcript"]) > 50, "{c:#}");
    assert_eq!(c["cost"], json!(0.1372), "{c:#}");
    assert_eq!(
        sys.queue.depth(),
        Some((1, 0)),
        "the queued job survived the restart"
    );
    sys.stop().await;
}

/// The runner makes an acknowledged write durable by syncing the store's WAL file by name
/// (`local/src/durability.rs`); a missing file counts as "nothing written". If the store ever kept
/// its WAL elsewhere, every sync would silently do nothing: this holds the name in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_webhook_is_in_the_wal_the_runner_syncs() {
    let dir = TempDir::new("wal");
    let data_dir = dir.path().to_str().expect("utf-8 temp dir").to_owned();
    let sys = start(&[
        ("RINGBACK_IN_MEMORY", "0"),
        ("RINGBACK_DATA_DIR", data_dir.as_str()),
        ("ENRICHMENT_DELAYS", "60"),
    ])
    .await;
    let api = Api::new(&sys);
    let r = api.post_webhook(&sample("end-of-call-report.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let wal = dir.path().join("ringback.db-wal");
    let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(
        len > 0,
        "{} is missing or empty after an acknowledged write",
        wal.display()
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_unknown_routes() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let h = api.get("/health", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body, json!({"success": true, "data": {"status": "ok"}}));

    let nope = api.get("/no/such/route", None).await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND, "{}", nope.body);
    assert_eq!(nope.error_code(), "not_found");
    assert!(!nope.error_message().is_empty());

    let unknown = api.get_call(&uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert_eq!(unknown.error_code(), "not_found");
    sys.stop().await;
}

/// Issue 11: a call is found by `serviceRequestId` after its record in the calls table expired
/// (RESULT_TTL_SECONDS shortened to 6 s): the record's GET is 404, the search still lists it, as
/// it settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_found_by_service_request_after_its_record_expired() {
    let sys = start(&[
        ("RESULT_TTL_SECONDS", "6"),
        ("CLEANUP_MARGIN_SECONDS", "1"),
        ("CLAIM_LEASE_SECONDS", "2"),
    ])
    .await;
    let api = Api::new(&sys);
    let req = call_request("answered");
    let id = api.start_call(&req).await;
    let settled = api.wait_settled(&id).await;
    assert_eq!(settled["dataStatus"], "complete", "{settled:#}");

    // Nothing writes a settled record again: it expires RESULT_TTL_SECONDS after its last write.
    let started = Instant::now();
    loop {
        let r = api.get_call(&id).await;
        if r.status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the record never expired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let sr = req["serviceRequestId"].as_str().unwrap();
    let found = api
        .get(
            &format!("{CALLS_PATH}?serviceRequestId={sr}"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let calls = found.data()["calls"].as_array().expect("calls").clone();
    assert_eq!(calls.len(), 1, "{}", found.body);
    let call = &calls[0];
    assert_eq!(call["callId"], id.as_str());
    assert_eq!(call["dataStatus"], "complete");
    assert_eq!(call["status"], "completed");
    assert_eq!(call["callStatus"], "ended");
    assert_eq!(call["providerId"], req["providerId"]);
    assert_eq!(call["providerName"], req["providerName"]);
    assert_eq!(call["createdAt"], settled["createdAt"]);
    assert!(found.data()["nextCursor"].is_null(), "{}", found.body);
    // No phone number, no transcript in a listing.
    assert!(!found.body.to_string().contains("+1415"), "{}", found.body);

    // The same call through the other indexes.
    let pid = req["providerId"].as_str().unwrap();
    for q in [
        format!("providerId={pid}"),
        "status=completed".to_owned(),
        "status=complete".to_owned(),
        String::new(),
    ] {
        let r = api.get(&format!("{CALLS_PATH}?{q}"), Some(API_TOKEN)).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
        assert!(
            r.data()["calls"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["callId"] == id.as_str())),
            "{q}: {}",
            r.body
        );
    }
    let bad = api
        .get(&format!("{CALLS_PATH}?since=last-week"), Some(API_TOKEN))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.error_code(), "invalid_payload");
    let denied = api.get(CALLS_PATH, None).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    sys.stop().await;
}
