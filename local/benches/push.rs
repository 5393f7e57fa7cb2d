//! Pushed events through `ringback-local`, measured from outside: calls placed over HTTP with a
//! `callbackUrl`, a receiver on loopback, and for each event the time from the event being made
//! (as the call settles: its `timestamp`) to the receiver having it. Also what the events table
//! holds per call: kept webhooks and pushed events, in DynamoDB's item-size terms.
//!
//!     cargo bench -p ringback-local --bench push [-- CALLS]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use ringback::config::Env;
use ringback_local::{LocalOptions, System};
use serde_json::{json, Value};
use tokio::sync::mpsc;

type Got = mpsc::UnboundedSender<(DateTime<Utc>, Bytes)>;

async fn receiver() -> (String, mpsc::UnboundedReceiver<(DateTime<Utc>, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .fallback(|State(tx): State<Got>, body: Bytes| async move {
            let _ = tx.send((Utc::now(), body));
            http::StatusCode::NO_CONTENT
        })
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// DynamoDB's size of an item: attribute names plus values (binary and strings by length).
fn item_bytes(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    A::S(s) => s.len(),
                    A::N(n) => n.len().div_ceil(2) + 1,
                    A::B(b) => b.as_ref().len(),
                    A::L(l) => {
                        3 + l
                            .iter()
                            .map(|x| x.as_s().map_or(1, |s| s.len() + 1))
                            .sum::<usize>()
                    }
                    _ => 1,
                }
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let env = Env::from_pairs([
        ("PORT", "0"),
        ("RINGBACK_IN_MEMORY", "1"),
        ("ENRICHMENT_DELAYS", "1,1,1"),
        ("RINGBACK_SIM_TIME_SCALE", "0.05"),
        ("CLEANUP_INTERVAL_SECONDS", "0"),
        ("RUST_LOG", "error"),
    ]);
    let sys = System::start(LocalOptions::from_env(env).unwrap())
        .await
        .unwrap();
    let (url, mut got) = receiver().await;
    let http = reqwest::Client::new();
    let ids = Arc::new(Mutex::new(Vec::new()));
    for i in 0..calls {
        let body = json!({
            "providerName": format!("Bench {i} [answered]"), "providerPhone": "+14155550123",
            "serviceNeeded": "plumber", "userCriteria": "licensed", "location": "Oakland, CA",
            "urgency": "flexible", "callbackUrl": url,
        });
        let r: Value = http
            .post(format!("{}/api/v1/vapi/calls", sys.base_url))
            .bearer_auth("dev-api-token")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.lock()
            .unwrap()
            .push(r["data"]["callId"].as_str().unwrap().to_owned());
    }
    let mut latencies = Vec::new();
    while latencies.len() < calls {
        let (at, body) = tokio::time::timeout(Duration::from_secs(60), got.recv())
            .await
            .expect("every call's event arrives")
            .unwrap();
        let event: Value = serde_json::from_slice(&body).unwrap();
        let made: DateTime<Utc> = event["timestamp"].as_str().unwrap().parse().unwrap();
        latencies.push((at - made).num_microseconds().unwrap() as f64 / 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "push latency, event made (call settling) -> receiver has it, {calls} calls: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    let mut kinds: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut start = None;
    loop {
        let page = sys
            .dynamo
            .scan()
            .table_name("ringback-events")
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let kind = item
                .get("kind")
                .and_then(|k| k.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let e = kinds.entry(kind).or_default();
            e.0 += 1;
            e.1 += item_bytes(item);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    for (kind, (n, bytes)) in &kinds {
        println!(
            "events table, {kind}: {n} items, {:.0} B each on average, {:.1} KB per call",
            *bytes as f64 / *n as f64,
            *bytes as f64 / calls as f64 / 1000.0
        );
    }
    sys.stop().await;
}
