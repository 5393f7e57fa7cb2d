//! The promises of an erase, checked once the run is quiet:
//! - nothing of an erased call is readable from any table or route: `GET /calls/{id}` answers
//!   410, the record is a tombstone with no call data, the events table holds only its mark (no
//!   kept webhook, no pushed event or attempt), the listing has no summary, and its provider row
//!   and interaction log (where they hold it) have no transcript, summary or structured data and
//!   say erased;
//! - nothing is pushed after an erase answered, but a delivery already under way (its event read
//!   before the erase answered);
//! - erasing one call never touches another: every other promise (`check.rs`) still holds for
//!   the calls not erased, and the counts of calls by state agree with the summaries, one by one.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use ringback::adapters::dynamodb::CallsTable;
use ringback::ports::CallStore;
use serde_json::Value;

use crate::check::Item;
use crate::vapi::Call;
use crate::world::{World, EVENTS_TABLE, TABLES};

/// Texts an erased call's rows must not hold.
const PROVIDER_TEXTS: [&str; 6] = [
    "call_transcript",
    "call_transcript_gz",
    "call_summary",
    "call_summary_gz",
    "call_result",
    "call_result_gz",
];
const LOG_TEXTS: [&str; 3] = ["transcript", "transcript_gz", "detail_gz"];

fn holds(item: &Item, name: &str) -> bool {
    item.get(name).is_some_and(|v| !v.is_null())
}

impl World {
    pub(crate) async fn check_erased(&mut self, all: &BTreeMap<String, Call>) {
        let erased = self.committed.lock().unwrap().erased.clone();
        let calls = CallsTable::new(
            self.dynamo.clone(),
            TABLES.0.into(),
            std::time::Duration::from_secs(1800),
            self.clock.clone(),
        );
        for id in &erased {
            let status = ringback::api::get_call(
                &self.services.status,
                &ringback::config::ApiAuth::Token(crate::world::TOKEN.into()),
                &crate::actors::bearer(),
                id,
            )
            .await;
            if status.status() != http::StatusCode::GONE {
                self.violation(format!("erased call {id}: GET answers {}", status.status()));
            }
            match calls.get(id).await.expect("calls readable") {
                Some(v) if v.record.book.erased_at.is_some() => {
                    let r = &v.record.result;
                    let data = r.transcript.is_some()
                        || !r.messages.is_empty()
                        || r.analysis != Default::default()
                        || r.provider != Default::default()
                        || r.callback_url.is_some()
                        || r.recording_url.is_some();
                    if data {
                        self.violation(format!("erased call {id}: its tombstone holds call data"));
                    }
                }
                other => self.violation(format!(
                    "erased call {id}: its record is {} (not its tombstone)",
                    if other.is_some() { "live" } else { "gone" }
                )),
            }
            let history = self.history(id).await;
            let left: Vec<String> = history
                .iter()
                .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
                .filter(|sk| sk != "erased")
                .collect();
            if !left.is_empty() {
                self.violation(format!(
                    "erased call {id}: the events table still holds {left:?}"
                ));
            }
            if history.len() == left.len() {
                self.violation(format!("erased call {id}: no erasure mark"));
            }
            if self.summary(id).await.is_some() {
                self.violation(format!("erased call {id}: still listed"));
            }
            if let Some(call) = all.get(id) {
                self.check_erased_rows(id, call).await;
            }
        }
        self.check_erased_pushes();
    }

    async fn check_erased_rows(&mut self, id: &str, call: &Call) {
        let provider = call.metadata["providerId"].as_str().unwrap_or_default();
        if let Some(row) = self.provider_row(provider).await {
            let holder = row.get("call_id").and_then(|v| v.as_s().ok());
            if holder.map(String::as_str) == Some(id) {
                let texts: Vec<&str> = PROVIDER_TEXTS
                    .into_iter()
                    .filter(|n| holds(&row, n))
                    .collect();
                if !texts.is_empty() || row.get("call_erased") != Some(&AttributeValue::Bool(true))
                {
                    self.violation(format!(
                        "erased call {id}: its provider row still holds {texts:?} (or is not marked erased)"
                    ));
                }
            }
        }
        let request = call.metadata["serviceRequestId"]
            .as_str()
            .unwrap_or_default();
        for log in self.logs_of(request).await {
            if log
                .get("callId")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                != Some(id)
            {
                continue;
            }
            let texts: Vec<&str> = LOG_TEXTS.into_iter().filter(|n| holds(&log, n)).collect();
            if !texts.is_empty() || log.get("erased") != Some(&AttributeValue::Bool(true)) {
                self.violation(format!(
                    "erased call {id}: its interaction log still holds {texts:?} (or is not marked erased)"
                ));
            }
        }
    }

    /// A POST that reached the receiver after its call's erase answered carries an event that
    /// was read before: a delivery under way cannot be called back, but none may start after.
    fn check_erased_pushes(&mut self) {
        let log = self.receiver.log.lock().unwrap().clone();
        let reads = self.event_reads.lock().unwrap().clone();
        for r in log {
            let event: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let call = event["data"]["callId"].as_str().unwrap_or_default();
            let Some(&answered) = self.erased.get(call) else {
                continue;
            };
            if r.at <= answered {
                continue;
            }
            let id = event["id"].as_str().unwrap_or_default();
            let under_way = reads
                .iter()
                .any(|(c, e, at)| c == call && e == id && *at <= answered);
            if !under_way {
                self.violation(format!(
                    "erased call {call}: event {id} pushed at {:.0}s, after the erase answered at {:.0}s",
                    r.at as f64 / 1e3,
                    answered as f64 / 1e3
                ));
            }
        }
    }

    /// The counts of calls by state (what `GET /stats` reads) equal, state by state, the
    /// summaries there are: exact through every fault, every erase and every lost race.
    pub(crate) async fn check_counters(&mut self) {
        let (mut counted, mut listed) = (
            BTreeMap::<String, i64>::new(),
            BTreeMap::<String, i64>::new(),
        );
        for item in self.index_items().await {
            let id = item
                .get("callId")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if id.starts_with("stats#") {
                for (name, v) in &item {
                    if let (Some(state), Ok(n)) = (name.strip_prefix("ds_"), v.as_n()) {
                        *counted.entry(state.to_owned()).or_default() +=
                            n.parse::<i64>().unwrap_or(0);
                    }
                }
            } else if let Some(ds) = item.get("dataStatus").and_then(|v| v.as_s().ok()) {
                *listed.entry(ds.clone()).or_default() += 1;
            }
        }
        counted.retain(|_, n| *n != 0);
        self.check_open_pushes().await;
        if counted != listed {
            self.violation(format!(
                "the counts of calls by state {counted:?} differ from the summaries {listed:?}"
            ));
        }
    }

    /// The pushed events `GET /stats` counts pending and dead-lettered are, state by state, the
    /// events the table holds in that state (the open-state index never lags once quiet here).
    async fn check_open_pushes(&mut self) {
        use ringback::ports::{PushState, PushStore};
        let (mut held, mut start) = (BTreeMap::<String, u64>::new(), None);
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(EVENTS_TABLE)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("events scannable");
            for item in out.items.unwrap_or_default() {
                if item
                    .get("kind")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("push")
                {
                    let state = item
                        .get("state")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    *held.entry(state).or_default() += 1;
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let events = ringback::adapters::dynamodb::EventsTable::new(
            self.dynamo.clone(),
            EVENTS_TABLE.into(),
            std::time::Duration::from_secs(86_400),
            self.clock.clone(),
        );
        for state in [PushState::Pending, PushState::Failed] {
            let (counted, _) = events
                .open_count(state, u32::MAX - 1)
                .await
                .expect("countable");
            let there = held.get(state.as_str()).copied().unwrap_or(0);
            if counted != there {
                self.violation(format!(
                    "stats counts {counted} {} pushed events, the table holds {there}",
                    state.as_str()
                ));
            }
        }
    }

    async fn history(&self, id: &str) -> Vec<Item> {
        self.dynamo
            .query()
            .table_name(EVENTS_TABLE)
            .key_condition_expression("callId = :c")
            .expression_attribute_values(":c", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("events readable")
            .items
            .unwrap_or_default()
    }
}
