//! Shared test helpers: a started simulator, a webhook receiver on 127.0.0.1:0, and a client.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vapi_simulator::{Simulator, SimulatorConfig, SimulatorHandle, Timings};

/// Longest a test waits for any one event before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const KEY: &str = "test-key";

pub async fn start(timings: Timings) -> SimulatorHandle {
    start_with(SimulatorConfig {
        timings,
        ..Default::default()
    })
    .await
}

pub async fn start_with(config: SimulatorConfig) -> SimulatorHandle {
    Simulator::start(config).await.expect("simulator starts")
}

/// One webhook the receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: HeaderMap,
    pub body: Value,
}

impl Hook {
    pub fn msg(&self) -> &Value {
        &self.body["message"]
    }

    /// `end-of-call-report`, or `status-update:<status>`.
    pub fn label(&self) -> String {
        let m = self.msg();
        match m["type"].as_str().unwrap_or("?") {
            "status-update" => format!("status-update:{}", m["status"].as_str().unwrap_or("?")),
            t => t.to_string(),
        }
    }
}

/// A tiny webhook receiver: records every POST on an mpsc channel.
pub struct Receiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Hook>,
    /// The next this-many POSTs are answered 500 (then 200).
    pub fail_next: Arc<AtomicU32>,
}

#[derive(Clone)]
struct RecvState {
    tx: mpsc::UnboundedSender<Hook>,
    fail_next: Arc<AtomicU32>,
}

async fn record(State(s): State<RecvState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = s.tx.send(Hook { headers, body });
    let failing = s
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

pub async fn receiver() -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let fail_next = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/hook", post(record))
        .with_state(RecvState {
            tx,
            fail_next: fail_next.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, rx, fail_next }
}

impl Receiver {
    /// The next webhook, failing the test if none comes in time.
    pub async fn next(&mut self) -> Hook {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("a webhook in time")
            .expect("receiver alive")
    }

    /// Waits for the call's lifecycle to finish, then returns every webhook received so far.
    /// Deliveries are awaited by the simulator, so nothing is still in flight afterwards.
    pub async fn all_after(&mut self, sim: &SimulatorHandle, id: &str) -> Vec<Hook> {
        finished(sim, id).await;
        let mut out = Vec::new();
        while let Ok(h) = self.rx.try_recv() {
            out.push(h);
        }
        out
    }
}

pub async fn finished(sim: &SimulatorHandle, id: &str) {
    let done = tokio::time::timeout(PATIENCE, sim.wait_call_finished(id))
        .await
        .expect("lifecycle finishes in time");
    assert!(done, "call {id} is known");
}

/// A create-call body like fixtures/vapi/create-call-request.json.
pub fn call_body(customer_name: &str, hook_url: &str) -> Value {
    json!({
        "assistantId": "5b0a6e2c-1f3d-4c55-9b7e-2a8f0d9c1e11",
        "phoneNumberId": "8c2d4f6a-3b1e-4d7c-a9f0-6e5d4c3b2a10",
        "customer": { "number": "+14155550123", "name": customer_name },
        "name": "provider-search",
        "assistantOverrides": {
            "metadata": { "providerName": "Acme Plumbing", "serviceRequestId": "sr-1", "requestId": "req_7f3a91" },
            "serverMessages": ["status-update", "end-of-call-report"],
            "server": { "url": hook_url, "timeoutSeconds": 5, "headers": { "X-Hook-Token": "s3cr3t" } }
        }
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `POST /call` with the test key.
pub async fn create(sim: &SimulatorHandle, body: &Value) -> (StatusCode, Value) {
    let res = client()
        .post(format!("{}/call", sim.base_url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.expect("a JSON answer"))
}

/// Places a call that must be accepted; returns its id.
pub async fn place(sim: &SimulatorHandle, body: &Value) -> String {
    let (status, call) = create(sim, body).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    call["id"].as_str().unwrap().to_string()
}

/// `GET /call/{id}` with the test key.
pub async fn fetch(sim: &SimulatorHandle, id: &str) -> (StatusCode, Value, HeaderMap) {
    let res = client()
        .get(format!("{}/call/{id}", sim.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, res.json().await.expect("a JSON answer"), headers)
}

/// ringback's completeness rule: ended, transcript over 50 characters, and an analysis with
/// a summary or structured data.
pub fn is_complete(call: &Value) -> bool {
    let transcript = call["transcript"]
        .as_str()
        .or(call["artifact"]["transcript"].as_str())
        .unwrap_or("");
    let a = &call["analysis"];
    call["status"] == "ended"
        && transcript.chars().count() > 50
        && (a["summary"].as_str().is_some_and(|s| !s.is_empty()) || a["structuredData"].is_object())
}
