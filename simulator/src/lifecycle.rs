//! One call's life: the Call object Vapi stores, its status changes over time, and the
//! webhooks each change produces.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use tokio::time::sleep;

use crate::content::{self, CallContext, Conversation};
use crate::scenario::Scenario;
use crate::store::FetchScript;
use crate::webhook::{self, Outbox, Target};
use crate::{iso, now_ms, SimulatorState, ORG_ID};

/// The Call object right after `POST /call`: identity, `queued`, and the request echoed.
pub(crate) fn new_call(req: Map<String, Value>, id: &str, now: DateTime<Utc>) -> Value {
    let mut call = json!({
        "id": id,
        "orgId": ORG_ID,
        "type": "outboundPhoneCall",
        "status": "queued",
        "createdAt": iso(now),
        "updatedAt": iso(now),
        "phoneCallProvider": "twilio",
        "phoneCallTransport": "pstn",
        "phoneCallProviderId": format!("CA{}", id.replace('-', "")),
    });
    let obj = call.as_object_mut().expect("a JSON object");
    for (k, v) in req {
        obj.insert(k, v);
    }
    call
}

/// The fetch script a scenario puts on its own call.
pub(crate) fn script_for(scenario: Scenario, flaky_failures: u32) -> FetchScript {
    match scenario {
        Scenario::ApiFlaky => FetchScript::FailTimes {
            status: 500,
            times: flaky_failures,
        },
        Scenario::NeverComplete => FetchScript::Never,
        _ => FetchScript::Always,
    }
}

/// Runs the call to its end on a background task of the simulator.
pub(crate) fn start(state: &SimulatorState, id: String, scenario: Scenario) {
    let st = state.clone();
    state.spawn(async move {
        run(&st, &id, scenario).await;
        st.store().mark_finished(&id);
        tracing::info!(call_id = %id, %scenario, "call lifecycle finished");
    });
}

async fn run(state: &SimulatorState, id: &str, scenario: Scenario) {
    let cfg = state.config();
    let t = cfg.timings.clone();
    let Some(call) = state.call(id) else { return };
    let ctx = CallContext::from_request(&call, seed(id));
    let target = Target::from_call(&call, cfg.default_webhook_url.as_deref(), t.retry_unit);
    let mut out = Outbox::new(state, id, target, webhook::wanted_types(&call), scenario);

    sleep(t.dial).await;
    let mut started = None;
    if scenario != Scenario::Busy {
        let call = set_status(state, id, "ringing", |_| {});
        out.send(status_update(&call, None));
        sleep(t.ring).await;
        if scenario.is_answered() {
            let now = Utc::now();
            started = Some(now);
            let call = set_status(state, id, "in-progress", |c| {
                c["startedAt"] = iso(now).into()
            });
            out.send(status_update(&call, None));
            sleep(t.talk).await;
        } else {
            // Nobody picks up: it rings out.
            sleep(t.ring).await;
        }
    }

    let convo = content::conversation(scenario, &ctx);
    let ended = Utc::now();
    let call = set_status(state, id, "ended", |c| {
        end_call(c, state, &convo, started, ended)
    });
    out.send(status_update(&call, Some(convo.ended_reason)));
    sleep(t.report_delay).await;
    out.send(end_of_call_report(&call, &convo));
    // GET completes later than the report: Vapi's analysis lags the hang-up.
    sleep(t.analysis_delay.saturating_sub(t.report_delay)).await;
    state.store().update(id, |c| {
        c["analysis"] = convo.analysis.clone();
        c["updatedAt"] = iso(Utc::now()).into();
    });
    out.close().await;
}

/// Moves the stored call to `status` and returns the new state.
fn set_status(state: &SimulatorState, id: &str, status: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut snapshot = Value::Null;
    state.store().update(id, |c| {
        c["status"] = status.into();
        c["updatedAt"] = iso(Utc::now()).into();
        f(c);
        snapshot = c.clone();
    });
    tracing::info!(call_id = %id, status, "call status");
    snapshot
}

/// Fills in what Vapi knows at hang-up: reason, times, cost, artifact. The analysis is still
/// empty (`{}`), so the call is not complete yet.
fn end_call(
    c: &mut Value,
    state: &SimulatorState,
    convo: &Conversation,
    started: Option<DateTime<Utc>>,
    ended: DateTime<Utc>,
) {
    let ended_ms = ended.timestamp_millis();
    let started_ms = started.map_or(ended_ms, |s| s.timestamp_millis());
    let messages = convo.messages(started_ms, ended_ms);
    let transcript = convo.transcript();
    let (cost, breakdown, costs) = costs(convo.nominal_minutes());
    let mut artifact = json!({ "transcript": transcript, "messages": messages });
    if !convo.turns.is_empty() {
        let base = format!(
            "{}/recording/{}",
            state.base_url(),
            c["id"].as_str().unwrap_or_default()
        );
        artifact["recording"] = json!({ "mono": { "combinedUrl": format!("{base}-mono.wav") }, "stereoUrl": format!("{base}-stereo.wav") });
        artifact["recordingUrl"] = json!(format!("{base}-mono.wav"));
        artifact["stereoRecordingUrl"] = json!(format!("{base}-stereo.wav"));
    }
    c["endedReason"] = convo.ended_reason.into();
    c["endedAt"] = iso(ended).into();
    c["cost"] = cost.into();
    c["costBreakdown"] = breakdown;
    c["costs"] = costs;
    c["messages"] = artifact["messages"].clone();
    c["artifact"] = artifact;
    c["analysis"] = json!({});
}

/// Plausible per-minute prices, rounded like Vapi's (4 decimals).
fn costs(minutes: f64) -> (f64, Value, Value) {
    let r = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let (transport, stt, llm, tts, vapi) = (
        r(0.0135 * minutes),
        r(0.01 * minutes),
        r(0.0068 * minutes),
        r(0.036 * minutes),
        r(0.05 * minutes),
    );
    let total = r(transport + stt + llm + tts + vapi);
    let breakdown = json!({
        "transport": transport, "stt": stt, "llm": llm, "tts": tts, "vapi": vapi, "total": total,
        "llmPromptTokens": (minutes * 2100.0).round(), "llmCompletionTokens": (minutes * 95.0).round(),
        "ttsCharacters": (minutes * 210.0).round(), "analysisCostBreakdown": { "summary": if minutes > 0.0 { 0.0004 } else { 0.0 } },
    });
    let costs = json!([
        { "type": "transport", "provider": "twilio", "minutes": r(minutes), "cost": transport },
        { "type": "model", "model": { "provider": "openai", "model": "gpt-4o" }, "cost": llm },
        { "type": "vapi", "subType": "normal", "minutes": r(minutes), "cost": vapi },
    ]);
    (total, breakdown, costs)
}

/// `{"message": {...}}` with the fields every server message shares.
fn envelope(call: &Value, mut msg: Value) -> Value {
    let mut lean = call.clone();
    if let Some(o) = lean.as_object_mut() {
        // The message carries these itself; the embedded call stays small, as in Vapi's samples.
        for k in ["artifact", "analysis", "messages", "costs"] {
            o.remove(k);
        }
    }
    let overrides_meta = call["assistantOverrides"]["metadata"].clone();
    let mut assistant = match call.get("assistant") {
        Some(a) if a.is_object() => a.clone(),
        _ => json!({ "id": call["assistantId"], "name": "Simulated assistant" }),
    };
    if let (Some(meta), Some(extra)) = (assistant.as_object_mut(), overrides_meta.as_object()) {
        let merged = meta.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = merged.as_object_mut() {
            m.extend(extra.clone());
        }
    }
    let phone = match call.get("phoneNumber") {
        Some(p) if p.is_object() => p.clone(),
        _ => json!({ "id": call["phoneNumberId"], "provider": "twilio", "number": "+15555550100" }),
    };
    msg["timestamp"] = now_ms().into();
    msg["call"] = lean;
    msg["customer"] = call["customer"].clone();
    msg["phoneNumber"] = phone;
    msg["assistant"] = assistant;
    json!({ "message": msg })
}

fn status_update(call: &Value, ended_reason: Option<&str>) -> Value {
    let mut msg = json!({ "type": "status-update", "status": call["status"] });
    if let Some(r) = ended_reason {
        msg["endedReason"] = r.into();
    }
    envelope(call, msg)
}

/// The report as real Vapi sends it: spec fields plus the legacy top-level duplicates, with
/// the thinner first-pass analysis.
fn end_of_call_report(call: &Value, convo: &Conversation) -> Value {
    let art = &call["artifact"];
    let ms = |k: &str| {
        call[k]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp_millis())
    };
    let duration_ms = ms("startedAt").zip(ms("endedAt")).map_or(0, |(s, e)| e - s);
    let mut msg = json!({
        "type": "end-of-call-report",
        "endedReason": call["endedReason"],
        "endedAt": call["endedAt"],
        "cost": call["cost"],
        "costs": call["costs"],
        "artifact": art,
        "analysis": convo.report_analysis,
        "transcript": art["transcript"],
        "summary": convo.report_analysis["summary"].as_str().unwrap_or_default(),
        "messages": art["messages"],
        "durationSeconds": duration_ms as f64 / 1000.0,
        "durationMs": duration_ms,
        "durationMinutes": duration_ms as f64 / 60_000.0,
        "costBreakdown": call["costBreakdown"],
    });
    if call.get("startedAt").is_some() {
        msg["startedAt"] = call["startedAt"].clone();
    }
    for k in ["recordingUrl", "stereoRecordingUrl"] {
        if let Some(u) = art.get(k) {
            msg[k] = u.clone();
        }
    }
    envelope(call, msg)
}

/// A stable per-call number (FNV-1a of the id) that picks the conversation variant.
fn seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
