//! Finding calls: `GET /api/v1/vapi/calls?serviceRequestId=|providerId=|status=&since=&until=&limit=&cursor=`.
//!
//! A call record lives in the calls table for `RESULT_TTL_SECONDS` after its last write; a search
//! must find a call for as long as its durable rows exist. So every call also has a small,
//! durable **summary** (no TTL, no phone numbers, no transcript) in its own table, kept by
//! [`IndexedCalls`], a decorator around the calls table's [`CallStore`], and read through the
//! [`CallIndex`] port (the DynamoDB adapter, its keys and indexes:
//! `crate::adapters::dynamodb::CallIndexTable`).
//!
//! - [`CallSummary`]: what a listing shows of a call;
//! - [`SearchQuery`]: a listing request, parsed strictly from the query string
//!   ([`SearchQuery::parse`]); bad input is a [`QueryError`] naming the parameter;
//! - [`Cursor`]: the opaque position after a page: base64url of `v1.{filter fingerprint}.{sort key}`,
//!   where the sort key is `{createdAt}#{callId}` of the last call shown. Every page is "the calls
//!   strictly older than the cursor", so pages never repeat or skip a call, whatever was written
//!   meanwhile; a cursor from another filter, or tampered with, is refused (400).

mod indexed;
mod service;

pub use indexed::IndexedCalls;
pub use service::{SearchError, SearchService};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::{CallResult, CallStatus, DataStatus, Outcome};
use crate::ports::StoreError;

/// Page size when `limit` is not given, and the most one page may hold.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// One call as a listing shows it: no phone numbers, no transcript, no analysis.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    pub call_id: String,
    pub data_status: DataStatus,
    pub status: Option<Outcome>,
    pub call_status: CallStatus,
    pub provider_name: Option<String>,
    pub provider_id: Option<String>,
    pub service_request_id: Option<String>,
    pub created_at: String,
    /// The record's `updatedAt` when the summary was last written (a change of a searchable
    /// field, see [`CallSummary::searchable`]).
    pub updated_at: String,
}

/// The fields a search filters or sorts on: a record write that leaves them as they were does
/// not rewrite the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Searchable {
    pub(crate) data_status: DataStatus,
    pub(crate) status: Option<Outcome>,
    provider_name: Option<String>,
    provider_id: Option<String>,
    service_request_id: Option<String>,
    pub(crate) created_at: String,
}

impl Searchable {
    /// The fields the counters of calls by state read ([`crate::stats`]), the rest unknown.
    pub(crate) fn counted(
        data_status: DataStatus,
        status: Option<Outcome>,
        created_at: String,
    ) -> Self {
        Self {
            data_status,
            status,
            provider_name: None,
            provider_id: None,
            service_request_id: None,
            created_at,
        }
    }
}

/// What a listed write knows of the summary it replaces: the counters move from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// The writer did not read the record through the listing's store: the adapter reads it.
    Unknown,
    /// No summary (a new call).
    Absent,
    Was(Searchable),
}

impl CallSummary {
    pub fn of(result: &CallResult) -> Self {
        Self {
            call_id: result.call_id.clone(),
            data_status: result.data_status,
            status: result.status,
            call_status: result.call_status,
            provider_name: result.provider.name.clone(),
            provider_id: result.provider_id.clone(),
            service_request_id: result.service_request_id.clone(),
            created_at: result.created_at.clone(),
            updated_at: result.updated_at.clone(),
        }
    }

    pub fn searchable(&self) -> Searchable {
        Searchable {
            data_status: self.data_status,
            status: self.status,
            provider_name: self.provider_name.clone(),
            provider_id: self.provider_id.clone(),
            service_request_id: self.service_request_id.clone(),
            created_at: self.created_at.clone(),
        }
    }

    /// The position of this call in every listing, newest first by `createdAt`, ties broken by id:
    /// `{createdAt as fixed-width UTC ISO}#{callId}`. A `createdAt` that is not a timestamp (never
    /// written by ringback) sorts as the epoch, so the call is still listed.
    pub fn sort_key(&self) -> String {
        let at = DateTime::parse_from_rfc3339(self.created_at.trim())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        format!("{}#{}", fixed_iso(at), self.call_id)
    }
}

/// `2026-12-02T10:00:00.000Z`: the same width for every instant from year 0 to 9999, so text order
/// is time order.
pub fn fixed_iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a listing is restricted to (one at most).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    ServiceRequest(String),
    Provider(String),
    DataStatus(DataStatus),
    Outcome(Outcome),
}

impl Filter {
    /// A short fingerprint tying a cursor to its filter (FNV-1a of a canonical text, hex).
    fn fingerprint(&self) -> String {
        let text = match self {
            Self::All => "all".to_owned(),
            Self::ServiceRequest(v) => format!("sr:{v}"),
            Self::Provider(v) => format!("p:{v}"),
            Self::DataStatus(d) => format!("ds:{}", d.as_str()),
            Self::Outcome(o) => format!("o:{}", o.as_str()),
        };
        format!("{:08x}", fnv1a(&text) as u32)
    }

    /// Whether a summary (as it is now) still belongs to this listing: an index is eventually
    /// consistent, and a call may have moved on since its index entry was read.
    pub fn matches(&self, s: &CallSummary) -> bool {
        match self {
            Self::All => true,
            Self::ServiceRequest(v) => s.service_request_id.as_deref() == Some(v),
            Self::Provider(v) => s.provider_id.as_deref() == Some(v),
            Self::DataStatus(d) => s.data_status == *d,
            Self::Outcome(o) => s.status == Some(*o),
        }
    }
}

/// FNV-1a, 64-bit: fixed by this code, so every version of every function agrees.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn data_status_from_word(word: &str) -> Option<DataStatus> {
    DataStatus::ALL.into_iter().find(|d| d.as_str() == word)
}

pub fn outcome_from_word(word: &str) -> Option<Outcome> {
    Outcome::ALL.into_iter().find(|o| o.as_str() == word)
}

/// The position after the last call of a page: the sort key of that call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub after: String,
}

impl Cursor {
    pub fn encode(&self, filter: &Filter) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1.{}.{}", filter.fingerprint(), self.after))
    }

    /// The cursor, if `text` is one this filter's listing handed out.
    pub fn decode(text: &str, filter: &Filter) -> Result<Self, QueryError> {
        let bad = |why: &str| QueryError::new("cursor", why);
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| bad("not a cursor this API handed out"))?;
        let raw = String::from_utf8(raw).map_err(|_| bad("not a cursor this API handed out"))?;
        let rest = raw
            .strip_prefix("v1.")
            .ok_or_else(|| bad("not a cursor this API handed out"))?;
        let (fingerprint, after) = rest
            .split_once('.')
            .ok_or_else(|| bad("not a cursor this API handed out"))?;
        if fingerprint != filter.fingerprint() {
            return Err(bad(
                "the cursor belongs to a listing with other filters; start again without it",
            ));
        }
        // `{fixed ISO}#{callId}`, exactly as `CallSummary::sort_key` writes it.
        let (at, id) = after
            .split_once('#')
            .ok_or_else(|| bad("not a cursor this API handed out"))?;
        let valid_time =
            DateTime::parse_from_rfc3339(at).is_ok_and(|t| fixed_iso(t.with_timezone(&Utc)) == at);
        // The same rule as any call id (`CallId`): 256 characters, not bytes.
        if !valid_time || crate::domain::CallId::parse(id).is_err() {
            return Err(bad("not a cursor this API handed out"));
        }
        Ok(Self {
            after: after.to_owned(),
        })
    }
}

/// A listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub filter: Filter,
    /// Inclusive bounds on `createdAt`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            filter: Filter::All,
            since: None,
            until: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// A bad query parameter: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct QueryError {
    pub parameter: String,
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }
}

impl SearchQuery {
    /// Reads decoded `(name, value)` pairs strictly: unknown or repeated parameters, empty values,
    /// two filters at once, bad times, `since` after `until`, a bad limit or cursor are refused.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, QueryError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut q = SearchQuery::default();
        let mut cursor = None;
        let mut filters = Vec::new();
        for (name, value) in pairs {
            if !seen.insert(name) {
                return Err(QueryError::new(name, "given more than once"));
            }
            if value.is_empty() {
                return Err(QueryError::new(name, "must not be empty"));
            }
            if matches!(name, "serviceRequestId" | "providerId") && value.chars().count() > 256 {
                return Err(QueryError::new(name, "at most 256 characters"));
            }
            match name {
                "serviceRequestId" => filters.push((name, Filter::ServiceRequest(value.into()))),
                "providerId" => filters.push((name, Filter::Provider(value.into()))),
                "status" => {
                    let f = data_status_from_word(value)
                        .map(Filter::DataStatus)
                        .or_else(|| outcome_from_word(value).map(Filter::Outcome))
                        .ok_or_else(|| {
                            QueryError::new(
                                name,
                                format!(
                                    "{value:?} is not a status: one of pending, partial, fetching, \
                                     complete, fetch_failed (dataStatus) or completed, no_answer, \
                                     voicemail, timeout, error (outcome)"
                                ),
                            )
                        })?;
                    filters.push((name, f));
                }
                "since" => q.since = Some(parse_time(name, value, false)?),
                "until" => q.until = Some(parse_time(name, value, true)?),
                "limit" => {
                    q.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            QueryError::new(
                                name,
                                format!("{value:?} is not a whole number from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                }
                "cursor" => cursor = Some(value),
                other => {
                    return Err(QueryError::new(
                        other,
                        "unknown parameter: serviceRequestId, providerId, status, since, until, \
                         limit and cursor are",
                    ))
                }
            }
        }
        if filters.len() > 1 {
            let names: Vec<&str> = filters.iter().map(|(n, _)| *n).collect();
            return Err(QueryError::new(
                names[1],
                format!(
                    "one filter at a time: {} were given together",
                    names.join(" and ")
                ),
            ));
        }
        if let Some((_, f)) = filters.pop() {
            q.filter = f;
        }
        if let (Some(s), Some(u)) = (q.since, q.until) {
            if s > u {
                return Err(QueryError::new("since", "is after until"));
            }
        }
        if let Some(c) = cursor {
            q.cursor = Some(Cursor::decode(c, &q.filter)?);
        }
        Ok(q)
    }

    /// The inclusive range of sort keys this query may list (before the cursor is applied).
    pub fn key_bounds(&self) -> (Option<String>, Option<String>) {
        // `{iso}#{id}` sorts after `{iso}` and before `{iso}$` ('$' follows '#').
        (
            self.since.map(fixed_iso),
            self.until.map(|u| format!("{}$", fixed_iso(u))),
        )
    }
}

/// RFC 3339 (any offset), or a plain date: `since=2026-12-02` is that day's start (UTC),
/// `until=2026-12-02` its end.
pub(crate) fn parse_time(
    name: &str,
    value: &str,
    end_of_day: bool,
) -> Result<DateTime<Utc>, QueryError> {
    let t = read_time(value, end_of_day).ok_or_else(|| {
        QueryError::new(
            name,
            format!(
                "{value:?} is not an ISO-8601 time (e.g. 2026-12-02T10:00:00Z) or date (2026-12-02)"
            ),
        )
    })?;
    // Sort keys hold the time as fixed-width text (`fixed_iso`), which orders as time only for
    // years 0 to 9999 (UTC): a bound outside would list the wrong calls, so it is refused.
    if !(0..=9999).contains(&t.year()) {
        return Err(QueryError::new(
            name,
            format!("{value:?} is outside the years 0000 to 9999 (UTC)"),
        ));
    }
    Ok(t)
}

fn read_time(value: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let t = if end_of_day {
            d.and_hms_milli_opt(23, 59, 59, 999)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        return t.map(|t| t.and_utc());
    }
    None
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPage {
    pub calls: Vec<CallSummary>,
    /// Where the next page starts; `None` when this one is the last.
    pub next: Option<Cursor>,
}

/// The durable summaries and the indexes over them.
#[async_trait]
pub trait CallIndex: Send + Sync {
    /// Writes the summary of a record about to be written at `version`. `create` replaces any
    /// summary there (a new record, or one re-created after it expired); otherwise a summary
    /// already written for a later version is kept.
    async fn upsert(
        &self,
        summary: &CallSummary,
        version: u64,
        create: bool,
    ) -> Result<(), StoreError>;
    /// Removes a call's summary (the initiator undoing a call it could not make).
    async fn remove(&self, call_id: &str) -> Result<(), StoreError>;
    /// One page of the listing, through an index made for its filter: never a scan.
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError>;
    /// One call's summary, if it has one.
    async fn summary(&self, call_id: &str) -> Result<Option<CallSummary>, StoreError>;
    /// Calls created in `[since, until)` (whole hours) by state, from counters kept with the
    /// summaries ([`crate::stats`]): a bounded read, whatever the number of calls.
    async fn counts(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<crate::stats::CallCounts, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<SearchQuery, QueryError> {
        SearchQuery::parse(q.iter().copied())
    }

    #[test]
    fn filters_times_and_limits_are_read_strictly() {
        assert_eq!(parse(&[]).unwrap(), SearchQuery::default());
        let q = parse(&[("status", "fetch_failed"), ("limit", "100")]).unwrap();
        assert_eq!(q.filter, Filter::DataStatus(DataStatus::FetchFailed));
        assert_eq!(q.limit, 100);
        let q = parse(&[("status", "no_answer")]).unwrap();
        assert_eq!(q.filter, Filter::Outcome(Outcome::NoAnswer));
        let q = parse(&[
            ("providerId", "p-1"),
            ("since", "2026-12-02"),
            ("until", "2026-12-02T12:00:00+01:00"),
        ])
        .unwrap();
        assert_eq!(q.filter, Filter::Provider("p-1".into()));
        assert_eq!(fixed_iso(q.since.unwrap()), "2026-12-02T00:00:00.000Z");
        assert_eq!(fixed_iso(q.until.unwrap()), "2026-12-02T11:00:00.000Z");
        let q = parse(&[("until", "2026-12-02")]).unwrap();
        assert_eq!(fixed_iso(q.until.unwrap()), "2026-12-02T23:59:59.999Z");

        for (bad, param) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "101")], "limit"),
            (vec![("limit", "ten")], "limit"),
            (vec![("since", "yesterday")], "since"),
            (vec![("until", "2026-13-01")], "until"),
            (vec![("status", "done")], "status"),
            (vec![("status", "")], "status"),
            (vec![("sort", "asc")], "sort"),
            (vec![("limit", "5"), ("limit", "6")], "limit"),
            (
                vec![("serviceRequestId", "a"), ("providerId", "b")],
                "providerId",
            ),
            (
                vec![("since", "2026-12-03"), ("until", "2026-12-02")],
                "since",
            ),
            (vec![("cursor", "!!")], "cursor"),
        ] {
            let err = parse(&bad).unwrap_err();
            assert_eq!(err.parameter, param, "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_refuses_tampering_and_other_filters() {
        let s = CallSummary::of(&CallResult::new("call-1", "2026-12-02T10:00:00.5+00:00"));
        assert_eq!(s.sort_key(), "2026-12-02T10:00:00.500Z#call-1");
        let f = Filter::ServiceRequest("sr".into());
        let c = Cursor {
            after: s.sort_key(),
        };
        let text = c.encode(&f);
        assert_eq!(Cursor::decode(&text, &f).unwrap(), c);
        assert_eq!(
            Cursor::decode(&text, &Filter::All).unwrap_err().parameter,
            "cursor"
        );
        let forged = URL_SAFE_NO_PAD.encode(format!("v1.{}.yesterday#x", f.fingerprint()));
        assert!(Cursor::decode(&forged, &f).is_err());
        let mut flipped = text.into_bytes();
        flipped[4] ^= 1;
        assert!(Cursor::decode(&String::from_utf8_lossy(&flipped), &f).is_err());
        assert!(Cursor::decode("", &f).is_err());
    }

    #[test]
    fn a_cursor_round_trips_any_valid_call_id() {
        // 256 characters is the longest call id (CallId), whatever bytes they take.
        for id in [
            "é".repeat(256),
            "通話".repeat(128),
            "📞".repeat(256),
            "a".repeat(256),
        ] {
            assert!(crate::domain::CallId::parse(&id).is_ok());
            let s = CallSummary::of(&CallResult::new(id.as_str(), "2026-12-02T10:00:00Z"));
            let c = Cursor {
                after: s.sort_key(),
            };
            let f = Filter::All;
            assert_eq!(Cursor::decode(&c.encode(&f), &f), Ok(c), "{id}");
        }
        let too_long = Cursor {
            after: format!("2026-12-02T10:00:00.000Z#{}", "é".repeat(257)),
        };
        assert!(Cursor::decode(&too_long.encode(&Filter::All), &Filter::All).is_err());
    }

    #[test]
    fn times_past_year_9999_are_refused_by_name() {
        // Past 9999 the sort key's time is no longer fixed-width ("+10000-..."), so text order
        // would stop being time order: such a bound is refused, not mis-sorted.
        for (name, value) in [
            ("until", "9999-12-31T23:00:00-05:00"),
            ("since", "+10000-01-01"),
            ("until", "+10000-01-01"),
            ("since", "-0001-01-01"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert_eq!(err.parameter, name, "{value}: {err}");
        }
        let q = parse(&[("until", "9999-12-31")]).unwrap();
        assert_eq!(fixed_iso(q.until.unwrap()), "9999-12-31T23:59:59.999Z");
        let q = parse(&[("since", "0000-01-01T00:00:00Z")]).unwrap();
        assert_eq!(fixed_iso(q.since.unwrap()), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn bounds_include_both_ends() {
        let q = parse(&[
            ("since", "2026-12-02T10:00:00Z"),
            ("until", "2026-12-02T10:00:00Z"),
        ])
        .unwrap();
        let (lo, hi) = q.key_bounds();
        let key = "2026-12-02T10:00:00.000Z#any-call".to_owned();
        assert!(lo.unwrap() <= key && key <= hi.unwrap());
    }
}
