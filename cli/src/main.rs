//! `ringback`: the operator CLI. It talks to a deployment or `ringback-local` over the HTTP API,
//! and to SQS for the dead-letter redrive.

mod client;
mod history;
mod operator;
mod stats;
mod text;

use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use client::Api;
use text::{aligned, cell, clip};

#[derive(Parser)]
#[command(
    name = "ringback",
    version,
    about = "Operate ringback: start and watch calls, inspect, count and erase them, redrive failures"
)]
struct Cli {
    /// Base URL of the API (a deployment's ApiUrl output, or ringback-local).
    #[arg(
        long,
        env = "RINGBACK_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    url: String,
    /// The API token (Authorization: Bearer).
    #[arg(
        long,
        env = "RINGBACK_API_TOKEN",
        default_value = "dev-api-token",
        global = true,
        hide_default_value = true
    )]
    token: String,
    #[command(subcommand)]
    command: Command,
}

/// Wherever a call id is asked for, `last` names the call this machine started last; for
/// `redeliver`, `last` names that call's newest pushed event.
#[derive(Subcommand)]
enum Command {
    /// Start a call and (unless --no-watch) follow it to the end.
    Call(CallArgs),
    /// Follow a call until it is complete or fetch_failed.
    Watch { call_id: String },
    /// Print a call's record.
    Show { call_id: String },
    /// Calls, newest first, from the deployment's index (filters: one of --service-request-id,
    /// --provider-id, --status; --since/--until bound createdAt).
    List(ListArgs),
    /// A call's timeline: its record's milestones, every kept webhook, every pushed event and
    /// delivery attempt.
    Events { call_id: String },
    /// A call's pushed events and each delivery attempt (time, status, latency, error).
    Deliveries { call_id: String },
    /// Rebuild a settled call from its kept webhooks through today's code, enrich it again, and
    /// follow it to the end (unless --no-watch).
    Replay {
        call_id: String,
        #[arg(long)]
        no_watch: bool,
    },
    /// Send a pushed event again (after a receiver fixed its endpoint), and follow the delivery.
    Redeliver {
        event_id: String,
        #[arg(long)]
        no_watch: bool,
    },
    /// Erase a call everywhere ringback wrote it: its record (a tombstone remains), kept webhooks,
    /// pushed events, listing entry, and the texts of its provider row and interaction log.
    /// Idempotent: run it again after a failure to finish.
    Erase {
        call_id: String,
        /// Also delete Vapi's copy of the call (reported apart).
        #[arg(long)]
        vapi: bool,
    },
    /// Calls created in a window by data status and outcome (exact counts), calls overdue, and
    /// the enrichment queues' depths.
    Stats {
        /// ISO-8601 time or date; 24 hours before --until by default (widened to the hour).
        #[arg(long)]
        since: Option<String>,
        /// ISO-8601 time or date; now by default (widened to the hour; 31 days at most).
        #[arg(long)]
        until: Option<String>,
    },
    /// Move every message of the dead-letter queue back to the enrichment queue.
    Redrive {
        #[arg(long, env = "ENRICHMENT_DLQ_URL")]
        dlq_url: String,
        #[arg(long, env = "ENRICHMENT_QUEUE_URL")]
        queue_url: String,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("filter").args(["service_request_id", "provider_id", "status"])))]
struct ListArgs {
    #[arg(long)]
    service_request_id: Option<String>,
    #[arg(long)]
    provider_id: Option<String>,
    /// pending | partial | fetching | complete | fetch_failed, or an outcome:
    /// completed | no_answer | voicemail | timeout | error.
    #[arg(long)]
    status: Option<String>,
    /// ISO-8601 time or date (createdAt at or after).
    #[arg(long)]
    since: Option<String>,
    /// ISO-8601 time or date (createdAt at or before).
    #[arg(long)]
    until: Option<String>,
    /// Calls per page (1-100).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Continue after a page: the cursor the previous page printed.
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Follow every cursor to the end, pages of --limit (progress on stderr).
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct CallArgs {
    #[arg(long)]
    provider_name: String,
    /// E.164, e.g. +14155550123.
    #[arg(long)]
    phone: String,
    #[arg(long, default_value = "plumber")]
    service: String,
    #[arg(long, default_value = "")]
    criteria: String,
    #[arg(long, default_value = "Oakland, CA")]
    location: String,
    #[arg(long, default_value = "flexible")]
    urgency: String,
    #[arg(long)]
    provider_id: Option<String>,
    #[arg(long)]
    service_request_id: Option<String>,
    /// Where ringback pushes the call's completion event (Standard Webhooks, signed).
    #[arg(long)]
    callback_url: Option<String>,
    /// Defaults to a fresh key, so that this command's own retries never place a second call.
    #[arg(long)]
    idempotency_key: Option<String>,
    #[arg(long)]
    no_watch: bool,
    /// Give up watching after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let api = Api::new(&cli.url, &cli.token);
    let result = run(&api, cli.command).await;
    if let Err(e) = result {
        eprintln!("ringback: {e}");
        std::process::exit(1);
    }
}

/// `last` names the call this machine started last (a fresh shell need not copy its id).
fn call_id(given: String) -> Result<String, String> {
    if given != "last" {
        return Ok(given);
    }
    history::recent(1)
        .pop()
        .ok_or_else(|| "no call was started from this machine yet, so `last` names none".into())
}

/// `last` names the newest event pushed for the call this machine started last.
async fn event_id(api: &Api, given: String) -> Result<String, String> {
    if given != "last" {
        return Ok(given);
    }
    let call = call_id(given)?;
    let t = api
        .get_path(&format!("/api/v1/vapi/calls/{call}/events"))
        .await?;
    t["pushes"]
        .as_array()
        .and_then(|p| p.iter().rev().find_map(|e| e["eventId"].as_str()))
        .map(str::to_owned)
        .ok_or_else(|| format!("call {call} has no pushed event yet"))
}

async fn run(api: &Api, command: Command) -> Result<(), String> {
    match command {
        Command::Call(args) => call(api, args).await,
        Command::Watch { call_id: id } => watch(api, &call_id(id)?, Duration::from_secs(600)).await,
        Command::Show { call_id: id } => api
            .get(&call_id(id)?)
            .await
            .map(|(v, _)| println!("{}", pretty(&v))),
        Command::List(args) => list(api, args).await,
        Command::Events { call_id: id } => operator::events(api, &call_id(id)?).await,
        Command::Deliveries { call_id: id } => operator::deliveries(api, &call_id(id)?).await,
        Command::Replay {
            call_id: id,
            no_watch,
        } => {
            let id = call_id(id)?;
            match operator::replay(api, &id).await {
                Ok(()) if !no_watch => watch(api, &id, Duration::from_secs(600)).await,
                done => done,
            }
        }
        Command::Redeliver {
            event_id: id,
            no_watch,
        } => operator::redeliver(api, &event_id(api, id).await?, !no_watch).await,
        Command::Erase { call_id: id, vapi } => operator::erase(api, &call_id(id)?, vapi).await,
        Command::Stats { since, until } => stats::stats(api, since, until).await,
        Command::Redrive { dlq_url, queue_url } => redrive(&dlq_url, &queue_url).await,
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

async fn call(api: &Api, a: CallArgs) -> Result<(), String> {
    let mut body = json!({
        "providerName": a.provider_name, "providerPhone": a.phone, "serviceNeeded": a.service,
        "userCriteria": a.criteria, "location": a.location, "urgency": a.urgency,
    });
    if let Some(id) = a.provider_id {
        body["providerId"] = json!(id);
    }
    if let Some(id) = a.service_request_id {
        body["serviceRequestId"] = json!(id);
    }
    if let Some(url) = a.callback_url {
        body["callbackUrl"] = json!(url);
    }
    let key = a
        .idempotency_key
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let started = api.start(&body, &key).await?;
    let id = started["callId"]
        .as_str()
        .ok_or("the answer has no callId")?
        .to_owned();
    history::remember(&id);
    println!(
        "call {id} started (poll {})",
        started["pollUrl"].as_str().unwrap_or("")
    );
    if a.no_watch {
        return Ok(());
    }
    watch(api, &id, Duration::from_secs(a.timeout)).await?;
    if body.get("callbackUrl").is_some() {
        operator::follow_push(api, &id).await?;
    }
    Ok(())
}

/// Polls with If-None-Match and prints each change of callStatus or dataStatus as it happens.
async fn watch(api: &Api, id: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut etag: Option<String> = None;
    let mut last = (String::new(), String::new());
    loop {
        match api.get_if_changed(id, etag.as_deref()).await? {
            None => {}
            Some((record, tag)) => {
                etag = tag;
                let now = (
                    record["callStatus"].as_str().unwrap_or("?").to_owned(),
                    record["dataStatus"].as_str().unwrap_or("?").to_owned(),
                );
                if now != last {
                    println!(
                        "{:>6.1}s  callStatus={:<12} dataStatus={}",
                        start.elapsed().as_secs_f64(),
                        now.0,
                        now.1
                    );
                    last = now;
                }
                if matches!(last.1.as_str(), "complete" | "fetch_failed") {
                    let summary = json!({
                        "status": record["status"], "endedReason": record["endedReason"], "duration": record["duration"],
                        "cost": record["cost"], "summary": record["analysis"]["summary"], "fetchError": record["fetchError"],
                    });
                    println!("{}", pretty(&summary));
                    return Ok(());
                }
            }
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "gave up after {}s; the call is {:?}",
                timeout.as_secs(),
                last
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn list(api: &Api, a: ListArgs) -> Result<(), String> {
    let mut params: Vec<(&str, String)> = [
        ("serviceRequestId", a.service_request_id),
        ("providerId", a.provider_id),
        ("status", a.status),
        ("since", a.since),
        ("until", a.until),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    params.push(("limit", a.limit.to_string()));
    let filtered = params.len() > 1;
    let started = Instant::now();
    let mut cursor = a.cursor;
    let mut rows: Vec<Value> = Vec::new();
    let mut pages = 0u32;
    loop {
        let mut query = params.clone();
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = match api.list(&query).await? {
            client::Listing::Page(page) => page,
            client::Listing::NoRoute if pages == 0 && !filtered => {
                eprintln!("this deployment cannot list calls; showing the calls started from this machine");
                return list_from_history(api, a.limit as usize).await;
            }
            client::Listing::NoRoute => {
                return Err("this deployment cannot list calls (no GET /api/v1/vapi/calls)".into())
            }
        };
        pages += 1;
        rows.extend(page["calls"].as_array().cloned().unwrap_or_default());
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        if !a.all || cursor.is_none() {
            break;
        }
        eprint!(
            "\rpage {pages}: {} calls so far ({:.1}s)",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if a.all && pages > 1 {
        eprintln!();
    }
    print!("{}", table(&rows));
    match (&cursor, a.all) {
        (Some(c), false) => eprintln!(
            "{} call(s); more: ringback list ... --cursor {c}  (or --all)",
            rows.len()
        ),
        _ => eprintln!("{} call(s)", rows.len()),
    }
    Ok(())
}

/// Call summaries as an aligned text table, one line each.
fn table(rows: &[Value]) -> String {
    const HEAD: [&str; 8] = [
        "CALL ID",
        "CREATED",
        "DATA",
        "OUTCOME",
        "CALL",
        "PROVIDER",
        "PROVIDER ID",
        "SERVICE REQUEST",
    ];
    if rows.is_empty() {
        return "no calls\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                cell(&r["callId"]),
                cell(&r["createdAt"]),
                cell(&r["dataStatus"]),
                cell(&r["status"]),
                cell(&r["callStatus"]),
                clip(cell(&r["providerName"]), 28),
                cell(&r["providerId"]),
                cell(&r["serviceRequestId"]),
            ]
        })
        .collect();
    aligned(&HEAD, &cells)
}

async fn list_from_history(api: &Api, limit: usize) -> Result<(), String> {
    let ids = history::recent(limit);
    if ids.is_empty() {
        println!("no calls started from this machine yet (see `ringback call --help`)");
    }
    for id in ids {
        match api.get(&id).await {
            Ok((r, _)) => println!(
                "{id}  {:<12} {:<13} {:<10} {}",
                r["callStatus"].as_str().unwrap_or("?"),
                r["dataStatus"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("-"),
                r["provider"]["name"].as_str().unwrap_or("")
            ),
            Err(e) => println!("{id}  {e}"),
        }
    }
    Ok(())
}

async fn redrive(dlq_url: &str, queue_url: &str) -> Result<(), String> {
    let cfg = ringback::adapters::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let moved = ringback::adapters::sqs::redrive(&sqs, dlq_url, queue_url)
        .await
        .map_err(|e| e.to_string())?;
    println!("moved {moved} message(s) from the dead-letter queue back to the enrichment queue");
    Ok(())
}
