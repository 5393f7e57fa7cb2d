//! A receiver for pushed events inside the runner, so the callback loop shows offline: give a call
//! `"callbackUrl": "http://127.0.0.1:3000/dev/callbacks"`, then `GET /dev/callbacks` lists what
//! arrived. Each event's Standard Webhooks signature is checked with the runner's own secret, as a
//! client's receiver would (a bad one answers 401, which ringback retries). The last 100 are kept,
//! in memory; event bodies are not logged (they hold transcripts).

use std::collections::VecDeque;
use std::sync::Mutex;

use http::{HeaderMap, StatusCode};
use ringback::api;
use ringback::domain::push::SigningSecret;
use serde_json::{json, Value};

pub const PATH: &str = "/dev/callbacks";
const KEPT: usize = 100;

pub struct DevReceiver {
    secret: Option<SigningSecret>,
    got: Mutex<VecDeque<Value>>,
}

impl DevReceiver {
    pub fn new(secret: Option<SigningSecret>) -> Self {
        Self {
            secret,
            got: Mutex::new(VecDeque::new()),
        }
    }

    pub fn receive(&self, headers: &HeaderMap, body: &[u8]) -> api::Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let id = header("webhook-id");
        let ts: i64 = header("webhook-timestamp").parse().unwrap_or_default();
        let verified = self.secret.as_ref().is_some_and(|s| {
            let expected = s.sign(id, ts, body);
            header("webhook-signature")
                .split(' ')
                .any(|presented| presented == expected)
        });
        let event: Value = serde_json::from_slice(body).unwrap_or_default();
        let entry = json!({
            "receivedAt": ringback::domain::to_iso(chrono::Utc::now()),
            "webhookId": id,
            "type": event["type"],
            "callId": event["data"]["callId"],
            "dataStatus": event["data"]["dataStatus"],
            "verified": verified,
        });
        tracing::info!(webhook_id = id, event_type = %event["type"], verified, "callback received at /dev/callbacks");
        let mut got = self.got.lock().expect("not poisoned");
        if got.len() == KEPT {
            got.pop_front();
        }
        got.push_back(entry);
        if verified {
            let mut r = http::Response::new(bytes::Bytes::new());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        } else {
            api::error(api::Code::Unauthorized, "webhook-signature does not verify")
        }
    }

    /// What arrived, oldest first.
    pub fn list(&self) -> api::Response {
        let got: Vec<Value> = self
            .got
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        api::ok(StatusCode::OK, json!({ "received": got }))
    }
}
