//! Clients of the API: each sends one call request with its own `Idempotency-Key` and retries as
//! the answers tell it, until it learns its call id or gets a definite refusal; and bad input,
//! whose answer must never be a 5xx.

use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use crate::actors::{answer, post_call};
use crate::clock::{Ms, MINUTE, SECOND};
use crate::rng::Rng;
use crate::world::{Event, TaskFuture, TaskOut, World, SECRET};
use ringback::api;

/// Kinds of bad input ([`World::bad_input`]).
pub(crate) const BAD_INPUTS: u64 = 9;
/// A client gives up this long past the bound on learning its call (the checker reports it).
pub(crate) const GIVE_UP_AFTER: Ms = 10 * MINUTE;

/// One client of the API: a call request with its own `Idempotency-Key`, retried until it gets a
/// definite answer.
#[derive(Debug, Clone)]
pub struct Client {
    pub idx: usize,
    /// The provider name: unique per client, so the model tells its calls apart.
    pub name: String,
    pub key: String,
    pub body: String,
    pub first_sent: Option<Ms>,
    /// The call id it was given, and when.
    pub learned: Option<(String, Ms)>,
    /// A definite refusal (a second 502): Vapi placed nothing.
    pub refused: Option<Ms>,
    pub refusals: u32,
    pub gave_up: bool,
    pub requests: u32,
}

impl Client {
    pub fn new(idx: usize, rng: &mut Rng, provider_id: String) -> Self {
        let refused = rng.chance(0.05);
        let name = format!("Provider {idx}{}", if refused { " [refused]" } else { "" });
        let request_id = rng.uuid();
        let body = json!({
            "providerName": name,
            "providerPhone": "+14155550123",
            "serviceNeeded": "plumber",
            "userCriteria": "licensed, available this week",
            "location": "Oakland, CA",
            "urgency": "within_24_hours",
            "providerId": provider_id,
            "serviceRequestId": request_id,
            "callbackUrl": format!("https://client.example.com/hooks/{idx}"),
        });
        Self {
            idx,
            name,
            key: format!("key-{}", rng.uuid()),
            body: body.to_string(),
            first_sent: None,
            learned: None,
            refused: None,
            refusals: 0,
            gave_up: false,
            requests: 0,
        }
    }

    pub fn done(&self) -> bool {
        self.learned.is_some() || self.refused.is_some() || self.gave_up
    }
}

impl World {
    pub(crate) fn answered(&mut self, i: usize, out: TaskOut) {
        let now = self.clock.ms();
        let (status, headers, body) = match out {
            TaskOut::Http(s, h, b) => (s, h, b),
            // The connection broke: the client retries, as any HTTP client would.
            _ => {
                self.trace.note(format!("client {i}: no answer"));
                self.at(now + 5 * SECOND, Event::Request(i));
                return;
            }
        };
        self.trace.note(format!("client {i}: {status} {body}"));
        let c = &mut self.clients[i];
        match status.as_u16() {
            202 => {
                let id = body["data"]["callId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match &c.learned {
                    Some((first, _)) if *first != id => {
                        let msg = format!(
                            "client {i} was given two call ids for one key: {first} then {id}"
                        );
                        self.violation(msg);
                    }
                    Some(_) => {}
                    None => c.learned = Some((id, now)),
                }
            }
            // Vapi refused. Many clients try a 502 once more: with the same key that must never
            // place a second call.
            502 if c.refusals == 0 => {
                c.refusals += 1;
                self.at(now + 10 * SECOND, Event::Request(i));
            }
            502 => {
                c.refused.get_or_insert(now);
            }
            409 | 503 => {
                let after = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<Ms>().ok())
                    .unwrap_or(5);
                self.at(now + after.clamp(1, 60) * SECOND, Event::Request(i));
            }
            _ => {
                let msg = format!("client {i}'s valid request got {status}: {body}");
                self.violation(msg);
            }
        }
    }

    /// Input no real sender should send; the answer must never be a 5xx (unless a fault hit).
    pub(crate) fn bad_input(&mut self, kind: u32) -> TaskFuture {
        let svc = self.services.clone();
        let mut secret = HeaderMap::new();
        secret.insert("x-vapi-secret", HeaderValue::from_static(SECRET));
        let hook = |msg: Value| json!({ "message": msg }).to_string().into_bytes();
        let webhook = match kind {
            0 => Some(b"{not json".to_vec()),
            1 => Some(hook(json!({"type": "status-update", "status": "ringing",
                "call": {"id": "x".repeat(3000)}}))),
            2 => Some(hook(
                json!({"type": "end-of-call-report", "call": {"id": "c#part1"}}),
            )),
            3 => Some(vec![b' '; (1 << 20) + 1]),
            4 => {
                secret.insert("x-vapi-secret", HeaderValue::from_static("wrong"));
                Some(hook(
                    json!({"type": "status-update", "call": {"id": "c-1"}}),
                ))
            }
            5 => Some(hook(
                json!({"type": "end-of-call-report", "call": {"id": 42},
                "artifact": {"transcript": ["not", "text"]}}),
            )),
            _ => None,
        };
        if let Some(body) = webhook {
            return Box::pin(async move {
                answer(api::post_webhook(&svc.webhook, &secret, &body).await)
            });
        }
        let (key, body) = match kind {
            6 => (
                "k-bad-phone".to_owned(),
                json!({"providerName": "X", "providerPhone": "555",
                "serviceNeeded": "s", "userCriteria": "c", "location": "l", "urgency": "now"}),
            ),
            7 => ("k-missing".to_owned(), json!({"providerName": ""})),
            _ => ("k".repeat(300), json!([1, 2])),
        };
        Box::pin(async move { post_call(&svc, &key, body.to_string().as_bytes()).await })
    }
}
