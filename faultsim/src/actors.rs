//! What the events set off: clients placing calls and retrying as the API tells them, a watcher
//! polling every call ringback must know, Vapi delivering webhooks (and retrying them only as
//! the call's backoff plan says), the event source mapping running batches, the cleanup's
//! schedule, an operator's redrive, and bad input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, StatusCode};
use ringback::api;
use ringback::config::ApiAuth;
use serde_json::{json, Value};

use crate::clients::{Client, GIVE_UP_AFTER};
use crate::clock::{Ms, MINUTE, SECOND};
use crate::sqs::Sqs;
use crate::vapi::Hook;
use crate::world::{Event, Outage, TaskFuture, TaskOut, World, CLEANUP_EVERY, SECRET, TOKEN};

const POLL_EVERY: Ms = 60 * SECOND;
/// The share of calls an operator erases.
const ERASE_CHANCE: f64 = 0.15;

/// What polling saw of a call ringback must know.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// When ringback had to know it (placed, or its first webhook accepted).
    pub since: Ms,
    pub created_at: Option<String>,
    pub terminal: Option<Ms>,
    /// An operator replayed it (replays and redeliveries are started once a call).
    pub replayed: bool,
    pub data_status: Option<String>,
    /// When the record says it was last written, as the settled record shows it.
    pub settled_at: Option<String>,
    /// It answered 404 after it had been readable.
    pub expired: bool,
    /// It was erased (a poll answered 410, or the erase 200).
    pub erased: bool,
    /// Only perhaps known: a webhook about it was answered with an error, yet its write may have
    /// landed. Watched until a poll tells (readable: known; absent: never was).
    pub maybe: bool,
}

#[derive(Debug, Default)]
pub struct Watch {
    pub providers: Vec<String>,
    pub calls: BTreeMap<String, Seen>,
}

/// What a task is, to act on its outcome.
#[derive(Debug, Clone)]
pub enum Kind {
    Request(usize),
    Poll(String),
    Hook(Hook),
    /// One message of batch `batch`.
    Message {
        batch: u64,
        id: String,
    },
    /// A cleanup invocation, and which try of it.
    Cleanup(u32),
    Bad(u32),
    Replay(String),
    Redeliver,
    Erase(String, u32),
    Stats,
}

pub(crate) fn bearer() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("ascii"),
    );
    h
}

/// `POST /api/v1/vapi/calls` as a client sends it: its token and its `Idempotency-Key`.
pub(crate) async fn post_call(svc: &crate::world::Services, key: &str, body: &[u8]) -> TaskOut {
    let mut h = bearer();
    h.insert(
        "idempotency-key",
        HeaderValue::from_str(key).expect("ascii"),
    );
    let auth = ApiAuth::Token(TOKEN.into());
    answer(api::post_call(&svc.initiator, &auth, &h, body).await)
}

pub(crate) fn answer(r: api::Response) -> TaskOut {
    let body = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
    TaskOut::Http(r.status(), r.headers().clone(), body)
}

impl World {
    /// The tasks an event starts (some events act at once and start none).
    pub fn start(&mut self, event: Event) -> Vec<(Kind, TaskFuture)> {
        let svc = self.services.clone();
        let now = self.clock.ms();
        match event {
            Event::Request(i) if self.clients[i].done() => vec![],
            Event::Request(i)
                if self.clients[i].first_sent.is_some_and(|first| {
                    now > first.max(self.storm.storm_end) + crate::LEARN_BOUND + GIVE_UP_AFTER
                }) =>
            {
                self.clients[i].gave_up = true;
                vec![]
            }
            Event::Request(i) => {
                let c = &mut self.clients[i];
                c.first_sent.get_or_insert(now);
                c.requests += 1;
                let (key, body) = (c.key.clone(), c.body.clone());
                self.trace
                    .note(format!("client {i}: POST /calls (try {})", c.requests));
                vec![(
                    Kind::Request(i),
                    Box::pin(async move { post_call(&svc, &key, body.as_bytes()).await }),
                )]
            }
            Event::Poll(id) => vec![(
                Kind::Poll(id.clone()),
                Box::pin(async move {
                    let auth = ApiAuth::Token(TOKEN.into());
                    answer(api::get_call(&svc.status, &auth, &bearer(), &id).await)
                }),
            )],
            Event::Hook(hook) => {
                let Some(body) = self.vapi.hook_body(&hook) else {
                    return vec![];
                };
                let server = self.vapi.server(&hook.call_id);
                let mut h = HeaderMap::new();
                for (k, v) in server["headers"].as_object().into_iter().flatten() {
                    if let (Ok(k), Some(Ok(v))) = (
                        http::HeaderName::from_bytes(k.as_bytes()),
                        v.as_str().map(HeaderValue::from_str),
                    ) {
                        h.insert(k, v);
                    }
                }
                self.trace.note(format!(
                    "vapi: {:?} of {} (delivery {})",
                    hook.kind,
                    hook.call_id,
                    hook.attempt + 1
                ));
                let raw = body.to_string().into_bytes();
                if raw.len() > svc.webhook.max_bytes {
                    self.trace.note(format!(
                        "vapi: {:?} of {} is {} bytes, over MAX_WEBHOOK_BYTES",
                        hook.kind,
                        hook.call_id,
                        raw.len()
                    ));
                    self.oversized
                        .insert((hook.call_id.clone(), format!("{:?}", hook.kind)));
                }
                vec![(
                    Kind::Hook(hook),
                    Box::pin(
                        async move { answer(api::post_webhook(&svc.webhook, &h, &raw).await) },
                    ),
                )]
            }
            Event::Receive => {
                self.receive_due = None;
                self.batches()
            }
            Event::Cleanup | Event::CleanupRetry(_) => {
                let attempt = match event {
                    Event::CleanupRetry(n) => n,
                    _ => {
                        self.at(now + CLEANUP_EVERY, Event::Cleanup);
                        1
                    }
                };
                // Now and then two runs overlap (a slow run and the next schedule).
                let runs = if self.storming() && self.rng.chance(0.2) {
                    2
                } else {
                    1
                };
                (0..runs)
                    .map(|_| {
                        let svc = svc.clone();
                        let fut: TaskFuture = Box::pin(async move {
                            match svc.cleanup.run_once().await {
                                Ok(_) => TaskOut::Done,
                                Err(_) => TaskOut::Failed,
                            }
                        });
                        (Kind::Cleanup(attempt), fut)
                    })
                    .collect()
            }
            Event::Recovered => {
                let dead: Vec<String> = {
                    let mut sqs = self.sqs.lock().unwrap();
                    let bodies = sqs.dead.iter().map(|m| m.body.clone()).collect();
                    sqs.redrive(now);
                    bodies
                };
                for call_id in dead.iter().filter_map(|body| crate::sqs::chain_call(body)) {
                    self.recovery_redrives.push((call_id, now));
                }
                self.trace.note(format!(
                    "operator: recovered; redrove {} enrichment dead letters at once",
                    dead.len()
                ));
                vec![]
            }
            Event::Redrive => {
                let moved: usize = self
                    .queues()
                    .iter()
                    .map(|q| q.lock().unwrap().redrive(now))
                    .sum();
                self.trace
                    .note(format!("operator: redrove {moved} dead letters"));
                self.at(now + 60 * MINUTE, Event::Redrive);
                vec![]
            }
            Event::Elsewhere => {
                let provider = self.rng.pick(&self.watch.providers).clone();
                let request = self.rng.uuid();
                let metadata = json!({"providerId": provider, "serviceRequestId": request,
                    "providerName": "Elsewhere Co", "callMethod": "kestra"});
                let server = json!({"url": "https://ringback.example.com/api/v1/vapi/webhook",
                    "headers": {"X-Vapi-Secret": SECRET},
                    "backoffPlan": ringback::vapi::webhook_backoff_plan()});
                let id = self.vapi.place_elsewhere(now, metadata, server);
                self.trace.note(format!("vapi: call {id} placed elsewhere"));
                vec![]
            }
            Event::Foreign(n) => {
                self.vapi
                    .place_foreign(now, n, crate::world::PHONE_NUMBER_ID);
                self.trace.note(format!(
                    "vapi: another deployment placed {n} calls on our number"
                ));
                vec![]
            }
            Event::BadInput(kind) => vec![(Kind::Bad(kind), self.bad_input(kind))],
            Event::Replay(id) => {
                self.trace.note(format!("operator: replay {id}"));
                self.operated.0 += 1;
                let call = id.clone();
                let fut: TaskFuture = Box::pin(async move {
                    match svc.replay.replay(&call).await {
                        Ok(_) => TaskOut::Done,
                        Err(_) => TaskOut::Failed,
                    }
                });
                vec![(Kind::Replay(id), fut)]
            }
            Event::Erase(id, tries) => {
                let at_vapi = self.rng.chance(0.5);
                self.trace.note(format!(
                    "operator: erase {id}{}",
                    if at_vapi { " (and at Vapi)" } else { "" }
                ));
                let call = id.clone();
                let fut: TaskFuture = Box::pin(async move {
                    let auth = ApiAuth::Token(TOKEN.into());
                    let query = at_vapi.then_some("vapi=true");
                    answer(api::delete_call(&svc.erase, &auth, &bearer(), &call, query).await)
                });
                vec![(Kind::Erase(id, tries), fut)]
            }
            Event::Stats => {
                let fut: TaskFuture = Box::pin(async move {
                    let auth = ApiAuth::Token(TOKEN.into());
                    answer(api::get_stats(&svc.stats, &auth, &bearer(), None).await)
                });
                vec![(Kind::Stats, fut)]
            }
            Event::Redeliver(id) => {
                self.trace
                    .note(format!("operator: redeliver {id}'s events"));
                self.operated.1 += 1;
                let fut: TaskFuture = Box::pin(async move {
                    // Whatever each answers (409 while one is still being delivered) is fine:
                    // the checks are on what the receiver gets.
                    if let Ok(events) = svc.events.list(&id).await {
                        for e in events {
                            let _ = svc.redeliver.redeliver(&e.event.id).await;
                        }
                    }
                    TaskOut::Done
                });
                vec![(Kind::Redeliver, fut)]
            }
        }
    }

    /// Now and then an operator replays a call that settled, or redelivers its events, racing
    /// its late webhooks, the enrichment, the cleanup, each other and (half the time) the storm:
    /// a replay's chain that meets an outage settles as any call would then.
    fn operate_on(&mut self, id: &str) {
        let now = self.clock.ms();
        let after = if self.rng.chance(0.5) {
            now
        } else {
            now.max(self.storm.storm_end)
        };
        if self.rng.chance(0.1) {
            let at = after + self.rng.secs(0, 300);
            self.at(at, Event::Replay(id.to_owned()));
        }
        if self.rng.chance(0.1) {
            let at = after + self.rng.secs(0, 900);
            self.at(at, Event::Redeliver(id.to_owned()));
        }
        if self.rng.chance(0.2) {
            let at = now + self.rng.secs(0, 300);
            self.at(at, Event::Stats);
        }
    }

    /// Everything visible on the queue, in batches of 10 as the event source mapping takes them;
    /// during a storm some messages are also delivered a second time at once (SQS delivers at
    /// least once). Each message is a task of its own (`handle_batch` runs a batch's messages
    /// concurrently the same way); a batch whose process died deletes none of its messages.
    fn batches(&mut self) -> Vec<(Kind, TaskFuture)> {
        let now = self.clock.ms();
        let mut batches = Vec::new();
        // One event source mapping per queue, each taking batches of its own.
        for queue in self.queues() {
            loop {
                let got = queue.lock().unwrap().receive(now, 10);
                if got.is_empty() {
                    break;
                }
                let dups: Vec<_> = got
                    .iter()
                    .filter(|_| self.rng.chance(self.storm.duplicate_delivery))
                    .cloned()
                    .collect();
                batches.push((queue.clone(), got));
                if !dups.is_empty() {
                    batches.push((queue.clone(), dups));
                }
            }
        }
        let mut tasks = Vec::new();
        for (queue, msgs) in batches {
            self.next_batch += 1;
            let batch = self.next_batch;
            self.batch_queue.insert(batch, queue);
            let ids: Vec<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
            self.trace.note(format!("esm: batch {batch} {ids:?}"));
            for m in msgs {
                let svc = self.services.clone();
                let id = m.id.clone();
                let trace = self.trace.clone();
                let fut: TaskFuture = Box::pin(async move {
                    let failed = match svc.enrichment.process(&m.id, &m.body).await {
                        Err(e) => {
                            trace.note(format!("{}: {e}", m.id));
                            e.is_retry()
                        }
                        Ok(p) => {
                            let what = match &p.outcome {
                                ringback::domain::EnrichmentOutcome::Skipped(s) => s.as_str(),
                                ringback::domain::EnrichmentOutcome::Pushed(w) => w,
                                other => other.as_str(),
                            };
                            trace.note(format!("{}: {what}", m.id));
                            false
                        }
                    };
                    TaskOut::Message { failed }
                });
                tasks.push((Kind::Message { batch, id }, fut));
            }
        }
        tasks
    }

    /// Acts on a task's outcome: the next request, poll or redelivery, deletes of what a batch
    /// handled, and the checks each outcome allows at once.
    pub fn finish(&mut self, kind: Kind, out: TaskOut, faults: u32) {
        let now = self.clock.ms();
        match (kind, out) {
            (Kind::Request(i), out) => self.answered(i, out),
            (Kind::Poll(id), TaskOut::Http(status, _, body)) if status == StatusCode::OK => {
                let data = &body["data"];
                let ds = data["dataStatus"].as_str().unwrap_or_default().to_owned();
                let settled = matches!(ds.as_str(), "complete" | "fetch_failed");
                let seen = self.watch.calls.entry(id.clone()).or_default();
                seen.maybe = false;
                seen.created_at
                    .get_or_insert_with(|| data["createdAt"].as_str().unwrap_or_default().into());
                seen.data_status = Some(ds.clone());
                if settled {
                    let first = seen.terminal.is_none() && !seen.replayed;
                    seen.terminal = Some(now);
                    seen.settled_at = data["updatedAt"].as_str().map(str::to_owned);
                    self.trace.note(format!("watch: {id} is {ds}"));
                    if first {
                        self.operate_on(&id);
                    }
                } else {
                    self.at(now + POLL_EVERY, Event::Poll(id));
                }
            }
            (Kind::Poll(id), TaskOut::Http(status, _, _)) if status == StatusCode::GONE => {
                let seen = self.watch.calls.entry(id.clone()).or_default();
                seen.erased = true;
                seen.maybe = false;
                seen.terminal.get_or_insert(now);
            }
            (Kind::Poll(id), TaskOut::Http(status, _, _))
                if status == StatusCode::NOT_FOUND
                    && self
                        .watch
                        .calls
                        .get(&id)
                        .is_some_and(|s| s.maybe && s.created_at.is_none()) =>
            {
                self.watch.calls.remove(&id);
            }
            (Kind::Poll(id), TaskOut::Http(status, _, _)) if status == StatusCode::NOT_FOUND => {
                // Gone after it was readable: it expired unfinished (only a store outage longer
                // than the TTL allows that). It must come back, rebuilt from Vapi, and settle.
                if let Some(seen) = self.watch.calls.get_mut(&id) {
                    if seen.created_at.is_some() && !seen.expired {
                        seen.expired = true;
                        self.expired += 1;
                        self.trace
                            .note(format!("watch: {id} expired before it settled"));
                    }
                }
                self.at(now + POLL_EVERY, Event::Poll(id));
            }
            (Kind::Poll(id), _) => self.at(now + POLL_EVERY, Event::Poll(id)),
            (Kind::Hook(hook), out) => self.hook_answered(hook, out),
            (Kind::Message { batch, id }, out) => {
                let outcome = match out {
                    TaskOut::Message { failed } => Some(failed),
                    _ => None,
                };
                self.batch_results
                    .entry(batch)
                    .or_default()
                    .push((id, outcome));
            }
            // The function failed or died: Lambda retries an asynchronous invocation twice,
            // about a minute apart.
            (Kind::Cleanup(attempt), TaskOut::Failed | TaskOut::Crashed) if attempt < 3 => {
                self.at(
                    now + i64::from(attempt) * MINUTE,
                    Event::CleanupRetry(attempt + 1),
                );
            }
            (Kind::Cleanup(_), _) => {}
            (Kind::Bad(k), TaskOut::Http(status, _, body)) => {
                if status.is_server_error() && faults == 0 {
                    self.violation(format!(
                        "bad input {k} got {status} with no fault behind it: {body}"
                    ));
                }
            }
            (Kind::Bad(_), _) => {}
            // A replay that failed or died may still have landed (its write committed, its
            // answer lost): partial again until its new chain settles it, watched as a new call
            // is. One that never landed shows settled at the next poll.
            (Kind::Replay(id), _) => {
                if let Some(seen) = self.watch.calls.get_mut(&id) {
                    seen.terminal = None;
                    seen.replayed = true;
                    seen.since = now;
                }
                self.at(now + POLL_EVERY, Event::Poll(id));
            }
            (Kind::Redeliver, _) => {}
            // Whatever failed, stats answers: a part it could not read says so, and a count it
            // read is never below zero, nor are there more outcomes than calls.
            (Kind::Stats, TaskOut::Http(status, _, body)) => self.stats_answered(status, &body),
            (Kind::Stats, _) => {}
            (Kind::Erase(id, _), TaskOut::Http(status, _, body)) if status == StatusCode::OK => {
                self.trace.note(format!("operator: {id} erased"));
                if body["data"]["callId"].as_str() != Some(id.as_str()) {
                    self.violation(format!("erase of {id} answered for another call: {body}"));
                }
                self.erased.entry(id.clone()).or_insert(now);
                let seen = self.watch.calls.entry(id).or_default();
                seen.erased = true;
                seen.maybe = false;
                seen.terminal.get_or_insert(now);
            }
            // Nothing recorded yet (no webhook, the initiator's write still to come): a few more
            // tries, then the call is left as it is.
            (Kind::Erase(id, tries), TaskOut::Http(status, _, _))
                if status == StatusCode::NOT_FOUND =>
            {
                if tries < 5 {
                    self.at(now + 2 * MINUTE, Event::Erase(id, tries + 1));
                }
            }
            // Being placed (409), storage down (503), or the process died: tried again, as the
            // answer says; the erase finishes what a failed one left.
            (Kind::Erase(id, tries), _) => {
                let at = now + self.rng.secs(5, 90);
                self.at(at, Event::Erase(id, tries));
            }
        }
    }

    fn stats_answered(&mut self, status: StatusCode, body: &Value) {
        if status != StatusCode::OK {
            self.violation(format!("GET /stats answered {status}: {body}"));
            return;
        }
        let calls = &body["data"]["calls"];
        if calls.get("unavailable").is_some() {
            return;
        }
        let sum = |group: &str| -> Vec<i64> {
            calls[group]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_i64).collect())
                .unwrap_or_default()
        };
        let (states, outcomes) = (sum("byDataStatus"), sum("byOutcome"));
        let total = calls["total"].as_i64().unwrap_or(-1);
        if states.iter().chain(&outcomes).any(|n| *n < 0)
            || states.iter().sum::<i64>() != total
            || outcomes.iter().sum::<i64>() > total
        {
            self.violation(format!("GET /stats counted wrong: {calls}"));
        }
    }

    /// Vapi's side of a delivery: accepted, or retried only as the call's backoff plan allows.
    fn hook_answered(&mut self, hook: Hook, out: TaskOut) {
        let now = self.clock.ms();
        let status = match &out {
            TaskOut::Http(s, _, _) => Some(*s),
            _ => None,
        };
        if status.is_some_and(|s| s.is_success()) {
            self.vapi.delivered(&hook);
            if !self.placed_here(&hook.call_id) {
                self.know(&hook.call_id);
            }
            return;
        }
        if !self.placed_here(&hook.call_id) {
            self.know_maybe(&hook.call_id);
        }
        if let (Some(s), TaskOut::Http(_, _, body)) = (status, &out) {
            let documented = s == StatusCode::PAYLOAD_TOO_LARGE
                && self
                    .oversized
                    .contains(&(hook.call_id.clone(), format!("{:?}", hook.kind)));
            if s.is_client_error() && !documented {
                let msg = format!(
                    "Vapi's {:?} of {} was refused with {s}: {body}",
                    hook.kind, hook.call_id
                );
                self.violation(msg);
            }
        }
        let plan = self.vapi.server(&hook.call_id)["backoffPlan"].clone();
        let retries = plan["maxRetries"].as_u64().unwrap_or(0) as u32;
        let excluded = status.is_some_and(|s| {
            plan["excludedStatusCodes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c.as_u64() == Some(u64::from(s.as_u16()))))
        });
        if hook.attempt >= retries || excluded {
            self.trace.note(format!(
                "vapi: gives up on {:?} of {} ({status:?})",
                hook.kind, hook.call_id
            ));
            return;
        }
        let base = plan["baseDelaySeconds"].as_u64().unwrap_or(1) as Ms * SECOND;
        let factor = if plan["type"] == "exponential" {
            1 << hook.attempt
        } else {
            1
        };
        let next = Hook {
            attempt: hook.attempt + 1,
            ..hook
        };
        self.at(now + base * factor, Event::Hook(next));
    }

    /// The event source mapping's side of the batches that ran: a batch deletes the messages
    /// its handler did not report failed, unless its process died (then none: all come back).
    pub fn settle_batches(&mut self) {
        for (batch, results) in std::mem::take(&mut self.batch_results) {
            let queue = self
                .batch_queue
                .remove(&batch)
                .expect("every batch has its queue");
            let mut sqs = queue.lock().unwrap();
            if results.iter().any(|(_, r)| r.is_none()) {
                self.trace.note(format!(
                    "esm: batch {batch} died; its messages come back later"
                ));
                continue;
            }
            for (id, failed) in results {
                if failed == Some(false) {
                    sqs.delete(&id);
                }
            }
        }
    }

    /// The enrichment queue and the push queue.
    /// The schedule of a redrive at the natural moment: Vapi out until the first enrichment job
    /// is dead-lettered, then recovered (the storm over), and the operator redrives at once.
    fn recover_if_dead_lettered(&mut self) {
        let now = self.clock.ms();
        let Some((from, to, Outage::Vapi)) = self.storm.outage else {
            return;
        };
        if !self.storm.recover_at_dead_letter || !(from..to).contains(&now) {
            return;
        }
        if self.sqs.lock().unwrap().dead.is_empty() {
            return;
        }
        self.storm.outage = Some((from, now, Outage::Vapi));
        self.storm.storm_end = now;
        self.trace
            .note("vapi: recovers as the first job is dead-lettered; the storm is over");
        let at = now + self.rng.secs(0, 5);
        self.at(at, Event::Recovered);
    }

    fn queues(&self) -> [Arc<Mutex<Sqs>>; 2] {
        [self.sqs.clone(), self.push_sqs.clone()]
    }

    fn placed_here(&self, call_id: &str) -> bool {
        self.vapi
            .calls
            .lock()
            .unwrap()
            .get(call_id)
            .is_some_and(|c| c.phone_number_id == crate::world::PHONE_NUMBER_ID)
    }

    /// A call ringback may know: watched until a poll says whether it does.
    fn know_maybe(&mut self, call_id: &str) {
        if !self.watch.calls.contains_key(call_id) {
            self.know(call_id);
            if let Some(seen) = self.watch.calls.get_mut(call_id) {
                seen.maybe = true;
            }
        }
    }

    /// A call ringback must know from now on: the watcher polls it until it is settled.
    pub fn know(&mut self, call_id: &str) {
        if let Some(seen) = self.watch.calls.get_mut(call_id) {
            seen.maybe = false;
            return;
        }
        let now = self.clock.ms();
        self.watch.calls.insert(
            call_id.to_owned(),
            Seen {
                since: now,
                ..Seen::default()
            },
        );
        self.at(now + POLL_EVERY, Event::Poll(call_id.to_owned()));
        // Now and then an operator erases a call, at any point of its life: before its first
        // webhook, while it is enriched, between its settle and its push, during a replay, after
        // the reconciliation listed it.
        if self.rng.chance(ERASE_CHANCE) {
            let at = now + self.rng.secs(0, 900);
            self.at(at, Event::Erase(call_id.to_owned(), 0));
        }
    }

    /// Webhooks Vapi has queued, and calls placed for clients (ringback must know them).
    pub fn collect(&mut self) {
        let due: Vec<(Ms, Hook)> = std::mem::take(&mut *self.vapi.outbox.lock().unwrap());
        for (at, hook) in due {
            self.at(at, Event::Hook(hook));
        }
        let placed: Vec<String> = self
            .vapi
            .placed
            .lock()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect();
        for id in placed {
            self.know(&id);
        }
        self.recover_if_dead_lettered();
        let next = self
            .queues()
            .iter()
            .filter_map(|q| q.lock().unwrap().next_visible())
            .min();
        if let Some(t) = next {
            if self.receive_due.is_none_or(|due| t < due) {
                self.receive_due = Some(t);
                self.at(t, Event::Receive);
            }
        }
    }

    /// Nothing left to happen: every client answered, every call ringback must know settled,
    /// no webhook or queue message pending.
    pub fn quiet(&self) -> bool {
        let queues_empty = self.queues().iter().all(|q| {
            let sqs = q.lock().unwrap();
            sqs.queue.is_empty() && sqs.dead.is_empty()
        });
        self.clients.iter().all(Client::done)
            && self.clock.ms() >= self.foreign_until
            && self.watch.calls.values().all(|s| s.terminal.is_some())
            && queues_empty
            && self.committed.lock().unwrap().owing.is_empty()
            && !self.committed.lock().unwrap().unsettled()
            && self.vapi.outbox.lock().unwrap().is_empty()
            && !self.events.values().any(|e| {
                matches!(
                    e,
                    Event::Hook(_)
                        | Event::Request(_)
                        | Event::Elsewhere
                        | Event::Replay(_)
                        | Event::Redeliver(_)
                        | Event::Erase(..)
                )
            })
    }

    pub fn violation(&mut self, what: String) {
        self.trace.note(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }
}
