//! Webhook authentication on the raw body, before any parsing (api.md §2, vapi.md §3).
//! Any configured scheme suffices: `X-Vapi-Secret`, a Bearer token (in `Authorization` or a header
//! the credential names), or an HMAC signature as Vapi's HMAC credential sends it, over
//! `{timestamp}.{body}` when a timestamp header is present. Several secrets may be live during a rotation.

mod signature;

use http::HeaderMap;
use subtle::ConstantTimeEq;

use signature::TIMESTAMP_HEADERS;
pub use signature::{Algorithm, Encoding, Scheme, DEFAULT_SIGNATURE_HEADERS};

const TOLERANCE_SECS: i64 = 5 * 60;

/// One distinct reason per failure, for logs and metrics; clients all get the same 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum AuthError {
    #[error("no credentials (X-Vapi-Secret, Bearer token or signature header)")]
    Missing,
    #[error("credentials do not match")]
    Mismatch,
    #[error("signature is not in the configured encoding")]
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
    scheme: Scheme,
    /// A Bearer credential with a custom `headerName`; `Authorization` is always read.
    bearer_header: Option<String>,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("secrets", &self.secrets.len())
            .field("scheme", &self.scheme)
            .field("bearer_header", &self.bearer_header)
            .finish()
    }
}

impl WebhookAuth {
    /// SHA-256, hex, signatures read from `signature_header` only.
    pub fn new(secrets: impl IntoIterator<Item = String>, signature_header: &str) -> Self {
        Self::with_scheme(
            secrets,
            Scheme {
                headers: vec![signature_header.to_ascii_lowercase()],
                ..Scheme::default()
            },
        )
    }

    pub fn with_scheme(secrets: impl IntoIterator<Item = String>, scheme: Scheme) -> Self {
        Self {
            secrets: secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(String::into_bytes)
                .collect(),
            scheme,
            bearer_header: None,
        }
    }

    /// Also read a Bearer token from `name` (with or without the `Bearer ` prefix).
    pub fn with_bearer_header(mut self, name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.bearer_header = (name != "authorization").then_some(name);
        self
    }

    pub fn disabled() -> Self {
        Self::with_scheme(Vec::new(), Scheme::default())
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
        self.scheme_of(headers, body, now_epoch_secs).map(|_| ())
    }

    /// [`Self::verify`], saying which scheme let the body in: `none` (auth off),
    /// `x-vapi-secret`, `bearer` or `signature`.
    pub fn scheme_of(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_epoch_secs: i64,
    ) -> Result<&'static str, AuthError> {
        if !self.is_enabled() {
            return Ok("none");
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
                return Ok("x-vapi-secret");
            }
        }
        if let Some(auth) = header("authorization") {
            presented = true;
            if self.matches_any(bearer_token(auth).unwrap_or("").as_bytes()) {
                return Ok("bearer");
            }
        }
        if let Some(value) = self.bearer_header.as_deref().and_then(header) {
            presented = true;
            let token = bearer_token(value).unwrap_or(value);
            if self.matches_any(token.as_bytes()) {
                return Ok("bearer");
            }
        }
        if let Some(sig) = self.scheme.headers.iter().find_map(|h| header(h)) {
            presented = true;
            let sig = self
                .scheme
                .decode(sig)
                .ok_or(AuthError::MalformedSignature)?;
            let timestamp = TIMESTAMP_HEADERS.iter().find_map(|h| header(h));
            if let Some(ts) = timestamp {
                check_fresh(ts, now_epoch_secs)?;
            }
            let signed = |secret: &[u8]| match timestamp {
                Some(ts) => self
                    .scheme
                    .algorithm
                    .mac(secret, &[ts.as_bytes(), b".", body]),
                None => self.scheme.algorithm.mac(secret, &[body]),
            };
            // Every secret is tried, so the time taken does not tell which one matched.
            let ok = self.secrets.iter().fold(false, |acc, s| {
                acc | bool::from(signed(s).as_slice().ct_eq(&sig))
            });
            if ok {
                return Ok("signature");
            }
        }
        Err(if presented {
            AuthError::Mismatch
        } else {
            AuthError::Missing
        })
    }

    fn matches_any(&self, token: &[u8]) -> bool {
        if token.is_empty() {
            return false;
        }
        self.secrets
            .iter()
            .fold(false, |acc, s| acc | bool::from(s.as_slice().ct_eq(token)))
    }
}

/// The token of `Bearer <token>`, the scheme's name in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
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
    Scheme::default().sign(secret.as_bytes(), payload)
}

#[cfg(test)]
mod tests;
