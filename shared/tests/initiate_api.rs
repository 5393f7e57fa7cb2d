//! `POST /api/v1/vapi/calls` end to end below HTTP (api.md §2): the real route and initiator, the
//! calls table (records and idempotency keys) in an embedded DynamoDB through the real adapter, the
//! local runner's delay queue, and Vapi played by the project's simulator over HTTP through the real
//! REST client. Each test asserts the answer (status, envelope, headers) and what it left behind:
//! the record, the queued watchdog, and the `POST /call` Vapi received.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use ringback::adapters::dynamodb::CallsTable;
use ringback::adapters::memory_queue::MemoryQueue;
use ringback::api::{self, Response};
use ringback::config::{ApiAuth, Timing};
use ringback::domain::{CallRecord, CallStatus, DataStatus};
use ringback::metrics::Metrics;
use ringback::ports::{
    CallStore, Clock, EnrichmentJob, EnrichmentQueue, JobKind, QueueError, StoreError, VapiApi,
    VapiError,
};
use ringback::service::initiate::InitiatorService;
use ringback::service::status::StatusService;
use ringback::service::webhook::WebhookService;
use ringback::vapi::{CallSettings, VapiClient, VapiClientConfig, WebhookAuth};
use serde_json::{json, Value};
use support::{ManualClock, Tables};
use vapi_simulator::{Simulator, SimulatorConfig, SimulatorHandle, Timings};

const TOKEN: &str = "api-token";
const SECRET: &str = "webhook-secret";
/// Not loopback: the simulator counts its webhooks as failed deliveries and never sends them, so
/// nothing but the test writes to the calls table.
const WEBHOOK_URL: &str = "https://ringback.example.com/api/v1/vapi/webhook";
const PROVIDER: &str = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";
const REQUEST: &str = "1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const NOW: &str = "2026-03-02T15:00:00Z";
/// How long after an attempt began its call is no longer in doubt (the deployed value).
const IN_DOUBT_AFTER: Duration = Duration::from_secs(30);

// ---- the queue: the real in-process queue, with a tap on the delay each send asked for ----

/// `MemoryQueue` caps delays at 900 s itself, so the initiator's own cap is only visible in what
/// it asked for.
#[derive(Default)]
struct TappedQueue {
    inner: MemoryQueue,
    asked: Mutex<Vec<(EnrichmentJob, Duration)>>,
}

#[async_trait]
impl EnrichmentQueue for TappedQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        self.asked.lock().unwrap().push((job.clone(), delay));
        self.inner.schedule(job, delay).await
    }
}

impl TappedQueue {
    /// Every message in the queue (delayed ones included), as the JSON it carries, with the
    /// milliseconds until it becomes visible.
    fn messages(&self) -> Vec<(Value, u64)> {
        self.inner
            .snapshot()
            .messages
            .into_iter()
            .map(|m| {
                (
                    serde_json::from_str(&m.body).expect("a JSON job"),
                    m.delay_ms,
                )
            })
            .collect()
    }

    fn asked(&self) -> Vec<(EnrichmentJob, Duration)> {
        self.asked.lock().unwrap().clone()
    }
}

// ---- the harness ----

struct App {
    svc: InitiatorService,
    store: Arc<CallsTable>,
    queue: Arc<TappedQueue>,
    sim: SimulatorHandle,
    clock: Arc<ManualClock>,
    client: Client,
    t: Tables,
    _db: support::DynamoGuard,
}

fn timing(watchdog: Duration) -> Timing {
    Timing {
        enrichment_delays: vec![Duration::from_secs(1); 3],
        watchdog_delay: watchdog,
        max_call: Duration::from_secs(600),
        stuck_grace: Duration::from_secs(30),
        deadline_cap: Duration::from_secs(1380),
        claim_lease: Duration::from_secs(60),
    }
}

fn settings() -> CallSettings {
    CallSettings {
        phone_number_id: "pn-test".into(),
        assistant_id: None,
        webhook_url: WEBHOOK_URL.into(),
        webhook_secret: Some(SECRET.into()),
        deployment_id: ringback::config::DeploymentId::parse("stack-test").unwrap(),
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

async fn app() -> App {
    app_with(Duration::from_secs(60), |sim| {
        Arc::new(VapiClient::new(VapiClientConfig::new(sim, "vapi-key")))
    })
    .await
}

/// An app whose Vapi is built by `vapi` from the simulator's base URL, with this watchdog delay.
async fn app_with(watchdog: Duration, vapi: impl FnOnce(String) -> Arc<dyn VapiApi>) -> App {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = ManualClock::at(NOW);
    let sim = Simulator::start(SimulatorConfig {
        timings: Timings::fast(),
        ..Default::default()
    })
    .await
    .expect("simulator starts");
    let store = Arc::new(CallsTable::new(
        client.clone(),
        t.calls.clone(),
        Duration::from_secs(1800),
        clock.clone(),
    ));
    let queue = Arc::new(TappedQueue::default());
    let svc = InitiatorService {
        store: store.clone(),
        idempotency: store.clone(),
        queue: queue.clone(),
        vapi: vapi(sim.base_url()),
        clock: clock.clone(),
        settings: settings(),
        timing: timing(watchdog),
        idempotency_wait: Duration::from_secs(10),
        in_doubt_after: IN_DOUBT_AFTER,
        metrics: Metrics::off(),
        callbacks: ringback::service::initiate::Callbacks::Off,
    };
    App {
        svc,
        store,
        queue,
        sim,
        clock,
        client,
        t,
        _db: db,
    }
}

/// A valid CallRequest.
fn request() -> Value {
    json!({
        "providerName": "Acme Plumbing",
        "providerPhone": "+14155550123",
        "serviceNeeded": "plumber",
        "userCriteria": "licensed, available this week",
        "location": "Oakland, CA",
        "urgency": "within_24_hours",
        "providerId": PROVIDER,
        "serviceRequestId": REQUEST,
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(r.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(r.body())))
}

fn location(r: &Response) -> Option<String> {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// An error answer: this status, the failure envelope with this code, and its message.
fn assert_error(r: &Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "{}", String::from_utf8_lossy(r.body()));
    let b = body(r);
    assert_eq!(b["success"], false, "{b}");
    assert_eq!(b["error"]["code"], code, "{b}");
    assert!(b.get("data").is_none(), "{b}");
    b["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

fn accepted_id(r: &Response) -> String {
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(r.body())
    );
    body(r)["data"]["callId"]
        .as_str()
        .expect("a callId")
        .to_owned()
}

impl App {
    async fn post_raw(&self, raw: &[u8], key: Option<&str>) -> Response {
        let bearer = format!("Bearer {TOKEN}");
        let mut h = headers(&[("authorization", &bearer)]);
        if let Some(k) = key {
            h.insert("idempotency-key", HeaderValue::from_str(k).unwrap());
        }
        api::post_call(&self.svc, &ApiAuth::Token(TOKEN.into()), &h, raw).await
    }

    async fn post(&self, req: &Value, key: Option<&str>) -> Response {
        self.post_raw(req.to_string().as_bytes(), key).await
    }

    fn post_calls(&self) -> u32 {
        self.sim.stats().post_call
    }

    async fn record(&self, id: &str) -> Option<CallRecord> {
        self.store
            .get(id)
            .await
            .expect("store readable")
            .map(|v| v.record)
    }

    /// Every item of the calls table: records, document parts and idempotency keys alike.
    async fn items(&self) -> usize {
        let out = self
            .client
            .scan()
            .table_name(&self.t.calls)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        out.items().len()
    }

    /// Ids of the records overdue at `secs` after the start.
    async fn overdue_at(&self, secs: i64) -> Vec<String> {
        support::overdue_ids(&*self.store, t0() + chrono::Duration::seconds(secs)).await
    }

    fn watchdog(id: &str) -> Value {
        json!({"callId": id, "attempt": 1, "kind": "watchdog"})
    }
}

// ---- a valid request ----

#[tokio::test]
async fn a_valid_request_places_one_call_records_it_pending_and_schedules_the_watchdog() {
    let app = app().await;
    let r = app.post(&request(), None).await;
    let id = accepted_id(&r);
    let poll = format!("/api/v1/vapi/calls/{id}");
    assert_eq!(
        body(&r),
        json!({"success": true, "data": {
            "callId": id, "status": "queued", "dataStatus": "pending", "pollUrl": poll,
        }})
    );
    assert_eq!(location(&r).as_deref(), Some(poll.as_str()));
    assert_eq!(r.headers()["content-type"], "application/json");

    // Vapi got exactly one POST /call, shaped so its webhooks find their way back to us.
    assert_eq!(app.post_calls(), 1);
    let placed = app.sim.call(&id).expect("the simulator knows the call");
    let overrides = &placed["assistantOverrides"];
    assert_eq!(overrides["metadata"]["providerId"], PROVIDER);
    assert_eq!(overrides["metadata"]["serviceRequestId"], REQUEST);
    assert_eq!(overrides["server"]["url"], WEBHOOK_URL);
    assert_eq!(overrides["server"]["headers"]["X-Vapi-Secret"], SECRET);
    assert_eq!(
        overrides["serverMessages"],
        json!(["status-update", "end-of-call-report"])
    );
    assert_eq!(placed["customer"]["number"], "+14155550123");
    assert_eq!(placed["phoneNumberId"], "pn-test");

    // The record, as the client will poll it.
    let rec = app.record(&id).await.expect("record written");
    let d = serde_json::to_value(&rec.result).unwrap();
    assert_eq!(d["callId"], id.as_str());
    assert_eq!(d["dataStatus"], "pending");
    assert_eq!(d["callStatus"], "queued");
    assert_eq!(d["status"], Value::Null);
    assert_eq!(
        d["provider"],
        json!({"name": "Acme Plumbing", "phone": "+14155550123", "service": "plumber", "location": "Oakland, CA"})
    );
    assert_eq!(
        d["request"],
        json!({"criteria": "licensed, available this week", "urgency": "within_24_hours"})
    );
    assert_eq!(d["providerId"], PROVIDER);
    assert_eq!(d["serviceRequestId"], REQUEST);
    assert_eq!(d["callMethod"], "direct_vapi");
    assert_eq!(d["webhookReceivedAt"], Value::Null);
    let status = StatusService {
        store: app.store.clone(),
    };
    let polled = api::get_call(
        &status,
        &ApiAuth::Token(TOKEN.into()),
        &headers(&[("authorization", &format!("Bearer {TOKEN}"))]),
        &api::call_id_from_path(&poll).unwrap(),
    )
    .await;
    assert_eq!(polled.status(), StatusCode::OK);
    assert_eq!(body(&polled)["data"]["dataStatus"], "pending");

    // One watchdog check, after WATCHDOG_DELAY (60 s here).
    assert_eq!(
        app.queue.asked(),
        vec![(
            EnrichmentJob {
                call_id: id.clone(),
                attempt: 1,
                kind: JobKind::Watchdog,
                event_id: None,
            },
            Duration::from_secs(60)
        )]
    );
    let queued = app.queue.messages();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].0, App::watchdog(&id));
    assert!(
        (50_000..=60_000).contains(&queued[0].1),
        "the watchdog is delayed ~60 s, not {} ms",
        queued[0].1
    );

    // The cleanup notices it if the watchdog is lost: overdue after WATCHDOG_DELAY + grace (90 s).
    assert!(app.overdue_at(89).await.is_empty());
    assert_eq!(app.overdue_at(91).await, vec![id]);
}

#[tokio::test]
async fn the_watchdog_delay_is_capped_at_sqs_limit() {
    let app = app_with(Duration::from_secs(1200), |sim| {
        Arc::new(VapiClient::new(VapiClientConfig::new(sim, "vapi-key")))
    })
    .await;
    let id = accepted_id(&app.post(&request(), None).await);
    let asked = app.queue.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0.kind, JobKind::Watchdog);
    assert_eq!(asked[0].0.call_id, id);
    assert_eq!(
        asked[0].1,
        Duration::from_secs(900),
        "SQS refuses DelaySeconds over 900"
    );
    // The record's deadline still follows the configured delay: 1200 s + 30 s grace.
    assert!(app.overdue_at(1229).await.is_empty());
    assert_eq!(app.overdue_at(1231).await, vec![id]);
}

// ---- refusals before Vapi is asked ----

#[tokio::test]
async fn invalid_requests_are_400_naming_every_bad_field_and_place_nothing() {
    let app = app().await;

    let r = app.post_raw(b"{\"providerName\": ", None).await;
    let m = assert_error(&r, StatusCode::BAD_REQUEST, "invalid_payload");
    assert!(m.contains("JSON"), "{m}");

    let r = app.post(&json!(["not", "an", "object"]), None).await;
    let m = assert_error(&r, StatusCode::BAD_REQUEST, "invalid_payload");
    assert!(m.contains('$') && m.contains("object"), "{m}");

    let bad = json!({
        "providerName": "",
        "providerPhone": "4155550123",
        "serviceNeeded": 7,
        "location": "x".repeat(2001),
        "urgency": "asap",
        "nickname": "Ace",
        "customPrompt": {"systemPrompt": "Be brief"},
    });
    let r = app.post(&bad, Some("key-invalid")).await;
    let m = assert_error(&r, StatusCode::BAD_REQUEST, "invalid_payload");
    for path in [
        "$.providerName",
        "$.providerPhone",
        "$.serviceNeeded",
        "$.userCriteria",
        "$.location",
        "$.urgency",
        "$.nickname",
        "$.customPrompt.firstMessage",
    ] {
        assert!(m.contains(path), "{path} not named in {m:?}");
    }
    // The fields that are fine are not blamed.
    assert!(!m.contains("$.customPrompt.systemPrompt"), "{m}");

    // One bad field in an otherwise valid request.
    let r = app
        .post(&with(request(), "providerPhone", json!("+1 415 555")), None)
        .await;
    let m = assert_error(&r, StatusCode::BAD_REQUEST, "invalid_payload");
    assert!(m.contains("$.providerPhone") && m.contains("E.164"), "{m}");
    assert!(!m.contains("$.providerName"), "{m}");

    // An Idempotency-Key longer than 200 characters is bad input too.
    let long = "k".repeat(201);
    let r = app.post(&request(), Some(&long)).await;
    let m = assert_error(&r, StatusCode::BAD_REQUEST, "invalid_payload");
    assert!(m.contains("Idempotency-Key"), "{m}");

    assert_eq!(app.post_calls(), 0, "Vapi was never asked");
    assert_eq!(app.items().await, 0, "nothing written, no key taken");
    assert!(app.queue.messages().is_empty());
}

#[tokio::test]
async fn a_missing_or_wrong_bearer_token_is_401() {
    let app = app().await;
    let raw = request().to_string();
    let cases: [&[(&str, &str)]; 5] = [
        &[],
        &[("authorization", "Bearer not-the-token")],
        &[("authorization", "Bearer ")],
        &[("authorization", "api-token")],
        &[("authorization", "Basic YXBpLXRva2Vu")],
    ];
    for case in cases {
        let r = api::post_call(
            &app.svc,
            &ApiAuth::Token(TOKEN.into()),
            &headers(case),
            raw.as_bytes(),
        )
        .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{case:?}");
    }
    // Even an invalid body is refused for its missing token first.
    let r = api::post_call(
        &app.svc,
        &ApiAuth::Token(TOKEN.into()),
        &HeaderMap::new(),
        b"nope",
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.post_calls(), 0);
    assert_eq!(app.items().await, 0);
}

// ---- Idempotency-Key ----

#[tokio::test]
async fn a_repeat_with_the_same_key_and_body_returns_the_first_answer_without_a_second_call() {
    let app = app().await;
    let first = app.post(&request(), Some("key-repeat")).await;
    let id = accepted_id(&first);
    let again = app.post(&request(), Some("key-repeat")).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(body(&again), body(&first));
    assert_eq!(location(&again), location(&first));
    assert_eq!(app.post_calls(), 1, "one POST /call for one key");
    assert_eq!(app.queue.messages().len(), 1, "one watchdog");

    // The same JSON with its keys in another order (and other spacing) is the same body.
    let reordered = format!(
        r#"{{ "serviceRequestId": "{REQUEST}", "urgency": "within_24_hours", "location": "Oakland, CA",
            "userCriteria": "licensed, available this week", "serviceNeeded": "plumber",
            "providerPhone": "+14155550123", "providerName": "Acme Plumbing", "providerId": "{PROVIDER}" }}"#
    );
    assert_eq!(
        serde_json::from_str::<Value>(&reordered).unwrap(),
        request()
    );
    let third = app.post_raw(reordered.as_bytes(), Some("key-repeat")).await;
    assert_eq!(third.status(), StatusCode::ACCEPTED);
    assert_eq!(body(&third)["data"]["callId"], id.as_str());
    assert_eq!(app.post_calls(), 1);

    // The same key with another body is a conflict; still no second call.
    let other = with(request(), "urgency", json!("flexible"));
    let r = app.post(&other, Some("key-repeat")).await;
    let m = assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(m.contains("Idempotency-Key"), "{m}");
    assert_eq!(app.post_calls(), 1);

    // Another key places another call.
    let other_id = accepted_id(&app.post(&request(), Some("key-other")).await);
    assert_ne!(other_id, id);
    assert_eq!(app.post_calls(), 2);
    // Without a key, every request is a new call.
    accepted_id(&app.post(&request(), None).await);
    assert_eq!(app.post_calls(), 3);
}

#[tokio::test]
async fn two_requests_with_one_key_at_once_place_one_call() {
    let app = app().await;
    let req = request();
    let (a, b) = tokio::join!(
        app.post(&req, Some("key-race")),
        app.post(&req, Some("key-race"))
    );
    let (ida, idb) = (accepted_id(&a), accepted_id(&b));
    assert_eq!(ida, idb, "both answers name the one call");
    assert_eq!(body(&a), body(&b));
    assert_eq!(location(&a), location(&b));
    assert_eq!(app.post_calls(), 1, "one POST /call");
    assert_eq!(app.queue.messages().len(), 1, "one watchdog");
    assert!(app.record(&ida).await.is_some());
}

// ---- Vapi failing ----

#[tokio::test]
async fn vapi_refusing_is_502_with_its_reason_and_leaves_nothing_behind() {
    let app = app().await;
    let refused = with(request(), "providerName", json!("Acme [refused]"));
    let r = app.post(&refused, Some("key-refused")).await;
    let m = assert_error(&r, StatusCode::BAD_GATEWAY, "upstream_error");
    assert!(
        m.contains("customer.number must be a valid phone number"),
        "Vapi's reason is passed on: {m}"
    );
    assert!(location(&r).is_none());
    assert_eq!(app.sim.stats().post_call_refused, 1);
    assert_eq!(app.items().await, 0, "no record, and the key is released");
    assert!(app.queue.messages().is_empty(), "no watchdog for no call");

    // The key was released: a retry with it asks Vapi again instead of replaying the failure.
    let r = app.post(&refused, Some("key-refused")).await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "upstream_error");
    assert_eq!(app.post_calls(), 2);
    assert_eq!(app.items().await, 0);

    // A valid request under a new key goes through.
    let id = accepted_id(&app.post(&request(), Some("key-fixed")).await);
    assert!(app.record(&id).await.is_some());
    assert_eq!(app.post_calls(), 3);
}

#[tokio::test]
async fn vapi_unreachable_is_502_and_leaves_nothing_behind() {
    // A port that was free a moment ago and has no listener now: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = app_with(Duration::from_secs(60), move |_| {
        Arc::new(VapiClient::new(VapiClientConfig::new(closed, "vapi-key")))
    })
    .await;
    let r = app.post(&request(), Some("key-down")).await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "upstream_error");
    assert_eq!(app.items().await, 0, "no record, and the key is released");
    assert!(app.queue.messages().is_empty());
    // A retry with the same key is tried again (502 again), not a replay or a 409.
    let r = app.post(&request(), Some("key-down")).await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "upstream_error");
    assert_eq!(
        app.sim.stats().post_call,
        0,
        "the simulator was not the Vapi used"
    );
}

// ---- a webhook that beat the initiator ----

/// Vapi answering `POST /call` only after the call's `end-of-call-report` reached our webhook:
/// the real client, then the webhook ingested before the answer comes back.
struct WebhookFirst {
    inner: VapiClient,
    webhook: WebhookService,
}

#[async_trait]
impl VapiApi for WebhookFirst {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError> {
        self.inner.get_call(call_id).await
    }
    async fn list_calls(&self, f: &ringback::ports::CallFilter) -> Result<Vec<Value>, VapiError> {
        self.inner.list_calls(f).await
    }

    async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
        let created = self.inner.create_call(body).await?;
        let id = created["id"].as_str().expect("a call id");
        let mut report = support::fixture("end-of-call-report.json");
        report["message"]["call"]["id"] = id.into();
        let h = headers(&[("x-vapi-secret", SECRET)]);
        self.webhook
            .ingest(&h, report.to_string().as_bytes())
            .await
            .expect("webhook accepted");
        Ok(created)
    }
}

#[tokio::test]
async fn a_webhook_that_arrived_first_keeps_its_state_and_gains_the_request_details() {
    // The webhook service shares the app's store, queue and clock; the initiator under test is
    // the app's, with this Vapi.
    let app = app().await;
    let webhook = WebhookService {
        store: app.store.clone(),
        queue: app.queue.clone(),
        clock: app.clock.clone(),
        auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
        max_bytes: 1 << 20,
        timing: timing(Duration::from_secs(60)),
        metrics: Metrics::off(),
        archive: None,
    };
    let svc = InitiatorService {
        vapi: Arc::new(WebhookFirst {
            inner: VapiClient::new(VapiClientConfig::new(app.sim.base_url(), "vapi-key")),
            webhook,
        }),
        store: app.store.clone(),
        idempotency: app.store.clone(),
        queue: app.queue.clone(),
        clock: app.clock.clone(),
        settings: settings(),
        timing: timing(Duration::from_secs(60)),
        idempotency_wait: Duration::from_secs(10),
        in_doubt_after: IN_DOUBT_AFTER,
        metrics: Metrics::off(),
        callbacks: ringback::service::initiate::Callbacks::Off,
    };
    let h = headers(&[("authorization", &format!("Bearer {TOKEN}"))]);
    let r = api::post_call(
        &svc,
        &ApiAuth::Token(TOKEN.into()),
        &h,
        request().to_string().as_bytes(),
    )
    .await;
    let id = accepted_id(&r);
    assert_eq!(
        body(&r)["data"]["dataStatus"],
        "pending",
        "the 202 shape is fixed"
    );

    let rec = app.record(&id).await.expect("record");
    let res = &rec.result;
    // The webhook's state is kept...
    assert_eq!(res.data_status, DataStatus::Partial, "not reset to pending");
    assert_eq!(res.call_status, CallStatus::Ended, "never moves backwards");
    assert_eq!(res.ended_reason.as_deref(), Some("customer-ended-call"));
    assert!(
        res.transcript
            .as_deref()
            .unwrap_or("")
            .starts_with("AI: Hi, this is Riley"),
        "{:?}",
        res.transcript
    );
    assert!(res.analysis.summary.is_some());
    assert!(res.webhook_received_at.is_some());
    assert!(rec.book.enrichment_scheduled);
    assert!(rec.book.seen_events.contains("end-of-call-report"));
    // ...and the request's details are added.
    assert_eq!(res.provider.name.as_deref(), Some("Acme Plumbing"));
    assert_eq!(res.provider.phone.as_deref(), Some("+14155550123"));
    assert_eq!(res.provider.service.as_deref(), Some("plumber"));
    assert_eq!(res.provider.location.as_deref(), Some("Oakland, CA"));
    assert_eq!(
        res.request.criteria.as_deref(),
        Some("licensed, available this week")
    );
    assert_eq!(res.request.urgency.as_deref(), Some("within_24_hours"));
    assert_eq!(res.provider_id.as_deref(), Some(PROVIDER));
    assert_eq!(res.service_request_id.as_deref(), Some(REQUEST));

    // The webhook's enrichment chain was started; the deadline is the enrichment's (3 × 1 s + 30 s),
    // not a pending call's.
    let jobs: Vec<Value> = app.queue.messages().into_iter().map(|(j, _)| j).collect();
    assert!(
        jobs.contains(&json!({"callId": id, "attempt": 1, "kind": "enrich"})),
        "{jobs:?}"
    );
    assert!(app.overdue_at(32).await.is_empty());
    assert_eq!(app.overdue_at(34).await, vec![id]);
    assert_eq!(app.post_calls(), 1);
}

#[tokio::test]
async fn a_record_already_present_is_completed_not_replaced() {
    // Same race through the store alone: a status-update record put before the initiator writes.
    let app = app().await;
    struct PutFirst {
        inner: VapiClient,
        store: Arc<CallsTable>,
        clock: Arc<dyn Clock>,
    }
    #[async_trait]
    impl VapiApi for PutFirst {
        async fn get_call(&self, call_id: &str) -> Result<Value, VapiError> {
            self.inner.get_call(call_id).await
        }
        async fn list_calls(
            &self,
            f: &ringback::ports::CallFilter,
        ) -> Result<Vec<Value>, VapiError> {
            self.inner.list_calls(f).await
        }
        async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
            let created = self.inner.create_call(body).await?;
            let id = created["id"].as_str().unwrap();
            let now = ringback::domain::to_iso(self.clock.now());
            let mut rec = CallRecord::new(id, &now);
            rec.result.data_status = DataStatus::Partial;
            rec.result.call_status = CallStatus::InProgress;
            rec.result.webhook_received_at = Some(now);
            rec.book
                .seen_events
                .insert("status-update:in-progress".into());
            self.store.put(&rec, None, None).await.unwrap();
            Ok(created)
        }
    }
    let svc = InitiatorService {
        vapi: Arc::new(PutFirst {
            inner: VapiClient::new(VapiClientConfig::new(app.sim.base_url(), "vapi-key")),
            store: app.store.clone(),
            clock: app.clock.clone(),
        }),
        store: app.store.clone(),
        idempotency: app.store.clone(),
        queue: app.queue.clone(),
        clock: app.clock.clone(),
        settings: settings(),
        timing: timing(Duration::from_secs(60)),
        idempotency_wait: Duration::from_secs(10),
        in_doubt_after: IN_DOUBT_AFTER,
        metrics: Metrics::off(),
        callbacks: ringback::service::initiate::Callbacks::Off,
    };
    let h = headers(&[("authorization", &format!("Bearer {TOKEN}"))]);
    let r = api::post_call(
        &svc,
        &ApiAuth::Token(TOKEN.into()),
        &h,
        request().to_string().as_bytes(),
    )
    .await;
    let id = accepted_id(&r);
    let rec = app.record(&id).await.unwrap();
    assert_eq!(rec.result.data_status, DataStatus::Partial);
    assert_eq!(rec.result.call_status, CallStatus::InProgress);
    assert!(rec.result.webhook_received_at.is_some());
    assert!(rec.book.seen_events.contains("status-update:in-progress"));
    assert_eq!(rec.result.provider.name.as_deref(), Some("Acme Plumbing"));
    assert_eq!(rec.result.provider_id.as_deref(), Some(PROVIDER));
    // A running call's deadline: MAX_CALL + grace (630 s).
    assert!(app.overdue_at(629).await.is_empty());
    assert_eq!(app.overdue_at(631).await, vec![id]);
}

// ---- storage failing after Vapi placed the call ----

/// The calls table with an outage switch on record writes (idempotency keys are unaffected).
struct Down(AtomicBool);

#[async_trait]
impl support::Hooks for Down {
    async fn put(&self, _record: &CallRecord) -> Option<Result<u64, StoreError>> {
        self.0
            .load(Ordering::SeqCst)
            .then(|| Err(StoreError::Unavailable("PutItem: throttled (test)".into())))
    }
}

type FlakyRecords = support::Hooked<Down>;

/// The real client, remembering the id of every call Vapi accepted.
struct RecordingVapi {
    inner: VapiClient,
    placed: Mutex<Vec<String>>,
}

#[async_trait]
impl VapiApi for RecordingVapi {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError> {
        self.inner.get_call(call_id).await
    }
    async fn list_calls(&self, f: &ringback::ports::CallFilter) -> Result<Vec<Value>, VapiError> {
        self.inner.list_calls(f).await
    }
    async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
        let created = self.inner.create_call(body).await?;
        let id = created["id"].as_str().expect("a call id").to_owned();
        self.placed.lock().unwrap().push(id);
        Ok(created)
    }
}

/// An initiator whose record writes fail: one request with `key` reaches Vapi, then the write
/// fails and the client gets 503. Returns the initiator, its outage switch and its Vapi.
async fn placed_then_storage_failed(
    app: &App,
    key: &str,
) -> (InitiatorService, Arc<FlakyRecords>, Arc<RecordingVapi>) {
    let store = Arc::new(FlakyRecords::new(
        app.store.clone(),
        Down(AtomicBool::new(true)),
    ));
    let vapi = Arc::new(RecordingVapi {
        inner: VapiClient::new(VapiClientConfig::new(app.sim.base_url(), "vapi-key")),
        placed: Mutex::default(),
    });
    let svc = InitiatorService {
        store: store.clone(),
        idempotency: app.store.clone(),
        queue: app.queue.clone(),
        vapi: vapi.clone(),
        clock: app.clock.clone(),
        settings: settings(),
        timing: timing(Duration::from_secs(60)),
        idempotency_wait: Duration::from_secs(10),
        in_doubt_after: IN_DOUBT_AFTER,
        metrics: Metrics::off(),
        callbacks: ringback::service::initiate::Callbacks::Off,
    };
    let h = headers(&[
        ("authorization", &format!("Bearer {TOKEN}")),
        ("idempotency-key", key),
    ]);
    let r = api::post_call(
        &svc,
        &ApiAuth::Token(TOKEN.into()),
        &h,
        request().to_string().as_bytes(),
    )
    .await;
    // The phone is ringing: the client is told so (202), not asked to retry into a second call.
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{:?}", r.body());
    assert_eq!(
        app.post_calls(),
        1,
        "Vapi placed the call before the write failed"
    );
    (svc, store, vapi)
}

/// Storage fails after Vapi accepted the call: a retry with the same key (storage back) must
/// answer the first call, never dial again.
#[tokio::test]
async fn storage_failing_after_vapi_placed_the_call_then_a_retry_with_the_same_key() {
    let app = app().await;
    let (svc, store, vapi) = placed_then_storage_failed(&app, "key-outage").await;
    let placed = vapi.placed.lock().unwrap().clone();
    assert_eq!(placed.len(), 1);

    // Storage is back; the client retries as told.
    store.hooks.0.store(false, Ordering::SeqCst);
    let h = headers(&[
        ("authorization", &format!("Bearer {TOKEN}")),
        ("idempotency-key", "key-outage"),
    ]);
    let r = api::post_call(
        &svc,
        &ApiAuth::Token(TOKEN.into()),
        &h,
        request().to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        app.post_calls(),
        1,
        "a retry with the same Idempotency-Key placed a second phone call"
    );
    // What the fixed initiator answers: the first call, as the client would have seen it.
    assert_eq!(body(&r)["data"]["callId"], placed[0].as_str());
}

/// Storage fails after Vapi accepted the call: no record could be written, so the watchdog is what
/// keeps the call in sight (the consumer builds the record from Vapi alone).
#[tokio::test]
async fn storage_failing_after_vapi_placed_the_call_leaves_the_call_watched() {
    let app = app().await;
    let (_svc, _store, vapi) = placed_then_storage_failed(&app, "key-lost").await;
    let placed = vapi.placed.lock().unwrap()[0].clone();
    assert!(
        app.record(&placed).await.is_none(),
        "no record could be written"
    );
    let jobs: Vec<Value> = app.queue.messages().into_iter().map(|(j, _)| j).collect();
    assert_eq!(
        jobs,
        vec![App::watchdog(&placed)],
        "the placed call has neither a record nor a watchdog: lost if its webhooks never come"
    );
}

// ---- Vapi retries the webhooks of the calls we place ----

/// A webhook receiver on loopback that answers 503 to the first `refuse` deliveries, as ringback's
/// webhook does while its storage is down, and 200 afterwards; it records every message it took.
struct Receiver {
    url: String,
    refused: Arc<Mutex<u32>>,
    taken: Arc<Mutex<Vec<String>>>,
}

async fn receiver(refuse: u32) -> Receiver {
    use axum::{http::StatusCode as S, routing::post, Json, Router};
    let refused = Arc::new(Mutex::new(0u32));
    let taken = Arc::new(Mutex::new(Vec::new()));
    let (r, t) = (refused.clone(), taken.clone());
    let app = Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| async move {
            let mut n = r.lock().unwrap();
            if *n < refuse {
                *n += 1;
                return S::SERVICE_UNAVAILABLE;
            }
            let m = &v["message"];
            let label = match m["status"].as_str() {
                Some(s) => format!("{}:{s}", m["type"].as_str().unwrap_or_default()),
                None => m["type"].as_str().unwrap_or_default().to_owned(),
            };
            t.lock().unwrap().push(label);
            S::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url,
        refused,
        taken,
    }
}

#[tokio::test]
async fn vapi_retries_a_webhook_answered_503() {
    let rx = receiver(1).await;
    let mut app = app().await;
    app.svc.settings.webhook_url = rx.url.clone();
    let id = accepted_id(&app.post(&request(), None).await);
    assert!(app.sim.wait_call_finished(&id).await);

    // Without a backoff plan Vapi never retries: the refused message would be lost.
    assert_eq!(*rx.refused.lock().unwrap(), 1);
    let mut taken = rx.taken.lock().unwrap().clone();
    taken.sort();
    assert_eq!(
        taken,
        [
            "end-of-call-report",
            "status-update:ended",
            "status-update:in-progress",
            "status-update:ringing"
        ]
    );
    // What can never succeed is not retried.
    let plan = &app.sim.call(&id).unwrap()["assistantOverrides"]["server"]["backoffPlan"];
    let excluded: Vec<u64> = plan["excludedStatusCodes"]
        .as_array()
        .expect("excluded status codes")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    for code in [400, 401, 404, 413] {
        assert!(excluded.contains(&code), "{plan}");
    }
    assert!(!excluded.contains(&503), "{plan}");
}

// ---- an answer lost after Vapi acted; a process that died mid-request ----

/// What the next `POST /call` does besides (or instead of) reaching Vapi.
#[derive(Clone, Copy, PartialEq)]
enum PostFault {
    None,
    /// The process dies before the request leaves: it never reaches Vapi.
    DieBeforeSending,
    /// Vapi places the call, then the process dies before the answer is read.
    DieAfterPlacing,
    /// Vapi places the call; the answer is lost on the way back (a timeout, a 502 from its edge).
    LoseAnswer,
}

/// The real client, with the faults above and a `GET /call` listing that can be down.
struct Faulty {
    inner: VapiClient,
    post: Mutex<PostFault>,
    listing_down: AtomicBool,
}

#[async_trait]
impl VapiApi for Faulty {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError> {
        self.inner.get_call(call_id).await
    }
    async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
        let fault = std::mem::replace(&mut *self.post.lock().unwrap(), PostFault::None);
        if fault == PostFault::DieBeforeSending {
            std::future::pending::<()>().await;
        }
        let created = self.inner.create_call(body).await?;
        match fault {
            PostFault::DieAfterPlacing => std::future::pending().await,
            PostFault::LoseAnswer => Err(VapiError::Transient {
                status: Some(504),
                retry_after: None,
                message: "Gateway Timeout".into(),
            }),
            _ => Ok(created),
        }
    }
    async fn list_calls(&self, f: &ringback::ports::CallFilter) -> Result<Vec<Value>, VapiError> {
        if self.listing_down.load(Ordering::SeqCst) {
            return Err(VapiError::Transient {
                status: Some(503),
                retry_after: None,
                message: "Service Unavailable".into(),
            });
        }
        self.inner.list_calls(f).await
    }
}

/// An app whose Vapi is [`Faulty`]; repeats do not wait for the holder (they answer at once).
async fn faulty_app(post: PostFault) -> (App, Arc<Faulty>) {
    let faulty: Arc<Mutex<Option<Arc<Faulty>>>> = Arc::default();
    let slot = faulty.clone();
    let mut app = app_with(Duration::from_secs(60), move |sim| {
        let f = Arc::new(Faulty {
            inner: VapiClient::new(VapiClientConfig::new(sim, "vapi-key")),
            post: Mutex::new(post),
            listing_down: AtomicBool::new(false),
        });
        *slot.lock().unwrap() = Some(f.clone());
        f
    })
    .await;
    app.svc.idempotency_wait = Duration::ZERO;
    // The simulator stamps calls with the real time; ringback looks for them in a window around
    // the attempt's start, so the test clock starts at the real time here.
    app.clock.set(Utc::now());
    let f = faulty.lock().unwrap().clone().unwrap();
    (app, f)
}

/// The request the dying process was serving: dropped at its await point, as a Lambda timeout
/// or crash drops it.
async fn dies(app: &App, key: &str) {
    let req = request();
    let died = tokio::time::timeout(Duration::from_millis(500), app.post(&req, Some(key))).await;
    assert!(died.is_err(), "the request was expected to hang");
}

fn retry_after(r: &Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_answer_lost_after_vapi_placed_the_call_never_dials_twice() {
    // The simulator's lost-answer scenario: the call is placed, POST /call answers 504.
    let app = app().await;
    app.clock.set(Utc::now());
    let req = with(
        request(),
        "providerName",
        json!("Acme Plumbing [lost-answer]"),
    );
    let first = app.post(&req, Some("key-lost")).await;
    // ringback found the call by its attempt id: the client gets it at once.
    let id = accepted_id(&first);
    let retry = app.post(&req, Some("key-lost")).await;
    assert_eq!(accepted_id(&retry), id);
    assert_eq!(app.post_calls(), 1, "the provider's phone rang twice");
    assert_eq!(
        app.record(&id).await.expect("recorded").result.data_status,
        DataStatus::Pending
    );
    assert_eq!(
        app.queue
            .messages()
            .into_iter()
            .filter(|(j, _)| *j == App::watchdog(&id))
            .count(),
        1,
        "one watchdog for the call"
    );
}

#[tokio::test]
async fn a_lost_answer_that_cannot_be_resolved_yet_holds_the_key_until_it_is() {
    let (app, vapi) = faulty_app(PostFault::LoseAnswer).await;
    vapi.listing_down.store(true, Ordering::SeqCst);
    let first = app.post(&request(), Some("key-doubt")).await;
    let m = assert_error(&first, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(m.contains("Idempotency-Key"), "{m}");
    assert!((1..=30).contains(&retry_after(&first)));
    assert_eq!(app.post_calls(), 1);
    // Vapi answers again; the client retries as told and learns the call placed for it.
    vapi.listing_down.store(false, Ordering::SeqCst);
    let id = accepted_id(&app.post(&request(), Some("key-doubt")).await);
    assert_eq!(app.sim.stats().post_call, 1, "no second call");
    assert!(app.sim.call(&id).is_some());
    assert_eq!(
        accepted_id(&app.post(&request(), Some("key-doubt")).await),
        id
    );
}

#[tokio::test]
async fn a_request_that_died_after_vapi_placed_the_call_is_answered_on_retry() {
    let (app, _vapi) = faulty_app(PostFault::DieAfterPlacing).await;
    dies(&app, "key-died").await;
    assert_eq!(app.post_calls(), 1);
    // The retry does not wait out a day of 409s: it finds the running call and records it.
    let id = accepted_id(&app.post(&request(), Some("key-died")).await);
    assert!(app.sim.call(&id).is_some());
    assert_eq!(app.post_calls(), 1, "no second call");
    assert!(app.record(&id).await.is_some(), "the call is recorded");
}

#[tokio::test]
async fn a_request_that_died_before_reaching_vapi_places_the_call_once_the_doubt_has_passed() {
    let (app, _vapi) = faulty_app(PostFault::DieBeforeSending).await;
    dies(&app, "key-early").await;
    assert_eq!(app.post_calls(), 0);
    // Within the doubt window the first request may still be placing it: 409, retry later.
    app.clock.advance(Duration::from_secs(10));
    let early = app.post(&request(), Some("key-early")).await;
    assert_error(&early, StatusCode::CONFLICT, "conflict");
    assert_eq!(retry_after(&early), 20);
    assert_eq!(app.post_calls(), 0);
    // Past it, Vapi has no call for that attempt: certainly never placed, so it is placed now.
    app.clock.advance(Duration::from_secs(21));
    let id = accepted_id(&app.post(&request(), Some("key-early")).await);
    assert_eq!(app.post_calls(), 1);
    assert_eq!(
        accepted_id(&app.post(&request(), Some("key-early")).await),
        id
    );
    assert_eq!(app.post_calls(), 1);
}

/// A queue whose sends fail while it is down.
#[derive(Default)]
struct DownQueue {
    inner: TappedQueue,
    down: AtomicBool,
}

#[async_trait]
impl EnrichmentQueue for DownQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError("SendMessage: service unavailable".into()));
        }
        self.inner.schedule(job, delay).await
    }
}

#[tokio::test]
async fn a_call_placed_but_neither_recorded_nor_watched_is_not_acknowledged_until_it_is() {
    let mut app = app().await;
    app.clock.set(Utc::now());
    let store = Arc::new(FlakyRecords::new(
        app.store.clone(),
        Down(AtomicBool::new(true)),
    ));
    let queue = Arc::new(DownQueue {
        down: AtomicBool::new(true),
        ..Default::default()
    });
    app.svc.store = store.clone();
    app.svc.queue = queue.clone();
    // Vapi placed the call; then both the record write and the watchdog's send failed. A 202 now
    // would end the client's retries while nothing but the call's webhooks could find it.
    let first = app.post(&request(), Some("key-both")).await;
    let m = assert_error(&first, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(m.contains("Idempotency-Key"), "{m}");
    assert_eq!(app.post_calls(), 1);
    // Storage and queue are back: the retry finds the call by its attempt and records it.
    store.hooks.0.store(false, Ordering::SeqCst);
    queue.down.store(false, Ordering::SeqCst);
    let id = accepted_id(&app.post(&request(), Some("key-both")).await);
    assert_eq!(app.post_calls(), 1, "no second call");
    assert!(app.record(&id).await.is_some());
    assert_eq!(queue.inner.asked().len(), 1, "its watchdog");
}
