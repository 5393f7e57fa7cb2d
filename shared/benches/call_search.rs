//! The call listing (`GET /api/v1/vapi/calls`) at 10,000 calls: the real handler
//! (`api::list_calls`: query parsing, the index adapter, the envelope) against the real DynamoDB
//! adapter and the embedded dynoxide store on loopback, one request at a time. Prints p50/p99 per
//! query shape. Run with `cargo bench -p ringback --bench call_search`; `BENCH_CALLS` (default
//! 10000) and `BENCH_REQUESTS` (default 200 per shape) change the size.
//!
//! The calls are written as the services write them: through `IndexedCalls` over the calls table
//! (create, then settle), so the index holds what a deployment's would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderValue};
use ringback::adapters::dynamodb::{
    ensure_call_index_table, ensure_tables, CallIndexTable, CallsTable,
};
use ringback::api;
use ringback::config::ApiAuth;
use ringback::domain::{to_iso, CallRecord, CallStatus, DataStatus, Outcome};
use ringback::ports::{CallStore, SystemClock};
use ringback::search::{CallIndex, IndexedCalls, SearchService};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let calls = env_or("BENCH_CALLS", 10_000);
    let requests = env_or("BENCH_REQUESTS", 200);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dynoxide::server::serve_on(
        listener,
        dynoxide::Database::memory().unwrap(),
    ));
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(&endpoint)
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    ensure_tables(&client, "calls", "providers", "logs")
        .await
        .unwrap();
    ensure_call_index_table(&client, "call-index")
        .await
        .unwrap();
    let index: Arc<dyn CallIndex> =
        Arc::new(CallIndexTable::new(client.clone(), "call-index".into()));
    let store = Arc::new(IndexedCalls::new(
        CallsTable::new(
            client.clone(),
            "calls".into(),
            Duration::from_secs(1800),
            Arc::new(SystemClock),
        )
        .with_index("call-index".into()),
        Some(index.clone()),
    ));

    // 10,000 calls over ten days; 500 service requests (20 calls each), 200 providers (50 each);
    // settled 70 % complete/completed, 20 % fetch_failed/no_answer, 10 % still partial.
    let loaded = Instant::now();
    let base = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..calls)
        .collect::<Vec<_>>()
        .chunks(calls.div_ceil(8).max(1))
    {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                let created = base + chrono::Duration::seconds((i as i64) * 86);
                let mut r = CallRecord::new(format!("bench-call-{i:05}"), &to_iso(created));
                r.result.provider.name = Some(format!("Provider {}", i % 200));
                r.result.provider_id = Some(format!("provider-{}", i % 200));
                r.result.service_request_id = Some(format!("request-{}", i % 500));
                let v = store.put(&r, None, None).await.unwrap();
                r.result.call_status = CallStatus::Ended;
                (r.result.data_status, r.result.status) = match i % 10 {
                    0..=6 => (DataStatus::Complete, Some(Outcome::Completed)),
                    7 | 8 => (DataStatus::FetchFailed, Some(Outcome::NoAnswer)),
                    _ => (DataStatus::Partial, None),
                };
                store.put(&r, Some(v), None).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    println!(
        "loaded {calls} calls (2 record writes and 2 summary writes each) in {:.1}s",
        loaded.elapsed().as_secs_f64()
    );

    let svc = SearchService { index };
    let auth = ApiAuth::Token("bench".into());
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer bench"));
    let shapes: [(&str, &str); 7] = [
        ("no filter, 20 newest (16 shards merged)", "limit=20"),
        ("no filter, 100 newest", "limit=100"),
        ("serviceRequestId (20 calls)", "serviceRequestId=request-7"),
        ("providerId, 20 of 50", "providerId=provider-3"),
        ("status=complete, 20 newest", "status=complete"),
        ("status=no_answer, 20 newest", "status=no_answer"),
        (
            "status=complete within one day",
            "status=complete&since=2026-11-25&until=2026-11-25&limit=100",
        ),
    ];
    println!("| query | calls on the page | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (name, q) in shapes {
        let mut times = Vec::with_capacity(requests);
        let mut shown = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let resp = api::list_calls(Some(&svc), &auth, &headers, Some(q)).await;
            times.push(t.elapsed());
            assert_eq!(resp.status(), 200, "{name}");
            let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            shown = body["data"]["calls"].as_array().map_or(0, Vec::len);
        }
        times.sort();
        println!(
            "| {name} | {shown} | {:.2} | {:.2} |",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    }

    // Deep paging: every call through the time index, pages of 100.
    let t = Instant::now();
    let (mut seen, mut pages, mut cursor) = (0, 0, None::<String>);
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=100&cursor={c}"),
            None => "limit=100".to_owned(),
        };
        let resp = api::list_calls(Some(&svc), &auth, &headers, Some(&q)).await;
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        seen += body["data"]["calls"].as_array().map_or(0, Vec::len);
        pages += 1;
        match body["data"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, calls, "every call, once");
    println!(
        "paged through all {seen} calls in {pages} pages of 100: {:.2}s ({:.1} ms a page)",
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1e3 / f64::from(pages)
    );
}
