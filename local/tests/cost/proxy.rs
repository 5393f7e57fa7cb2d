//! The counting HTTP proxies (DynamoDB, Vapi, the runner's routes) and DynamoDB's capacity units.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::common::{CALLS_PATH, WEBHOOK_PATH};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// DynamoDB's JSON protocol: `X-Amz-Target: DynamoDB_20120810.<Operation>`.
    Dynamo,
    /// Vapi's REST API.
    Vapi,
    /// The runner's routes: what API Gateway and the HTTP Lambdas would serve.
    App,
}

/// What went through one proxy.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Requests by label (the DynamoDB operation, the Vapi endpoint, the Lambda function).
    pub requests: BTreeMap<String, u64>,
    /// Requests answered with an error, by label and error (`PutItem ConditionalCheckFailedException`).
    pub failures: BTreeMap<String, u64>,
    /// DynamoDB capacity units: `read <table>`, `write <table>`, `write <table>/<index>`, ...
    pub units: BTreeMap<String, f64>,
    /// The largest item written per table (bytes, DynamoDB's item size), by PutItem or a transaction.
    pub max_item: BTreeMap<String, usize>,
}

impl Tally {
    pub fn count(&self, label: &str) -> u64 {
        self.requests.get(label).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Units whose key starts with `prefix` (`"read "`, `"write "`), indexes included or not.
    pub fn units(&self, prefix: &str, indexes: bool) -> f64 {
        self.units
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && (k.contains('/') == indexes))
            .map(|(_, v)| v)
            .sum()
    }
}

struct Proxy {
    kind: Kind,
    upstream: RwLock<Option<String>>,
    http: reqwest::Client,
    tally: Mutex<Tally>,
    /// Every request of every proxy of one system, in order (for docs/cost.md's walk-through).
    trace: Trace,
}

pub type Trace = Arc<Mutex<Vec<String>>>;

pub struct ProxyHandle {
    proxy: Arc<Proxy>,
    pub url: String,
    pub served: JoinHandle<()>,
}

impl ProxyHandle {
    pub async fn start(kind: Kind, upstream: Option<String>, trace: Trace) -> Self {
        let proxy = Arc::new(Proxy {
            kind,
            upstream: RwLock::new(upstream),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            tally: Mutex::new(Tally::default()),
            trace,
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        let served = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { proxy, url, served }
    }

    pub fn set_upstream(&self, url: &str) {
        *self.proxy.upstream.write().expect("lock") = Some(url.to_owned());
    }

    /// What went through since the last `take`, and a fresh count from now on.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.proxy.tally.lock().expect("lock"))
    }
}

const HOP_BY_HOP: [&str; 7] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "te",
    "upgrade",
];

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let upstream = p
        .upstream
        .read()
        .expect("lock")
        .clone()
        .expect("the proxy's upstream is set before any request");
    let label = label(p.kind, &parts.method, parts.uri.path(), &parts.headers);
    if p.kind == Kind::App {
        p.trace
            .lock()
            .expect("lock")
            .push(format!("{label} begins"));
    }
    let mut body = bytes.to_vec();
    if p.kind == Kind::Dynamo {
        body = ask_for_capacity(&p, &label, body);
    }
    let target = format!(
        "{upstream}{}",
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut out = p.http.request(parts.method.clone(), target);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("proxy: {e}")))
                .expect("response")
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let answer = resp.bytes().await.unwrap_or_default();
    record(&p, &label, status, &answer);

    let mut builder = Response::builder().status(status);
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    builder.body(Body::from(answer)).expect("response")
}

fn label(kind: Kind, method: &Method, path: &str, headers: &HeaderMap) -> String {
    match kind {
        Kind::Dynamo => headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_owned(),
        Kind::Vapi => match (method, path.trim_end_matches('/')) {
            (&Method::POST, "/call") => "POST /call",
            (&Method::GET, "/call") => "GET /call (list)",
            (&Method::GET, p) if p.starts_with("/call/") => "GET /call/{id}",
            _ => "other",
        }
        .to_owned(),
        Kind::App => match (method, path) {
            (&Method::POST, WEBHOOK_PATH) => "webhook",
            (&Method::POST, CALLS_PATH) => "call-initiator",
            (&Method::GET, p) if p.starts_with(CALLS_PATH) => "call-status",
            _ => "other",
        }
        .to_owned(),
    }
}

const READS: [&str; 5] = [
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];
pub const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// Adds `ReturnConsumedCapacity: INDEXES` to a data operation and notes the sizes of the items
/// it writes whole.
fn ask_for_capacity(p: &Proxy, op: &str, body: Vec<u8>) -> Vec<u8> {
    if !READS.contains(&op) && !WRITES.contains(&op) {
        return body;
    }
    let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let mut written: Vec<(String, &Value)> = Vec::new();
    if op == "PutItem" {
        if let (Some(t), Some(item)) = (req["TableName"].as_str(), req.get("Item")) {
            written.push((t.to_owned(), item));
        }
    }
    if op == "TransactWriteItems" {
        for put in req["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("Put"))
        {
            if let (Some(t), Some(item)) = (put["TableName"].as_str(), put.get("Item")) {
                written.push((t.to_owned(), item));
            }
        }
    }
    {
        let mut tally = p.tally.lock().expect("lock");
        for (table, item) in written {
            let size = item_size(item);
            let max = tally.max_item.entry(table).or_default();
            *max = (*max).max(size);
        }
    }
    req.entry("ReturnConsumedCapacity")
        .or_insert_with(|| json!("INDEXES"));
    serde_json::to_vec(&Value::Object(req)).unwrap_or(body)
}

/// DynamoDB's size of an item given in its wire JSON (dynoxide's implementation of the rules).
fn item_size(item: &Value) -> usize {
    serde_json::from_value::<dynoxide::types::Item>(item.clone())
        .map(|i| dynoxide::types::item_size(&i))
        .unwrap_or(0)
}

fn record(p: &Proxy, label: &str, status: StatusCode, answer: &[u8]) {
    let mut trace = p.trace.lock().expect("lock");
    let mut tally = p.tally.lock().expect("lock");
    *tally.requests.entry(label.to_owned()).or_default() += 1;
    if !status.is_success() && status != StatusCode::NOT_MODIFIED {
        let why = match p.kind {
            Kind::Dynamo => serde_json::from_slice::<Value>(answer)
                .ok()
                .and_then(|v| v["__type"].as_str().map(str::to_owned))
                .map(|t| t.rsplit('#').next().unwrap_or(&t).to_owned())
                .unwrap_or_else(|| status.as_u16().to_string()),
            _ => status.as_u16().to_string(),
        };
        *tally.failures.entry(format!("{label} {why}")).or_default() += 1;
        trace.push(format!("  {label} {why}"));
        return;
    }
    match p.kind {
        Kind::App => trace.push(format!("{label} answers {}", status.as_u16())),
        Kind::Vapi => trace.push(format!("  Vapi {label} {}", status.as_u16())),
        Kind::Dynamo => {}
    }
    if p.kind != Kind::Dynamo {
        return;
    }
    let class = if READS.contains(&label) {
        "read"
    } else {
        "write"
    };
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return;
    };
    let entries: Vec<&Value> = match &v["ConsumedCapacity"] {
        Value::Array(a) => a.iter().collect(),
        o @ Value::Object(_) => vec![o],
        _ => Vec::new(),
    };
    let mut line = format!("  {label}");
    for e in entries {
        let table = e["TableName"].as_str().unwrap_or("?").to_owned();
        let total = e["CapacityUnits"].as_f64().unwrap_or(0.0);
        let mut indexes = 0.0;
        for index in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
            for (name, detail) in e[index].as_object().into_iter().flatten() {
                let units = detail["CapacityUnits"].as_f64().unwrap_or(0.0);
                indexes += units;
                *tally
                    .units
                    .entry(format!("{class} {table}/{name}"))
                    .or_default() += units;
            }
        }
        let base = e["Table"]["CapacityUnits"]
            .as_f64()
            .unwrap_or(total - indexes);
        *tally.units.entry(format!("{class} {table}")).or_default() += base;
        line.push_str(&format!(" {table} {base}"));
        if indexes > 0.0 {
            line.push_str(&format!(" + index {indexes}"));
        }
    }
    trace.push(line);
}
