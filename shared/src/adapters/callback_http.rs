//! [`HttpCallbacks`]: POSTing pushed events to receivers with reqwest.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::ports::{CallbackAnswer, CallbackSender};

/// A receiver gets this long to answer: Standard Webhooks' consumers are told to answer quickly
/// and do the work later.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct HttpCallbacks {
    http: reqwest::Client,
}

impl Default for HttpCallbacks {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpCallbacks {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(TIMEOUT)
            // A redirect is a failed attempt: following one would let a receiver point ringback's
            // signed POSTs at any address, checked or not.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ringback-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid");
        Self { http }
    }
}

#[async_trait]
impl CallbackSender for HttpCallbacks {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> CallbackAnswer {
        let started = Instant::now();
        let mut req = self.http.post(url).body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read (and bound) the body so the connection can be reused; its content is not kept.
                let _ = tokio::time::timeout(Duration::from_secs(2), resp.bytes()).await;
                CallbackAnswer {
                    status: Some(status),
                    error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                    latency: started.elapsed(),
                }
            }
            Err(e) => CallbackAnswer {
                status: None,
                error: Some(if e.is_timeout() {
                    format!("no answer within {} s", TIMEOUT.as_secs())
                } else if e.is_connect() {
                    "connection failed".to_owned()
                } else {
                    "request failed".to_owned()
                }),
                latency: started.elapsed(),
            },
        }
    }
}
