//! The cleanup's reconciliation with Vapi: a call this deployment placed whose record and
//! watchdog were both lost (two stores failing right after Vapi accepted it) and whose webhooks
//! never came would otherwise be known to nobody. The calls our number placed within the records'
//! TTL (a record lives at least that long after its call was placed), older than a minute (the
//! initiator's own writes are done, and Vapi lists them), that carry this deployment's identity
//! and have no record get a record and a watchdog job: the consumer builds the rest from Vapi.
//!
//! At any number of calls in the window:
//! - calls are listed with Vapi's largest page and every page is adopted as it is read, its
//!   records looked up in one batch ([`crate::ports::CallStore::recorded`]);
//! - a cursor (`ReconcileCursors`, one small item) remembers the window already covered, so a run
//!   lists only calls created since the last one;
//! - a run lists for at most [`Reconcile::budget`] (below the function's timeout), then saves
//!   what is left of its listing and the next run continues it;
//! - a failure leaves the cursor at the last page done, counts `ReconciliationFailed` (alarmed)
//!   and fails the run, so that Lambda retries it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use super::cleanup::{adopted_record, CleanupService};
use super::placed::{attempt_of, Listing, PAGE};
use crate::config::DeploymentId;
use crate::ports::{ReconcileCursors, VapiApi};
use crate::vapi::snapshot_from_call;

/// How old a placed call must be before a missing record counts as lost.
pub const RECONCILE_MIN_AGE: chrono::Duration = chrono::Duration::seconds(60);
/// How long one run lists by default: the cleanup function's timeout is 60 s (template.yaml),
/// and the sweep of overdue records runs first.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// Where the cleanup looks for calls this deployment placed (see the module documentation).
pub struct Reconcile {
    pub vapi: Arc<dyn VapiApi>,
    pub phone_number_id: String,
    /// Only calls carrying this identity are ours to adopt.
    pub deployment: DeploymentId,
    /// How far back to look: `RESULT_TTL_SECONDS`. A call placed that recently with no record
    /// was never recorded (a record lives at least that long after its creation).
    pub window: Duration,
    /// Where the covered window is kept between runs (the calls table).
    pub cursors: Arc<dyn ReconcileCursors>,
    /// How long a run may list before it saves its place and stops.
    pub budget: Duration,
    /// Calls per `GET /call` page (Vapi's largest, [`PAGE`]; tests use smaller ones).
    pub page: u32,
}

impl Reconcile {
    pub fn new(
        vapi: Arc<dyn VapiApi>,
        phone_number_id: impl Into<String>,
        deployment: DeploymentId,
        window: Duration,
        cursors: Arc<dyn ReconcileCursors>,
    ) -> Self {
        Self {
            vapi,
            phone_number_id: phone_number_id.into(),
            deployment,
            window,
            cursors,
            budget: DEFAULT_BUDGET,
            page: PAGE,
        }
    }

    /// The cursor's key: one per phone number and deployment.
    fn key(&self) -> String {
        format!("{}#{}", self.phone_number_id, self.deployment)
    }
}

/// What one run of the reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Calls recorded and handed to their watchdog.
    pub adopted: u32,
    /// Calls listed (each once), ours or not.
    pub listed: u32,
    /// Listed calls this deployment did not place (another deployment's, or none's).
    pub foreign: u32,
    pub vapi_requests: u32,
    /// The run's time ran out: the rest of its listing waits for the next run.
    pub unfinished: bool,
}

/// The cursor: how far the reconciliation got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    /// Every call created at or before this instant was looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    covered_until: Option<DateTime<Utc>>,
    /// A listing a run stopped in: what is left of it, and the end of its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pending {
    to: DateTime<Utc>,
    listing: Listing,
}

impl CleanupService {
    /// One reconciliation run (module documentation). `started`: when the cleanup run began,
    /// from which the budget counts.
    pub(super) async fn reconcile(
        &self,
        r: &Reconcile,
        now: DateTime<Utc>,
        started: tokio::time::Instant,
    ) -> (Reconciled, Result<(), String>) {
        let mut done = Reconciled::default();
        let result = self.reconcile_inner(r, now, started, &mut done).await;
        (done, result)
    }

    async fn reconcile_inner(
        &self,
        r: &Reconcile,
        now: DateTime<Utc>,
        started: tokio::time::Instant,
        done: &mut Reconciled,
    ) -> Result<(), String> {
        let window = chrono::Duration::from_std(r.window).unwrap_or_default();
        let (floor, top) = (now - window, now - RECONCILE_MIN_AGE);
        let key = r.key();
        let mut progress = match r.cursors.load(&key).await.map_err(|e| e.to_string())? {
            Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                warn!(error = %e, "unreadable reconciliation cursor; listing the whole window");
                Progress::default()
            }),
            None => Progress::default(),
        };
        loop {
            let (mut listing, to) = match progress.pending.take() {
                Some(p) => (p.listing, p.to),
                None => {
                    let from = progress
                        .covered_until
                        .map_or(floor, |c| floor.max(c + chrono::Duration::milliseconds(1)));
                    if from > top {
                        return Ok(());
                    }
                    (Listing::new(&r.phone_number_id, from, top, r.page), top)
                }
            };
            // A call older than the TTL may have had its record and expired: never adopt it.
            listing.clamp_from(floor);
            loop {
                if started.elapsed() >= r.budget {
                    done.unfinished = true;
                    progress.pending = Some(Pending { to, listing });
                    return self.save(r, &key, &progress).await;
                }
                let asked = listing.requests();
                let page = listing.next_page(r.vapi.as_ref()).await;
                done.vapi_requests += listing.requests() - asked;
                match page.map_err(|e| e.to_string())? {
                    Some(calls) => {
                        self.adopt_page(r, &calls, now, done).await?;
                        progress.pending = Some(Pending {
                            to,
                            listing: listing.clone(),
                        });
                        self.save(r, &key, &progress).await?;
                        progress.pending = None;
                    }
                    None => break,
                }
            }
            progress.covered_until = Some(to);
            self.save(r, &key, &progress).await?;
            if to >= top {
                return Ok(());
            }
        }
    }

    async fn save(&self, r: &Reconcile, key: &str, progress: &Progress) -> Result<(), String> {
        let text = serde_json::to_string(progress).map_err(|e| e.to_string())?;
        r.cursors.save(key, &text).await.map_err(|e| e.to_string())
    }

    /// Records each call of the page that is ours and has no record, from what Vapi lists of
    /// it, `pending` with a deadline, and asks its watchdog to look at once (if that send fails,
    /// the deadline brings the record back to a later run).
    async fn adopt_page(
        &self,
        r: &Reconcile,
        calls: &[Value],
        now: DateTime<Utc>,
        done: &mut Reconciled,
    ) -> Result<(), String> {
        let ours: Vec<_> = calls
            .iter()
            .filter(|c| attempt_of(c, &r.deployment).is_some())
            .map(snapshot_from_call)
            .filter(|s| !s.call_id.is_empty())
            .collect();
        done.listed += calls.len() as u32;
        done.foreign += (calls.len() - ours.len()) as u32;
        if ours.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ours.iter().map(|s| s.call_id.clone()).collect();
        let recorded = self.store.recorded(&ids).await.map_err(|e| e.to_string())?;
        for snap in ours.iter().filter(|s| !recorded.contains(&s.call_id)) {
            let record = adopted_record(snap, now);
            // Recorded meanwhile (a webhook, the watchdog, another run): not ours to adopt.
            if !self
                .record_and_watch(&record, now, Duration::ZERO)
                .await
                .map_err(|e| e.to_string())?
            {
                continue;
            }
            warn!(
                call_id = %snap.call_id,
                "a call placed in Vapi had no record; recorded it, its watchdog will finish it"
            );
            self.metrics.count("CallsAdoptedByCleanup", 1, &[]);
            done.adopted += 1;
        }
        Ok(())
    }
}
