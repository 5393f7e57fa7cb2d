//! `/api/v1/vapi/calls`: starting a call, and polling one with ETag/304.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use subtle::ConstantTimeEq;
use tracing::warn;

use super::wire::CallErased;
use super::{error, json, ok_typed, Code, Response};
use crate::config::ApiAuth;
use crate::service::erase::{EraseError, EraseService};
use crate::service::initiate::{InitiateError, InitiatorService};
use crate::service::status::{StatusError, StatusService};

/// The 401 answer, unless the request carries the API token (or auth is off).
pub fn require_api_token(auth: &ApiAuth, headers: &HeaderMap) -> Option<Response> {
    match auth {
        ApiAuth::Token(token) => bearer_matches(token, headers),
        ApiAuth::Authorizer(_) | ApiAuth::Off => None,
    }
}

/// The operator routes (listing, timeline, replay, redelivery) need `API_TOKEN` even where an
/// authorizer does the client routes' authentication (`API_AUTH=none`): they reach every call,
/// so they are never left to whatever sits in front, and without a token they are closed.
pub fn require_operator_token(auth: &ApiAuth, headers: &HeaderMap) -> Option<Response> {
    match auth {
        ApiAuth::Token(token) | ApiAuth::Authorizer(token) => bearer_matches(token, headers),
        ApiAuth::Off => Some(error(
            Code::Unauthorized,
            "operator routes need API_TOKEN, which this deployment does not set",
        )),
    }
}

fn bearer_matches(token: &str, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let ok = !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(token.as_bytes()));
    (!ok).then(|| error(Code::Unauthorized, "missing or invalid bearer token"))
}

fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

pub async fn get_call(
    svc: &StatusService,
    auth: &ApiAuth,
    headers: &HeaderMap,
    call_id: &str,
) -> Response {
    if let Some(denied) = require_api_token(auth, headers) {
        return denied;
    }
    match svc.get(call_id).await {
        Ok((result, version)) => {
            let tag = etag(version);
            let matches = headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| {
                    t.trim() == tag
                        || t.trim() == "*"
                        || t.trim().strip_prefix("W/") == Some(tag.as_str())
                });
            let mut resp = if matches {
                let mut r = http::Response::new(bytes::Bytes::new());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r
            } else {
                ok_typed(StatusCode::OK, &result)
            };
            resp.headers_mut()
                .insert(header::ETAG, HeaderValue::from_str(&tag).expect("ascii"));
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e @ StatusError::Erased(..)) => error(Code::Gone, e.to_string()),
        Err(StatusError::NotFound(id)) => error(
            Code::NotFound,
            format!("no call result for {id}: it may have expired or not been received yet"),
        ),
        Err(StatusError::Unavailable(e)) => {
            warn!(error = %e, "call status unavailable");
            error(Code::Unavailable, "storage unavailable; retry later")
        }
    }
}

/// `POST /api/v1/vapi/calls`: start a call; `Idempotency-Key` makes retries safe.
pub async fn post_call(
    svc: &InitiatorService,
    auth: &ApiAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(denied) = require_api_token(auth, headers) {
        return denied;
    }
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or(""));
    match svc.start(body, key).await {
        Ok(saved) => {
            let mut resp = json(
                StatusCode::from_u16(saved.status).unwrap_or(StatusCode::ACCEPTED),
                &saved.body,
            );
            for (name, value) in &saved.headers {
                if let (Ok(n), Ok(v)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            resp
        }
        Err(InitiateError::Invalid(errors)) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            error(
                Code::InvalidPayload,
                format!("invalid call request: {}", list.join("; ")),
            )
        }
        Err(InitiateError::Conflict(m)) => error(Code::Conflict, m),
        Err(InitiateError::InProgress { retry_after }) => with_retry_after(
            error(
                Code::Conflict,
                "a request with this Idempotency-Key is still placing the call; retry after the \
                 Retry-After seconds to get its answer",
            ),
            retry_after,
        ),
        Err(InitiateError::InDoubt {
            retry_after,
            message,
        }) => {
            warn!(reason = %message, "call start in doubt");
            with_retry_after(error(Code::Unavailable, message), retry_after)
        }
        Err(InitiateError::Upstream(m)) => {
            warn!(reason = %m, "Vapi did not start the call");
            error(
                Code::UpstreamError,
                format!("Vapi did not start the call: {m}"),
            )
        }
        Err(InitiateError::Unavailable(m)) => {
            warn!(error = %m, "call start failed: dependency unavailable");
            error(
                Code::Unavailable,
                "storage unavailable; retry later with the same Idempotency-Key",
            )
        }
    }
}

/// `DELETE /api/v1/vapi/calls/{id}[?vapi=true]`: erase the call everywhere (idempotent).
pub async fn delete_call(
    svc: &EraseService,
    auth: &ApiAuth,
    headers: &HeaderMap,
    call_id: &str,
    query: Option<&str>,
) -> Response {
    if let Some(denied) = require_api_token(auth, headers) {
        return denied;
    }
    let mut at_vapi = false;
    for (k, v) in super::search::form_pairs(query.unwrap_or("")) {
        match (k.as_str(), v.as_str()) {
            ("vapi", "true") => at_vapi = true,
            ("vapi", "false") => at_vapi = false,
            ("vapi", other) => {
                return error(
                    Code::InvalidPayload,
                    format!("vapi: {other:?} is not true or false"),
                )
            }
            (other, _) => {
                return error(
                    Code::InvalidPayload,
                    format!("{other}: unknown parameter: vapi is the only one"),
                )
            }
        }
    }
    match svc.erase(call_id, at_vapi).await {
        Ok(e) => ok_typed(
            StatusCode::OK,
            &CallErased {
                call_id: e.call_id,
                erased: true,
                erased_at: e.erased_at,
                history_items_deleted: e.history_items,
                provider_row: e.provider_row,
                interaction_log: e.interaction_log,
                vapi: e.vapi,
            },
        ),
        Err(EraseError::NotFound(id)) => error(
            Code::NotFound,
            format!("no call {id}: no record and no listing entry"),
        ),
        Err(e @ EraseError::BeingPlaced { retry_after, .. }) => {
            with_retry_after(error(Code::Conflict, e.to_string()), retry_after)
        }
        Err(EraseError::Unavailable(e)) => {
            warn!(error = %e, "erase not finished: dependency unavailable");
            error(
                Code::Unavailable,
                "storage unavailable; retry: erasing again finishes what this one started",
            )
        }
    }
}

/// Adds `Retry-After` in whole seconds (at least 1).
fn with_retry_after(mut r: Response, after: std::time::Duration) -> Response {
    let secs = after.as_secs_f64().ceil().max(1.0) as u64;
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}
