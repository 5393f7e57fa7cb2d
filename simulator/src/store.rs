//! The in-memory call store, the per-call fetch scripts and the request counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

/// How `GET /call/{id}` answers for one call, on top of the call's current state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FetchScript {
    /// The call as it is.
    #[default]
    Always,
    /// GETs before the n-th (1-based) return an incomplete copy (no `analysis`, transcript cut
    /// below 50 characters); the n-th and later return the call as it is.
    CompleteOnNth(u32),
    /// The first `times` GETs answer `status` with a NestJS error body (429 adds
    /// `Retry-After: 1`); later GETs return the call as it is.
    FailTimes {
        /// HTTP status of the failures, e.g. 500 or 429.
        status: u16,
        /// How many GETs fail before the call is returned.
        times: u32,
    },
    /// Always the incomplete copy: the call never looks complete.
    Never,
    /// The call as it is, answered after this delay (for client timeouts).
    Slow(Duration),
}

/// What one GET should answer, decided under the store lock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fetch {
    Found(Value),
    Fail(u16),
    After(Duration, Value),
    Missing,
}

impl FetchScript {
    /// The answer to the `nth` (1-based) GET of `call`.
    pub(crate) fn answer(&self, nth: u32, call: &Value) -> Fetch {
        match *self {
            FetchScript::Always => Fetch::Found(call.clone()),
            FetchScript::CompleteOnNth(n) if nth < n => Fetch::Found(incomplete(call)),
            FetchScript::CompleteOnNth(_) => Fetch::Found(call.clone()),
            FetchScript::FailTimes { status, times } if nth <= times => Fetch::Fail(status),
            FetchScript::FailTimes { .. } => Fetch::Found(call.clone()),
            FetchScript::Never => Fetch::Found(incomplete(call)),
            FetchScript::Slow(d) => Fetch::After(d, call.clone()),
        }
    }
}

/// A copy that fails every completeness rule but `status`: no analysis, transcript < 50 chars.
pub fn incomplete(call: &Value) -> Value {
    let mut c = call.clone();
    if let Some(obj) = c.as_object_mut() {
        obj.remove("analysis");
        truncate(obj.get_mut("transcript"));
        if let Some(art) = obj.get_mut("artifact").and_then(Value::as_object_mut) {
            truncate(art.get_mut("transcript"));
        }
    }
    c
}

fn truncate(v: Option<&mut Value>) {
    if let Some(Value::String(s)) = v {
        *s = s.chars().take(40).collect();
    }
}

/// Request and delivery counters, for tests and the local runner's diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every `POST /call`, accepted or refused.
    pub post_call: u32,
    /// The `POST /call` requests answered with a 4xx (bad key, invalid body, `refused`).
    pub post_call_refused: u32,
    /// Every `GET /call/{id}`, known id or not.
    pub get_call_total: u32,
    /// `GET /call/{id}` requests per call id.
    pub get_call: BTreeMap<String, u32>,
    /// Webhook POST attempts per call id (a duplicate or a retry counts again).
    pub webhooks_sent: BTreeMap<String, u32>,
    /// Webhook attempts that failed: no answer, a non-2xx answer, or a non-loopback URL.
    pub webhook_failures: u32,
    /// Every `GET /call` (listing) request.
    pub list_calls: u32,
}

impl Stats {
    /// Webhook POST attempts over all calls.
    pub fn webhooks_sent_total(&self) -> u32 {
        self.webhooks_sent.values().sum()
    }
}

/// One stored call.
pub(crate) struct Entry {
    /// The call as `GET /call/{id}` shows it before the fetch script applies.
    pub call: Value,
    pub script: FetchScript,
    pub gets: u32,
    /// Flips to true once the lifecycle is over and every webhook was attempted.
    pub finished: watch::Sender<bool>,
}

/// The order `GET /call` lists in. Vapi lists newest first, but does not document it (and
/// `GET /call` takes no sort parameter): clients must not depend on it, and tests flip it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub calls: HashMap<String, Entry>,
    /// `GET /call`'s index: by `createdAt` (epoch ms), then insertion order.
    pub by_created: BTreeMap<(i64, u64), String>,
    inserted: u64,
    pub list_order: ListOrder,
    pub stats: Stats,
}

#[derive(Default)]
pub(crate) struct Store(Mutex<Inner>);

impl Store {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, id: &str, call: Value, script: FetchScript, finished: bool) {
        let mut g = self.lock();
        let entry = Entry {
            call,
            script,
            gets: 0,
            finished: watch::Sender::new(finished),
        };
        // `createdAt` never changes after a call is stored, so the index stays true.
        let created = entry.call["createdAt"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .map_or(i64::MIN, |t| t.timestamp_millis());
        if g.calls.insert(id.to_string(), entry).is_none() {
            g.inserted += 1;
            let seq = g.inserted;
            g.by_created.insert((created, seq), id.to_string());
        }
    }

    /// Replaces a call's fetch script (an outage of `GET /call/{id}` for it, or its end); false
    /// for an unknown id. Its GETs keep counting.
    pub fn set_script(&self, id: &str, script: FetchScript) -> bool {
        match self.lock().calls.get_mut(id) {
            Some(e) => {
                e.script = script;
                true
            }
            None => false,
        }
    }

    /// Applies `f` to the stored call, if it exists.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Value)) {
        if let Some(e) = self.lock().calls.get_mut(id) {
            f(&mut e.call);
        }
    }

    /// Forgets a call (`DELETE /call/{id}`): its stored JSON, if it was there.
    pub fn remove(&self, id: &str) -> Option<Value> {
        let mut g = self.lock();
        let entry = g.calls.remove(id)?;
        g.by_created.retain(|_, v| v != id);
        Some(entry.call)
    }

    /// Counts one GET and decides its answer.
    pub fn fetch(&self, id: &str) -> Fetch {
        let mut g = self.lock();
        g.stats.get_call_total += 1;
        *g.stats.get_call.entry(id.to_string()).or_default() += 1;
        match g.calls.get_mut(id) {
            Some(e) => {
                e.gets += 1;
                e.script.answer(e.gets, &e.call)
            }
            None => Fetch::Missing,
        }
    }

    pub fn mark_finished(&self, id: &str) {
        if let Some(e) = self.lock().calls.get(id) {
            e.finished.send_replace(true);
        }
    }

    pub fn finished_rx(&self, id: &str) -> Option<watch::Receiver<bool>> {
        self.lock().calls.get(id).map(|e| e.finished.subscribe())
    }

    pub fn count_webhook(&self, id: &str, ok: bool) {
        let mut g = self.lock();
        *g.stats.webhooks_sent.entry(id.to_string()).or_default() += 1;
        if !ok {
            g.stats.webhook_failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> Value {
        json!({"id": "c1", "status": "ended",
            "artifact": {"transcript": "AI: ".to_string() + &"x".repeat(80)},
            "analysis": {"summary": "s"}})
    }

    #[test]
    fn scripts_answer_by_request_number() {
        let c = call();
        let cut = incomplete(&c);
        assert!(cut.get("analysis").is_none());
        assert_eq!(cut["artifact"]["transcript"].as_str().unwrap().len(), 40);
        let on3 = FetchScript::CompleteOnNth(3);
        assert_eq!(on3.answer(2, &c), Fetch::Found(cut.clone()));
        assert_eq!(on3.answer(3, &c), Fetch::Found(c.clone()));
        let fail = FetchScript::FailTimes {
            status: 500,
            times: 2,
        };
        assert_eq!(fail.answer(2, &c), Fetch::Fail(500));
        assert_eq!(fail.answer(3, &c), Fetch::Found(c.clone()));
        assert_eq!(FetchScript::Never.answer(99, &c), Fetch::Found(cut));
    }
}
