//! HTTP in and out (api.md §2), shared by the Lambda functions and the local runner: each route is a
//! plain function from headers and body to an `http::Response`. Bad input is a 4xx answer, never an
//! `Err` and never a 500.

mod calls;
mod envelope;
mod events;
#[cfg(feature = "openapi")]
pub mod openapi;
mod search;
mod stats;
mod webhook;
pub mod wire;

pub use calls::{delete_call, get_call, post_call, require_api_token, require_operator_token};
pub use envelope::{error, json, ok, ok_typed, Code, Response};
pub use events::{
    call_action, get_events, post_redeliver, post_replay, redeliver_target, CALLBACKS_PATH,
};
pub use search::list_calls;
pub use stats::get_stats;
pub use webhook::post_webhook;

pub const WEBHOOK_PATH: &str = "/api/v1/vapi/webhook";
pub const CALLS_PATH: &str = "/api/v1/vapi/calls";
pub const STATS_PATH: &str = "/api/v1/vapi/stats";

/// `GET /openapi.json` on a deployment: the committed document (the one `ringback-local` generates,
/// kept equal by its test), behind the client API's authentication like the routes it describes.
pub fn openapi_json(auth: &crate::config::ApiAuth, headers: &http::HeaderMap) -> Response {
    if let Some(denied) = require_api_token(auth, headers) {
        return denied;
    }
    const DOCUMENT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json"));
    let mut r = http::Response::new(bytes::Bytes::from_static(DOCUMENT.as_bytes()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

pub fn health() -> Response {
    ok_typed(http::StatusCode::OK, &wire::Health { status: "ok" })
}

/// The id in `/api/v1/vapi/calls/{id}`, percent-decoded (API Gateway hands it over decoded).
pub fn call_id_from_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(CALLS_PATH)?.strip_prefix('/')?;
    let rest = rest.trim_end_matches('/');
    (!rest.is_empty() && !rest.contains('/')).then(|| percent_decode(rest))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_paths() {
        assert_eq!(
            call_id_from_path("/api/v1/vapi/calls/abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            call_id_from_path("/api/v1/vapi/calls/a%2Fb%20c").as_deref(),
            Some("a/b c")
        );
        assert_eq!(
            call_id_from_path("/api/v1/vapi/calls/bad%2").as_deref(),
            Some("bad%2")
        );
        assert_eq!(call_id_from_path("/api/v1/vapi/calls/"), None);
        assert_eq!(call_id_from_path("/api/v1/vapi/calls"), None);
        assert_eq!(call_id_from_path("/other/abc"), None);
    }
}
