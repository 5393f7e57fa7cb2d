//! What an operator asks of one call: its timeline, its deliveries, a replay, a redelivery, an
//! erase.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::Api;
use crate::text::{aligned, cell, clip};

fn events_path(call_id: &str) -> String {
    format!("/api/v1/vapi/calls/{call_id}/events")
}

/// What a timeline entry says beyond its time and kind.
fn detail(e: &Value) -> String {
    let field = |k: &str| cell(&e[k]);
    match e["what"].as_str().unwrap_or("") {
        "webhook.received" => format!(
            "{} {} (auth {}, {} bytes)",
            field("messageType"),
            field("outcome"),
            field("auth"),
            field("bytes")
        ),
        "push.made" => format!("{} {}", field("type"), field("eventId")),
        "push.attempt" => format!(
            "#{} {} in {} ms{}",
            field("attempt"),
            field("status"),
            field("latencyMs"),
            e["error"]
                .as_str()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        ),
        "record.fetched" => format!("attempts {}", field("fetchAttempts")),
        "record.updated" => field("dataStatus"),
        _ => String::new(),
    }
}

pub async fn events(api: &Api, call_id: &str) -> Result<(), String> {
    let t = api.get_path(&events_path(call_id)).await?;
    let rows: Vec<Vec<String>> = t["timeline"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| vec![cell(&e["at"]), cell(&e["what"]), clip(detail(e), 90)])
        .collect();
    println!("call {call_id}: {}", cell(&t["dataStatus"]));
    print!("{}", aligned(&["AT", "WHAT", "DETAIL"], &rows));
    Ok(())
}

fn attempts_table(pushes: &[Value]) -> String {
    let mut rows = Vec::new();
    for p in pushes {
        rows.push(vec![
            cell(&p["eventId"]),
            cell(&p["type"]),
            cell(&p["state"]),
            String::new(),
            cell(&p["createdAt"]),
            format!("next {}", cell(&p["nextAttemptAt"])),
            String::new(),
        ]);
        for a in p["attempts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            rows.push(vec![
                String::new(),
                String::new(),
                String::new(),
                format!("#{}", cell(&a["attempt"])),
                cell(&a["at"]),
                cell(&a["status"]),
                format!(
                    "{} ms {}",
                    cell(&a["latencyMs"]),
                    a["error"].as_str().unwrap_or("")
                ),
            ]);
        }
    }
    aligned(
        &[
            "EVENT",
            "TYPE",
            "STATE",
            "TRY",
            "AT",
            "STATUS",
            "LATENCY / ERROR",
        ],
        &rows,
    )
}

pub async fn deliveries(api: &Api, call_id: &str) -> Result<(), String> {
    let t = api.get_path(&events_path(call_id)).await?;
    let pushes = t["pushes"].as_array().cloned().unwrap_or_default();
    if pushes.is_empty() {
        println!("call {call_id} has no pushed events (no callbackUrl, or not settled yet)");
        return Ok(());
    }
    print!("{}", attempts_table(&pushes));
    Ok(())
}

pub async fn replay(api: &Api, call_id: &str) -> Result<(), String> {
    let r = api
        .post_path(&format!("/api/v1/vapi/calls/{call_id}/replay"))
        .await?;
    println!(
        "call {call_id} replayed from {} kept webhook(s); enrichment runs again",
        cell(&r["replayedEvents"])
    );
    Ok(())
}

/// Erases the call everywhere ringback wrote it (and, with `at_vapi`, Vapi's copy), then says what
/// went. A repeat prints the first erase's time and deletes nothing more.
pub async fn erase(api: &Api, call_id: &str, at_vapi: bool) -> Result<(), String> {
    let query = if at_vapi { "?vapi=true" } else { "" };
    let r = api
        .delete_path(&format!("/api/v1/vapi/calls/{call_id}{query}"))
        .await?;
    print!("{}", erased_text(&r));
    Ok(())
}

fn erased_text(r: &Value) -> String {
    let done = |v: &Value, none: &str| {
        if v.as_bool() == Some(true) {
            "cleared".to_owned()
        } else {
            none.to_owned()
        }
    };
    let mut rows = vec![
        ("history items deleted", cell(&r["historyItemsDeleted"])),
        (
            "provider row",
            done(&r["providerRow"], "none (no row or provider id)"),
        ),
        (
            "interaction log",
            done(&r["interactionLog"], "none (no service request id)"),
        ),
    ];
    if !r["vapi"].is_null() {
        let vapi = match r["vapi"]["result"].as_str().unwrap_or("") {
            "deleted" => "deleted".to_owned(),
            "not_found" => "not found (deleted before)".to_owned(),
            "later" => format!(
                "kept until {} (a retried request must find it there); run again with --vapi then",
                cell(&r["vapi"]["after"])
            ),
            "failed" => format!(
                "FAILED: {} (ringback's erase stands; run again with --vapi)",
                cell(&r["vapi"]["message"])
            ),
            other => other.to_owned(),
        };
        rows.push(("vapi's copy", vapi));
    }
    let mut out = format!(
        "call {} erased at {}\n",
        cell(&r["callId"]),
        cell(&r["erasedAt"])
    );
    for (k, v) in rows {
        out += &format!("  {k:<22} {v}\n");
    }
    out
}

/// After a call with a callback URL settles: waits for its settling event to be pushed and says how
/// the first delivery went (the receiver has it once this returns `delivered`).
pub async fn follow_push(api: &Api, call_id: &str) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let t = api.get_path(&events_path(call_id)).await?;
        let pushes = t["pushes"].as_array().cloned().unwrap_or_default();
        if let Some(p) = pushes.iter().find(|p| p["state"] != "pending") {
            let last = p["attempts"].as_array().and_then(|a| a.last()).cloned();
            println!(
                "event {} {} to {}: {} (status {})",
                cell(&p["type"]),
                cell(&p["eventId"]),
                cell(&p["url"]),
                cell(&p["state"]),
                last.map_or_else(|| "-".into(), |a| cell(&a["status"]))
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("its event is still pending after a minute; `ringback deliveries {call_id}` shows the retries");
    Ok(())
}

/// Asks for the redelivery, then (if `follow`) prints each attempt until the event settles.
pub async fn redeliver(api: &Api, event_id: &str, follow: bool) -> Result<(), String> {
    let r = api
        .post_path(&format!("/api/v1/vapi/callbacks/{event_id}/redeliver"))
        .await?;
    let call_id = cell(&r["callId"]);
    let before = r["attempts"].as_array().map_or(0, Vec::len);
    println!("event {event_id} (call {call_id}) queued for delivery");
    if !follow {
        return Ok(());
    }
    let started = Instant::now();
    let mut shown = before;
    while started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = api.get_path(&events_path(&call_id)).await?;
        let Some(p) = t["pushes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["eventId"] == event_id))
        else {
            continue;
        };
        let attempts = p["attempts"].as_array().cloned().unwrap_or_default();
        for a in attempts.iter().skip(shown) {
            println!(
                "{:6.1}s  try #{}  status {}  {} ms {}",
                started.elapsed().as_secs_f64(),
                cell(&a["attempt"]),
                cell(&a["status"]),
                cell(&a["latencyMs"]),
                a["error"].as_str().unwrap_or("")
            );
        }
        shown = attempts.len();
        if p["state"] != "pending" {
            println!("event {event_id}: {}", cell(&p["state"]));
            return Ok(());
        }
    }
    println!("still pending after 2 minutes; `ringback deliveries {call_id}` shows its retries");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erase_says_what_went_and_what_vapi_answered() {
        let r = serde_json::json!({
            "callId": "c1", "erased": true, "erasedAt": "2026-12-05T09:00:00.000Z",
            "historyItemsDeleted": 4, "providerRow": true, "interactionLog": false,
            "vapi": {"result": "failed", "message": "503"},
        });
        let out = erased_text(&r);
        assert!(
            out.starts_with("call c1 erased at 2026-12-05T09:00:00.000Z\n"),
            "{out}"
        );
        assert!(out.contains("history items deleted  4"), "{out}");
        assert!(out.contains("provider row           cleared"), "{out}");
        assert!(out.contains("interaction log        none"), "{out}");
        assert!(out.contains("vapi's copy            FAILED: 503"), "{out}");
        let mut r = r;
        r.as_object_mut().unwrap().remove("vapi");
        assert!(!erased_text(&r).contains("vapi"));
    }
}
