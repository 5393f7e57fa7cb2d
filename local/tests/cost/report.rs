//! What the test reports: the table it prints and the counts it writes as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use serde_json::{json, Value};

use crate::proxy::{Tally, WRITES};
use crate::Measured;

fn tally_json(t: &Tally) -> Value {
    json!({
        "requests": t.requests,
        "failures": t.failures,
        "units": t.units,
        "max_item_bytes": t.max_item,
    })
}

pub fn print_table(rows: &[Measured]) {
    println!();
    println!(
        "{:<19} {:<12} {:>4} {:>4} {:>4} {:>4} {:>4} {:>4} {:>5} {:>6} {:>6} {:>6} {:>5} {:>9} {:>9} {:>10} {:>6}",
        "scenario", "settled", "DDB", "Get", "Put", "Upd", "Txn", "Qry", "fail", "RRU", "WRU", "GSI-W",
        "SQS", "s/r/d", "Vapi P/G/L", "λ in/wh/en", "item B"
    );
    for r in rows {
        let d = &r.call.dynamo;
        let q = r.call.queue;
        let v = &r.call.vapi;
        let a = &r.call.app;
        println!(
            "{:<19} {:<12} {:>4} {:>4} {:>4} {:>4} {:>4} {:>4} {:>5} {:>6.1} {:>6.1} {:>6.1} {:>5} {:>9} {:>9} {:>10} {:>6}",
            r.scenario,
            r.settled,
            d.total(),
            d.count("GetItem") + d.count("BatchGetItem"),
            d.count("PutItem"),
            d.count("UpdateItem"),
            d.count("TransactWriteItems"),
            d.count("Query"),
            d.failed(),
            d.units("read ", false) + d.units("read ", true),
            d.units("write ", false),
            d.units("write ", true),
            q.total(),
            format!("{}/{}/{}", q.sends, q.receives, q.deletes),
            format!(
                "{}/{}/{}",
                v.count("POST /call"),
                v.count("GET /call/{id}"),
                v.count("GET /call (list)")
            ),
            format!(
                "{}/{}/{}",
                a.count("call-initiator"),
                a.count("webhook"),
                q.receives
            ),
            d.max_item.values().copied().max().unwrap_or(0),
        );
    }
    if let Some(r) = rows.first() {
        let g = &r.status_get;
        println!(
            "one status GET (200 or 304): {} DynamoDB request(s), {:.1} RRU ({} GETs measured)",
            g.total() as f64 / 2.0,
            g.units("read ", false) / 2.0,
            2
        );
    }
    if let Some((c, _)) = rows.iter().find_map(|r| r.cleanup.as_ref()) {
        println!(
            "one cleanup run (1 call in its window): {:?} DynamoDB, {:.1} RRU, Vapi {:?}",
            c.dynamo.requests,
            c.dynamo.units("read ", false) + c.dynamo.units("read ", true),
            c.vapi.requests
        );
    }
}

pub fn write_json(rows: &[Measured]) -> PathBuf {
    let scenarios: serde_json::Map<String, Value> = rows
        .iter()
        .map(|r| {
            let c = &r.call;
            let stored: BTreeMap<&String, Value> = r
                .stored
                .iter()
                .map(|(t, (n, max, total))| {
                    (
                        t,
                        json!({"items": n, "max_bytes": max, "total_bytes": total}),
                    )
                })
                .collect();
            let v = json!({
                "settled": r.settled,
                "dynamodb": tally_json(&c.dynamo),
                "dynamodb_rru": c.dynamo.units("read ", false) + c.dynamo.units("read ", true),
                "dynamodb_wru_tables": c.dynamo.units("write ", false),
                "dynamodb_wru_indexes": c.dynamo.units("write ", true),
                "dynamodb_failed_writes": c.dynamo.failures.iter()
                    .filter(|(k, _)| WRITES.iter().any(|w| k.starts_with(w)))
                    .map(|(_, n)| n).sum::<u64>(),
                "sqs": {"SendMessage": c.queue.sends, "ReceiveMessage": c.queue.receives,
                        "DeleteMessageBatch": c.queue.deletes,
                        "ChangeMessageVisibilityBatch": c.queue.releases},
                "vapi": tally_json(&c.vapi),
                "http": tally_json(&c.app),
                "lambda_invocations": {
                    "call-initiator": c.app.count("call-initiator"),
                    "webhook": c.app.count("webhook"),
                    "enrichment": c.queue.receives,
                },
                "stored": stored,
                "status_get_x2": tally_json(&r.status_get),
            });
            let mut v = v;
            if r.scenario == "answered" {
                v["trace"] = json!(c.trace);
            }
            (r.scenario.to_owned(), v)
        })
        .collect();
    let cleanup = rows.iter().find_map(|r| r.cleanup.as_ref()).map(|(c, _)| {
        json!({
            "calls_in_window": 1,
            "dynamodb": tally_json(&c.dynamo),
            "dynamodb_rru": c.dynamo.units("read ", false) + c.dynamo.units("read ", true),
            "vapi": tally_json(&c.vapi),
            "sqs_sends": c.queue.sends,
        })
    });
    let doc = json!({
        "generated_at": Utc::now().to_rfc3339(),
        "how": "local/tests/cost/: one call per scenario through POST /api/v1/vapi/calls with an \
                Idempotency-Key, counted at the DynamoDB, Vapi and HTTP boundaries and in the queue, \
                until quiet; status_get_x2 is one GET (200) plus one conditional GET (304)",
        "settings": {
            "ENRICHMENT_DELAYS": "1,1,1",
            "WATCHDOG_DELAY_SECONDS": 2,
            "simulator_time_scale": 0.05,
            "note": "test pacing; the request counts do not depend on it except where a delay \
                     decides whether Vapi's analysis is ready (see docs/cost.md)"
        },
        "scenarios": scenarios,
        "cleanup_run": cleanup,
    });
    let path = std::env::var_os("RINGBACK_COST_COUNTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/cost-counts.json")
        });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("target dir");
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON");
    bytes.push(b'\n');
    std::fs::write(&path, bytes).expect("write the counts");
    path
}
