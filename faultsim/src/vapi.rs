//! A model of Vapi in virtual time: `POST /call` places a call whose life is drawn from the seed,
//! `GET /call/{id}` shows it as it is now, `GET /call` lists with Vapi's filters, and the call's
//! webhooks go out at their times (some dropped, doubled, late or reordered). Every port call
//! passes a gate. The model remembers what reached ringback (a webhook answered 2xx, a GET
//! answered) so the checker knows what the durable rows must hold.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ringback::ports::{CallFilter, VapiApi, VapiError};
use serde_json::{json, Value};

use crate::clock::{Ms, SimClock, MINUTE, SECOND};
use crate::rng::Rng;
use crate::sched::{Fault, Gates, Op};
use crate::trace::Trace;

/// A webhook Vapi sends about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookKind {
    Ringing,
    InProgress,
    Ended,
    Report,
}

/// One delivery (attempt 0) or redelivery of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hook {
    pub call_id: String,
    pub kind: HookKind,
    pub attempt: u32,
}

/// How a call goes, drawn when it is placed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub ring: Option<Ms>,
    pub start: Option<Ms>,
    pub end: Ms,
    pub report: Ms,
    /// When Vapi's analysis lands (it may be long after the report).
    pub analysis: Ms,
    pub ended_reason: &'static str,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub structured: Option<Value>,
    pub cost: f64,
}

impl Plan {
    /// When Vapi's data became complete by ringback's rule (ended, transcript, analysis), if ever.
    pub fn complete_at(&self) -> Option<Ms> {
        let has_analysis = self.summary.is_some() || self.structured.is_some();
        (self.transcript.is_some() && has_analysis).then_some(self.end.max(self.analysis))
    }
}

/// What of a call has reached ringback through webhooks it accepted (answered 2xx, so written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub anything: bool,
    /// Deliveries ringback answered 2xx.
    pub hooks: u32,
    /// Their kinds: a kind's body is the same at every delivery, and each distinct body must be
    /// kept raw (once: ringback keeps a body it holds already only once).
    pub kinds: Vec<HookKind>,
    pub transcript: bool,
    pub analysis: bool,
    pub started: bool,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub created: Ms,
    pub phone_number_id: String,
    /// The request's provider name: which client (key) the call was placed for.
    pub customer_name: String,
    pub metadata: Value,
    pub server: Value,
    pub plan: Plan,
    pub received: Received,
    /// When `GET /call/{id}` answered ringback about this call.
    pub answered_gets: Vec<Ms>,
}

/// How unkind this run's Vapi is (0 for a calm run).
#[derive(Debug, Clone, Copy, Default)]
pub struct Weather {
    pub drop: f64,
    pub duplicate: f64,
    pub late: f64,
    pub slow_analysis: f64,
    pub awkward: f64,
    pub big: f64,
    /// `GET /call` lists oldest first (Vapi lists newest first, undocumented: ringback must
    /// not depend on it).
    pub oldest_first: bool,
}

pub struct VapiModel {
    pub calls: Mutex<BTreeMap<String, Call>>,
    /// Creation order, for listings.
    order: Mutex<Vec<String>>,
    rng: Mutex<Rng>,
    pub weather: Weather,
    /// Webhooks due, for the world to deliver.
    pub outbox: Mutex<Vec<(Ms, Hook)>>,
    pub gates: Gates,
    pub clock: Arc<SimClock>,
    pub trace: Trace,
    /// `POST /call` requests that created a call, per customer name.
    pub placed: Mutex<BTreeMap<String, Vec<String>>>,
    /// Calls another deployment placed on ringback's phone number: never ringback's to record.
    pub foreign: Mutex<Vec<String>>,
    /// Calls deleted at Vapi (`DELETE /call/{id}`): no longer answered or listed, though their
    /// webhooks under way still come (the model keeps them for the checks).
    pub deleted: Mutex<std::collections::BTreeSet<String>>,
}

/// The identity of the other deployment that shares ringback's phone number.
pub const OTHER_DEPLOYMENT: &str = "ringback-other-stack";

const WORDS: [&str; 24] = [
    "plumber",
    "Tuesday",
    "licensed",
    "estimate",
    "pipe",
    "leak",
    "insured",
    "quote",
    "the",
    "morning",
    "kitchen",
    "sink",
    "available",
    "price",
    "hundred",
    "dollars",
    "yes",
    "no",
    "we",
    "can",
    "come",
    "by",
    "after",
    "noon",
];

fn transcript(rng: &mut Rng, bytes: usize) -> String {
    let mut t = String::with_capacity(bytes + 64);
    let mut i = 0;
    while t.len() < bytes {
        t.push_str(if i % 2 == 0 { "AI: " } else { "User: " });
        for _ in 0..rng.range(4, 14) {
            let word: &&str = rng.pick(&WORDS);
            t.push_str(word);
            t.push(' ');
        }
        t.push_str(&format!("({i})\n"));
        i += 1;
    }
    t
}

/// Text gzip cannot shrink much (six random bits a character): a summary of this makes an event
/// too large for one item even compressed, which no transcript cut can fix.
fn noise(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(64) as usize]))
        .collect()
}

/// Structured data DynamoDB cannot hold as it is: an empty key, nesting past 32 levels, a number
/// past its range, and text outside the BMP.
fn awkward_data(rng: &mut Rng) -> Value {
    let mut deep = json!("bottom");
    for _ in 0..rng.range(33, 45) {
        deep = json!({"d": deep});
    }
    json!({"": "empty key", "deep": deep, "huge": 1e200, "note": "🚰 booked", "available": true})
}

impl VapiModel {
    pub fn new(
        seed: u64,
        weather: Weather,
        gates: Gates,
        clock: Arc<SimClock>,
        trace: Trace,
    ) -> Self {
        Self {
            calls: Mutex::default(),
            order: Mutex::default(),
            rng: Mutex::new(Rng::new(seed ^ 0x005E_ED0F_7A91)),
            weather,
            outbox: Mutex::default(),
            gates,
            clock,
            trace,
            placed: Mutex::default(),
            foreign: Mutex::default(),
            deleted: Mutex::default(),
        }
    }

    fn plan(&self, now: Ms) -> Plan {
        let rng = &mut *self.rng.lock().unwrap();
        let w = self.weather;
        let kind = rng.below(20);
        let ring = now + rng.secs(1, 8);
        let (ring, start, end, reason) = match kind {
            0 => (None, None, now + 2 * SECOND, "customer-busy"),
            1 | 2 => (
                Some(ring),
                None,
                ring + 40 * SECOND,
                "customer-did-not-answer",
            ),
            3 => {
                let start = ring + rng.secs(3, 10);
                (Some(ring), Some(start), start + 25 * SECOND, "voicemail")
            }
            _ => {
                let start = ring + rng.secs(3, 10);
                let talk = rng.secs(20, 400);
                let reason = *rng.pick(&["customer-ended-call", "assistant-ended-call"]);
                (Some(ring), Some(start), start + talk, reason)
            }
        };
        let answered = start.is_some();
        let bytes = if rng.chance(w.big) {
            rng.range(150_000, 450_000) as usize
        } else {
            rng.range(200, 4000) as usize
        };
        let analysis = if rng.chance(w.slow_analysis) {
            end + rng.secs(60, 1200)
        } else {
            end + rng.secs(1, 8)
        };
        // Vapi usually holds the report until its analysis is done; sometimes it sends it thin.
        let report = if rng.chance(0.7) {
            analysis + rng.secs(1, 3)
        } else {
            end + rng.secs(1, 5)
        };
        let structured = if rng.chance(w.awkward) {
            awkward_data(rng)
        } else {
            json!({"available": rng.chance(0.5), "price": rng.range(80, 400)})
        };
        Plan {
            ring,
            start,
            end,
            report,
            analysis,
            ended_reason: reason,
            transcript: answered.then(|| transcript(rng, bytes)),
            // Now and then a summary past what one item or one bus entry holds, even for a call
            // with no transcript to cut.
            summary: if rng.chance(w.big / 2.0) {
                let len = rng.range(300_000, 700_000) as usize;
                Some(noise(rng, len))
            } else {
                (answered && rng.chance(0.9)).then(|| {
                    format!(
                        "Available {} for ${}.",
                        rng.pick(&WORDS[..]),
                        rng.range(80, 400)
                    )
                })
            },
            structured: answered.then_some(structured),
            cost: rng.range(0, 300) as f64 / 100.0,
        }
    }

    /// A call Vapi starts: recorded, and its webhooks put in the outbox.
    fn start_call(&self, body: &Value, now: Ms) -> Call {
        let id = self.rng.lock().unwrap().uuid();
        let plan = self.plan(now);
        let overrides = &body["assistantOverrides"];
        let call = Call {
            id: id.clone(),
            created: now,
            phone_number_id: body["phoneNumberId"].as_str().unwrap_or_default().into(),
            customer_name: body["customer"]["name"].as_str().unwrap_or_default().into(),
            metadata: overrides["metadata"].clone(),
            server: overrides["server"].clone(),
            plan,
            received: Received::default(),
            answered_gets: Vec::new(),
        };
        self.schedule_hooks(&call);
        self.calls.lock().unwrap().insert(id.clone(), call.clone());
        self.order.lock().unwrap().push(id);
        call
    }

    /// A call placed through `POST /call`: counted against the request that placed it.
    fn place(&self, body: &Value) -> Call {
        let call = self.start_call(body, self.clock.ms());
        self.placed
            .lock()
            .unwrap()
            .entry(call.customer_name.clone())
            .or_default()
            .push(call.id.clone());
        call
    }

    fn schedule_hooks(&self, call: &Call) {
        let p = &call.plan;
        let w = self.weather;
        let rng = &mut *self.rng.lock().unwrap();
        let mut due = vec![(p.end, HookKind::Ended), (p.report, HookKind::Report)];
        if let Some(r) = p.ring {
            due.push((r, HookKind::Ringing));
        }
        if let Some(s) = p.start {
            due.push((s, HookKind::InProgress));
        }
        let mut out = self.outbox.lock().unwrap();
        for (at, kind) in due {
            if rng.chance(w.drop) {
                self.trace
                    .note(format!("vapi: {kind:?} of {} will never be sent", call.id));
                continue;
            }
            let mut at = at + rng.below(1500) as Ms;
            if rng.chance(w.late) {
                at += rng.range(5, 30) as Ms * MINUTE;
            }
            let copies = if rng.chance(w.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                let hook = Hook {
                    call_id: call.id.clone(),
                    kind,
                    attempt: 0,
                };
                out.push((at, hook));
            }
        }
    }

    /// A burst of `n` calls another deployment places on ringback's own number at `now` (all
    /// created in one millisecond): Vapi lists them to ringback, but their webhooks go to the
    /// other deployment. Some carry the other deployment's identity, some an attempt id and no
    /// identity at all (a deployment from before identities).
    pub fn place_foreign(&self, now: Ms, n: usize, phone_number_id: &str) {
        for i in 0..n {
            let (attempt, provider, request) = {
                let rng = &mut *self.rng.lock().unwrap();
                (rng.uuid(), rng.uuid(), rng.uuid())
            };
            let mut metadata = json!({
                ringback::vapi::ATTEMPT_ID_KEY: attempt,
                "providerId": provider, "serviceRequestId": request,
                "providerName": "Other Stack Co", "callMethod": "direct_vapi",
            });
            if i % 7 != 0 {
                metadata[ringback::vapi::DEPLOYMENT_ID_KEY] = json!(OTHER_DEPLOYMENT);
            }
            let id = self.rng.lock().unwrap().uuid();
            let call = Call {
                id: id.clone(),
                created: now,
                phone_number_id: phone_number_id.into(),
                customer_name: "Other Stack Co".into(),
                metadata,
                server: json!({"url": "https://other-stack.example.com/api/v1/vapi/webhook"}),
                // Their content is the other deployment's business: lean calls keep listings cheap.
                plan: Plan {
                    transcript: None,
                    summary: None,
                    structured: None,
                    ..self.plan(now)
                },
                received: Received::default(),
                answered_gets: Vec::new(),
            };
            self.calls.lock().unwrap().insert(id.clone(), call);
            self.order.lock().unwrap().push(id.clone());
            self.foreign.lock().unwrap().push(id);
        }
    }

    /// A call placed some other way (a dashboard, another system): ringback learns of it only
    /// through its webhooks.
    pub fn place_elsewhere(&self, now: Ms, metadata: Value, server: Value) -> String {
        let body = json!({
            "phoneNumberId": "other-number",
            "customer": {"number": "+14155550199", "name": "Elsewhere"},
            "assistantOverrides": {"metadata": metadata, "server": server},
        });
        self.start_call(&body, now).id
    }

    /// The call as `GET /call/{id}` shows it at `now`.
    pub fn view(&self, call: &Call, now: Ms) -> Value {
        let p = &call.plan;
        let status = if now >= p.end {
            "ended"
        } else if p.start.is_some_and(|s| now >= s) {
            "in-progress"
        } else if p.ring.is_some_and(|r| now >= r) {
            "ringing"
        } else {
            "queued"
        };
        let iso = |t: Ms| ringback::domain::to_iso(self.clock.at(t));
        let updated = Self::updated(call, now);
        let mut v = json!({
            "id": call.id,
            "orgId": "org-sim",
            "type": "outboundPhoneCall",
            "phoneNumberId": call.phone_number_id,
            "customer": {"number": "+14155550123", "name": call.customer_name},
            "createdAt": iso(call.created),
            "updatedAt": iso(updated),
            "status": status,
            "assistantOverrides": {"metadata": call.metadata},
        });
        if let Some(s) = p.start.filter(|s| now >= *s) {
            v["startedAt"] = iso(s).into();
        }
        if now >= p.end {
            v["endedAt"] = iso(p.end).into();
            v["endedReason"] = p.ended_reason.into();
            v["cost"] = p.cost.into();
            if let Some(t) = &p.transcript {
                v["artifact"] = json!({"transcript": t});
            }
        }
        if now >= p.analysis {
            v["analysis"] = json!({"summary": p.summary, "structuredData": p.structured});
        }
        v
    }

    /// Vapi's `updatedAt` of a call at `now`: its last change so far.
    fn updated(call: &Call, now: Ms) -> Ms {
        let p = &call.plan;
        [
            Some(call.created),
            p.ring,
            p.start,
            Some(p.end),
            Some(p.analysis),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t <= now)
        .max()
        .unwrap_or(call.created)
    }

    /// The body of a webhook, as Vapi builds it when it sends.
    pub fn hook_body(&self, hook: &Hook) -> Option<Value> {
        let calls = self.calls.lock().unwrap();
        let call = calls.get(&hook.call_id)?;
        let p = &call.plan;
        let iso = |t: Ms| ringback::domain::to_iso(self.clock.at(t));
        let (at, status) = match hook.kind {
            HookKind::Ringing => (p.ring?, "ringing"),
            HookKind::InProgress => (p.start?, "in-progress"),
            HookKind::Ended => (p.end, "ended"),
            HookKind::Report => {
                let mut m = json!({
                    "type": "end-of-call-report",
                    "timestamp": self.clock.at(p.report).timestamp_millis(),
                    "endedReason": p.ended_reason,
                    "cost": p.cost,
                    "endedAt": iso(p.end),
                    "call": {"id": call.id, "createdAt": iso(call.created),
                        "assistantOverrides": {"metadata": call.metadata}},
                });
                if let Some(s) = p.start {
                    m["startedAt"] = iso(s).into();
                }
                if let Some(t) = &p.transcript {
                    m["artifact"] = json!({"transcript": t});
                }
                if p.analysis <= p.report {
                    m["analysis"] = json!({"summary": p.summary, "structuredData": p.structured});
                }
                return Some(json!({"message": m}));
            }
        };
        Some(json!({"message": {
            "type": "status-update",
            "status": status,
            "timestamp": self.clock.at(at).timestamp_millis(),
            "call": {"id": call.id, "status": status, "createdAt": iso(call.created),
                "assistantOverrides": {"metadata": call.metadata}},
        }}))
    }

    /// A webhook was answered 2xx: what it carried reached ringback.
    pub fn delivered(&self, hook: &Hook) {
        let mut calls = self.calls.lock().unwrap();
        let Some(call) = calls.get_mut(&hook.call_id) else {
            return;
        };
        let p = &call.plan;
        call.received.anything = true;
        call.received.hooks += 1;
        if !call.received.kinds.contains(&hook.kind) {
            call.received.kinds.push(hook.kind);
        }
        if hook.kind == HookKind::Report {
            call.received.transcript |= p.transcript.is_some();
            call.received.analysis |= p.analysis <= p.report;
            call.received.started |= p.start.is_some();
        }
    }

    /// The call's webhook server config, as placed: where and how to deliver, and its retries.
    pub fn server(&self, call_id: &str) -> Value {
        self.calls
            .lock()
            .unwrap()
            .get(call_id)
            .map(|c| c.server.clone())
            .unwrap_or_default()
    }

    pub fn snapshot(&self) -> Vec<Call> {
        let order = self.order.lock().unwrap();
        let calls = self.calls.lock().unwrap();
        order
            .iter()
            .filter_map(|id| calls.get(id).cloned())
            .collect()
    }

    fn transient(status: u16, message: &str) -> VapiError {
        VapiError::Transient {
            status: Some(status),
            retry_after: None,
            message: format!("injected: {message}"),
        }
    }

    /// The error a call that did not get through meets (before or instead of its answer).
    fn failed(&self, fault: Fault) -> VapiError {
        match fault {
            Fault::RateLimited => Self::transient(429, "Too Many Requests"),
            Fault::Unreachable => VapiError::Unreachable {
                message: "injected: connection refused".into(),
            },
            Fault::LoseAnswer | Fault::LandConflict => Self::transient(504, "Gateway Timeout"),
            _ => Self::transient(500, "Internal server error"),
        }
    }
}

impl VapiModel {
    /// `DELETE /call/{id}` taking effect: whether Vapi still had the call.
    fn forget(&self, call_id: &str) -> bool {
        let known = self.calls.lock().unwrap().contains_key(call_id);
        known && self.deleted.lock().unwrap().insert(call_id.to_owned())
    }
}

#[async_trait]
impl VapiApi for VapiModel {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError> {
        let passage = self.gates.gate(Op::VapiGet).await;
        let fault = passage.fault;
        match fault {
            Some(Fault::Crash | Fault::LandCrash) => self.gates.die().await,
            Some(Fault::Slow) | None => {}
            Some(f) => return Err(self.failed(f)),
        }
        let now = self.clock.ms();
        if self.deleted.lock().unwrap().contains(call_id) {
            return Err(VapiError::NotFound);
        }
        let mut calls = self.calls.lock().unwrap();
        let Some(call) = calls.get_mut(call_id) else {
            return Err(VapiError::NotFound);
        };
        // What a GET returns is not marked received: it is ringback's only once written, and a
        // call that settles complete shows it was (the checker expects everything then).
        call.answered_gets.push(now);
        let call = call.clone();
        Ok(self.view(&call, now))
    }

    async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
        let passage = self.gates.gate(Op::VapiPost).await;
        let fault = passage.fault;
        if body["customer"]["name"]
            .as_str()
            .is_some_and(|n| n.contains("[refused]"))
        {
            return Err(VapiError::Rejected {
                status: 400,
                message: "customer.number must be a valid phone number".into(),
            });
        }
        match fault {
            None | Some(Fault::Slow) => {}
            Some(Fault::Crash) => self.gates.die().await,
            Some(f @ (Fault::FailBefore | Fault::RateLimited | Fault::Unreachable)) => {
                return Err(self.failed(f))
            }
            // The call is placed; only the answer is lost, or the process dies before reading it.
            Some(f) => {
                let call = self.place(body);
                self.trace
                    .note(format!("vapi: placed {} but its answer is lost", call.id));
                if f == Fault::LandCrash {
                    self.gates.die().await;
                }
                return Err(self.failed(Fault::LoseAnswer));
            }
        }
        let call = self.place(body);
        self.trace.note(format!("vapi: placed {}", call.id));
        Ok(self.view(&call, self.clock.ms()))
    }

    async fn delete_call(&self, call_id: &str) -> Result<(), VapiError> {
        let passage = self.gates.gate(Op::VapiDelete).await;
        match passage.fault {
            None | Some(Fault::Slow) => {}
            Some(Fault::Crash) => self.gates.die().await,
            Some(f @ (Fault::FailBefore | Fault::RateLimited | Fault::Unreachable)) => {
                return Err(self.failed(f))
            }
            Some(f) => {
                self.forget(call_id);
                if f == Fault::LandCrash {
                    self.gates.die().await;
                }
                return Err(self.failed(Fault::LoseAnswer));
            }
        }
        match self.forget(call_id) {
            true => Ok(()),
            false => Err(VapiError::NotFound),
        }
    }

    async fn list_calls(&self, f: &CallFilter) -> Result<Vec<Value>, VapiError> {
        match self.gates.gate(Op::VapiList).await.fault {
            None | Some(Fault::Slow) => {}
            Some(Fault::Crash | Fault::LandCrash) => self.gates.die().await,
            Some(fault) => return Err(self.failed(fault)),
        }
        let (ge, le) = (
            self.clock.ms_of(f.created_at_ge),
            self.clock.ms_of(f.created_at_le),
        );
        let updated = (
            f.updated_at_ge.map(|t| self.clock.ms_of(t)),
            f.updated_at_le.map(|t| self.clock.ms_of(t)),
        );
        let now = self.clock.ms();
        let order = self.order.lock().unwrap();
        let calls = self.calls.lock().unwrap();
        let deleted = self.deleted.lock().unwrap();
        // Vapi's order: by creation, newest first (or, this run, oldest first); a burst created
        // in one millisecond in placing order.
        let mut matching: Vec<&Call> = order
            .iter()
            .filter(|id| !deleted.contains(*id))
            .filter_map(|id| calls.get(id))
            .filter(|c| c.phone_number_id == f.phone_number_id && (ge..=le).contains(&c.created))
            .collect();
        matching.sort_by_key(|c| c.created);
        if !self.weather.oldest_first {
            matching.reverse();
        }
        Ok(matching
            .into_iter()
            .filter(|c| {
                let t = Self::updated(c, now);
                updated.0.is_none_or(|lo| t >= lo) && updated.1.is_none_or(|hi| t <= hi)
            })
            .take(f.limit as usize)
            .map(|c| self.view(c, now))
            .collect())
    }
}
