//! Pushed completion events, end to end through `ringback-local`: a simulated call with a
//! `callbackUrl` is delivered to a receiver on loopback, signed so that an independent Standard
//! Webhooks verifier accepts it; failures are retried under the same `webhook-id`, a 410 stops
//! retries, and every attempt is listed on the call's timeline.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use ringback_local::options::DEV_CALLBACK_SECRET;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use common::*;

/// One POST the receiver got.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// Where the receiver hands requests, and the statuses it has left to answer.
type ReceiverState = (mpsc::UnboundedSender<Received>, Arc<Mutex<Vec<u16>>>);

/// A receiver on loopback that answers each POST with the next scripted status (the last one
/// repeats) and hands every request to the test.
struct Receiver {
    url: String,
    got: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(answers: &[u16]) -> Self {
        let (tx, got) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(answers.to_vec()));
        let app = axum::Router::new()
            .fallback(
                |State((tx, script)): State<ReceiverState>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let status = {
                        let mut s = script.lock().unwrap();
                        if s.len() > 1 {
                            s.remove(0)
                        } else {
                            s[0]
                        }
                    };
                    let _ = tx.send(Received { headers, body });
                    StatusCode::from_u16(status).unwrap()
                },
            )
            .with_state((tx, script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/ringback", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, got }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(SETTLE_TIMEOUT, self.got.recv())
            .await
            .expect("no event pushed in time")
            .expect("receiver running")
    }
}

fn request_with_callback(scenario: &str, url: &str) -> Value {
    let mut req = call_request(scenario);
    req["callbackUrl"] = json!(url);
    req
}

/// Verifies with the Standard Webhooks reference library and returns the event.
fn verified(r: &Received) -> Value {
    standardwebhooks::Webhook::new(DEV_CALLBACK_SECRET)
        .unwrap()
        .verify(&r.body, &r.headers)
        .expect("a Standard Webhooks verifier accepts the push");
    serde_json::from_slice(&r.body).expect("the event is JSON")
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Polls the call's timeline until its first push is in `state`.
async fn wait_push_state(api: &Api, id: &str, state: &str) -> Value {
    let path = format!("{CALLS_PATH}/{id}/events");
    let started = std::time::Instant::now();
    loop {
        let r = api.get(&path, Some(API_TOKEN)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let data = r.data().clone();
        if data["pushes"][0]["state"] == state {
            return data;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "push never reached {state}: {data:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_call_pushes_one_signed_event_a_standard_webhooks_verifier_accepts() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let mut receiver = Receiver::start(&[200]).await;
    let id = api
        .start_call(&request_with_callback("answered", &receiver.url))
        .await;

    let got = receiver.next().await;
    let event = verified(&got);
    assert_eq!(event["type"], "call.completed", "{event:#}");
    assert_eq!(event["id"], header(&got, "webhook-id"));
    assert_eq!(event["data"]["callId"], id.as_str());
    assert_eq!(event["data"]["dataStatus"], "complete");
    assert!(text_len(&event["data"]["transcript"]) > 50, "{event:#}");
    assert_eq!(got.headers["content-type"], "application/json");

    let timeline = wait_push_state(&api, &id, "delivered").await;
    let pushes = timeline["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "one event per settled call: {timeline:#}");
    assert_eq!(pushes[0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(pushes[0]["attempts"][0]["status"], 200);
    assert!(
        receiver.got.try_recv().is_err(),
        "a delivered event is not sent again"
    );
    // Its delivery job went on the push queue, consumed apart from enrichment's.
    let push_jobs = sys.push_queue.requests();
    assert!(
        push_jobs.sends >= 1 && push_jobs.receives >= 1,
        "{push_jobs:?}"
    );
    // The record as polled says the same as the event.
    let polled = api.wait_settled(&id).await;
    assert_eq!(polled["dataStatus"], event["data"]["dataStatus"]);
    assert_eq!(polled["callbackUrl"], receiver.url.as_str());
    sys.stop().await;
}

/// A call whose analysis no DynamoDB item holds, even gzipped (the `oversized` scenario's 600 KB
/// summary of random text): it still settles, its event is kept and pushed cut to fit, marked
/// `truncated`, and the runner keeps answering. Before the events table fitted events in a bounded
/// number of steps, this call was never pushed and the runner spun both cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_too_large_for_an_item_settles_and_is_pushed_cut_to_fit() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let mut receiver = Receiver::start(&[200]).await;
    let id = api
        .start_call(&request_with_callback("oversized", &receiver.url))
        .await;

    let got = receiver.next().await;
    let event = verified(&got);
    assert_eq!(event["type"], "call.completed", "{}", event["type"]);
    assert_eq!(event["data"]["callId"], id.as_str());
    assert_eq!(event["data"]["truncated"], true);
    assert!(got.body.len() < 400 * 1024, "{} bytes", got.body.len());
    wait_push_state(&api, &id, "delivered").await;

    // The record itself is whole and says nothing of a cut.
    let polled = api.wait_settled(&id).await;
    assert_eq!(polled["dataStatus"], "complete");
    assert_eq!(
        text_len(&polled["analysis"]["summary"]),
        vapi_simulator::OVERSIZED_SUMMARY_BYTES
    );
    assert!(polled.get("truncated").is_none(), "the record is never cut");
    let health = api.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_once_gets_the_same_event_again_and_both_attempts_are_listed() {
    let sys = start(&[("CALLBACK_RETRY_DELAYS", "1,1")]).await;
    let api = Api::new(&sys);
    let mut receiver = Receiver::start(&[500, 200]).await;
    let id = api
        .start_call(&request_with_callback("no-answer", &receiver.url))
        .await;

    let first = receiver.next().await;
    let second = receiver.next().await;
    let event = verified(&second);
    verified(&first);
    assert_eq!(
        event["type"], "call.failed",
        "a no-answer call settles fetch_failed"
    );
    assert_eq!(header(&first, "webhook-id"), header(&second, "webhook-id"));
    assert_eq!(first.body, second.body, "a retry sends the same event");

    let timeline = wait_push_state(&api, &id, "delivered").await;
    let attempts = timeline["pushes"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(200)], "{timeline:#}");
    assert!(attempts
        .iter()
        .all(|a| a["at"].is_string() && a["latencyMs"].is_u64()));
    let listed = timeline["timeline"].as_array().unwrap();
    let attempt_entries = listed
        .iter()
        .filter(|e| e["what"] == "push.attempt")
        .count();
    assert_eq!(attempt_entries, 2, "{timeline:#}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_stops_retries_and_an_operator_can_redeliver() {
    let sys = start(&[("CALLBACK_RETRY_DELAYS", "1,1,1")]).await;
    let api = Api::new(&sys);
    let mut receiver = Receiver::start(&[410, 200]).await;
    let id = api
        .start_call(&request_with_callback("answered", &receiver.url))
        .await;
    let first = receiver.next().await;
    let timeline = wait_push_state(&api, &id, "gone").await;
    assert_eq!(
        timeline["pushes"][0]["attempts"].as_array().unwrap().len(),
        1
    );

    let event_id = header(&first, "webhook-id").to_owned();
    let redeliver = |token: Option<&'static str>| {
        let req = api.http.post(format!(
            "{}/api/v1/vapi/callbacks/{event_id}/redeliver",
            api.base
        ));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    assert_eq!(
        redeliver(None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = redeliver(Some(API_TOKEN)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let again = receiver.next().await;
    verified(&again);
    assert_eq!(header(&again, "webhook-id"), event_id);
    let timeline = wait_push_state(&api, &id, "delivered").await;
    assert_eq!(
        timeline["pushes"][0]["attempts"].as_array().unwrap().len(),
        2
    );

    let unknown = api
        .http
        .post(format!(
            "{}/api/v1/vapi/callbacks/evt_nope/redeliver",
            api.base
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_urls_ringback_may_not_call_are_refused_by_name() {
    // As a deployment: public hosts only.
    let sys = start(&[("CALLBACK_HOSTS", "deployment")]).await;
    let api = Api::new(&sys);
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://2130706433/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://100.64.0.1/hook",
        "https://metadata.google.internal/",
        "ftp://example.com/",
        "not a url",
    ] {
        let r = api
            .post_call(&request_with_callback("answered", url), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.body);
        assert!(
            r.error_message().contains("callbackUrl"),
            "{url}: {}",
            r.body
        );
    }
    let events = api
        .get(
            &format!("{CALLS_PATH}/no-such-call/events"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(events.status, StatusCode::NOT_FOUND);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_runner_allows_loopback_receivers_but_no_private_network() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    for url in [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "http://192.168.1.1/hook",
    ] {
        let r = api
            .post_call(&request_with_callback("answered", url), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.body);
        assert!(
            r.error_message().contains("callbackUrl")
                && r.body.to_string().contains("public hosts only"),
            "{url}: {}",
            r.body
        );
    }
    let ok = api
        .post_call(
            &request_with_callback("answered", "http://[::1]:9/hook"),
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runners_own_receiver_shows_the_loop_offline() {
    let sys = start(&[]).await;
    let api = Api::new(&sys);
    let url = format!("{}/dev/callbacks", sys.base_url);
    let id = api
        .start_call(&request_with_callback("answered", &url))
        .await;
    wait_push_state(&api, &id, "delivered").await;
    let got = api.get("/dev/callbacks", None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let received = got.data()["received"].as_array().unwrap().clone();
    // At least once, under one webhook-id (a loaded machine can redeliver the settling step,
    // and with it the event: receivers de-duplicate on the id).
    assert!(!received.is_empty(), "{received:?}");
    for r in &received {
        assert_eq!(r["callId"], id.as_str(), "{received:?}");
        assert_eq!(r["type"], "call.completed", "{received:?}");
        assert_eq!(r["webhookId"], received[0]["webhookId"], "{received:?}");
        assert_eq!(r["verified"], true, "{received:?}");
    }

    // A forged event is refused (and would be retried by a sender).
    let forged = api
        .http
        .post(&url)
        .header("webhook-id", "evt_forged")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    sys.stop().await;
}
