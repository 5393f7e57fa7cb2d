//! How the system is doing: `GET /api/v1/vapi/stats`. Calls by `dataStatus` and outcome over a
//! window (from the call index's counters, [`crate::adapters::dynamodb`]'s `counters`), calls
//! unfinished past their deadline (the unfinished index), pushed events pending and dead-lettered
//! (the events table's open-state index), and the enrichment queues' depths where the deployment
//! can read them. Never a scan: every part is a bounded number of requests,
//! whatever the number of calls, and a part that cannot be read is reported unavailable while
//! the others are still answered.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::domain::{to_iso, DataStatus, Outcome};
use crate::ports::{CallStore, Clock, PushState, PushStore};
use crate::search::{parse_time, CallIndex, QueryError};

/// The longest window one request may count: `hours × 4` counter items, 30 reads at most.
pub const MAX_WINDOW_DAYS: i64 = 31;
/// Overdue calls are counted exactly up to this many; past it the answer says "at least".
pub const OVERDUE_CAP: u32 = 1000;
/// Pending and dead-lettered pushed events likewise.
pub const OPEN_CAP: u32 = 1000;

/// Calls created in `[since, until)` (whole hours), by state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    /// ISO-8601, the start of an hour: the window counted (the one asked for, widened to hours).
    pub since: String,
    pub until: String,
    pub total: i64,
    /// Every `dataStatus`, zero included.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::api::openapi::DataStatusCounts))]
    pub by_data_status: std::collections::BTreeMap<&'static str, i64>,
    /// Every outcome, zero included (calls still running have none).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::api::openapi::OutcomeCounts))]
    pub by_outcome: std::collections::BTreeMap<&'static str, i64>,
}

impl CallCounts {
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Self {
            since: to_iso(since),
            until: to_iso(until),
            total: 0,
            by_data_status: DataStatus::ALL.iter().map(|d| (d.as_str(), 0)).collect(),
            by_outcome: Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect(),
        }
    }

    pub fn add_data_status(&mut self, d: DataStatus, n: i64) {
        *self.by_data_status.entry(d.as_str()).or_default() += n;
        self.total += n;
    }

    pub fn add_outcome(&mut self, o: Outcome, n: i64) {
        *self.by_outcome.entry(o.as_str()).or_default() += n;
    }
}

/// A count read up to a cap.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capped {
    pub count: u64,
    /// More than `count` exist: counting stopped at the cap.
    pub at_least: bool,
}

/// One queue's messages as its service reports them (SQS's are approximate).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    /// Ready to be received.
    pub visible: u64,
    /// Received, not yet deleted (being worked on).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

/// The enrichment queue and its dead-letter queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepths {
    pub enrichment: QueueDepth,
    pub dead_letter: QueueDepth,
}

/// Reads the queues' depths (SQS `GetQueueAttributes`, or the local runner's queue).
#[async_trait]
pub trait QueueGauge: Send + Sync {
    async fn depths(&self) -> Result<QueueDepths, String>;
}

/// A part of the answer, or why it is missing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Part<T> {
    Read(T),
    Unavailable { unavailable: String },
}

impl<T> Part<T> {
    fn of<E: std::fmt::Display>(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Self::Read(v),
            Err(e) => Self::Unavailable {
                unavailable: e.to_string(),
            },
        }
    }
}

/// Pushed events still open, across every call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushCounts {
    /// Not delivered yet, still being tried.
    pub pending: Capped,
    /// Out of attempts: dead-lettered, for an operator to redeliver.
    pub failed: Capped,
}

/// The answer of `GET /api/v1/vapi/stats`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// ISO-8601: when these were read.
    pub at: String,
    /// Calls created in the window, or why they could not be counted.
    pub calls: Part<CallCounts>,
    /// Calls not settled by their deadline: the cleanup's work list, read now.
    pub overdue: Part<Capped>,
    /// Pushed events pending and dead-lettered (the events table's open-state index, each
    /// counted up to 1,000); `null` where pushed events are not kept.
    pub pushes: Option<Part<PushCounts>>,
    /// The enrichment queues' depths; `null` (`None`) where this deployment has no queue it can
    /// read (a client of its API only).
    pub queues: Option<Part<QueueDepths>>,
}

/// `since`/`until` (default: the last 24 hours; the listing's formats), widened to whole hours.
pub fn window<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), QueryError> {
    let (mut since, mut until) = (None, None);
    for (k, v) in pairs {
        match k {
            "since" => since = Some(parse_time(k, v, false)?),
            "until" => until = Some(parse_time(k, v, true)?),
            other => {
                return Err(QueryError::new(
                    other,
                    "unknown parameter: since and until are",
                ))
            }
        }
    }
    let until = until.unwrap_or(now);
    let since = since.unwrap_or(until - Duration::hours(24));
    if since >= until {
        return Err(QueryError::new("since", "is not before until"));
    }
    let (since, until) = (floor_hour(since), ceil_hour(until));
    if until - since > Duration::days(MAX_WINDOW_DAYS) {
        return Err(QueryError::new(
            "since",
            format!("the window is longer than {MAX_WINDOW_DAYS} days: ask for a shorter one"),
        ));
    }
    Ok((since, until))
}

pub(crate) fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound;
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

fn ceil_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = floor_hour(t);
    if f == t {
        t
    } else {
        f + Duration::hours(1)
    }
}

pub struct StatsService {
    pub index: Arc<dyn CallIndex>,
    pub store: Arc<dyn CallStore>,
    /// The events table, where pushed events are kept.
    pub pushes: Option<Arc<dyn PushStore>>,
    pub queues: Option<Arc<dyn QueueGauge>>,
    pub clock: Arc<dyn Clock>,
}

impl StatsService {
    /// Every part read at once; a failing part is reported, not fatal.
    pub async fn read(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Stats {
        let now = self.clock.now();
        let queues = async {
            match &self.queues {
                Some(q) => Some(Part::of(q.depths().await)),
                None => None,
            }
        };
        let pushes = async {
            let store = self.pushes.as_ref()?;
            let (pending, failed) = tokio::join!(
                store.open_count(PushState::Pending, OPEN_CAP),
                store.open_count(PushState::Failed, OPEN_CAP)
            );
            let capped = |(count, at_least)| Capped { count, at_least };
            Some(Part::of(pending.and_then(|p| {
                failed.map(|f| PushCounts {
                    pending: capped(p),
                    failed: capped(f),
                })
            })))
        };
        let (calls, overdue, pushes, queues) = tokio::join!(
            self.index.counts(since, until),
            self.store.overdue_count(now, OVERDUE_CAP),
            pushes,
            queues
        );
        Stats {
            at: to_iso(now),
            calls: Part::of(calls),
            overdue: Part::of(overdue.map(|(count, at_least)| Capped { count, at_least })),
            pushes,
            queues,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_window_defaults_to_a_day_and_widens_to_whole_hours() {
        let now = at("2026-12-05T09:30:00Z");
        assert_eq!(
            window([], now).unwrap(),
            (at("2026-12-04T09:00:00Z"), at("2026-12-05T10:00:00Z"))
        );
        assert_eq!(
            window(
                [("since", "2026-12-01"), ("until", "2026-12-02T00:00:00Z")],
                now
            )
            .unwrap(),
            (at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z"))
        );
        assert_eq!(
            window([("until", "2026-12-02")], now).unwrap().1,
            at("2026-12-03T00:00:00Z"),
            "a date as until is its whole day"
        );
        let refused = |q: &[(&'static str, &'static str)]| {
            window(q.iter().copied(), now).unwrap_err().parameter
        };
        assert_eq!(refused(&[("since", "x")]), "since");
        assert_eq!(
            refused(&[
                ("since", "2026-12-05T09:00:00Z"),
                ("until", "2026-12-05T09:00:00Z")
            ]),
            "since"
        );
        assert_eq!(refused(&[("since", "2026-10-01")]), "since");
        assert_eq!(refused(&[("limit", "3")]), "limit");
    }
}
