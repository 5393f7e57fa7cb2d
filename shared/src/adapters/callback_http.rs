//! [`HttpCallbacks`]: POSTing pushed events to receivers with reqwest.
//!
//! A receiver is chosen by a client, so it may be slow, hostile or not a receiver at all. Each
//! attempt is therefore bounded in time and in what it reads, connects only to hosts
//! [`CallbackHosts`] allows (literal addresses checked before sending, names when resolved,
//! [`super::callback_dns`]), ignores proxy settings (a proxy would connect on our behalf to an
//! address we never judged), and follows no redirect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::callback_dns::{refusal, FilteringResolver, HostResolver, SystemResolver};
use crate::domain::callback_host::CallbackHosts;
use crate::ports::{CallbackAnswer, CallbackSender};

/// How long an attempt may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To open the connection (TCP and TLS).
    pub connect: Duration,
    /// From sending to the answer's status line, connecting included.
    pub answer: Duration,
    /// The most of the answer's body read, and for how long: only so that a short body lets the
    /// connection be reused; its content is never kept.
    pub body_bytes: usize,
    pub body_wait: Duration,
}

impl Default for Limits {
    /// 2 s to connect: a TCP handshake anywhere on earth takes well under a second, and 2 s
    /// leaves room for one lost SYN (Linux retries after 1 s); a host that takes longer is down.
    /// 5 s to answer: Standard Webhooks tells receivers to acknowledge at once and work later, so
    /// a receiver that needs longer gets a retry with backoff, not more of a worker's time.
    /// 1 KiB of body within 1 s: an acknowledgement fits; a 100 MB answer costs nothing.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            answer: Duration::from_secs(5),
            body_bytes: 1024,
            body_wait: Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
pub struct HttpCallbacks {
    http: reqwest::Client,
    hosts: CallbackHosts,
    limits: Limits,
}

impl std::fmt::Debug for HttpCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCallbacks")
            .field("hosts", &self.hosts)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HttpCallbacks {
    /// With the system's resolver and the default limits.
    pub fn new(hosts: CallbackHosts) -> Self {
        Self::with(hosts, Arc::new(SystemResolver), Limits::default())
    }

    pub fn with(hosts: CallbackHosts, resolver: Arc<dyn HostResolver>, limits: Limits) -> Self {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(FilteringResolver {
                inner: resolver,
                hosts,
            }))
            .no_proxy()
            .connect_timeout(limits.connect)
            .timeout(limits.answer + limits.body_wait)
            // A redirect is a failed attempt: following one would let a receiver point ringback's
            // signed POSTs at any address, checked or not.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ringback-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid");
        Self {
            http,
            hosts,
            limits,
        }
    }

    /// The URL's host judged by its spelling: reqwest does not ask the resolver about an address
    /// literal, so `https://10.0.0.1/` (say, in an event kept before the rule existed) is
    /// refused here, before anything is sent.
    fn check_host(&self, url: &str) -> Result<(), String> {
        let Ok(parsed) = url::Url::parse(url) else {
            return Err("callback URL is not a URL".into());
        };
        match parsed.host() {
            Some(host) => self.hosts.check_host(&host).map(|_| ()),
            None => Err("callback URL names no host".into()),
        }
    }

    fn no_answer(&self, e: &reqwest::Error) -> String {
        if let Some(r) = refusal(e) {
            r.to_string()
        } else if e.is_timeout() {
            format!("no answer within {} s", self.limits.answer.as_secs_f32())
        } else if e.is_connect() {
            "connection failed".to_owned()
        } else {
            "request failed".to_owned()
        }
    }
}

#[async_trait]
impl CallbackSender for HttpCallbacks {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> CallbackAnswer {
        let started = Instant::now();
        if let Err(why) = self.check_host(url) {
            return CallbackAnswer {
                status: None,
                error: Some(format!("callback refused: {why}")),
                latency: Duration::ZERO,
            };
        }
        let mut req = self.http.post(url).body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        // The client's own timeout also covers the body; this one ends the wait for the status.
        let sent = tokio::time::timeout(self.limits.answer, req.send()).await;
        match sent {
            Ok(Ok(mut resp)) => {
                let status = resp.status().as_u16();
                let _ = tokio::time::timeout(self.limits.body_wait, async {
                    let mut read = 0;
                    while read < self.limits.body_bytes {
                        match resp.chunk().await {
                            Ok(Some(chunk)) => read += chunk.len(),
                            _ => break,
                        }
                    }
                })
                .await;
                // Dropping an answer not read to its end closes its connection.
                drop(resp);
                CallbackAnswer {
                    status: Some(status),
                    error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                    latency: started.elapsed(),
                }
            }
            Ok(Err(e)) => CallbackAnswer {
                status: None,
                error: Some(self.no_answer(&e)),
                latency: started.elapsed(),
            },
            Err(_) => CallbackAnswer {
                status: None,
                error: Some(format!(
                    "no answer within {} s",
                    self.limits.answer.as_secs_f32()
                )),
                latency: started.elapsed(),
            },
        }
    }
}
