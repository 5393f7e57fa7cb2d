//! `GET /api/v1/vapi/calls`: pages of call summaries, newest first (`crate::search`).

use http::{header, HeaderMap, HeaderValue, StatusCode};
use tracing::warn;

use super::wire::CallPage;
use super::{error, ok_typed, percent_decode, require_operator_token, Code, Response};
use crate::config::ApiAuth;
use crate::search::{SearchError, SearchService};

/// `query` is the raw query string (without `?`). `svc` is `None` where the deployment has no
/// call index (`CALL_INDEX_TABLE` unset): the route then says so rather than pretend.
pub async fn list_calls(
    svc: Option<&SearchService>,
    auth: &ApiAuth,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response {
    if let Some(denied) = require_operator_token(auth, headers) {
        return denied;
    }
    let Some(svc) = svc else {
        return error(
            Code::NotFound,
            "this deployment has no call index (CALL_INDEX_TABLE): calls cannot be listed",
        );
    };
    let pairs = form_pairs(query.unwrap_or(""));
    match svc
        .list(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .await
    {
        Ok((q, page)) => {
            let mut resp = ok_typed(
                StatusCode::OK,
                &CallPage {
                    calls: page.calls,
                    next_cursor: page.next.map(|c| c.encode(&q.filter)),
                },
            );
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(SearchError::Invalid(e)) => error(
            Code::InvalidPayload,
            format!("query parameter {}: {}", e.parameter, e.message),
        ),
        Err(SearchError::Unavailable(e)) => {
            warn!(error = %e, "call search unavailable");
            error(Code::Unavailable, "storage unavailable; retry later")
        }
    }
}

/// `application/x-www-form-urlencoded` pairs: `+` is a space, then percent-decoding. A name
/// without `=` has an empty value (refused later, by name).
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_as_forms() {
        assert_eq!(
            form_pairs("serviceRequestId=a%2Bb+c&limit=5&&cursor"),
            vec![
                ("serviceRequestId".into(), "a+b c".into()),
                ("limit".into(), "5".into()),
                ("cursor".into(), String::new()),
            ]
        );
        assert!(form_pairs("").is_empty());
    }
}
