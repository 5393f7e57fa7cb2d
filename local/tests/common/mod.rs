//! Helpers for the end-to-end tests: start a whole system (in memory, port 0), talk to it over
//! HTTP as a client would, and look at what it persisted.
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::header::{HeaderMap, ETAG, IF_NONE_MATCH, LOCATION};
use reqwest::StatusCode;
use ringback::config::Env;
use ringback_local::{LocalOptions, System};
use serde_json::{json, Value};

/// The tests' own token and secret, given to every runner they start: a runner pointed at a
/// Vapi-compatible server (`VAPI_BASE_URL`) refuses the public development values (api.md §9).
pub const API_TOKEN: &str = "test-api-token";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const CALLS_TABLE: &str = "ringback-calls";
pub const PROVIDERS_TABLE: &str = "ringback-providers";
pub const LOGS_TABLE: &str = "ringback-interaction-logs";
pub const CALLS_PATH: &str = "/api/v1/vapi/calls";
pub const WEBHOOK_PATH: &str = "/api/v1/vapi/webhook";

/// How long a client waits for a call to settle before the test fails.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Test settings: in memory, fast simulated calls, 1 s enrichment delays and visibility timeout,
/// a 2 s watchdog, no scheduled cleanup. `overrides` replace or add variables.
pub fn options(overrides: &[(&str, &str)]) -> LocalOptions {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("PORT", "0"),
        ("RINGBACK_IN_MEMORY", "1"),
        ("ENRICHMENT_DELAYS", "1,1,1"),
        ("RINGBACK_SIM_TIME_SCALE", "0.05"),
        ("ENRICHMENT_VISIBILITY_TIMEOUT_SECONDS", "1"),
        ("CLEANUP_INTERVAL_SECONDS", "0"),
        ("WATCHDOG_DELAY_SECONDS", "2"),
        ("API_TOKEN", API_TOKEN),
        ("VAPI_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    for (k, v) in overrides {
        pairs.retain(|(name, _)| name != k);
        pairs.push((k, v));
    }
    LocalOptions::from_env(Env::from_pairs(pairs)).expect("valid test options")
}

pub async fn start(overrides: &[(&str, &str)]) -> System {
    System::start(options(overrides))
        .await
        .expect("the system starts")
}

/// A fresh, unique directory under the system temp dir (removed by [`TempDir`]'s drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ringback-e2e-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An HTTP response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `error.code` of a failure envelope, checking the envelope's shape on the way.
    pub fn error_code(&self) -> &str {
        assert_eq!(
            self.body["success"],
            json!(false),
            "not a failure envelope: {}",
            self.body
        );
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code: {}", self.body))
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.message: {}", self.body))
    }

    /// `data` of a success envelope.
    pub fn data(&self) -> &Value {
        assert_eq!(
            self.body["success"],
            json!(true),
            "not a success envelope: {}",
            self.body
        );
        &self.body["data"]
    }
}

/// A client of one running system.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(sys: &System) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("reqwest client");
        Self {
            http,
            base: sys.base_url.clone(),
        }
    }

    async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::reply(req.send().await.expect("GET")).await
    }

    pub async fn get_call(&self, id: &str) -> Reply {
        self.get(&format!("{CALLS_PATH}/{id}"), Some(API_TOKEN))
            .await
    }

    /// `POST /api/v1/vapi/calls` with the API token and an optional `Idempotency-Key`.
    pub async fn post_call(&self, body: &Value, key: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(format!("{}{CALLS_PATH}", self.base))
            .bearer_auth(API_TOKEN)
            .json(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        Self::reply(req.send().await.expect("POST call")).await
    }

    /// Starts a call and checks the 202 answer (api.md §2); returns the call id.
    pub async fn start_call(&self, body: &Value) -> String {
        let r = self.post_call(body, None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "POST /calls: {}", r.body);
        let data = r.data();
        let id = data["callId"].as_str().expect("callId").to_owned();
        assert!(!id.is_empty());
        assert_eq!(data["status"], "queued", "{data}");
        assert_eq!(data["dataStatus"], "pending", "{data}");
        let poll = format!("{CALLS_PATH}/{id}");
        assert_eq!(data["pollUrl"], json!(poll), "{data}");
        let location = r.headers.get(LOCATION).and_then(|v| v.to_str().ok());
        assert_eq!(location, Some(poll.as_str()), "Location header");
        id
    }

    /// `POST /api/v1/vapi/webhook` with the webhook secret.
    pub async fn post_webhook(&self, body: &[u8]) -> Reply {
        let req = self
            .http
            .post(format!("{}{WEBHOOK_PATH}", self.base))
            .header("content-type", "application/json")
            .header("x-vapi-secret", WEBHOOK_SECRET)
            .body(body.to_vec());
        Self::reply(req.send().await.expect("POST webhook")).await
    }

    /// Polls the call as a client does (ETag / If-None-Match) until its `dataStatus` is `complete`
    /// or `fetch_failed`; fails with the last record seen after [`SETTLE_TIMEOUT`].
    pub async fn wait_settled(&self, id: &str) -> Value {
        self.wait_for(id, SETTLE_TIMEOUT, |r| {
            matches!(r["dataStatus"].as_str(), Some("complete" | "fetch_failed"))
        })
        .await
    }

    /// Polls the call until `done` holds for its record; fails with the last record on timeout.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let url = format!("{}{CALLS_PATH}/{id}", self.base);
        let started = Instant::now();
        let mut etag: Option<String> = None;
        let mut last = Value::Null;
        loop {
            let mut req = self.http.get(&url).bearer_auth(API_TOKEN);
            if let Some(tag) = &etag {
                req = req.header(IF_NONE_MATCH, tag);
            }
            let resp = req.send().await.expect("GET call");
            let status = resp.status();
            match status {
                StatusCode::NOT_MODIFIED => {}
                StatusCode::OK => {
                    etag = resp
                        .headers()
                        .get(ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    assert!(etag.is_some(), "GET {url}: 200 without an ETag");
                    let body: Value = resp.json().await.expect("JSON body");
                    assert_eq!(body["success"], json!(true), "{body}");
                    last = body["data"].clone();
                    if done(&last) {
                        return last;
                    }
                }
                other => {
                    let text = resp.text().await.unwrap_or_default();
                    panic!("GET {url}: unexpected {other}: {text}");
                }
            }
            if started.elapsed() > timeout {
                panic!(
                    "call {id} did not settle within {timeout:?}; last record seen:\n{}",
                    serde_json::to_string_pretty(&last).unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A valid call request whose simulated scenario is chosen by a `[tag]` in the provider name,
/// with UUID correlation ids (so the provider row and the interaction log are written).
pub fn call_request(scenario: &str) -> Value {
    json!({
        "providerName": format!("Acme [{scenario}]"),
        "providerPhone": "+14155550123",
        "serviceNeeded": "Emergency plumbing",
        "userCriteria": "Licensed, available today",
        "location": "San Francisco, CA",
        "urgency": "immediate",
        "providerId": uuid::Uuid::new_v4().to_string(),
        "serviceRequestId": uuid::Uuid::new_v4().to_string(),
    })
}

pub type Item = HashMap<String, AttributeValue>;

/// Every item of a table (tests have few).
pub async fn scan(sys: &System, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = sys
            .dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "scan {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            });
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return items,
        }
    }
}

pub fn attr_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The interaction logs of one (serviceRequestId, callId).
pub async fn interaction_logs(sys: &System, request_id: &str, call_id: &str) -> Vec<Item> {
    scan(sys, LOGS_TABLE)
        .await
        .into_iter()
        .filter(|i| {
            attr_s(i, "requestId") == Some(request_id) && attr_s(i, "callId") == Some(call_id)
        })
        .collect()
}

/// The provider row of `provider_id`, if any.
pub async fn provider_row(sys: &System, provider_id: &str) -> Option<Item> {
    sys.dynamo
        .get_item()
        .table_name(PROVIDERS_TABLE)
        .key("providerId", AttributeValue::S(provider_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "get provider: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })
        .item
}

/// Exactly one interaction log for the call, with this `status`; returns it.
pub async fn assert_one_log(sys: &System, request: &Value, call_id: &str, status: &str) -> Item {
    let request_id = request["serviceRequestId"]
        .as_str()
        .expect("serviceRequestId");
    let logs = interaction_logs(sys, request_id, call_id).await;
    assert_eq!(
        logs.len(),
        1,
        "interaction logs for ({request_id}, {call_id}): {logs:?}"
    );
    let log = logs.into_iter().next().expect("one");
    assert_eq!(
        attr_s(&log, "status"),
        Some(status),
        "interaction log: {log:?}"
    );
    let name = request["providerName"].as_str().expect("providerName");
    assert_eq!(
        attr_s(&log, "step_name"),
        Some(format!("Call to {name}").as_str()),
        "{log:?}"
    );
    log
}

/// The provider row exists for the request's `providerId` and names this call and outcome.
pub async fn assert_provider_row(
    sys: &System,
    request: &Value,
    call_id: &str,
    call_status: &str,
) -> Item {
    let provider_id = request["providerId"].as_str().expect("providerId");
    let row = provider_row(sys, provider_id)
        .await
        .unwrap_or_else(|| panic!("no provider row for {provider_id}"));
    assert_eq!(attr_s(&row, "call_id"), Some(call_id), "{row:?}");
    assert_eq!(attr_s(&row, "call_status"), Some(call_status), "{row:?}");
    row
}

/// `GET /call/{id}` requests the simulator has seen for this call.
pub fn vapi_gets(sys: &System, call_id: &str) -> u32 {
    sys.simulator
        .as_ref()
        .expect("simulator")
        .get_calls_for(call_id)
}

/// Webhook deliveries the simulator attempted for this call.
pub fn webhooks_sent(sys: &System, call_id: &str) -> u32 {
    let stats = sys.simulator.as_ref().expect("simulator").stats();
    stats.webhooks_sent.get(call_id).copied().unwrap_or(0)
}

/// Waits until the simulator has finished the call: its lifecycle over and every webhook attempted.
pub async fn sim_call_finished(sys: &System, call_id: &str) {
    let sim = sys.simulator.as_ref().expect("simulator");
    let done = tokio::time::timeout(SETTLE_TIMEOUT, sim.wait_call_finished(call_id)).await;
    assert_eq!(
        done,
        Ok(true),
        "the simulator did not finish call {call_id}"
    );
}

pub fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/vapi")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn text_len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.trim().chars().count())
}
