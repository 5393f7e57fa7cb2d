//! The promises, checked at the end of a run against what the model knows happened:
//! - one Vapi call per `Idempotency-Key`, whatever failed;
//! - a client learns the call id placed for it, within a bound, even when a process died;
//! - every call ringback must know settles (`complete` or `fetch_failed`) within a bound derived
//!   from the configuration, and stays readable;
//! - the provider row and the interaction log hold everything ringback accepted, late data
//!   included, in exactly one log per call;
//! - a provider row holds the most recently started call to that provider;
//! - every webhook delivery ringback acknowledged is kept raw (the events table);
//! - each settled call with a `callbackUrl` has its settling event (`call.completed` or
//!   `call.failed`) delivered at least once, under one `webhook-id` with one body, signed so that
//!   a Standard Webhooks verifier accepts it;
//! - every event a receiver gets carries a state the record committed (never one a lost race
//!   made up), and a settling event says how the call ended: no `call.failed` for a call that
//!   completes, no `call.completed` for one that failed;
//! - the last state a settled call's record committed (late data, a replay's corrected record)
//!   reaches its receiver and the bus in some event (`check_events.rs`);
//! - with an event bus, the same of the bus: each settled call's settling event taken at least
//!   once under one id, every entry carrying a committed state and how the call ended;
//! - once quiet, the listing agrees with the records (`check_listing.rs`);
//! - a deployment never records a call it did not place: another deployment's calls on the same
//!   phone number (listed by Vapi, never placed here) have no record, no provider row and no
//!   interaction log.
//!
//! (Bad input never getting a 5xx is checked as each answer comes, in `actors.rs`.)

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use ringback::adapters::dynamodb::{row_can_hold, stored_json, stored_text, to_json};
use ringback::config::Timing;
use ringback::domain::{parse_transcript, TranscriptLine, MAX_REDRIVES};
use serde_json::Value;

use crate::clock::{Ms, SECOND};
use crate::vapi::Call;
use crate::world::{World, CLEANUP_EVERY, IN_DOUBT_AFTER, TABLES};

pub(crate) type Item = std::collections::HashMap<String, AttributeValue>;

/// How long after the storm (or its first request) a client may take to learn its call id: the
/// doubt window, one retry interval, and slack.
pub const LEARN_BOUND: Ms = IN_DOUBT_AFTER + 60 * SECOND;

/// How long after a call ended (or the storm, or ringback learning of it) it may take to settle:
/// the cleanup notices a stuck record within the deadline cap plus one period, and re-drives it
/// at most MAX_REDRIVES times before settling it.
pub fn settle_bound(t: &Timing) -> Ms {
    let cap = t.deadline_cap.as_millis() as Ms;
    (Ms::from(MAX_REDRIVES) + 1) * (cap + CLEANUP_EVERY)
}

fn s(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

impl World {
    pub async fn check(&mut self) {
        let all: BTreeMap<String, Call> = self
            .vapi
            .snapshot()
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        // Erased calls are held to `check_erase.rs`; every other promise holds for the rest,
        // which an erase must not have touched.
        let erased = self.committed.lock().unwrap().erased.clone();
        let calls: BTreeMap<String, Call> = all
            .iter()
            .filter(|(id, _)| !erased.contains(*id))
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        self.check_clients();
        self.check_settled(&calls);
        self.check_rows(&calls, &all).await;
        self.check_pushes(&calls);
        self.check_bus(&calls);
        self.check_kept(&calls).await;
        self.check_foreign(&all).await;
        self.check_listing().await;
        self.check_recovery(&calls);
        self.check_erased(&all).await;
        self.check_counters().await;
    }

    async fn check_foreign(&mut self, calls: &BTreeMap<String, Call>) {
        let foreign = self.vapi.foreign.lock().unwrap().clone();
        if foreign.is_empty() {
            return;
        }
        // Any item under a foreign call's id (even an expired one) means it was recorded.
        let mut recorded = Vec::new();
        for chunk in foreign.chunks(100) {
            let keys = chunk
                .iter()
                .map(|id| {
                    std::collections::HashMap::from([(
                        "callId".to_owned(),
                        AttributeValue::S(id.clone()),
                    )])
                })
                .collect();
            let out = self
                .dynamo
                .batch_get_item()
                .request_items(
                    TABLES.0,
                    aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                        .set_keys(Some(keys))
                        .consistent_read(true)
                        .build()
                        .expect("keys"),
                )
                .send()
                .await
                .expect("calls readable");
            assert!(
                out.unprocessed_keys.is_none_or(|u| u.is_empty()),
                "the embedded store left keys unprocessed"
            );
            let items = out.responses.unwrap_or_default().remove(TABLES.0);
            recorded.extend(items.unwrap_or_default().iter().map(|i| s(i, "callId")));
        }
        let scan = |table: &'static str, key: &'static str| {
            let dynamo = self.dynamo.clone();
            async move {
                // Big rows (huge summaries) spread a table over many 1 MB pages.
                let mut seen = std::collections::BTreeSet::new();
                let mut start = None;
                loop {
                    let out = dynamo
                        .scan()
                        .table_name(table)
                        .projection_expression("#k")
                        .expression_attribute_names("#k", key)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scannable");
                    seen.extend(out.items.unwrap_or_default().iter().map(|i| s(i, key)));
                    start = out.last_evaluated_key;
                    if start.is_none() {
                        break seen;
                    }
                }
            }
        };
        let requests = scan(TABLES.2, "requestId").await;
        let providers = scan(TABLES.1, "providerId").await;
        for id in foreign {
            if recorded.contains(&id) || self.watch.calls.contains_key(&id) {
                self.violation(format!(
                    "call {id} was placed by another deployment, yet this one recorded it"
                ));
                continue;
            }
            let Some(call) = calls.get(&id) else { continue };
            let meta = |k: &str| call.metadata[k].as_str().unwrap_or_default().to_owned();
            if requests.contains(&meta("serviceRequestId"))
                || providers.contains(&meta("providerId"))
            {
                self.violation(format!(
                    "call {id} was placed by another deployment, yet this one persisted its rows"
                ));
            }
        }
    }

    async fn check_kept(&mut self, calls: &BTreeMap<String, Call>) {
        use ringback::ports::WebhookArchive;
        let archive = ringback::adapters::dynamodb::EventsTable::new(
            self.dynamo.clone(),
            crate::world::EVENTS_TABLE.into(),
            std::time::Duration::from_secs(86_400),
            self.clock.clone(),
        );
        for (id, call) in calls {
            if call.received.hooks == 0 {
                continue;
            }
            let kept = archive.webhooks(id).await.expect("events readable");
            // Each distinct body acknowledged is kept once (a re-sent body is not stored again);
            // one past the call's bound is counted as not kept.
            let log = archive.log(id).await.expect("events readable");
            let taken = kept.len() as u64 + log.not_kept;
            let distinct = call.received.kinds.len() as u64;
            if taken < distinct {
                self.violation(format!(
                    "call {id}: ringback acknowledged {distinct} distinct webhooks ({} deliveries) \
                     but kept {taken}",
                    call.received.hooks
                ));
            }
            if let Some(w) = kept.iter().find(|w| w.body.is_empty() || w.auth.is_empty()) {
                self.violation(format!(
                    "call {id}: kept webhook {} lacks its body or auth",
                    w.id
                ));
            }
        }
    }

    fn check_clients(&mut self) {
        let placed = self.vapi.placed.lock().unwrap().clone();
        let storm_end = self.storm.storm_end;
        for c in self.clients.clone() {
            let ids = placed.get(&c.name).cloned().unwrap_or_default();
            if ids.len() > 1 {
                self.violation(format!(
                    "client {} (one Idempotency-Key) placed {} calls: {ids:?}",
                    c.idx,
                    ids.len()
                ));
            }
            let first = c.first_sent.unwrap_or_default();
            match (ids.first(), &c.learned) {
                (Some(id), Some((learned, at))) => {
                    if learned != id {
                        self.violation(format!(
                            "client {} was given {learned}, but its call is {id}",
                            c.idx
                        ));
                    }
                    let due = first.max(storm_end) + LEARN_BOUND;
                    if *at > due {
                        self.violation(format!(
                            "client {} learned its call id at {:.0}s, past the bound {:.0}s",
                            c.idx,
                            *at as f64 / 1e3,
                            due as f64 / 1e3
                        ));
                    }
                }
                (Some(id), None) => self.violation(format!(
                    "client {} never learned the call {id} placed for it",
                    c.idx
                )),
                (None, Some((learned, _))) => self.violation(format!(
                    "client {} was given {learned}, a call Vapi never placed",
                    c.idx
                )),
                (None, None) if c.refused.is_none() => self.violation(format!(
                    "client {} never got a definite answer ({} requests)",
                    c.idx, c.requests
                )),
                (None, None) => {}
            }
            if c.refused.is_some() && !ids.is_empty() {
                self.violation(format!(
                    "client {} was told Vapi refused, yet call {} exists",
                    c.idx, ids[0]
                ));
            }
        }
    }

    fn check_settled(&mut self, calls: &BTreeMap<String, Call>) {
        // A record made again after the first expired (a late webhook) owes a settle of its own,
        // though the watcher saw the call settle before.
        let unsettled = self.committed.lock().unwrap().unsettled_calls();
        for id in unsettled {
            self.violation(format!("call {id}: its latest record never settled"));
        }
        let bound = settle_bound(&self.services.enrichment.timing);
        for (id, seen) in self.watch.calls.clone() {
            if seen.erased
                || !calls.contains_key(&id) && self.committed.lock().unwrap().erased.contains(&id)
            {
                continue;
            }
            let end = calls.get(&id).map_or(0, |c| c.plan.end);
            let due = end.max(seen.since).max(self.storm.storm_end) + bound;
            match seen.terminal {
                None => self.violation(format!(
                    "call {id} never settled (last seen {:?})",
                    seen.data_status
                )),
                Some(t) if t > due => self.violation(format!(
                    "call {id} settled at {:.0}s, past the bound {:.0}s",
                    t as f64 / 1e3,
                    due as f64 / 1e3
                )),
                Some(_) => {}
            }
            // Giving up is right only when Vapi's data was not there when ringback last asked.
            let Some(call) = calls.get(&id) else { continue };
            let settled = seen
                .settled_at
                .as_deref()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .map(|t| self.clock.ms_of(t));
            if let (Some("fetch_failed"), Some(ready), Some(settled)) = (
                seen.data_status.as_deref(),
                call.plan.complete_at(),
                settled,
            ) {
                let last_asked = call
                    .answered_gets
                    .iter()
                    .copied()
                    .filter(|t| *t <= settled)
                    .max();
                if settled > self.storm.storm_end
                    && ready + 60 * SECOND < settled
                    && last_asked.is_none_or(|t| t < ready)
                {
                    self.violation(format!(
                        "call {id} settled fetch_failed at {:.0}s without asking Vapi, which had its data since {:.0}s (last asked: {:?})",
                        settled as f64 / 1e3,
                        ready as f64 / 1e3,
                        last_asked.map(|t| t / 1000)
                    ));
                }
            }
        }
    }

    pub(crate) async fn logs_of(&self, request_id: &str) -> Vec<Item> {
        let (mut logs, mut start) = (Vec::new(), None);
        loop {
            let out = self
                .dynamo
                .query()
                .table_name(TABLES.2)
                .key_condition_expression("requestId = :r")
                .expression_attribute_values(":r", AttributeValue::S(request_id.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("logs readable");
            logs.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return logs;
            }
        }
    }

    pub(crate) async fn provider_row(&self, provider_id: &str) -> Option<Item> {
        self.dynamo
            .get_item()
            .table_name(TABLES.1)
            .key("providerId", AttributeValue::S(provider_id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("providers readable")
            .item
    }

    /// What the rows must hold for a call: what its accepted webhooks carried, and everything
    /// Vapi had when it settled `complete`.
    fn expected(&self, call: &Call) -> (bool, bool, bool) {
        let complete = self.watch.calls[&call.id].data_status.as_deref() == Some("complete");
        let r = &call.received;
        (
            r.transcript || complete,
            r.analysis || complete,
            r.started || (complete && call.plan.start.is_some()),
        )
    }

    async fn check_rows(&mut self, calls: &BTreeMap<String, Call>, all: &BTreeMap<String, Call>) {
        let mut by_provider: BTreeMap<String, Vec<&Call>> = BTreeMap::new();
        // Providers one of whose calls was erased: their row may hold that call.
        let erased_providers: std::collections::BTreeSet<&str> = all
            .iter()
            .filter(|(id, _)| !calls.contains_key(*id))
            .filter_map(|(_, c)| c.metadata["providerId"].as_str())
            .collect();
        let known: Vec<String> = self.watch.calls.keys().cloned().collect();
        for id in &known {
            let Some(call) = calls.get(id) else { continue };
            let request = call.metadata["serviceRequestId"]
                .as_str()
                .unwrap_or_default();
            let provider = call.metadata["providerId"].as_str().unwrap_or_default();
            by_provider
                .entry(provider.to_owned())
                .or_default()
                .push(call);
            let (transcript, analysis, _) = self.expected(call);
            let logs = self.logs_of(request).await;
            let mine: Vec<&Item> = logs.iter().filter(|l| s(l, "callId") == call.id).collect();
            if logs.len() != 1 || mine.len() != 1 {
                self.violation(format!(
                    "call {}: {} interaction logs for its request, {} of them its own",
                    call.id,
                    logs.len(),
                    mine.len()
                ));
                continue;
            }
            let log = mine[0];
            if transcript {
                let lines: Option<Vec<TranscriptLine>> = match log.get("transcript") {
                    Some(l @ AttributeValue::L(_)) => serde_json::from_value(to_json(l)).ok(),
                    _ => stored_text(log, "transcript", "transcript_gz")
                        .and_then(|t| serde_json::from_str(&t).ok()),
                };
                let want = parse_transcript(call.plan.transcript.as_deref().unwrap_or_default());
                if lines.as_ref() != Some(&want) {
                    self.violation(format!(
                        "call {}: its interaction log lost transcript lines ({} of {})",
                        call.id,
                        lines.map_or(0, |l| l.len()),
                        want.len()
                    ));
                }
            }
            if let (true, Some(summary)) = (analysis, &call.plan.summary) {
                let detail = stored_text(log, "detail", "detail_gz").unwrap_or_default();
                if &detail != summary && !lost_only_what_cannot_fit(log, &detail, call) {
                    self.violation(format!(
                        "call {}: its interaction log says {detail:?}, not the summary",
                        call.id
                    ));
                }
            }
        }
        for (provider, calls) in by_provider {
            if erased_providers.contains(provider.as_str()) {
                // The row may rightly hold an erased call that started last (held to
                // `check_erase.rs`); when it holds one of the others, that one must be the latest
                // of them, and whole.
                let holder = self.provider_row(&provider).await.map(|r| s(&r, "call_id"));
                if !holder.is_some_and(|h| calls.iter().any(|c| c.id == h)) {
                    continue;
                }
            }
            self.check_provider(&provider, &calls).await;
        }
    }

    /// When a call started as ringback knows it: Vapi's `startedAt` when it got it, else the
    /// record's creation; `None` when either could be.
    fn start_key(&self, call: &Call) -> Option<Ms> {
        let (_, _, started) = self.expected(call);
        let created = self.watch.calls[&call.id]
            .created_at
            .as_deref()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .map(|t| self.clock.ms_of(t));
        match call.plan.start {
            Some(s) if started => Some(s),
            Some(_) => None,
            None => created,
        }
    }

    async fn check_provider(&mut self, provider: &str, calls: &[&Call]) {
        let Some(row) = self.provider_row(provider).await else {
            self.violation(format!("provider {provider}: no row"));
            return;
        };
        let holder = s(&row, "call_id");
        let keys: Option<Vec<(Ms, &str)>> = calls
            .iter()
            .map(|c| self.start_key(c).map(|k| (k, c.id.as_str())))
            .collect();
        let Some(keys) = keys else {
            if !calls.iter().any(|c| c.id == holder) {
                self.violation(format!(
                    "provider {provider}: the row holds {holder}, no call of its own"
                ));
            }
            return;
        };
        let winner = keys.iter().max().map(|(_, id)| *id).unwrap_or_default();
        if holder != winner {
            self.violation(format!(
                "provider {provider}: the row holds {holder}, not the most recently started call {winner} (starts {keys:?})"
            ));
            return;
        }
        let call = calls.iter().find(|c| c.id == winner).expect("the winner");
        let (transcript, analysis, _) = self.expected(call);
        if transcript
            && stored_text(&row, "call_transcript", "call_transcript_gz") != call.plan.transcript
        {
            self.violation(format!(
                "provider {provider}: the row lost {winner}'s transcript"
            ));
        }
        if analysis {
            let kept = stored_text(&row, "call_summary", "call_summary_gz");
            if call.plan.summary.is_some()
                && kept != call.plan.summary
                && !lost_only_what_cannot_fit(&row, kept.as_deref().unwrap_or_default(), call)
            {
                self.violation(format!(
                    "provider {provider}: the row lost {winner}'s summary"
                ));
            }
            let data: Option<Value> = stored_json(&row, "call_result", "call_result_gz");
            if data != call.plan.structured {
                self.violation(format!(
                    "provider {provider}: the row lost {winner}'s structured data"
                ));
            }
        }
        if truncated(&row) && row_can_hold(&texts_of(call)) {
            self.violation(format!("provider {provider}: the row was truncated"));
        }
    }
}

fn truncated(row: &Item) -> bool {
    row.get("data_truncated") == Some(&AttributeValue::Bool(true))
}

/// The large texts of a call a row holds: its transcript and summary.
fn texts_of(call: &Call) -> Vec<&str> {
    [&call.plan.transcript, &call.plan.summary]
        .into_iter()
        .filter_map(|t| t.as_deref())
        .collect()
}

/// A row may lose a summary only when the call's texts cannot all fit one item even compressed
/// (api.md §8: the calls table keeps the full record), and then says so and keeps its beginning (a preview, ending in `…`).
fn lost_only_what_cannot_fit(row: &Item, kept: &str, call: &Call) -> bool {
    let summary = call.plan.summary.as_deref().unwrap_or_default();
    truncated(row)
        && !row_can_hold(&texts_of(call))
        && summary.starts_with(kept.trim_end_matches('…'))
}
