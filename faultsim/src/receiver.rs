//! A client's receiver of pushed events, in virtual time: it answers 2xx, or during the storm
//! sometimes 5xx, and remembers every event it accepted (or received and failed to answer, which a
//! sender cannot tell apart from a loss), so the checker can hold ringback to "each settled call's
//! event is delivered at least once, under one id".

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ringback::ports::{CallbackAnswer, CallbackSender};

use crate::sched::{Fault, Gates, Op};

/// One POST that reached the receiver.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// The receiver took it (answered 2xx, or had it when the answer was lost).
    pub accepted: bool,
    /// When it arrived.
    pub at: crate::clock::Ms,
}

pub struct ReceiverModel {
    pub gates: Gates,
    pub log: Mutex<Vec<Received>>,
    pub clock: std::sync::Arc<crate::clock::SimClock>,
}

impl ReceiverModel {
    fn keep(&self, headers: &[(&str, String)], body: &[u8], accepted: bool) {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                map.insert(n, v);
            }
        }
        self.log.lock().unwrap().push(Received {
            headers: map,
            body: body.to_vec(),
            accepted,
            at: self.clock.ms(),
        });
    }
}

fn answer(status: Option<u16>, error: Option<&str>) -> CallbackAnswer {
    CallbackAnswer {
        status,
        error: error.map(str::to_owned),
        latency: Duration::from_millis(20),
    }
}

#[async_trait]
impl CallbackSender for ReceiverModel {
    async fn post(&self, _url: &str, headers: &[(&str, String)], body: &[u8]) -> CallbackAnswer {
        match self.gates.gate(Op::CallbackPost).await.fault {
            None | Some(Fault::Slow) => {
                self.keep(headers, body, true);
                answer(Some(200), None)
            }
            Some(Fault::Crash) => self.gates.die().await,
            Some(Fault::FailBefore) => {
                self.keep(headers, body, false);
                answer(Some(503), Some("HTTP 503"))
            }
            Some(Fault::RateLimited) => {
                self.keep(headers, body, false);
                answer(Some(429), Some("HTTP 429"))
            }
            Some(Fault::Unreachable) => answer(None, Some("connection failed")),
            Some(Fault::LandCrash) => {
                self.keep(headers, body, true);
                self.gates.die().await
            }
            Some(_) => {
                // It arrived and was taken; the answer was lost on the way back.
                self.keep(headers, body, true);
                answer(None, Some("no answer within 5 s"))
            }
        }
    }
}
