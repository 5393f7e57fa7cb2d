//! Typed configuration, read once at start-up from the environment (api.md §6). A missing required
//! variable stops the function with a message naming it. Secrets are never printed.

use std::collections::HashMap;
use std::time::Duration;

use crate::vapi::{Algorithm, Encoding, Scheme, WebhookAuth};

mod deployment;
mod push;
pub use deployment::DeploymentId;
pub use push::{EventsConfig, PushConfig};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The environment as a map, so configuration can be tested without touching the process's.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or(ConfigError::Missing(name))
    }

    pub fn parse_or<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
        }
    }

    /// A whole number of seconds, at most [`MAX_SECONDS`].
    pub fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse_or(name, default)?;
        at_most_max(name, secs).map(Duration::from_secs)
    }
}

/// The longest any of ringback's durations may be: a year and a day. No setting is sensibly
/// longer, and the bound keeps every date computed from one (`now + ttl`, a deadline, a retry's
/// due time) inside chrono's range, where a raw u64 of seconds would overflow it and panic.
pub const MAX_SECONDS: u64 = 366 * 86_400;

pub(crate) fn at_most_max(name: &'static str, secs: u64) -> Result<u64, ConfigError> {
    if secs > MAX_SECONDS {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("{secs} s is more than a year ({MAX_SECONDS} s at most)"),
        });
    }
    Ok(secs)
}

/// Settings shared by every function that touches the calls table.
#[derive(Debug, Clone)]
pub struct CallsConfig {
    pub calls_table: String,
    pub result_ttl: Duration,
    /// `CALL_INDEX_TABLE`: the durable call summaries a search reads (`crate::search`). Optional:
    /// without it nothing is indexed and `GET /api/v1/vapi/calls` says the deployment has none.
    pub call_index_table: Option<String>,
}

impl CallsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            calls_table: env.required("CALLS_TABLE")?,
            result_ttl: env.seconds("RESULT_TTL_SECONDS", 1800)?,
            call_index_table: env
                .get("CALL_INDEX_TABLE")
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned),
        })
    }
}

/// When a record is overdue for the cleanup, and how enrichment paces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// `ENRICHMENT_DELAYS`: the delay before each fetch attempt; its length is the attempt budget.
    pub enrichment_delays: Vec<Duration>,
    /// `WATCHDOG_DELAY_SECONDS`: how long after a call starts without any webhook the watchdog asks Vapi.
    pub watchdog_delay: Duration,
    /// `MAX_CALL_SECONDS`: the longest a call may run before a missing report is suspicious.
    pub max_call: Duration,
    /// `STUCK_GRACE_SECONDS`: slack past the expected time before the cleanup steps in; it covers
    /// SQS redeliveries (visibility timeout × maxReceiveCount).
    pub stuck_grace: Duration,
    /// The latest a deadline may lie after a write: `RESULT_TTL_SECONDS` less `CLEANUP_MARGIN_SECONDS`
    /// (default 720 s: two 5-minute cleanup periods and slack), so two cleanup runs see a stuck
    /// record before it expires, and one failed run loses nothing.
    pub deadline_cap: Duration,
    /// `CLAIM_LEASE_SECONDS` (default 60, twice the enrichment function's timeout): how long a
    /// worker's claim on a call holds off other messages. Only a dead worker's claim outlives it,
    /// so a redriven or re-driven job may then take the call over.
    pub claim_lease: Duration,
}

impl Timing {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ttl = env.seconds("RESULT_TTL_SECONDS", 1800)?;
        let margin = env.seconds("CLEANUP_MARGIN_SECONDS", 720)?;
        let t = Self {
            enrichment_delays: parse_delays(env.get("ENRICHMENT_DELAYS").unwrap_or("3,5,8"))?,
            watchdog_delay: env.seconds("WATCHDOG_DELAY_SECONDS", 900)?,
            max_call: env.seconds("MAX_CALL_SECONDS", 3600)?,
            stuck_grace: env.seconds("STUCK_GRACE_SECONDS", 1200)?,
            deadline_cap: ttl.saturating_sub(margin),
            claim_lease: env.seconds("CLAIM_LEASE_SECONDS", 60)?,
        };
        // A deadline must not fall due while a healthy call is simply waiting for its next step,
        // or the cleanup re-drives healthy calls and in the end settles them fetch_failed.
        let quiet = t.longest_quiet_gap();
        if t.deadline_cap < quiet {
            return Err(ConfigError::Invalid {
                name: "RESULT_TTL_SECONDS",
                reason: format!(
                    "{} s leaves the cleanup {} s after a write (less CLEANUP_MARGIN_SECONDS, {} s), \
                     but a healthy call can go {} s without one (the longest of WATCHDOG_DELAY_SECONDS \
                     and ENRICHMENT_DELAYS, plus CLAIM_LEASE_SECONDS); set it to at least {}",
                    ttl.as_secs(),
                    t.deadline_cap.as_secs(),
                    margin.as_secs(),
                    quiet.as_secs(),
                    quiet.saturating_add(margin).as_secs()
                ),
            });
        }
        Ok(t)
    }

    /// A claim never outlives its message's visibility timeout (`visibility`): past it SQS hands
    /// the message to a worker again anyway, and a copy of the job (a dead-letter redrive) must
    /// not wait on a worker SQS already gave up on. The template's queues (180 s) leave the
    /// default lease (60 s) as it is; the local runner's (5 s by default) shorten it.
    pub fn cap_claim_lease(mut self, visibility: Duration) -> Self {
        self.claim_lease = self.claim_lease.min(visibility);
        self
    }

    /// The longest a healthy unfinished call goes without a write to its record: waiting for its
    /// watchdog (at most SQS's 900 s) or for the next enrichment attempt, plus a worker's lease.
    pub fn longest_quiet_gap(&self) -> Duration {
        let longest_delay = self.enrichment_delays.iter().max().copied();
        self.watchdog_delay
            .min(crate::ports::MAX_QUEUE_DELAY)
            .max(longest_delay.unwrap_or_default())
            .saturating_add(self.claim_lease)
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::from_env(&Env::default()).expect("defaults are valid")
    }
}

pub fn parse_delays(raw: &str) -> Result<Vec<Duration>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "ENRICHMENT_DELAYS",
        reason,
    };
    let delays = raw
        .split(',')
        .map(|s| {
            let secs: u64 = s
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{s:?} is not a whole number of seconds")))?;
            if secs > 900 {
                return Err(invalid(format!(
                    "{secs} exceeds SQS's 900-second delay limit"
                )));
            }
            Ok(Duration::from_secs(secs))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err(invalid("at least one delay is needed".into()));
    }
    Ok(delays)
}

/// `VAPI_WEBHOOK_SECRET`, required unless `WEBHOOK_AUTH=none` is set on purpose (`None` then).
/// The webhook function checks deliveries with it and the initiator hands it to Vapi with each
/// call, so both refuse to start without it: an initiator without it would place calls whose
/// every webhook is then refused.
pub fn webhook_secret(env: &Env) -> Result<Option<String>, ConfigError> {
    if env
        .get("WEBHOOK_AUTH")
        .is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    env.required("VAPI_WEBHOOK_SECRET").map(Some)
}

/// Webhook authentication: a secret is required unless `WEBHOOK_AUTH=none` is set on purpose.
pub fn webhook_auth(env: &Env) -> Result<WebhookAuth, ConfigError> {
    let Some(current) = webhook_secret(env)? else {
        return Ok(WebhookAuth::disabled());
    };
    // During a rotation both secrets are accepted (docs/operations.md).
    let previous = env.get("VAPI_WEBHOOK_SECRET_PREVIOUS").map(str::to_owned);
    // Vapi's HMAC credential defaults need nothing more (vapi.md §3); the rest is what a credential changed.
    let pick = |name: &'static str| env.get(name).map(str::trim).filter(|v| !v.is_empty());
    let mut scheme = Scheme::default();
    if let Some(header) = pick("VAPI_SIGNATURE_HEADER") {
        scheme.headers = vec![header.to_ascii_lowercase()];
    }
    if let Some(v) = pick("VAPI_SIGNATURE_ALGORITHM") {
        scheme.algorithm = Algorithm::parse(v).ok_or_else(|| ConfigError::Invalid {
            name: "VAPI_SIGNATURE_ALGORITHM",
            reason: format!("'{v}' is not sha256, sha512 or sha1"),
        })?;
    }
    if let Some(v) = pick("VAPI_SIGNATURE_ENCODING") {
        scheme.encoding = Encoding::parse(v).ok_or_else(|| ConfigError::Invalid {
            name: "VAPI_SIGNATURE_ENCODING",
            reason: format!("'{v}' is not hex or base64"),
        })?;
    }
    let auth = WebhookAuth::with_scheme([Some(current), previous].into_iter().flatten(), scheme);
    Ok(match pick("VAPI_BEARER_HEADER") {
        Some(name) => auth.with_bearer_header(name),
        None => auth,
    })
}

/// Client API authentication (`Authorization: Bearer <API_TOKEN>`), off for the client routes
/// only with `API_AUTH=none`, when an authorizer sits in front. The operator routes (listing,
/// timeline, replay, redelivery) keep needing `API_TOKEN` (`crate::api::require_operator_token`).
#[derive(Clone, PartialEq, Eq)]
pub enum ApiAuth {
    Token(String),
    /// `API_AUTH=none` with `API_TOKEN`: client routes open to the authorizer in front, operator
    /// routes still checked against the token.
    Authorizer(String),
    /// `API_AUTH=none` without `API_TOKEN`: operator routes closed.
    Off,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Token(_) => "ApiAuth::Token(..)",
            Self::Authorizer(_) => "ApiAuth::Authorizer(..)",
            Self::Off => "ApiAuth::Off",
        })
    }
}

impl ApiAuth {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        if env
            .get("API_AUTH")
            .is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(match env.get("API_TOKEN") {
                Some(token) => Self::Authorizer(token.to_owned()),
                None => Self::Off,
            });
        }
        Ok(Self::Token(env.required("API_TOKEN")?))
    }
}

#[derive(Clone)]
pub struct VapiConfig {
    pub base_url: String,
    pub api_key: String,
}

impl std::fmt::Debug for VapiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapiConfig")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl VapiConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: env
                .get("VAPI_BASE_URL")
                .unwrap_or("https://api.vapi.ai")
                .to_owned(),
            api_key: env.required("VAPI_API_KEY")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_and_fail_by_name() {
        assert_eq!(
            parse_delays("3, 5,8").unwrap(),
            vec![
                Duration::from_secs(3),
                Duration::from_secs(5),
                Duration::from_secs(8)
            ]
        );
        for bad in ["", "3,,5", "a", "901", "-1"] {
            let err = parse_delays(bad).unwrap_err();
            assert!(
                err.to_string().contains("ENRICHMENT_DELAYS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn missing_variables_are_named() {
        let env = Env::default();
        assert_eq!(
            CallsConfig::from_env(&env).unwrap_err(),
            ConfigError::Missing("CALLS_TABLE")
        );
        assert_eq!(
            webhook_auth(&env).unwrap_err(),
            ConfigError::Missing("VAPI_WEBHOOK_SECRET")
        );
        assert_eq!(
            ApiAuth::from_env(&env).unwrap_err(),
            ConfigError::Missing("API_TOKEN")
        );
        assert_eq!(
            VapiConfig::from_env(&env).unwrap_err(),
            ConfigError::Missing("VAPI_API_KEY")
        );
        let bad = Env::from_pairs([("CALLS_TABLE", "t"), ("RESULT_TTL_SECONDS", "soon")]);
        assert!(CallsConfig::from_env(&bad)
            .unwrap_err()
            .to_string()
            .contains("RESULT_TTL_SECONDS"));
    }

    #[test]
    fn a_vapi_hmac_credential_is_configured_by_name() {
        let base = [("VAPI_WEBHOOK_SECRET", "s")];
        let with = |extra: (&'static str, &'static str)| {
            webhook_auth(&Env::from_pairs(base.into_iter().chain([extra])))
        };
        for (name, value) in [
            ("VAPI_SIGNATURE_ALGORITHM", "md5"),
            ("VAPI_SIGNATURE_ENCODING", "base32"),
        ] {
            let err = with((name, value)).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(value), "{err}");
        }
        for (name, value) in [
            ("VAPI_SIGNATURE_ALGORITHM", "SHA512"),
            ("VAPI_SIGNATURE_ENCODING", "base64"),
            ("VAPI_SIGNATURE_HEADER", ""),
            ("VAPI_BEARER_HEADER", "X-Token"),
        ] {
            assert!(with((name, value)).unwrap().is_enabled(), "{name}={value}");
        }
    }

    #[test]
    fn auth_can_be_turned_off_only_on_purpose() {
        assert!(!webhook_auth(&Env::from_pairs([("WEBHOOK_AUTH", "none")]))
            .unwrap()
            .is_enabled());
        assert!(
            webhook_auth(&Env::from_pairs([("VAPI_WEBHOOK_SECRET", "s")]))
                .unwrap()
                .is_enabled()
        );
        assert_eq!(
            ApiAuth::from_env(&Env::from_pairs([("API_AUTH", "none")])).unwrap(),
            ApiAuth::Off
        );
        assert!(!format!("{:?}", ApiAuth::Token("tok".into())).contains("tok"));
    }

    #[test]
    fn a_ttl_too_short_for_the_deadlines_stops_start_up() {
        // 600 s - 720 s margin leaves the cleanup nothing: a pending call waits 900 s for its
        // watchdog, so every healthy call would be re-driven, then settled fetch_failed.
        let err = Timing::from_env(&Env::from_pairs([("RESULT_TTL_SECONDS", "600")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("RESULT_TTL_SECONDS"), "{msg}");
        assert!(msg.contains("at least 1680"), "{msg}");
        // Shorter waits make a shorter TTL valid.
        let short = Env::from_pairs([
            ("RESULT_TTL_SECONDS", "900"),
            ("WATCHDOG_DELAY_SECONDS", "60"),
        ]);
        assert!(Timing::from_env(&short).is_ok());
        // A margin the TTL cannot hold, or a delay past the TTL, is refused too.
        for (name, pairs) in [
            ("RESULT_TTL_SECONDS", vec![("RESULT_TTL_SECONDS", "300")]),
            (
                "RESULT_TTL_SECONDS",
                vec![
                    ("RESULT_TTL_SECONDS", "1000"),
                    ("WATCHDOG_DELAY_SECONDS", "60"),
                    ("ENRICHMENT_DELAYS", "3,900"),
                ],
            ),
        ] {
            let err = Timing::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn durations_that_would_overflow_dates_stop_start_up_by_name() {
        // A u64 of seconds is far past what chrono can add to a date: `now + ttl` would panic
        // (and with panic = "abort", take the invocation or the whole local runner with it).
        for name in [
            "RESULT_TTL_SECONDS",
            "CLEANUP_MARGIN_SECONDS",
            "WATCHDOG_DELAY_SECONDS",
            "MAX_CALL_SECONDS",
            "STUCK_GRACE_SECONDS",
            "CLAIM_LEASE_SECONDS",
        ] {
            for value in ["18446744073709551615", "9223372036854775807", "31708800"] {
                let env = Env::from_pairs([("CALLS_TABLE", "t"), (name, value)]);
                let err = Timing::from_env(&env).unwrap_err().to_string();
                assert!(err.contains(name), "{name}={value}: {err}");
            }
        }
        let huge = Env::from_pairs([("CALLS_TABLE", "t"), ("RESULT_TTL_SECONDS", "1e30")]);
        assert!(CallsConfig::from_env(&huge).is_err());
        let huge = Env::from_pairs([
            ("CALLS_TABLE", "t"),
            ("RESULT_TTL_SECONDS", "18446744073709551615"),
        ]);
        let err = CallsConfig::from_env(&huge).unwrap_err().to_string();
        assert!(err.contains("RESULT_TTL_SECONDS"), "{err}");
        // A year is still a valid (if odd) setting.
        let year = Env::from_pairs([("CALLS_TABLE", "t"), ("RESULT_TTL_SECONDS", "31536000")]);
        assert!(CallsConfig::from_env(&year).is_ok() && Timing::from_env(&year).is_ok());
    }

    #[test]
    fn the_initiator_needs_the_webhook_secret_unless_auth_is_off_on_purpose() {
        // Without it, calls would be placed whose every webhook then answers 401.
        let base = [
            ("VAPI_PHONE_NUMBER_ID", "p"),
            (
                "VAPI_WEBHOOK_URL",
                "https://hooks.example/api/v1/vapi/webhook",
            ),
        ];
        assert_eq!(
            webhook_secret(&Env::from_pairs(base)).unwrap_err(),
            ConfigError::Missing("VAPI_WEBHOOK_SECRET")
        );
        let off = Env::from_pairs(base.into_iter().chain([("WEBHOOK_AUTH", "none")]));
        assert_eq!(webhook_secret(&off).unwrap(), None);
        let on = Env::from_pairs(base.into_iter().chain([("VAPI_WEBHOOK_SECRET", "s")]));
        assert_eq!(webhook_secret(&on).unwrap().as_deref(), Some("s"));
    }

    #[test]
    fn without_a_token_check_the_operator_routes_still_need_the_token() {
        let behind =
            ApiAuth::from_env(&Env::from_pairs([("API_AUTH", "none"), ("API_TOKEN", "t")]));
        assert_eq!(behind.unwrap(), ApiAuth::Authorizer("t".into()));
        assert!(!format!("{:?}", ApiAuth::Authorizer("tok".into())).contains("tok"));
    }

    #[test]
    fn defaults_match_the_spec() {
        let t = Timing::default();
        assert_eq!(t.enrichment_delays.len(), 3);
        assert_eq!(t.deadline_cap, Duration::from_secs(1080));
        assert_eq!(t.watchdog_delay, Duration::from_secs(900));
        let c = CallsConfig::from_env(&Env::from_pairs([("CALLS_TABLE", "calls")])).unwrap();
        assert_eq!(c.result_ttl, Duration::from_secs(1800));
    }
}
