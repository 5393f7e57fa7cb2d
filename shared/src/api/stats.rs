//! `GET /api/v1/vapi/stats`.

use http::{HeaderMap, StatusCode};

use super::{error, ok_typed, require_api_token, Code, Response};
use crate::config::ApiAuth;
use crate::stats::{window, StatsService};

pub async fn get_stats(
    svc: &StatsService,
    auth: &ApiAuth,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response {
    if let Some(denied) = require_api_token(auth, headers) {
        return denied;
    }
    let now = svc.clock.now();
    let pairs = super::search::form_pairs(query.unwrap_or(""));
    match window(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now) {
        Ok((since, until)) => ok_typed(StatusCode::OK, &svc.read(since, until).await),
        Err(e) => error(
            Code::InvalidPayload,
            format!("{}: {}", e.parameter, e.message),
        ),
    }
}
