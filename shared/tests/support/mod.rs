//! Helpers shared by ringback's integration tests. A test file uses them with `mod support;`.
//!
//! - [`dynamo`]: a real-protocol DynamoDB for one test: dynoxide (in memory) served over HTTP on
//!   a free loopback port inside the test's runtime, and an AWS SDK client pointed at it with
//!   static test credentials. The server stops when the returned [`DynamoGuard`] is dropped.
//!   It starts in milliseconds, so every test gets its own and tests share nothing.
//! - [`tables`]: the three ringback tables created through `ensure_tables`, with unique names;
//!   [`call_index_table`]: the listing's table, likewise.
//! - [`ManualClock`]: a [`Clock`] the test sets and moves by hand (record expiry, deadlines).
//! - [`unique`]: a name no other test in this process uses; [`fixture`]: a Vapi payload of `fixtures/vapi/`.
//! - [`Hooked`]: the real calls table behind a test's stand-ins for some of its calls.
//!
//! ```ignore
//! mod support;
//! #[tokio::test]
//! async fn example() {
//!     let (client, _db) = support::dynamo().await;
//!     let t = support::tables(&client).await;
//!     let clock = support::ManualClock::at("2026-03-02T15:00:00Z");
//!     // ... CallsTable::new(client, t.calls, ttl, clock.clone()) ...
//! }
//! ```
#![allow(dead_code)]

mod hooked;
#[allow(unused_imports)] // each test file uses what it needs
pub use hooked::{Hooked, Hooks};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use ringback::ports::Clock;
use tokio::task::JoinHandle;

/// Keeps a test's DynamoDB server running; drop it to stop the server.
pub struct DynamoGuard {
    /// The database behind the server, for what the API does not offer (e.g. `db.sweep_ttl()`).
    pub db: dynoxide::Database,
    /// `http://127.0.0.1:{port}`, for a client or a process built by the test itself.
    pub endpoint: String,
    server: JoinHandle<()>,
}

impl Drop for DynamoGuard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A fresh in-memory DynamoDB served on a free loopback port, and a client for it.
pub async fn dynamo() -> (Client, DynamoGuard) {
    let db = dynoxide::Database::memory().expect("in-memory dynoxide");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
    let server = tokio::spawn(dynoxide::server::serve_on(listener, db.clone()));
    (
        client(&endpoint),
        DynamoGuard {
            db,
            endpoint,
            server,
        },
    )
}

/// A client for a store that is down: its port stays ours (so no other test's server can take it)
/// and every connection is closed at once, as a crashed or unreachable DynamoDB would.
pub async fn dead_dynamo() -> (Client, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
    let closer = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    (client(&endpoint), closer)
}

/// An SDK client for a local endpoint: region us-east-1, static `test` credentials, and
/// timeouts so a wedged server fails the test instead of hanging it.
pub fn client(endpoint: &str) -> Client {
    let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(30))
        .build();
    let conf = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .build();
    Client::from_conf(conf)
}

/// Names of the three tables created by [`tables`].
#[derive(Debug, Clone)]
pub struct Tables {
    pub calls: String,
    pub providers: String,
    pub logs: String,
}

/// Creates the calls, providers and interaction-log tables (with the index and TTL) under unique names.
pub async fn tables(client: &Client) -> Tables {
    let t = Tables {
        calls: unique("calls"),
        providers: unique("providers"),
        logs: unique("logs"),
    };
    ringback::adapters::dynamodb::ensure_tables(client, &t.calls, &t.providers, &t.logs)
        .await
        .expect("tables created");
    t
}

/// Creates a call index table (the listing's summaries) under a unique name, and returns it.
pub async fn call_index_table(client: &Client) -> String {
    let table = unique("call-index");
    ringback::adapters::dynamodb::ensure_call_index_table(client, &table)
        .await
        .expect("the call index table");
    table
}

/// A Vapi payload from `fixtures/vapi/` (the repository's own; see its README).
pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../fixtures/vapi/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

/// `{prefix}-{n}`, unique within the test process.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A clock that stands still until the test moves it.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock reading `iso` (RFC 3339), shared as the services expect it.
    pub fn at(iso: &str) -> Arc<Self> {
        let t = DateTime::parse_from_rfc3339(iso)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc);
        Arc::new(Self(Mutex::new(t)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap();
        *t += chrono::Duration::from_std(by).expect("a representable duration");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// One item of a table, as the SDK returns it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The provider row of `provider_id`, read consistently.
pub async fn provider_row(client: &Client, table: &str, provider_id: &str) -> Option<Item> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = client
        .get_item()
        .table_name(table)
        .key("providerId", AttributeValue::S(provider_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
}

/// Every interaction log of one service request, read consistently.
pub async fn interaction_logs(client: &Client, table: &str, request_id: &str) -> Vec<Item> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("requestId = :r")
        .expression_attribute_values(":r", AttributeValue::S(request_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items.unwrap_or_default()
}

/// Every id the store's unfinished index lists as overdue at `at`, through all its pages (one
/// shard of the index per page, so even a handful of records spans several).
pub async fn overdue_ids(
    store: &dyn ringback::ports::CallStore,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .overdue(at, cursor, 100)
            .await
            .expect("index readable");
        ids.extend(page.call_ids);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}
