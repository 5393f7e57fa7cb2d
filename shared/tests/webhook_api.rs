//! The webhook and call-status routes end to end below HTTP: real handlers, the real DynamoDB
//! adapter on embedded dynoxide, and a recording queue (the SQS adapter has its own tests).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, StatusCode};
use ringback::adapters::dynamodb::CallsTable;
use ringback::api::{self, Response};
use ringback::config::{parse_delays, ApiAuth, Timing};
use ringback::ports::{EnrichmentJob, EnrichmentQueue, JobKind, QueueError, StoreError};
use ringback::service::status::StatusService;
use ringback::service::webhook::WebhookService;
use ringback::vapi::{sign, WebhookAuth};
use serde_json::{json, Value};

const SECRET: &str = "test-secret";
const TOKEN: &str = "test-token";
const CALL: &str = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34";

#[derive(Default)]
struct RecordingQueue {
    sent: Mutex<Vec<(EnrichmentJob, Duration)>>,
    failing: Mutex<bool>,
}

#[async_trait]
impl EnrichmentQueue for RecordingQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        if *self.failing.lock().unwrap() {
            return Err(QueueError("queue is down (test)".into()));
        }
        self.sent.lock().unwrap().push((job.clone(), delay));
        Ok(())
    }
}

struct App {
    webhook: WebhookService,
    status: StatusService,
    queue: Arc<RecordingQueue>,
    _db: support::DynamoGuard,
}

async fn app() -> App {
    let (client, db) = support::dynamo().await;
    let t = support::tables(&client).await;
    let clock = Arc::new(ringback::ports::SystemClock);
    let store = Arc::new(CallsTable::new(
        client,
        t.calls,
        Duration::from_secs(1800),
        clock.clone(),
    ));
    let queue = Arc::new(RecordingQueue::default());
    let timing = Timing {
        enrichment_delays: parse_delays("3,5,8").unwrap(),
        ..Timing::default()
    };
    App {
        webhook: WebhookService {
            store: store.clone(),
            queue: queue.clone(),
            clock,
            auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
            max_bytes: 1 << 20,
            timing,
            metrics: ringback::metrics::Metrics::off(),
            archive: None,
        },
        status: StatusService { store },
        queue,
        _db: db,
    }
}

fn sample(name: &str) -> Vec<u8> {
    serde_json::to_vec(&support::fixture(name)).unwrap()
}

fn secret_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-vapi-secret", HeaderValue::from_static(SECRET));
    h
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

impl App {
    async fn post(&self, b: &[u8]) -> Response {
        api::post_webhook(&self.webhook, &secret_headers(), b).await
    }
    async fn get(&self, id: &str, extra: &[(&str, &str)]) -> Response {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        for (k, v) in extra {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        api::get_call(&self.status, &ApiAuth::Token(TOKEN.into()), &h, id).await
    }
    fn jobs(&self) -> Vec<(EnrichmentJob, Duration)> {
        self.queue.sent.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn end_of_call_report_is_stored_partial_and_enrichment_scheduled() {
    let app = app().await;
    let r = app.post(&sample("end-of-call-report.json")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body(&r),
        json!({"success": true, "data": {"callId": CALL, "dataStatus": "partial"}})
    );

    let jobs = app.jobs();
    assert_eq!(
        jobs,
        vec![(
            EnrichmentJob {
                call_id: CALL.into(),
                attempt: 1,
                kind: JobKind::Enrich,
                event_id: None,
            },
            Duration::from_secs(3)
        )]
    );

    let r = app.get(CALL, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let d = &body(&r)["data"];
    assert_eq!(d["dataStatus"], "partial");
    assert_eq!(d["callStatus"], "ended");
    assert_eq!(d["status"], "completed");
    assert_eq!(d["endedReason"], "customer-ended-call");
    assert!(d["transcript"]
        .as_str()
        .unwrap()
        .starts_with("AI: Hi, this is Riley"));
    assert!(d["analysis"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("Bayside Plumbing can come"));
    assert_eq!(d["analysis"]["structuredData"]["available"], true);
    assert_eq!(d["cost"], 0.1372);
    assert!((d["duration"].as_f64().unwrap() - 75.566 / 60.0).abs() < 1e-6);
    assert_eq!(d["messages"].as_array().unwrap().len(), 7);
    assert_eq!(
        d["recordingUrl"],
        "https://storage.vapi.ai/5e2b7c91-mono.wav"
    );
    assert_eq!(d["callMethod"], "direct_vapi");
    assert!(d["webhookReceivedAt"].is_string() && d["createdAt"].is_string());
}

#[tokio::test]
async fn a_duplicate_delivery_changes_nothing_and_starts_no_second_chain() {
    let app = app().await;
    app.post(&sample("end-of-call-report.json")).await;
    let before = app.get(CALL, &[]).await;
    // Vapi's redeliveries differ byte-wise (presigned URLs): still the same event.
    let mut v: Value = serde_json::from_slice(&sample("end-of-call-report.json")).unwrap();
    v["message"]["artifact"]["presignedUrlsExpiresAt"] = json!("2026-03-02T17:00:00.000Z");
    let r = app.post(v.to_string().as_bytes()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(&r)["data"]["dataStatus"], "partial");
    let after = app.get(CALL, &[]).await;
    assert_eq!(
        before.headers()["etag"],
        after.headers()["etag"],
        "the record was rewritten"
    );
    // Until an attempt claims the chain, a redelivery repeats its first job (the first send may
    // have been lost after the write): the same job, which the consumer runs once.
    let jobs = app.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0], jobs[1]);
    assert_eq!((jobs[0].0.attempt, jobs[0].0.kind), (1, JobKind::Enrich));
}

#[tokio::test]
async fn status_updates_never_regress_and_never_start_a_second_chain() {
    let app = app().await;
    app.post(&sample("end-of-call-report.json")).await;
    app.post(&sample("status-update-ended.json")).await;
    let late = json!({"message": {"type": "status-update", "status": "in-progress", "call": {"id": CALL}}});
    assert_eq!(
        app.post(late.to_string().as_bytes()).await.status(),
        StatusCode::OK
    );
    let d = body(&app.get(CALL, &[]).await)["data"].clone();
    assert_eq!(d["callStatus"], "ended");
    // Until an attempt claims the chain, each new event repeats its first job (an earlier send
    // may have been lost): the same job every time, which the consumer runs once.
    let jobs = app.jobs();
    assert!(!jobs.is_empty());
    assert!(
        jobs.iter()
            .all(|(j, d)| (j.attempt, j.kind, *d) == (1, JobKind::Enrich, Duration::from_secs(3))),
        "{jobs:?}"
    );
}

#[tokio::test]
async fn a_running_call_is_recorded_without_enrichment() {
    let app = app().await;
    let ringing = json!({"message": {"type": "status-update", "status": "ringing", "timestamp": 1772463912345u64,
        "call": {"id": "c-ring", "assistantOverrides": {"metadata": {"providerName": "Acme"}}}}});
    let r = app.post(ringing.to_string().as_bytes()).await;
    assert_eq!(body(&r)["data"]["dataStatus"], "partial");
    let d = body(&app.get("c-ring", &[]).await)["data"].clone();
    assert_eq!(d["callStatus"], "ringing");
    assert_eq!(d["status"], Value::Null);
    assert_eq!(d["provider"]["name"], "Acme");
    assert!(app.jobs().is_empty());
}

#[tokio::test]
async fn authentication_schemes_and_failures() {
    let app = app().await;
    let b = sample("status-update-ended.json");
    let now = chrono::Utc::now().timestamp().to_string();
    let signed = sign(
        SECRET,
        format!("{now}.{}", String::from_utf8_lossy(&b)).as_bytes(),
    );
    let cases: Vec<(Vec<(&str, String)>, StatusCode)> = vec![
        (vec![], StatusCode::UNAUTHORIZED),
        (
            vec![("x-vapi-secret", "wrong".into())],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![("authorization", format!("Bearer {SECRET}"))],
            StatusCode::OK,
        ),
        (
            vec![("x-vapi-signature", format!("sha256={}", sign(SECRET, &b)))],
            StatusCode::OK,
        ),
        (
            vec![
                ("x-vapi-signature", signed.clone()),
                ("x-vapi-timestamp", now.clone()),
            ],
            StatusCode::OK,
        ),
        (
            vec![
                ("x-vapi-signature", signed),
                ("x-vapi-timestamp", "1000".into()),
            ],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (headers, want) in cases {
        let mut h = HeaderMap::new();
        for (k, v) in &headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let r = api::post_webhook(&app.webhook, &h, &b).await;
        assert_eq!(r.status(), want, "{headers:?}");
        if want == StatusCode::UNAUTHORIZED {
            assert_eq!(body(&r)["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_path_never_a_500() {
    let app = app().await;
    let cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            b"not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "JSON",
        ),
        (
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "object",
        ),
        (
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "$.message",
        ),
        (
            br#"{"message":{"type":1}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "$.message.type",
        ),
        (
            br#"{"message":{"type":"end-of-call-report","call":{}}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "$.message.call.id",
        ),
        // Longer than DynamoDB's key limit once stored: a 400 naming the field, not a 503.
        (
            json!({"message": {"type": "status-update", "status": "ringing",
                "call": {"id": "x".repeat(3000)}}})
            .to_string()
            .into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "$.message.call.id",
        ),
        // '#' is reserved for the store's own keys (document parts, idempotency records).
        (
            br#"{"message":{"type":"status-update","status":"ringing","call":{"id":"c#part1"}}}"#
                .to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "$.message.call.id",
        ),
        (
            vec![b' '; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "limit",
        ),
    ];
    for (b, status, code, mentions) in cases {
        let r = app.post(&b).await;
        assert_eq!(r.status(), status);
        let e = body(&r);
        assert_eq!(e["success"], false);
        assert_eq!(e["error"]["code"], code);
        assert!(
            e["error"]["message"].as_str().unwrap().contains(mentions),
            "{e}"
        );
    }
    // The longest id api.md §8 accepts is stored and readable.
    let longest = "y".repeat(256);
    let r = app
        .post(
            json!({"message": {"type": "status-update", "status": "ringing", "call": {"id": longest}}})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", body(&r));
    assert_eq!(app.get(&longest, &[]).await.status(), StatusCode::OK);
    let other = json!({"message": {"type": "tool-calls", "call": {"id": "c-tool"}}});
    let r = app.post(other.to_string().as_bytes()).await;
    assert_eq!(
        body(&r),
        json!({"success": true, "data": {"ignored": true}})
    );
    assert_eq!(app.get("c-tool", &[]).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn queue_failure_answers_503_and_vapis_retry_succeeds() {
    let app = app().await;
    *app.queue.failing.lock().unwrap() = true;
    let r = app.post(&sample("end-of-call-report.json")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(&r)["error"]["code"], "unavailable");
    *app.queue.failing.lock().unwrap() = false;
    // The retry must not be taken for a duplicate: it schedules the enrichment the first one could not.
    assert_eq!(
        app.post(&sample("end-of-call-report.json")).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.jobs().len(), 1);
}

#[tokio::test]
async fn storage_failure_answers_503() {
    // Dropping an emulator would free its port for the next test's server to take (a 404 from
    // the wrong store, seen once under CI); a dead store that keeps its port cannot be mistaken.
    let (client, _dead) = support::dead_dynamo().await;
    let clock = Arc::new(ringback::ports::SystemClock);
    let store = Arc::new(CallsTable::new(
        client,
        "calls".into(),
        Duration::from_secs(60),
        clock.clone(),
    ));
    let svc = WebhookService {
        store: store.clone(),
        queue: Arc::new(RecordingQueue::default()),
        clock,
        auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
        max_bytes: 1 << 20,
        timing: Timing::default(),
        metrics: ringback::metrics::Metrics::off(),
        archive: None,
    };
    let r = api::post_webhook(&svc, &secret_headers(), &sample("end-of-call-report.json")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = api::get_call(
        &StatusService { store },
        &ApiAuth::Off,
        &HeaderMap::new(),
        CALL,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_one_mebibyte_report_is_stored_whole() {
    let app = app().await;
    let mut v: Value = serde_json::from_slice(&sample("end-of-call-report.json")).unwrap();
    // Words from a small LCG: text that does not compress to nothing.
    let mut x: u64 = 7;
    let mut transcript = String::new();
    while transcript.len() < 900_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        transcript.push_str(if x >> 63 == 0 { "\nAI: " } else { " " });
        transcript.push_str(&format!("{:x}", x >> 20));
    }
    v["message"]["artifact"]["transcript"] = json!(transcript);
    let raw = v.to_string();
    assert!(raw.len() < 1 << 20);
    assert_eq!(app.post(raw.as_bytes()).await.status(), StatusCode::OK);
    let d = body(&app.get(CALL, &[]).await)["data"].clone();
    assert_eq!(d["transcript"].as_str().unwrap(), transcript);
}

#[tokio::test]
async fn polling_with_etags_and_errors() {
    let app = app().await;
    app.post(&sample("end-of-call-report.json")).await;
    let r = app.get(CALL, &[]).await;
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = app.get(CALL, &[("if-none-match", &tag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.body().is_empty());
    app.post(&sample("status-update-ended.json")).await; // a new event: a new version
    let r = app.get(CALL, &[("if-none-match", &tag)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), tag);

    let r = app.get("no-such-call", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(&r)["error"]["code"], "not_found");
    let r = api::get_call(
        &app.status,
        &ApiAuth::Token(TOKEN.into()),
        &HeaderMap::new(),
        CALL,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// ---- a write that landed, whose answer was lost ----

/// The calls table, except that the next write lands and then answers as if it had not: with the
/// conditional failure the SDK's retry of a landed write gets, or with an outage.
struct LosingAnswers {
    inner: CallsTable,
    lose_next: Mutex<Option<ringback::ports::StoreError>>,
}

#[async_trait]
impl ringback::ports::CallStore for LosingAnswers {
    async fn get(&self, id: &str) -> Result<Option<ringback::ports::Versioned>, StoreError> {
        self.inner.get(id).await
    }
    async fn put(
        &self,
        record: &ringback::domain::CallRecord,
        expected: Option<u64>,
        deadline: ringback::ports::Deadline,
    ) -> Result<u64, StoreError> {
        let landed = self.inner.put(record, expected, deadline).await?;
        match self.lose_next.lock().unwrap().take() {
            Some(lost) => Err(lost),
            None => Ok(landed),
        }
    }
    async fn delete(&self, id: &str, expected: u64) -> Result<(), StoreError> {
        self.inner.delete(id, expected).await
    }
    async fn erase(
        &self,
        tombstone: &ringback::domain::CallRecord,
        expected: Option<u64>,
        until: chrono::DateTime<chrono::Utc>,
        deadline: ringback::ports::Deadline,
    ) -> Result<u64, StoreError> {
        self.inner.erase(tombstone, expected, until, deadline).await
    }
    async fn overdue(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<ringback::ports::OverduePage, StoreError> {
        self.inner.overdue(now, page, limit).await
    }
}

#[tokio::test]
async fn a_landed_write_whose_answer_was_lost_still_starts_the_chain() {
    for lost in [
        StoreError::Conflict,
        StoreError::Unavailable("connection reset after the request was sent".into()),
    ] {
        let (client, _db) = support::dynamo().await;
        let t = support::tables(&client).await;
        let clock = Arc::new(ringback::ports::SystemClock);
        let store = Arc::new(LosingAnswers {
            inner: CallsTable::new(client, t.calls, Duration::from_secs(1800), clock.clone()),
            lose_next: Mutex::new(Some(lost)),
        });
        let queue = Arc::new(RecordingQueue::default());
        let svc = WebhookService {
            store,
            queue: queue.clone(),
            clock,
            auth: WebhookAuth::new([SECRET.to_string()], "x-vapi-signature"),
            max_bytes: 1 << 20,
            timing: Timing::default(),
            metrics: ringback::metrics::Metrics::off(),
            archive: None,
        };
        let (headers, report) = (secret_headers(), sample("end-of-call-report.json"));
        let first = api::post_webhook(&svc, &headers, &report).await;
        if first.status() == StatusCode::SERVICE_UNAVAILABLE {
            // An outage answer: Vapi's backoff plan delivers the report again.
            let retry = api::post_webhook(&svc, &headers, &report).await;
            assert_eq!(retry.status(), StatusCode::OK);
        } else {
            assert_eq!(first.status(), StatusCode::OK);
        }
        let jobs = queue.sent.lock().unwrap().clone();
        assert_eq!(jobs.len(), 1, "the chain's first job: {jobs:?}");
        assert_eq!((jobs[0].0.attempt, jobs[0].0.kind), (1, JobKind::Enrich));
    }
}
