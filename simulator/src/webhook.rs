//! Webhook delivery: where a call's server messages go, in which order, how often.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::scenario::Scenario;
use crate::{now_ms, SimulatorState};

/// Where and how one call's webhooks are POSTed (Vapi's `Server` object).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub url: String,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_base: Duration,
    pub exponential: bool,
    /// Statuses a backoff plan must not retry.
    pub excluded: Vec<u16>,
}

impl Target {
    /// URL precedence: `assistantOverrides.server`, then `assistant.server`, then the simulator's
    /// default. The other `server` fields are taken the same way, field by field.
    pub fn from_call(
        call: &Value,
        default_url: Option<&str>,
        retry_unit: Duration,
    ) -> Option<Self> {
        let pick = |k: &str| {
            [
                &call["assistantOverrides"]["server"],
                &call["assistant"]["server"],
            ]
            .into_iter()
            .find_map(|s| s.get(k).filter(|v| !v.is_null()))
        };
        let url = pick("url")
            .and_then(Value::as_str)
            .or(default_url)?
            .to_string();
        let mut headers = HeaderMap::new();
        for (k, v) in pick("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                (Ok(k), Ok(v)) => {
                    headers.insert(k, v);
                }
                _ => tracing::warn!(header = %k, "skipping a server header that is not valid HTTP"),
            }
        }
        let plan = pick("backoffPlan").cloned().unwrap_or(Value::Null);
        Some(Target {
            url,
            headers,
            timeout: Duration::from_secs_f64(
                pick("timeoutSeconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(20.0),
            ),
            // Vapi's default is no retry at all: only an explicit backoffPlan retries.
            retries: plan["maxRetries"].as_u64().unwrap_or(0).min(10) as u32,
            retry_base: retry_unit.mul_f64(
                plan["baseDelaySeconds"]
                    .as_f64()
                    .unwrap_or(1.0)
                    .clamp(0.0, 10.0),
            ),
            exponential: plan["type"] == "exponential",
            excluded: plan["excludedStatusCodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_u64().map(|c| c as u16))
                .collect(),
        })
    }
}

/// The message types a call asked for (`serverMessages`); `None` means Vapi's default list,
/// which holds both types the simulator sends.
pub(crate) fn wanted_types(call: &Value) -> Option<Vec<String>> {
    [&call["assistantOverrides"], &call["assistant"]]
        .into_iter()
        .find_map(|o| o["serverMessages"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
}

/// One call's outgoing messages: applies the scenario's delivery quirks and keeps order by
/// sending them one after another on a single task.
pub(crate) struct Outbox {
    tx: Option<mpsc::UnboundedSender<Value>>,
    task: Option<JoinHandle<()>>,
    scenario: Scenario,
    wanted: Option<Vec<String>>,
    /// `out-of-order`: status updates held back until the report has gone.
    held: Vec<Value>,
    late: Option<Value>,
}

impl Outbox {
    pub fn new(
        state: &SimulatorState,
        call_id: &str,
        target: Option<Target>,
        wanted: Option<Vec<String>>,
        scenario: Scenario,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let (state, id) = (state.clone(), call_id.to_string());
        let task = tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                match &target {
                    Some(t) => deliver(&state, &id, t, &body).await,
                    None => {
                        tracing::debug!(call_id = %id, "no webhook URL for this call; message dropped")
                    }
                }
            }
        });
        Outbox {
            tx: Some(tx),
            task: Some(task),
            scenario,
            wanted,
            held: Vec::new(),
            late: None,
        }
    }

    /// Queues one `{"message": ...}` envelope.
    pub fn send(&mut self, body: Value) {
        let kind = body["message"]["type"].as_str().unwrap_or_default();
        if self
            .wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|t| t == kind))
        {
            return;
        }
        match (self.scenario, kind) {
            (Scenario::NoWebhook, _) => {}
            (Scenario::DuplicateWebhooks, _) => {
                self.push(body.clone());
                self.push(body);
            }
            (Scenario::OutOfOrder, "status-update") => {
                if body["message"]["status"] == "in-progress" {
                    self.late = Some(body.clone());
                }
                self.held.push(body);
            }
            (Scenario::OutOfOrder, "end-of-call-report") => {
                self.push(body);
                self.flush();
            }
            _ => self.push(body),
        }
    }

    /// Sends whatever is held, then waits until every message was attempted.
    pub async fn close(mut self) {
        self.flush();
        self.tx = None;
        // Awaited in place, so that aborting the call's task aborts the deliveries too (Drop).
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
        }
    }

    fn flush(&mut self) {
        for body in std::mem::take(&mut self.held) {
            self.push(body);
        }
        // A stale `in-progress` after `ended`: receivers must not move the call backwards.
        if let Some(mut late) = self.late.take() {
            late["message"]["timestamp"] = now_ms().into();
            self.push(late);
        }
    }

    fn push(&self, body: Value) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(body);
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// POSTs one message, retrying only as the call's backoff plan allows.
async fn deliver(state: &SimulatorState, id: &str, t: &Target, body: &Value) {
    let kind = body["message"]["type"].as_str().unwrap_or_default();
    let url = match reqwest::Url::parse(&t.url) {
        Ok(u) if is_loopback(&u) => u,
        _ => {
            // The simulator never sends traffic off this machine.
            tracing::warn!(call_id = %id, kind, "webhook URL is not a loopback http URL; not sent");
            state.store().count_webhook(id, false);
            return;
        }
    };
    let mut attempt = 0;
    loop {
        let res = state
            .http()
            .post(url.clone())
            .headers(t.headers.clone())
            .timeout(t.timeout)
            .json(body)
            .send()
            .await;
        let status = res.as_ref().ok().map(|r| r.status().as_u16());
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        state.store().count_webhook(id, ok);
        match (&res, ok) {
            (_, true) => {
                tracing::debug!(call_id = %id, kind, status, "webhook delivered");
                return;
            }
            (Ok(r), false) => {
                tracing::warn!(call_id = %id, kind, status = %r.status(), "webhook refused by the receiver")
            }
            (Err(e), _) => {
                tracing::warn!(call_id = %id, kind, error = %e, "webhook delivery failed")
            }
        }
        if attempt >= t.retries || status.is_some_and(|s| t.excluded.contains(&s)) {
            return;
        }
        let factor = if t.exponential {
            2f64.powi(attempt as i32)
        } else {
            1.0
        };
        tokio::time::sleep(t.retry_base.mul_f64(factor)).await;
        attempt += 1;
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    matches!(url.scheme(), "http" | "https")
        && (host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_loopback_urls_are_targets() {
        for (u, want) in [
            ("http://127.0.0.1:9/x", true),
            ("http://127.8.0.1/x", true),
            ("http://localhost:3000/x", true),
            ("http://[::1]:3000/x", true),
            ("https://hooks.example.com/vapi", false),
            ("http://10.0.0.1/x", false),
            ("ftp://127.0.0.1/x", false),
        ] {
            assert_eq!(is_loopback(&reqwest::Url::parse(u).unwrap()), want, "{u}");
        }
    }

    #[test]
    fn target_follows_vapi_precedence() {
        let call = json!({
            "assistant": {"server": {"url": "http://127.0.0.1:2/a", "headers": {"X-A": "1"}}},
            "assistantOverrides": {"server": {"url": "http://127.0.0.1:1/o", "timeoutSeconds": 5,
                "backoffPlan": {"type": "fixed", "maxRetries": 2, "baseDelaySeconds": 3}}}
        });
        let t = Target::from_call(
            &call,
            Some("http://127.0.0.1:3/d"),
            Duration::from_millis(10),
        )
        .unwrap();
        assert_eq!(t.url, "http://127.0.0.1:1/o");
        assert_eq!(t.headers["x-a"], "1");
        assert_eq!(
            (t.timeout, t.retries, t.retry_base),
            (Duration::from_secs(5), 2, Duration::from_millis(30))
        );
        let none = json!({"assistantId": "a"});
        assert_eq!(
            Target::from_call(&none, Some("http://127.0.0.1:3/d"), Duration::ZERO)
                .unwrap()
                .url,
            "http://127.0.0.1:3/d"
        );
        assert!(Target::from_call(&none, None, Duration::ZERO).is_none());
    }
}
