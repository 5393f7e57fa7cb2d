//! Vapi's REST surface: `POST /call`, `GET /call/{id}`, `DELETE /call/{id}`, `GET /call`, plus
//! the recordings the calls point at. Every answer of the API is JSON, errors in NestJS shape.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::lifecycle;
use crate::scenario::Scenario;
use crate::store::Fetch;
use crate::{validate, SimulatorState};

pub(crate) fn routes(state: SimulatorState) -> Router {
    Router::new()
        .route("/call", post(create_call).get(list_calls))
        .route("/call/{id}", get(get_call).delete(delete_call))
        .route("/recording/{file}", get(recording))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state)
}

/// `{"message", "error", "statusCode"}`, the body NestJS gives every error.
fn nest(status: StatusCode, message: impl Into<Value>) -> Response {
    let body = json!({
        "message": message.into(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "statusCode": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

/// Bearer auth: any non-empty key, or exactly the configured one. `Some` is the 401 answer.
fn unauthorized(state: &SimulatorState, headers: &HeaderMap) -> Option<Response> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match (key, state.config().api_key.as_deref()) {
        (Some(k), Some(want)) if k == want => None,
        (Some(_), None) => None,
        _ => Some(nest(
            StatusCode::UNAUTHORIZED,
            "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.",
        )),
    }
}

async fn create_call(
    State(st): State<SimulatorState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let res = place(&st, &headers, &body);
    let mut g = st.store().lock();
    g.stats.post_call += 1;
    if res.status().is_client_error() {
        g.stats.post_call_refused += 1;
    }
    res
}

fn place(st: &SimulatorState, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(r) = unauthorized(st, headers) {
        return r;
    }
    let req = match validate::create_call(body) {
        Ok(r) => r,
        Err(msg) => return nest(StatusCode::BAD_REQUEST, msg),
    };
    let customer = req.get("customer").unwrap_or(&Value::Null);
    let scenario = Scenario::select(customer["name"].as_str(), customer["number"].as_str());
    if scenario == Scenario::Refused {
        return nest(
            StatusCode::BAD_REQUEST,
            json!(["customer.number must be a valid phone number"]),
        );
    }
    let id = uuid::Uuid::new_v4().to_string();
    let call = lifecycle::new_call(req, &id, Utc::now());
    let script = lifecycle::script_for(scenario, st.config().flaky_failures);
    st.store().insert(&id, call.clone(), script, false);
    lifecycle::start(st, id.clone(), scenario);
    tracing::info!(call_id = %id, %scenario, "call queued");
    if scenario == Scenario::LostAnswer {
        // The call exists and runs; only its answer is lost on the way back.
        return nest(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout");
    }
    (StatusCode::CREATED, Json(call)).into_response()
}

async fn get_call(
    State(st): State<SimulatorState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unauthorized(&st, &headers) {
        return r;
    }
    let answer = st.store().fetch(&id);
    match answer {
        Fetch::Found(call) => Json(call).into_response(),
        Fetch::After(delay, call) => {
            tokio::time::sleep(delay).await;
            Json(call).into_response()
        }
        Fetch::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let msg = if status == StatusCode::INTERNAL_SERVER_ERROR {
                "Internal server error"
            } else {
                "Simulated failure"
            };
            let mut res = nest(status, msg);
            if status == StatusCode::TOO_MANY_REQUESTS {
                res.headers_mut().insert(header::RETRY_AFTER, 1.into());
            }
            res
        }
        Fetch::Missing => nest(StatusCode::NOT_FOUND, "Couldn't Get Call. Call Not Found"),
    }
}

/// `DELETE /call/{id}`: the call as it was, and gone from every later answer (its lifecycle's
/// webhooks still go out, as a call's already under way at Vapi would).
async fn delete_call(
    State(st): State<SimulatorState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unauthorized(&st, &headers) {
        return r;
    }
    match st.store().remove(&id) {
        Some(call) => Json(call).into_response(),
        None => nest(
            StatusCode::NOT_FOUND,
            "Couldn't Delete Call. Call Not Found",
        ),
    }
}

/// `GET /call`: a plain array, newest first (or as [`crate::ListOrder`] says), filtered like
/// Vapi: `id`, `assistantId`, `phoneNumberId`, `limit` (1-1000, default 100), and
/// `createdAt`/`updatedAt` with `Gt`, `Ge`, `Lt`, `Le`. Calls show as stored; fetch scripts
/// apply to `GET /call/{id}` only. Served from an index by `createdAt`, so a listing of a narrow
/// window is quick among many calls.
async fn list_calls(
    State(st): State<SimulatorState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    st.store().lock().stats.list_calls += 1;
    if let Some(r) = unauthorized(&st, &headers) {
        return r;
    }
    let mut bounds = Vec::new();
    for field in ["createdAt", "updatedAt"] {
        for op in ["Gt", "Ge", "Lt", "Le"] {
            let name = format!("{field}{op}");
            if let Some(raw) = q.get(&name) {
                match raw.parse::<DateTime<Utc>>() {
                    Ok(t) => bounds.push((field, op, t)),
                    Err(_) => {
                        return nest(
                            StatusCode::BAD_REQUEST,
                            json!([format!("{name} must be a valid ISO 8601 date string")]),
                        )
                    }
                }
            }
        }
    }
    let within = |c: &Value| {
        bounds.iter().all(|(field, op, bound)| {
            let Some(t) = c[*field]
                .as_str()
                .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            else {
                return false;
            };
            match *op {
                "Gt" => t > *bound,
                "Ge" => t >= *bound,
                "Lt" => t < *bound,
                _ => t <= *bound,
            }
        })
    };
    // The index range that can hold matches (every bound is still checked on each call).
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    for (field, op, bound) in &bounds {
        if *field == "createdAt" {
            let ms = bound.timestamp_millis();
            match *op {
                "Gt" | "Ge" => lo = lo.max(ms),
                _ => hi = hi.min(ms),
            }
        }
    }
    let equal = |c: &Value, k: &str| q.get(k).is_none_or(|want| c[k].as_str() == Some(want));
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => {
            return nest(
                StatusCode::BAD_REQUEST,
                json!([
                    "limit must not be greater than 1000",
                    "limit must not be less than 0"
                ]),
            )
        }
    };
    let g = st.store().lock();
    if lo > hi {
        return Json(Vec::<Value>::new()).into_response();
    }
    let range = g.by_created.range((lo, 0)..=(hi, u64::MAX));
    let ids: Box<dyn Iterator<Item = &String>> = match g.list_order {
        crate::ListOrder::NewestFirst => Box::new(range.rev().map(|(_, id)| id)),
        crate::ListOrder::OldestFirst => Box::new(range.map(|(_, id)| id)),
    };
    let calls: Vec<Value> = ids
        .filter_map(|id| g.calls.get(id).map(|e| &e.call))
        .filter(|c| {
            within(c) && equal(c, "id") && equal(c, "assistantId") && equal(c, "phoneNumberId")
        })
        .take(limit)
        .cloned()
        .collect();
    Json(calls).into_response()
}

/// A short, quiet 440 Hz tone as WAV, so recording links resolve without leaving the machine.
async fn recording(Path(file): Path<String>) -> Response {
    if !file.ends_with(".wav") {
        return nest(
            StatusCode::NOT_FOUND,
            format!("Cannot GET /recording/{file}"),
        );
    }
    const RATE: u32 = 8_000;
    let samples: Vec<u8> = (0..RATE)
        .flat_map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            (((t * 440.0 * std::f64::consts::TAU).sin() * 3_000.0) as i16).to_le_bytes()
        })
        .collect();
    let mut wav = Vec::with_capacity(44 + samples.len());
    let len = samples.len() as u32;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for (v, bytes) in [
        (16u32, 4),
        (1, 2),
        (1, 2),
        (RATE, 4),
        (RATE * 2, 4),
        (2, 2),
        (16, 2),
    ] {
        wav.extend_from_slice(&v.to_le_bytes()[..bytes]);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&len.to_le_bytes());
    wav.extend_from_slice(&samples);
    ([(header::CONTENT_TYPE, "audio/wav")], wav).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    nest(
        StatusCode::NOT_FOUND,
        format!("Cannot {method} {}", uri.path()),
    )
}
