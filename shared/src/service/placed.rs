//! Calls ringback placed, found again in Vapi: `GET /call` by our phone number and a creation
//! window, newest first, paged back by creation time. A call of ours carries the id of the
//! attempt that placed it in its metadata (`ringbackAttemptId`). Used by the initiator to resolve
//! a `POST /call` in doubt, and by the cleanup to find a placed call that has no record.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ports::{CallFilter, VapiApi, VapiError};
use crate::vapi::ATTEMPT_ID_KEY;

/// Calls one `GET /call` page holds.
const PAGE: u32 = 100;
/// Pages read before a search gives up (as a transient failure).
const PAGES: usize = 10;

/// The attempt id a listed call carries in its metadata, if ringback placed it.
pub fn attempt_of(call: &Value) -> Option<&str> {
    [&call["assistantOverrides"]["metadata"], &call["metadata"]]
        .into_iter()
        .find_map(|m| m[ATTEMPT_ID_KEY].as_str())
}

/// Visits every call from `phone_number_id` created in `from..=to`, newest first, until `visit`
/// returns `true` (found: `Ok(true)`) or the window is exhausted (`Ok(false)`). A window holding
/// more than [`PAGES`] pages is an error: the caller cannot be sure it saw every call.
pub async fn search_window(
    vapi: &dyn VapiApi,
    phone_number_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut visit: impl FnMut(&Value) -> bool,
) -> Result<bool, VapiError> {
    let mut filter = CallFilter {
        phone_number_id: phone_number_id.to_owned(),
        created_at_ge: from,
        created_at_le: to,
        limit: PAGE,
    };
    for _ in 0..PAGES {
        let page = vapi.list_calls(&filter).await?;
        if page.iter().any(&mut visit) {
            return Ok(true);
        }
        if page.len() < PAGE as usize {
            return Ok(false);
        }
        // Newest first: the next page ends just before the oldest call of this one.
        let oldest = page
            .iter()
            .filter_map(|c| c["createdAt"].as_str()?.parse::<DateTime<Utc>>().ok())
            .min();
        match oldest {
            Some(t) if t > filter.created_at_ge => {
                filter.created_at_le = t - chrono::Duration::milliseconds(1)
            }
            _ => break,
        }
    }
    Err(VapiError::Transient {
        status: None,
        retry_after: None,
        message: "too many calls in the creation window to be sure".into(),
    })
}
