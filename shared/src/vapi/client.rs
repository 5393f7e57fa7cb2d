//! Vapi REST client: `GET /call/{id}`, `POST /call` and `GET /call` (a filtered listing), with explicit timeouts and errors
//! classified by what a caller should do about them. Each request is counted (`VapiApiCalls` by
//! `operation` and `result`) and timed (`VapiApiLatency` by `operation`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::to_iso;
use crate::metrics::Metrics;
use crate::ports::{CallFilter, VapiApi, VapiError};

#[derive(Debug, Clone)]
pub struct VapiClientConfig {
    pub base_url: String,
    pub api_key: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl VapiClientConfig {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: api_key.into(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VapiClient {
    http: reqwest::Client,
    base: String,
    key: String,
    metrics: Metrics,
}

impl VapiClient {
    pub fn new(cfg: VapiClientConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .user_agent(concat!("ringback/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with these settings always builds");
        Self {
            http,
            base: cfg.base_url.trim_end_matches('/').to_owned(),
            key: cfg.api_key,
            metrics: Metrics::off(),
        }
    }

    /// Where the request metrics go (none by default).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// `operation` names the request in the metrics: `get_call` or `create_call`.
    async fn send(
        &self,
        operation: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, VapiError> {
        let started = Instant::now();
        let result = self.exchange(req).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(VapiError::Transient { .. }) => "transient",
            Err(VapiError::Unreachable { .. }) => "unreachable",
            Err(VapiError::NotFound) => "not_found",
            Err(VapiError::Rejected { .. }) => "rejected",
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.metrics.count(
            "VapiApiCalls",
            1,
            &[("operation", operation), ("result", outcome)],
        );
        self.metrics
            .millis("VapiApiLatency", ms, &[("operation", operation)]);
        result
    }

    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<Value, VapiError> {
        let resp = req.bearer_auth(&self.key).send().await.map_err(|e| {
            if e.is_connect() {
                // The connection never opened: the request cannot have reached Vapi.
                VapiError::Unreachable {
                    message: format!("connection failed: {e}"),
                }
            } else {
                VapiError::Transient {
                    status: None,
                    retry_after: None,
                    message: if e.is_timeout() {
                        "request timed out".into()
                    } else {
                        format!("request failed: {e}")
                    },
                }
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.map_err(|e| VapiError::Transient {
            status: Some(status),
            retry_after: None,
            message: format!("reading the answer failed: {e}"),
        })?;
        match status {
            // A DELETE may answer 204, with no body.
            200..=299 if text.trim().is_empty() => Ok(Value::Null),
            200..=299 => serde_json::from_str(&text).map_err(|e| VapiError::Transient {
                status: Some(status),
                retry_after: None,
                message: format!("answer is not JSON: {e}"),
            }),
            404 => Err(VapiError::NotFound),
            429 | 500..=599 | 408 => Err(VapiError::Transient {
                status: Some(status),
                retry_after,
                message: reason(&text),
            }),
            _ => Err(VapiError::Rejected {
                status,
                message: reason(&text),
            }),
        }
    }
}

/// Vapi's error bodies are NestJS-shaped: `{message: string | string[], error, statusCode}`.
fn reason(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| match m {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => None,
        });
    let mut s = msg.unwrap_or_else(|| body.trim().to_owned());
    if s.len() > 500 {
        let mut cut = 500;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    if s.is_empty() {
        "no reason given".into()
    } else {
        s
    }
}

#[async_trait]
impl VapiApi for VapiClient {
    async fn get_call(&self, call_id: &str) -> Result<Value, VapiError> {
        let url = format!("{}/call/{}", self.base, urlencode(call_id));
        self.send("get_call", self.http.get(url)).await
    }

    async fn create_call(&self, body: &Value) -> Result<Value, VapiError> {
        self.send(
            "create_call",
            self.http.post(format!("{}/call", self.base)).json(body),
        )
        .await
    }

    async fn delete_call(&self, call_id: &str) -> Result<(), VapiError> {
        let url = format!("{}/call/{}", self.base, urlencode(call_id));
        self.send("delete_call", self.http.delete(url))
            .await
            .map(|_| ())
    }

    async fn list_calls(&self, f: &CallFilter) -> Result<Vec<Value>, VapiError> {
        let iso = |t: &chrono::DateTime<chrono::Utc>| to_iso(*t);
        let mut query = vec![
            ("phoneNumberId", f.phone_number_id.clone()),
            ("createdAtGe", iso(&f.created_at_ge)),
            ("createdAtLe", iso(&f.created_at_le)),
            ("limit", f.limit.to_string()),
        ];
        // `GET /call` takes no sort parameter (only the paginated `/v2/call` does), and Vapi
        // refuses unknown ones: the order is whatever Vapi lists in (`service::placed`).
        if let Some(t) = &f.updated_at_ge {
            query.push(("updatedAtGe", iso(t)));
        }
        if let Some(t) = &f.updated_at_le {
            query.push(("updatedAtLe", iso(t)));
        }
        let answer = self
            .send(
                "list_calls",
                self.http.get(format!("{}/call", self.base)).query(&query),
            )
            .await?;
        match answer {
            Value::Array(calls) => Ok(calls),
            _ => Err(VapiError::Transient {
                status: Some(200),
                retry_after: None,
                message: "GET /call did not answer a list".into(),
            }),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_nest_bodies() {
        assert_eq!(
            reason(r#"{"message":["a","b"],"error":"Bad Request"}"#),
            "a; b"
        );
        assert_eq!(
            reason(r#"{"message":"Couldn't Get Call"}"#),
            "Couldn't Get Call"
        );
        assert_eq!(reason("plain text"), "plain text");
        assert_eq!(reason(""), "no reason given");
        assert_eq!(reason(&"é".repeat(400)).len(), 500);
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(urlencode("a/b c"), "a%2Fb%20c");
    }
}
