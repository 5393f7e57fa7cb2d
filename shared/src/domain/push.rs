//! Completion events pushed to a client's `callbackUrl`, signed per Standard Webhooks
//! (<https://www.standardwebhooks.com>): what an event is, its stable id, its signature, when a
//! failed delivery is tried again, and which callback URLs may be called at all.
//!
//! An event is fixed when it is made: its id, timestamp and body never change, so every retry
//! (and a redelivery an operator asks for) sends the same bytes under the same `webhook-id`,
//! which is what a receiver de-duplicates on.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::callback_host::CallbackHosts;
use super::{CallResult, DataStatus};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "call.completed")]
    Completed,
    #[serde(rename = "call.failed")]
    Failed,
    #[serde(rename = "call.updated")]
    Updated,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "call.completed",
            Self::Failed => "call.failed",
            Self::Updated => "call.updated",
        }
    }

    /// The event a call's settling sends: none while it is unsettled.
    pub fn on_settle(status: DataStatus) -> Option<Self> {
        match status {
            DataStatus::Complete => Some(Self::Completed),
            DataStatus::FetchFailed => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event, as sent: `{type, id, timestamp, data}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub id: String,
    /// ISO-8601: when what it tells happened (the committed record's `updatedAt`), so every
    /// copy (a retried publish, a re-made event) carries the same body.
    pub timestamp: String,
    pub data: CallResult,
}

/// The event's id: the same for every attempt to make the same event, so an enrichment step that
/// runs twice (a redelivered message) makes one event, not two. A settling event is one per call
/// and kind; an update is one per version of the data: a digest of the whole CallResult, not its
/// `updatedAt` alone, which two versions written in the same millisecond share.
pub fn event_id(result: &CallResult, kind: EventType) -> String {
    let mut h = Sha256::new();
    h.update(result.call_id.as_bytes());
    h.update([0]);
    h.update(kind.as_str().as_bytes());
    if kind == EventType::Updated {
        h.update([0]);
        // The stored record serialises the same way every time it is read, so a redelivered
        // step that reads it again makes the same id.
        h.update(Sha256::digest(
            serde_json::to_vec(result).expect("call results serialise"),
        ));
    }
    format!("evt_{}", &hex::encode(h.finalize())[..32])
}

/// Whether `id` has the shape of an id [`event_id`] makes (`evt_` and 32 hex digits): anything
/// else names no event, and is answered as such before it reaches a store (whose keys are
/// bounded: a 3,000-character id would be refused there as a fault).
pub fn is_event_id(id: &str) -> bool {
    id.strip_prefix("evt_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A `CALLBACK_SIGNING_SECRET`: `whsec_` + base64 of the key.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(redacted)")
    }
}

impl SigningSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("must start with whsec_ (Standard Webhooks' format: whsec_ + base64 key)")?;
        let key = B64
            .decode(b64)
            .map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
        if key.len() < 24 {
            return Err(format!(
                "the key is {} bytes; use at least 24 random bytes",
                key.len()
            ));
        }
        Ok(Self(key))
    }

    /// A fresh random secret, for development.
    pub fn generate() -> (Self, String) {
        let key: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| *u.as_bytes())
            .collect();
        let text = format!("whsec_{}", B64.encode(&key));
        (Self(key), text)
    }

    /// `webhook-signature`: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the receiver has it.
    Delivered,
    /// 410 Gone: the receiver asks never to be sent this again.
    Gone,
    /// Anything else (other status, timeout, refused connection): try again later.
    Retry,
}

pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(s) if (200..300).contains(&s) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        _ => Verdict::Retry,
    }
}

/// The wait before attempt `next` (2-based: attempt 1 goes at once), exponential with jitter:
/// `delays[next - 2]` scaled by `1 + jitter` with `jitter` in `[-0.2, 0.2]`, so that receivers
/// coming back after an outage are not hit by every retry at the same instant. `None`: out of
/// attempts, the event is dead-lettered.
pub fn retry_delay(delays: &[Duration], next: u32, jitter: f64) -> Option<Duration> {
    let i = usize::try_from(next.checked_sub(2)?).ok()?;
    let base = delays.get(i)?;
    Some(base.mul_f64(1.0 + jitter.clamp(-0.2, 0.2)))
}

/// The default retry schedule: 5 s, then ×~4 up to 8 h, 9 retries over about 16 hours.
pub const DEFAULT_RETRY_DELAYS: &str = "5,30,120,600,1800,3600,7200,14400,28800";

/// Whether ringback may POST to `url`: `https` to a host `hosts` allows (a public one; loopback
/// too in the local runner), and `http` only to a loopback host in the local runner. The host is
/// judged as the `url` crate normalised it, as the HTTP client will see it: `https://2130706433/`
/// and `https://0x7f.1/` are 127.0.0.1, `[::ffff:10.0.0.1]` is 10.0.0.1. A name is judged here by
/// its spelling; what it resolves to is judged again when connecting.
pub fn check_callback_url(url: &str, hosts: CallbackHosts) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("must be an https URL".into());
    }
    let host = parsed.host().ok_or("must name a host")?;
    let loopback = hosts.check_host(&host)?;
    match parsed.scheme() {
        "http" if !(loopback && hosts == CallbackHosts::Local) => {
            Err("must be https (http is allowed only to loopback in the local runner)".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        // The spec's example: id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330,
        // body {"test": 2432232314}, secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_enough_bytes() {
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningSecret::parse("whsec_not base64!").is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err());
        let (_, text) = SigningSecret::generate();
        assert!(SigningSecret::parse(&text).is_ok());
        assert!(!format!("{:?}", SigningSecret::parse(&text).unwrap()).contains(&text[6..]));
    }

    #[test]
    fn event_ids_are_stable_per_event_and_distinct_across_events() {
        let at = |id: &str, t: &str| CallResult::new(id, t);
        let a = event_id(&at("c1", "t1"), EventType::Completed);
        assert_eq!(a, event_id(&at("c1", "t2"), EventType::Completed));
        assert_ne!(a, event_id(&at("c1", "t1"), EventType::Failed));
        assert_ne!(a, event_id(&at("c2", "t1"), EventType::Completed));
        let u = event_id(&at("c1", "t1"), EventType::Updated);
        assert_eq!(u, event_id(&at("c1", "t1"), EventType::Updated));
        assert_ne!(u, event_id(&at("c1", "t2"), EventType::Updated));
        // Same millisecond, other data: another update.
        let mut more = at("c1", "t1");
        more.transcript = Some("AI: Hello.".into());
        assert_ne!(u, event_id(&more, EventType::Updated));
        assert!(a.starts_with("evt_") && a.len() == 36 && is_event_id(&a));
    }

    #[test]
    fn events_serialise_as_the_contract_says() {
        let e = CallEvent {
            kind: EventType::Failed,
            id: "evt_1".into(),
            timestamp: "2026-12-03T00:00:00.000Z".into(),
            data: CallResult::new("c1", "2026-12-03T00:00:00.000Z"),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "call.failed");
        assert_eq!(v["id"], "evt_1");
        assert_eq!(v["data"]["callId"], "c1");
        assert_eq!(serde_json::from_value::<CallEvent>(v).unwrap(), e);
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(200)), Verdict::Delivered);
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(Some(410)), Verdict::Gone);
        for s in [Some(301), Some(400), Some(404), Some(429), Some(500), None] {
            assert_eq!(verdict(s), Verdict::Retry, "{s:?}");
        }
    }

    #[test]
    fn retries_back_off_with_bounded_jitter_then_stop() {
        let d: Vec<Duration> = [5, 30, 120].map(Duration::from_secs).to_vec();
        assert_eq!(retry_delay(&d, 1, 0.0), None, "attempt 1 goes at once");
        assert_eq!(retry_delay(&d, 2, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(&d, 4, 0.0), Some(Duration::from_secs(120)));
        assert_eq!(retry_delay(&d, 5, 0.0), None, "out of attempts");
        assert_eq!(retry_delay(&d, 3, 0.9), Some(Duration::from_secs(36)));
        assert_eq!(retry_delay(&d, 3, -0.9), Some(Duration::from_secs(24)));
    }

    #[test]
    fn callback_urls() {
        use CallbackHosts::{Deployment, Local};
        for url in [
            "https://example.com/hook",
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/",
        ] {
            assert_eq!(check_callback_url(url, Deployment), Ok(()), "{url}");
            assert_eq!(check_callback_url(url, Local), Ok(()), "{url}");
        }
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:80/",
            "https://127.0.0.1/",
            "https://localhost./",
        ] {
            assert_eq!(check_callback_url(url, Local), Ok(()), "{url}");
            assert!(check_callback_url(url, Deployment).is_err(), "{url}");
        }
        for (url, hosts) in [
            ("http://example.com/hook", Local),
            ("http://8.8.8.8/hook", Local),
            ("ftp://example.com/", Local),
            ("https://user:pw@example.com/", Deployment),
            ("not a url", Local),
            ("https:///", Deployment),
        ] {
            assert!(check_callback_url(url, hosts).is_err(), "{url}");
        }
    }

    #[test]
    fn callback_hosts_are_judged_after_the_url_crate_normalises_them() {
        use CallbackHosts::{Deployment, Local};
        for url in [
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[64:ff9b::a00:1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://[fe80::1]/",
            "https://192.168.1.1./",
            // 10.0.0.1 in decimal, octal, hex and short forms.
            "https://167772161/",
            "https://012.0.0.01/",
            "https://0xa.0.0.1/",
            "https://10.1/",
            "https://metadata.google.internal/",
            "https://metadata/",
        ] {
            for hosts in [Deployment, Local] {
                let err = check_callback_url(url, hosts).expect_err(url);
                assert!(err.contains("public hosts only"), "{url}: {err}");
            }
        }
        // 127.0.0.1 spelled otherwise is still loopback: refused in deployments only.
        for url in [
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
        ] {
            assert!(
                check_callback_url(url, Deployment)
                    .unwrap_err()
                    .contains("loopback"),
                "{url}"
            );
            assert_eq!(check_callback_url(url, Local), Ok(()), "{url}");
        }
    }
}
