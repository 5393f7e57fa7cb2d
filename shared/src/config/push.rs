//! The events table's settings (kept webhooks, pushed events), and pushes': on when
//! `CALLBACK_SIGNING_SECRET` is set.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::domain::callback_host::CallbackHosts;
use crate::domain::push::{SigningSecret, DEFAULT_RETRY_DELAYS};

/// `EVENTS_TABLE` and `EVENT_RETENTION_DAYS` (default 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    pub table: String,
    pub retention: Duration,
}

impl EventsConfig {
    /// `None` without `EVENTS_TABLE`: nothing is kept.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(table) = env.get("EVENTS_TABLE") else {
            return Ok(None);
        };
        let days: u64 = env.parse_or("EVENT_RETENTION_DAYS", 7)?;
        if !(1..=365).contains(&days) {
            return Err(ConfigError::Invalid {
                name: "EVENT_RETENTION_DAYS",
                reason: format!("{days} is not between 1 and 365"),
            });
        }
        Ok(Some(Self {
            table: table.to_owned(),
            retention: Duration::from_secs(days * 86_400),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct PushConfig {
    /// `CALLBACK_SIGNING_SECRET` (`whsec_` + base64), from the deployment's secret store; `None`:
    /// no callback URLs, events only go to the bus.
    pub secret: Option<SigningSecret>,
    /// `EVENT_BUS_NAME`: an EventBridge bus every event is also published to.
    pub bus: Option<String>,
    /// Where events and their delivery attempts are kept (required with a secret).
    pub events: EventsConfig,
    /// `CALLBACK_RETRY_DELAYS`: seconds before each retry (any length: SQS's 900 s cap is
    /// bridged by re-queueing).
    pub retry_delays: Vec<Duration>,
    /// `CALLBACK_HOSTS`: `deployment` (the default: public hosts only) or `local` (loopback
    /// receivers too, over http or https: the local runner; the template never sets it).
    pub hosts: CallbackHosts,
}

impl PushConfig {
    /// `None` when events are off (neither a signing secret nor a bus). Without a secret a call
    /// request with a `callbackUrl` is refused.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let bus = env.get("EVENT_BUS_NAME").map(str::to_owned);
        let secret = env.get("CALLBACK_SIGNING_SECRET");
        if secret.is_none() && bus.is_none() {
            return Ok(None);
        }
        let secret = secret
            .map(SigningSecret::parse)
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                name: "CALLBACK_SIGNING_SECRET",
                reason,
            })?;
        let events = EventsConfig::from_env(env)?.ok_or(ConfigError::Missing("EVENTS_TABLE"))?;
        let retry_delays = retry_delays(
            env.get("CALLBACK_RETRY_DELAYS")
                .unwrap_or(DEFAULT_RETRY_DELAYS),
        )?;
        fits_retention(&retry_delays, events.retention)?;
        Ok(Some(Self {
            secret,
            bus,
            events,
            retry_delays,
            hosts: env
                .get("CALLBACK_HOSTS")
                .map(CallbackHosts::parse)
                .transpose()
                .map_err(|reason| ConfigError::Invalid {
                    name: "CALLBACK_HOSTS",
                    reason,
                })?
                .unwrap_or_default(),
        }))
    }
}

fn retry_delays(raw: &str) -> Result<Vec<Duration>, ConfigError> {
    raw.split(',')
        .map(|s| {
            let secs = s.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                name: "CALLBACK_RETRY_DELAYS",
                reason: format!("{s:?} is not a whole number of seconds"),
            })?;
            super::at_most_max("CALLBACK_RETRY_DELAYS", secs).map(Duration::from_secs)
        })
        .collect()
}

/// An event is kept `EVENT_RETENTION_DAYS` from when it is made: its retries, each up to 20 %
/// longer with jitter, must be over by then, or its last attempts find no event to send.
fn fits_retention(delays: &[Duration], retention: Duration) -> Result<(), ConfigError> {
    // Each delay is at most a year (`retry_delays`), so the sum cannot overflow.
    let span = delays.iter().sum::<Duration>().mul_f64(1.2);
    if span > retention {
        return Err(ConfigError::Invalid {
            name: "CALLBACK_RETRY_DELAYS",
            reason: format!(
                "the retries span {} s, {} s with +20 % jitter, longer than events are kept \
                 (EVENT_RETENTION_DAYS, {} s): shorten the delays or keep events longer",
                delays.iter().sum::<Duration>().as_secs(),
                span.as_secs(),
                retention.as_secs()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn off_without_a_secret_and_named_errors_with_one() {
        assert!(PushConfig::from_env(&Env::default()).unwrap().is_none());
        let missing = PushConfig::from_env(&Env::from_pairs([("CALLBACK_SIGNING_SECRET", SECRET)]));
        assert_eq!(missing.unwrap_err(), ConfigError::Missing("EVENTS_TABLE"));
        for (name, value) in [
            ("CALLBACK_SIGNING_SECRET", "plain"),
            ("EVENT_RETENTION_DAYS", "0"),
            ("CALLBACK_RETRY_DELAYS", "5,,30"),
            ("CALLBACK_HOSTS", "yes please"),
        ] {
            let mut env =
                Env::from_pairs([("CALLBACK_SIGNING_SECRET", SECRET), ("EVENTS_TABLE", "e")]);
            env.set(name, value);
            let err = PushConfig::from_env(&env).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
            assert!(
                !err.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "secret leaked: {err}"
            );
        }
    }

    #[test]
    fn retry_delays_must_fit_in_the_events_retention() {
        let env = |delays: &str, days: &str| {
            Env::from_pairs([
                ("CALLBACK_SIGNING_SECRET", SECRET),
                ("EVENTS_TABLE", "e"),
                ("CALLBACK_RETRY_DELAYS", delays),
                ("EVENT_RETENTION_DAYS", days),
            ])
        };
        // Delays that overflow a date (or their sum a u64) are refused by name, not a panic.
        for delays in [
            "18446744073709551615",
            "9223372036854775807,9223372036854775807",
        ] {
            let err = PushConfig::from_env(&env(delays, "7"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("CALLBACK_RETRY_DELAYS"), "{delays}: {err}");
        }
        // 75,000 s of retries, +20 % jitter = 25 h: past a day's retention the event would
        // expire while it is still being retried.
        let err = PushConfig::from_env(&env("75000", "1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CALLBACK_RETRY_DELAYS") && err.contains("EVENT_RETENTION_DAYS"),
            "{err}"
        );
        assert!(PushConfig::from_env(&env("75000", "2")).is_ok());
        assert!(
            PushConfig::from_env(&env("72000", "1")).is_ok(),
            "exactly a day fits"
        );
        assert!(PushConfig::from_env(&env("60000", "1")).is_ok());
        // The defaults fit the shortest retention.
        let shortest = Env::from_pairs([
            ("CALLBACK_SIGNING_SECRET", SECRET),
            ("EVENTS_TABLE", "e"),
            ("EVENT_RETENTION_DAYS", "1"),
        ]);
        assert!(PushConfig::from_env(&shortest).is_ok());
    }

    #[test]
    fn defaults() {
        let env = Env::from_pairs([("CALLBACK_SIGNING_SECRET", SECRET), ("EVENTS_TABLE", "e")]);
        let c = PushConfig::from_env(&env).unwrap().unwrap();
        assert_eq!(c.events.retention, Duration::from_secs(7 * 86_400));
        assert!(c.secret.is_some() && c.bus.is_none());
        let bus_only = Env::from_pairs([("EVENT_BUS_NAME", "b"), ("EVENTS_TABLE", "e")]);
        let c = PushConfig::from_env(&bus_only).unwrap().unwrap();
        assert!(c.secret.is_none());
        assert_eq!(c.bus.as_deref(), Some("b"));
        assert_eq!(c.retry_delays.len(), 9);
        assert_eq!(c.hosts, CallbackHosts::Deployment);
    }
}
