//! Webhook authentication on the raw body, before any parsing (SPEC §2, VAPI.md §3).
//! Any configured scheme suffices: `X-Vapi-Secret`, `Authorization: Bearer`, or an HMAC-SHA256
//! signature, optionally over `{timestamp}.{body}`. Several secrets may be live during a rotation.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const TOLERANCE_SECS: i64 = 5 * 60;
const TIMESTAMP_HEADERS: [&str; 2] = ["x-vapi-timestamp", "x-timestamp"];

/// One distinct reason per failure, for logs and metrics; clients all get the same 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum AuthError {
    #[error("no credentials (X-Vapi-Secret, Authorization or signature header)")]
    Missing,
    #[error("credentials do not match")]
    Mismatch,
    #[error("signature is not hex")]
    MalformedSignature,
    #[error("timestamp is not a number")]
    MalformedTimestamp,
    #[error("timestamp is more than 5 minutes from now")]
    StaleTimestamp,
}

impl AuthError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Mismatch => "mismatch",
            Self::MalformedSignature => "malformed_signature",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::StaleTimestamp => "stale_timestamp",
        }
    }
}

#[derive(Clone)]
pub struct WebhookAuth {
    /// Empty means authentication is off, which config allows only with `WEBHOOK_AUTH=none`.
    secrets: Vec<Vec<u8>>,
    signature_header: String,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("secrets", &self.secrets.len())
            .field("signature_header", &self.signature_header)
            .finish()
    }
}

impl WebhookAuth {
    pub fn new(secrets: impl IntoIterator<Item = String>, signature_header: &str) -> Self {
        Self {
            secrets: secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(String::into_bytes)
                .collect(),
            signature_header: signature_header.to_ascii_lowercase(),
        }
    }

    pub fn disabled() -> Self {
        Self {
            secrets: Vec::new(),
            signature_header: "x-vapi-signature".into(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.secrets.is_empty()
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_epoch_secs: i64,
    ) -> Result<(), AuthError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let mut presented = false;

        if let Some(token) = header("x-vapi-secret") {
            presented = true;
            if self.matches_any(token.as_bytes()) {
                return Ok(());
            }
        }
        if let Some(auth) = header("authorization") {
            presented = true;
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .unwrap_or("");
            if !token.is_empty() && self.matches_any(token.trim().as_bytes()) {
                return Ok(());
            }
        }
        if let Some(sig) = header(&self.signature_header) {
            let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
            let sig = hex::decode(sig).map_err(|_| AuthError::MalformedSignature)?;
            let timestamp = TIMESTAMP_HEADERS.iter().find_map(|h| header(h));
            if let Some(ts) = timestamp {
                check_fresh(ts, now_epoch_secs)?;
            }
            let signed = |secret: &[u8]| {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
                if let Some(ts) = timestamp {
                    mac.update(ts.as_bytes());
                    mac.update(b".");
                }
                mac.update(body);
                mac.finalize().into_bytes()
            };
            // Every secret is tried, so the time taken does not tell which one matched.
            let ok = self.secrets.iter().fold(false, |acc, s| {
                acc | bool::from(signed(s).as_slice().ct_eq(&sig))
            });
            if ok {
                return Ok(());
            }
            presented = true;
        }
        Err(if presented {
            AuthError::Mismatch
        } else {
            AuthError::Missing
        })
    }

    fn matches_any(&self, token: &[u8]) -> bool {
        self.secrets
            .iter()
            .fold(false, |acc, s| acc | bool::from(s.as_slice().ct_eq(token)))
    }
}

/// Vapi does not document the unit, so both seconds and milliseconds are accepted.
fn check_fresh(ts: &str, now: i64) -> Result<(), AuthError> {
    let raw: i64 = ts.parse().map_err(|_| AuthError::MalformedTimestamp)?;
    let secs = if raw > 100_000_000_000 {
        raw / 1000
    } else {
        raw
    };
    if (now - secs).abs() > TOLERANCE_SECS {
        return Err(AuthError::StaleTimestamp);
    }
    Ok(())
}

/// Hex HMAC-SHA256 of `payload`, for tests, the simulator and the benchmark.
pub fn sign(secret: &str, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const NOW: i64 = 1_772_463_918;
    const BODY: &[u8] = br#"{"message":{"type":"status-update"}}"#;

    fn auth() -> WebhookAuth {
        WebhookAuth::new(
            ["s3cret".to_string(), "old-secret".to_string()],
            "X-Vapi-Signature",
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn signed_with_ts(secret: &str, ts: i64) -> String {
        sign(
            secret,
            format!("{ts}.{}", String::from_utf8_lossy(BODY)).as_bytes(),
        )
    }

    type Case<'a> = (Vec<(&'a str, &'a str)>, Result<(), AuthError>);

    #[test]
    fn every_scheme_and_failure() {
        let good_sig = sign("s3cret", BODY);
        let ts = NOW.to_string();
        let ts_ms = (NOW * 1000).to_string();
        let stale = (NOW - 301).to_string();
        let sig_ts = signed_with_ts("s3cret", NOW);
        let sig_ts_ms = sign(
            "s3cret",
            format!("{ts_ms}.{}", String::from_utf8_lossy(BODY)).as_bytes(),
        );
        let sig_stale = signed_with_ts("s3cret", NOW - 301);
        let prefixed = format!("sha256={good_sig}");
        let rotated = sign("old-secret", BODY);
        let other = sign("other", BODY);
        let cases: Vec<Case> = vec![
            (vec![("x-vapi-secret", "s3cret")], Ok(())),
            (vec![("X-VAPI-SECRET", "old-secret")], Ok(())),
            (vec![("authorization", "Bearer s3cret")], Ok(())),
            (vec![("x-vapi-signature", &good_sig)], Ok(())),
            (vec![("x-vapi-signature", &prefixed)], Ok(())),
            (vec![("x-vapi-signature", &rotated)], Ok(())),
            (
                vec![("x-vapi-signature", &sig_ts), ("x-vapi-timestamp", &ts)],
                Ok(()),
            ),
            (
                vec![("x-vapi-signature", &sig_ts_ms), ("x-timestamp", &ts_ms)],
                Ok(()),
            ),
            // A wrong secret in one header does not hide a right one in another.
            (
                vec![
                    ("x-vapi-secret", "nope"),
                    ("authorization", "Bearer s3cret"),
                ],
                Ok(()),
            ),
            (vec![], Err(AuthError::Missing)),
            (vec![("x-vapi-secret", "s3cre")], Err(AuthError::Mismatch)),
            (vec![("x-vapi-secret", "")], Err(AuthError::Mismatch)),
            (
                vec![("authorization", "Basic s3cret")],
                Err(AuthError::Mismatch),
            ),
            (vec![("authorization", "Bearer ")], Err(AuthError::Mismatch)),
            (
                vec![("x-vapi-signature", "zz")],
                Err(AuthError::MalformedSignature),
            ),
            (vec![("x-vapi-signature", &other)], Err(AuthError::Mismatch)),
            // A timestamp header changes what is signed: the body-only signature no longer matches.
            (
                vec![("x-vapi-signature", &good_sig), ("x-vapi-timestamp", &ts)],
                Err(AuthError::Mismatch),
            ),
            (
                vec![
                    ("x-vapi-signature", &sig_stale),
                    ("x-vapi-timestamp", &stale),
                ],
                Err(AuthError::StaleTimestamp),
            ),
            (
                vec![("x-vapi-signature", &sig_ts), ("x-vapi-timestamp", "soon")],
                Err(AuthError::MalformedTimestamp),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(auth().verify(&headers(&h), BODY, NOW), want, "{h:?}");
        }
    }

    #[test]
    fn signature_covers_the_exact_bytes() {
        let sig = sign("s3cret", BODY);
        let mut tampered = BODY.to_vec();
        tampered.push(b' ');
        assert_eq!(
            auth().verify(&headers(&[("x-vapi-signature", &sig)]), &tampered, NOW),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn configurable_signature_header_and_disabled_mode() {
        let a = WebhookAuth::new(["k".to_string()], "x-signature");
        let sig = sign("k", BODY);
        assert_eq!(
            a.verify(&headers(&[("x-signature", &sig)]), BODY, NOW),
            Ok(())
        );
        assert_eq!(
            a.verify(&headers(&[("x-vapi-signature", &sig)]), BODY, NOW),
            Err(AuthError::Missing)
        );
        assert_eq!(
            WebhookAuth::disabled().verify(&HeaderMap::new(), BODY, NOW),
            Ok(())
        );
        // Debug output never shows a secret.
        assert!(!format!("{:?}", auth()).contains("s3cret"));
    }
}
