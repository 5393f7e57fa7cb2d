//! The cleanup's revival of calls whose record expired before they settled.
//!
//! A record lives `RESULT_TTL_SECONDS` after its last write, and an unfinished one is written
//! again before then by its steps or by the cleanup. When neither can write for that long (the
//! cleanup failing run after run through a store outage), the record expires and reads treat it
//! as absent. The reconciliation with Vapi cannot bring it back: it looks only at calls placed
//! within the TTL, since an older call without a record may have settled and expired as it
//! should. The listing can tell the two apart: every call's summary is durable (no TTL) and is
//! written in the same transaction as the record state it shows, so a summary that still says
//! `pending`, `partial` or `fetching` for a call created more than the TTL ago, with no record,
//! is a call that never settled.
//!
//! Such a call is recorded again (`pending`, a fresh deadline, the summary's details; its
//! version starts over at 1) and handed to its watchdog, which rebuilds the rest from Vapi and
//! the kept webhooks, as for a call the reconciliation adopts. A call Vapi no longer knows is
//! settled `fetch_failed` by the usual re-drives.
//!
//! Bounded: one `Query` per index shard and unfinished status, newest first, at most
//! [`MAX_PAGES`] pages of [`crate::search::MAX_LIMIT`] per status, [`MAX_REVIVALS`] calls and
//! [`BUDGET`] of the run (after the reconciliation, which keeps its own budget); the watchdog jobs
//! are spread over a minute, so that a backlog does not ask Vapi all at once. Only calls created
//! between [`HORIZON`] and the TTL ago and still unfinished match (calls running longer than the
//! TTL, and lost ones), so a healthy deployment reads empty pages. What a run leaves waits for the
//! next one (newest first: a revived call stays listed `pending` until its watchdog settles it).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;

use super::cleanup::CleanupService;
use crate::domain::{to_iso, CallRecord, DataStatus};
use crate::search::{CallIndex, CallSummary, Filter, SearchQuery, MAX_LIMIT};

/// Pages per unfinished status and run; what is left waits for the next run.
pub const MAX_PAGES: u32 = 10;
/// Calls recorded again per run.
pub const MAX_REVIVALS: u32 = 200;
/// How long into the cleanup run (whose timeout is 60 s) the revival may still start a page.
pub const BUDGET: Duration = Duration::from_secs(45);
/// How far back the revival looks: a cleanup down for longer is a disaster recovery, and older
/// summaries may predate the transactional listing (written before their record, they could
/// say `fetching` for a call that settled).
pub const HORIZON: chrono::Duration = chrono::Duration::days(7);

/// Where the cleanup looks for calls whose record expired unfinished.
pub struct Revive {
    pub index: Arc<dyn CallIndex>,
    /// `RESULT_TTL_SECONDS`: a call created more recently has its record, if it ever had one.
    pub ttl: Duration,
}

/// What one run's revival did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revived {
    /// Calls recorded again and handed to their watchdog.
    pub revived: u32,
    /// Unfinished summaries older than the TTL looked at (revived or still recorded).
    pub examined: u32,
    /// More matched than a run reads: the rest waits for the next run.
    pub unfinished: bool,
}

impl CleanupService {
    /// `started`: when the cleanup run began, from which [`BUDGET`] counts.
    pub(super) async fn revive(
        &self,
        r: &Revive,
        now: DateTime<Utc>,
        started: tokio::time::Instant,
        done: &mut Revived,
    ) -> Result<(), String> {
        let ttl = chrono::Duration::from_std(r.ttl).unwrap_or(chrono::Duration::MAX);
        let Some(until) = now.checked_sub_signed(ttl) else {
            return Ok(());
        };
        for status in [
            DataStatus::Pending,
            DataStatus::Partial,
            DataStatus::Fetching,
        ] {
            let mut query = SearchQuery {
                filter: Filter::DataStatus(status),
                since: now.checked_sub_signed(HORIZON),
                until: Some(until),
                limit: MAX_LIMIT,
                ..SearchQuery::default()
            };
            for _ in 0..MAX_PAGES {
                if started.elapsed() >= BUDGET || done.revived >= MAX_REVIVALS {
                    done.unfinished = true;
                    return Ok(());
                }
                let page = r.index.search(&query).await.map_err(|e| e.to_string())?;
                self.revive_page(&page.calls, now, done).await?;
                match page.next {
                    Some(next) => query.cursor = Some(next),
                    None => {
                        query.cursor = None;
                        break;
                    }
                }
            }
            // Still a page to read after the last one this run may read.
            done.unfinished |= query.cursor.is_some();
        }
        Ok(())
    }

    async fn revive_page(
        &self,
        calls: &[CallSummary],
        now: DateTime<Utc>,
        done: &mut Revived,
    ) -> Result<(), String> {
        if calls.is_empty() {
            return Ok(());
        }
        done.examined += calls.len() as u32;
        let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
        let recorded = self.store.recorded(&ids).await.map_err(|e| e.to_string())?;
        for summary in calls.iter().filter(|c| !recorded.contains(&c.call_id)) {
            if done.revived >= MAX_REVIVALS {
                break;
            }
            let record = revived_record(summary, now);
            // Spread over a minute: a backlog must not ask Vapi all at once.
            let spread = Duration::from_secs(u64::from((done.revived + 1) % 60));
            // Recorded meanwhile (a late webhook, the reconciliation, another run).
            if !self
                .record_and_watch(&record, now, spread)
                .await
                .map_err(|e| e.to_string())?
            {
                continue;
            }
            warn!(
                call_id = %summary.call_id,
                was = summary.data_status.as_str(),
                "a call's record expired before it settled; recorded it again, its watchdog will finish it"
            );
            self.metrics.count("CallsRevivedByCleanup", 1, &[]);
            done.revived += 1;
        }
        Ok(())
    }
}

/// What the listing knew of a call, `pending` again so that its watchdog asks Vapi for the rest.
fn revived_record(s: &CallSummary, now: DateTime<Utc>) -> CallRecord {
    let mut record = CallRecord::new(&s.call_id, &s.created_at);
    let r = &mut record.result;
    r.call_status = s.call_status;
    r.provider.name.clone_from(&s.provider_name);
    r.provider_id.clone_from(&s.provider_id);
    r.service_request_id.clone_from(&s.service_request_id);
    r.updated_at = to_iso(now);
    record
}
