//! Calls ringback placed, found again in Vapi: `GET /call` by our phone number and a creation
//! window. A call of ours carries in its metadata the id of the attempt that placed it
//! (`ringbackAttemptId`) and the identity of the deployment that placed it
//! (`ringbackDeploymentId`): a call another deployment placed on the same number is not ours.
//! Used by the initiator to resolve a `POST /call` in doubt, and by the cleanup to find a placed
//! call that has no record.
//!
//! ## Listing a window of any size ([`Listing`])
//! `GET /call` answers at most `limit` calls (Vapi's largest page, [`PAGE`]), the first ones in
//! its order, with no cursor and no sort parameter (only the paginated `/v2/call` takes one, and
//! Vapi refuses unknown parameters). Vapi lists newest first today, but nothing documents it, so
//! the listing reads the order from each full page instead of assuming it:
//! - a page sorted newest first covers every call of the window above its oldest `createdAt`:
//!   the window's upper bound moves *inclusively* to that millisecond, and the calls of the page
//!   at that millisecond are remembered so they are not visited twice;
//! - a page sorted oldest first does the same from below;
//! - a page in neither order tells nothing about what it left out: the window is halved
//!   (`createdAt` never changes, so each half can be listed in any order).
//!
//! A full page whose calls all share one millisecond means that millisecond holds at least a
//! page of calls: it is listed apart, split by `updatedAt` (lower half first, the upper half
//! unbounded above: a call updated meanwhile only moves up, into a part still to be listed).
//! **Limit:** more than [`PAGE`] calls created in the same millisecond *and* last updated in the
//! same millisecond cannot be told apart through `GET /call`; the listing then fails (loudly:
//! the caller counts `ReconciliationFailed` and retries later, when their `updatedAt` differ).
//!
//! A listing is plain data ([`Listing`] serializes): the cleanup saves what is left of one when
//! its time is up and continues it in its next run.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::DeploymentId;
use crate::ports::{CallFilter, VapiApi, VapiError};
use crate::vapi::{ATTEMPT_ID_KEY, DEPLOYMENT_ID_KEY};

/// Vapi's largest `GET /call` page.
pub const PAGE: u32 = 1000;

/// The attempt id a listed call carries in its metadata, if this deployment placed it. A call
/// with another deployment's identity, or with none, is not ours.
pub fn attempt_of<'a>(call: &'a Value, deployment: &DeploymentId) -> Option<&'a str> {
    let metadata = [&call["assistantOverrides"]["metadata"], &call["metadata"]]
        .into_iter()
        .find(|m| m[ATTEMPT_ID_KEY].is_string())?;
    if metadata[DEPLOYMENT_ID_KEY].as_str() != Some(deployment.as_str()) {
        return None;
    }
    metadata[ATTEMPT_ID_KEY].as_str()
}

/// A part of the window still to be listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    created_ge: DateTime<Utc>,
    created_le: DateTime<Utc>,
    /// Set only inside one millisecond that holds a page of calls or more (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_ge: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_le: Option<DateTime<Utc>>,
    /// Calls already visited that this span lists again: those at its inclusive boundary.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    seen: BTreeSet<String>,
}

impl Span {
    fn created(ge: DateTime<Utc>, le: DateTime<Utc>, seen: BTreeSet<String>) -> Self {
        Self {
            created_ge: ge,
            created_le: le,
            updated_ge: None,
            updated_le: None,
            seen,
        }
    }
}

/// Every call of one phone number created in a window, page by page, each visited once (see
/// the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    phone_number_id: String,
    limit: u32,
    /// What is left to list; the last one is listed next.
    spans: Vec<Span>,
    /// `GET /call` requests this listing made (in this process).
    #[serde(skip)]
    requests: u32,
}

/// Vapi's timestamps have millisecond precision; so do the listing's bounds.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
}

fn one_ms() -> Duration {
    Duration::milliseconds(1)
}

fn time_of(call: &Value, field: &str) -> Option<DateTime<Utc>> {
    call[field].as_str()?.parse::<DateTime<Utc>>().ok().map(ms)
}

fn id_of(call: &Value) -> &str {
    call["id"].as_str().unwrap_or_default()
}

/// The middle of `lo..=hi`, so that `lo..=mid` and `mid + 1 ms..=hi` are both smaller.
fn middle(lo: DateTime<Utc>, hi: DateTime<Utc>) -> DateTime<Utc> {
    lo + Duration::milliseconds((hi - lo).num_milliseconds() / 2)
}

impl Listing {
    /// Calls of `phone_number_id` created in `from..=to`, `limit` a page (at most 1000).
    pub fn new(phone_number_id: &str, from: DateTime<Utc>, to: DateTime<Utc>, limit: u32) -> Self {
        let (from, to) = (ms(from), ms(to));
        let spans = if from <= to {
            vec![Span::created(from, to, BTreeSet::new())]
        } else {
            Vec::new()
        };
        Self {
            phone_number_id: phone_number_id.to_owned(),
            limit: limit.clamp(1, PAGE),
            spans,
            requests: 0,
        }
    }

    /// Nothing left to list.
    pub fn is_done(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Leaves out what was created before `floor` (a listing saved long ago, resumed).
    pub fn clamp_from(&mut self, floor: DateTime<Utc>) {
        let floor = ms(floor);
        self.spans.retain_mut(|s| {
            s.created_ge = s.created_ge.max(floor);
            s.created_ge <= s.created_le
        });
    }

    /// The calls of the next page not visited before (possibly none); `None` once the window is
    /// exhausted. After an error the listing is as it was: calling again retries that page.
    pub async fn next_page(&mut self, vapi: &dyn VapiApi) -> Result<Option<Vec<Value>>, VapiError> {
        let Some(span) = self.spans.pop() else {
            return Ok(None);
        };
        let filter = CallFilter {
            phone_number_id: self.phone_number_id.clone(),
            created_at_ge: span.created_ge,
            created_at_le: span.created_le,
            updated_at_ge: span.updated_ge,
            updated_at_le: span.updated_le,
            limit: self.limit,
        };
        self.requests += 1;
        let page = match vapi.list_calls(&filter).await {
            Ok(page) => page,
            Err(e) => {
                self.spans.push(span);
                return Err(e);
            }
        };
        let visit = match self.narrow(&span, &page) {
            Ok(visit) => visit,
            Err(e) => {
                self.spans.push(span);
                return Err(e);
            }
        };
        if !visit {
            return Ok(Some(Vec::new()));
        }
        let fresh = page
            .into_iter()
            .filter(|c| !span.seen.contains(id_of(c)))
            .collect();
        Ok(Some(fresh))
    }

    /// Pushes what is left of `span` after `page`; whether to visit the page. A page that
    /// tells nothing certain is not visited (its calls are listed again, in smaller spans).
    /// On an error nothing was pushed.
    fn narrow(&mut self, span: &Span, page: &[Value]) -> Result<bool, VapiError> {
        if page.len() < self.limit as usize {
            return Ok(true); // the whole span, in one page
        }
        let times: Vec<DateTime<Utc>> = page
            .iter()
            .filter_map(|c| time_of(c, "createdAt"))
            .collect();
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            return Err(unlistable("a full page of calls without createdAt"));
        };
        let at = |t: DateTime<Utc>| -> BTreeSet<String> {
            page.iter()
                .filter(|c| time_of(c, "createdAt") == Some(t))
                .map(|c| id_of(c).to_owned())
                .collect()
        };
        if lo == hi {
            return self.split_millisecond(span, page, lo).map(|()| false);
        }
        if times.windows(2).all(|w| w[0] >= w[1]) {
            // Newest first: every call above `lo` was on this page.
            self.spans.push(Span {
                created_le: lo,
                seen: at(lo),
                ..span.clone()
            });
        } else if times.windows(2).all(|w| w[0] <= w[1]) {
            self.spans.push(Span {
                created_ge: hi,
                seen: at(hi),
                ..span.clone()
            });
        } else {
            // No order: halve the span (never a single millisecond here: lo < hi).
            let mid = middle(span.created_ge, span.created_le);
            self.spans.push(Span {
                created_ge: mid + one_ms(),
                ..span.clone()
            });
            self.spans.push(Span {
                created_le: mid,
                ..span.clone()
            });
            return Ok(false);
        }
        Ok(true)
    }

    /// A full page created in one millisecond `t`: the span's calls on either side of it as
    /// usual, and `t` itself split by `updatedAt`.
    fn split_millisecond(
        &mut self,
        span: &Span,
        page: &[Value],
        t: DateTime<Utc>,
    ) -> Result<(), VapiError> {
        if span.created_ge < span.created_le {
            if t < span.created_le {
                let above = Span::created(t + one_ms(), span.created_le, span.seen.clone());
                self.spans.push(above);
            }
            if t > span.created_ge {
                let below = Span::created(span.created_ge, t - one_ms(), span.seen.clone());
                self.spans.push(below);
            }
            // The millisecond as a span of its own: split by `updatedAt` when full again.
            self.spans.push(Span::created(t, t, span.seen.clone()));
            return Ok(());
        }
        // A call is updated no earlier than it is created.
        let low = span.updated_ge.unwrap_or(t);
        if span.updated_le.is_some_and(|le| le <= low) {
            return Err(unlistable(&format!(
                "more than {} calls were created at {t:?} and last updated in one millisecond; \
                 GET /call cannot tell them apart until they are updated",
                self.limit
            )));
        }
        let high = page.iter().filter_map(|c| time_of(c, "updatedAt")).max();
        let mid = middle(low, high.unwrap_or(low).max(low));
        let part = |ge, le| Span {
            created_ge: t,
            created_le: t,
            updated_ge: Some(ge),
            updated_le: le,
            seen: span.seen.clone(),
        };
        // Upper part pushed first, so the lower one is listed first (see the module docs).
        self.spans.push(part(mid + one_ms(), span.updated_le));
        self.spans.push(part(low, Some(mid)));
        Ok(())
    }
}

fn unlistable(message: &str) -> VapiError {
    VapiError::Transient {
        status: None,
        retry_after: None,
        message: format!("GET /call cannot list the window: {message}"),
    }
}

/// Visits every call from `phone_number_id` created in `from..=to` until `visit` returns `true`
/// (found: `Ok(true)`) or the window is exhausted (`Ok(false)`), whatever its size.
pub async fn search_window(
    vapi: &dyn VapiApi,
    phone_number_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut visit: impl FnMut(&Value) -> bool,
) -> Result<bool, VapiError> {
    let mut listing = Listing::new(phone_number_id, from, to, PAGE);
    while let Some(page) = listing.next_page(vapi).await? {
        if page.iter().any(&mut visit) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_is_ours_only_with_our_identity() {
        let ours = DeploymentId::parse("stack-a").unwrap();
        let with =
            |metadata: Value| json!({"id": "c", "assistantOverrides": {"metadata": metadata}});
        let mine = with(json!({"ringbackAttemptId": "a1", "ringbackDeploymentId": "stack-a"}));
        assert_eq!(attempt_of(&mine, &ours), Some("a1"));
        let top_level =
            json!({"metadata": {"ringbackAttemptId": "a2", "ringbackDeploymentId": "stack-a"}});
        assert_eq!(attempt_of(&top_level, &ours), Some("a2"));
        for theirs in [
            with(json!({"ringbackAttemptId": "a1", "ringbackDeploymentId": "stack-b"})),
            with(json!({"ringbackAttemptId": "a1"})),
            with(json!({"ringbackAttemptId": "a1", "ringbackDeploymentId": 7})),
            with(json!({"ringbackDeploymentId": "stack-a"})),
            json!({"id": "c"}),
        ] {
            assert_eq!(attempt_of(&theirs, &ours), None, "{theirs}");
        }
    }

    #[test]
    fn a_resumed_listing_never_reaches_before_the_floor() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut l = Listing::new(
            "pn",
            t("2026-03-02T14:00:00Z"),
            t("2026-03-02T15:00:00Z"),
            5000,
        );
        assert_eq!(l.limit, PAGE, "never more than Vapi's largest page");
        l.clamp_from(t("2026-03-02T14:30:00.000500Z"));
        assert_eq!(l.spans[0].created_ge, t("2026-03-02T14:30:00Z"));
        l.clamp_from(t("2026-03-02T16:00:00Z"));
        assert!(
            l.is_done(),
            "a window wholly before the floor lists nothing"
        );
    }
}
