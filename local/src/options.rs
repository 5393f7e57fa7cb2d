//! The local runner's settings: api.md §6's variables with development defaults, so that it starts
//! with no configuration at all.

use std::path::PathBuf;
use std::time::Duration;

use ringback::config::{DeploymentId, Env};

use crate::queue::DEFAULT_LOCAL_VISIBILITY;

pub const DEV_WEBHOOK_SECRET: &str = "dev-webhook-secret";
pub const DEV_API_TOKEN: &str = "dev-api-token";
/// Signs pushed events locally: base64 of `dev-callback-signing-secret-01`.
pub const DEV_CALLBACK_SECRET: &str = "whsec_ZGV2LWNhbGxiYWNrLXNpZ25pbmctc2VjcmV0LTAx";

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub port: u16,
    pub data_dir: PathBuf,
    /// `AWS_ENDPOINT_URL[_DYNAMODB|_SQS]`: use these DynamoDB/SQS servers instead of the embedded ones.
    pub dynamodb_endpoint: Option<String>,
    pub sqs_endpoint: Option<String>,
    /// `VAPI_BASE_URL`: a Vapi-compatible server instead of the built-in simulator.
    pub vapi_base_url: Option<String>,
    /// `RINGBACK_IN_MEMORY=1`: nothing written to disk (tests, throwaway demos).
    pub in_memory: bool,
    /// `ENRICHMENT_VISIBILITY_TIMEOUT_SECONDS`: how soon a failed enrichment message is retried.
    pub visibility_timeout: Duration,
    /// `CLEANUP_INTERVAL_SECONDS`; `None` (0) runs no scheduled cleanup (tests run it by hand).
    pub cleanup_interval: Option<Duration>,
    /// `RINGBACK_SIM_TIME_SCALE`: <1 makes simulated calls faster (tests), >1 slower.
    pub simulator_time_scale: f64,
    /// The environment the services are configured from, with local defaults filled in.
    pub env: Env,
    /// The secrets generated at this start (pointed at a real Vapi, none given): printed once.
    pub generated: Vec<&'static str>,
}

/// The development values, public in this repository and its README.
pub const DEV_SECRETS: [(&str, &str); 3] = [
    ("VAPI_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
    ("API_TOKEN", DEV_API_TOKEN),
    ("CALLBACK_SIGNING_SECRET", DEV_CALLBACK_SECRET),
];

/// api.md §9: pointed at a real Vapi, anyone who reaches the runner (through a tunnel, say) with a
/// public token could place real calls, or forge webhooks and signed events. So no development
/// value is accepted and authentication cannot be turned off; each secret not given is generated
/// from the OS's random source. Returns the names generated.
fn own_secrets(env: &mut Env) -> Result<Vec<&'static str>, String> {
    for name in ["API_AUTH", "WEBHOOK_AUTH"] {
        if env
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Err(format!(
                "{name}=none is refused while VAPI_BASE_URL points at a real Vapi: \
                 nothing stands in front of this runner"
            ));
        }
    }
    let mut generated = Vec::new();
    for (name, dev) in DEV_SECRETS {
        match env.get(name) {
            Some(v) if v == dev => {
                return Err(format!(
                    "{name} is the public development value, refused while VAPI_BASE_URL points \
                     at a real Vapi: set your own, or unset it to have a random one generated"
                ))
            }
            Some(_) => {}
            None => {
                let value = match name {
                    "CALLBACK_SIGNING_SECRET" => {
                        ringback::domain::push::SigningSecret::generate().1
                    }
                    _ => format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    ),
                };
                env.set(name, value);
                generated.push(name);
            }
        }
    }
    Ok(generated)
}

impl LocalOptions {
    pub fn from_env(mut env: Env) -> Result<Self, String> {
        let port = env.parse_or("PORT", 3000u16).map_err(|e| e.to_string())?;
        let data_dir = PathBuf::from(env.get("RINGBACK_DATA_DIR").unwrap_or(".ringback"));
        let dynamodb_endpoint = env
            .get("AWS_ENDPOINT_URL_DYNAMODB")
            .or(env.get("AWS_ENDPOINT_URL"))
            .map(str::to_owned);
        let sqs_endpoint = env
            .get("AWS_ENDPOINT_URL_SQS")
            .or(env.get("AWS_ENDPOINT_URL"))
            .map(str::to_owned);
        let vapi_base_url = env.get("VAPI_BASE_URL").map(str::to_owned);
        let in_memory = env.get("RINGBACK_IN_MEMORY").is_some_and(|v| v != "0");
        // Bounded like every duration (`Env::seconds`): `interval * 2` below cannot overflow.
        let seconds = |name: &'static str, default: u64| {
            env.seconds(name, default).map_err(|e| e.to_string())
        };
        let visibility_timeout = seconds(
            "ENRICHMENT_VISIBILITY_TIMEOUT_SECONDS",
            DEFAULT_LOCAL_VISIBILITY.as_secs(),
        )?;
        let cleanup_interval =
            Some(seconds("CLEANUP_INTERVAL_SECONDS", 300)?).filter(|d| !d.is_zero());
        // Deadlines leave CLEANUP_MARGIN_SECONDS before a record expires, for two cleanup runs to
        // see a stuck record: a longer interval could let it expire after one failed run.
        let margin = seconds("CLEANUP_MARGIN_SECONDS", 720)?;
        if let Some(cleanup_interval) = cleanup_interval.filter(|i| *i * 2 > margin) {
            return Err(format!(
                "CLEANUP_INTERVAL_SECONDS ({} s) must be at most half of CLEANUP_MARGIN_SECONDS \
                 ({} s): two cleanup runs must see a stuck call before it expires",
                cleanup_interval.as_secs(),
                margin.as_secs()
            ));
        }
        let simulator_time_scale = env
            .parse_or("RINGBACK_SIM_TIME_SCALE", 1.0f64)
            .map_err(|e| e.to_string())?;
        if !simulator_time_scale.is_finite() || simulator_time_scale <= 0.0 {
            return Err("RINGBACK_SIM_TIME_SCALE must be a positive number".into());
        }

        // The in-process queue has no URL: a queue URL given without an SQS endpoint would be ignored.
        for var in [
            "ENRICHMENT_QUEUE_URL",
            "ENRICHMENT_DLQ_URL",
            "PUSH_QUEUE_URL",
            "PUSH_DLQ_URL",
        ] {
            if sqs_endpoint.is_none() && env.get(var).is_some_and(|v| !v.trim().is_empty()) {
                return Err(format!(
                    "{var} is set but no SQS endpoint is (AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL): \
                     the in-process queue would ignore it"
                ));
            }
        }
        if vapi_base_url.is_some() && env.get("VAPI_API_KEY").is_none() {
            return Err("VAPI_BASE_URL is set, so VAPI_API_KEY is required".into());
        }
        let generated = if vapi_base_url.is_some() {
            own_secrets(&mut env)?
        } else {
            Vec::new()
        };
        for (name, value) in [
            ("CALLS_TABLE", "ringback-calls"),
            ("PROVIDERS_TABLE", "ringback-providers"),
            ("INTERACTION_LOGS_TABLE", "ringback-interaction-logs"),
            ("EVENTS_TABLE", "ringback-events"),
            ("CALLBACK_SIGNING_SECRET", DEV_CALLBACK_SECRET),
            // Receivers on this machine (a test's, a demo's), plain http too; never private networks.
            ("CALLBACK_HOSTS", "local"),
            ("CALL_INDEX_TABLE", "ringback-call-index"),
            ("VAPI_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
            ("API_TOKEN", DEV_API_TOKEN),
            ("VAPI_API_KEY", "dev-vapi-key"),
            ("VAPI_PHONE_NUMBER_ID", "local-phone-number"),
            // Short enough to watch a call settle; a real deployment waits longer for Vapi's analysis.
            ("STUCK_GRACE_SECONDS", "120"),
        ] {
            if env.get(name).is_none() {
                env.set(name, value);
            }
        }
        Ok(Self {
            port,
            data_dir,
            dynamodb_endpoint,
            sqs_endpoint,
            vapi_base_url,
            in_memory,
            visibility_timeout,
            cleanup_interval,
            simulator_time_scale,
            env,
            generated,
        })
    }

    /// The deployment's identity (`DEPLOYMENT_ID`): as set, else the one kept in the data
    /// directory (made at its first start), so two runners with different data directories differ
    /// and a restart keeps its own; random per start with `RINGBACK_IN_MEMORY`.
    pub fn deployment_id(&self) -> Result<DeploymentId, String> {
        let named = |e: String| format!("DEPLOYMENT_ID {e}");
        if let Some(set) = self.env.get("DEPLOYMENT_ID") {
            return DeploymentId::parse(set).map_err(named);
        }
        if self.in_memory {
            return Ok(DeploymentId::random());
        }
        let file = self.data_dir.join("deployment-id");
        match std::fs::read_to_string(&file) {
            Ok(kept) => DeploymentId::parse(kept.trim())
                .map_err(|e| format!("{} {e}; delete it to make a new one", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = DeploymentId::random();
                std::fs::create_dir_all(&self.data_dir)
                    .and_then(|()| std::fs::write(&file, format!("{fresh}\n")))
                    .map_err(|e| {
                        format!("cannot keep the deployment id in {}: {e}", file.display())
                    })?;
                Ok(fresh)
            }
            Err(e) => Err(format!("cannot read {}: {e}", file.display())),
        }
    }

    pub fn webhook_url(&self, base: &str) -> String {
        self.env
            .get("VAPI_WEBHOOK_URL")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{base}{}", ringback::api::WEBHOOK_PATH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleanup_interval_past_the_margin_stops_start_up() {
        let err = LocalOptions::from_env(Env::from_pairs([("CLEANUP_INTERVAL_SECONDS", "361")]))
            .unwrap_err();
        assert!(err.contains("CLEANUP_INTERVAL_SECONDS"), "{err}");
        assert!(
            LocalOptions::from_env(Env::from_pairs([("CLEANUP_INTERVAL_SECONDS", "360")])).is_ok()
        );
        let off = LocalOptions::from_env(Env::from_pairs([("CLEANUP_INTERVAL_SECONDS", "0")]));
        assert_eq!(off.unwrap().cleanup_interval, None);
    }

    const REAL_VAPI: [(&str, &str); 2] = [
        ("VAPI_BASE_URL", "https://api.vapi.ai"),
        ("VAPI_API_KEY", "a-real-key"),
    ];

    #[test]
    fn pointed_at_a_real_vapi_it_never_takes_the_public_development_secrets() {
        for (name, dev) in DEV_SECRETS {
            let env = Env::from_pairs(REAL_VAPI.into_iter().chain([(name, dev)]));
            let err = LocalOptions::from_env(env).unwrap_err();
            assert!(err.contains(name) && err.contains("public"), "{err}");
            assert!(!err.contains(dev), "the value is not repeated: {err}");
        }
        for off in [("API_AUTH", "none"), ("WEBHOOK_AUTH", "none")] {
            let env = Env::from_pairs(REAL_VAPI.into_iter().chain([off]));
            let err = LocalOptions::from_env(env).unwrap_err();
            assert!(err.contains(off.0), "{err}");
        }
        // Unset: random ones, different every start, listed to be printed once.
        let a = LocalOptions::from_env(Env::from_pairs(REAL_VAPI)).unwrap();
        let b = LocalOptions::from_env(Env::from_pairs(REAL_VAPI)).unwrap();
        for (name, dev) in DEV_SECRETS {
            let value = a.env.get(name).unwrap();
            assert_ne!(value, dev, "{name}");
            assert_ne!(value, b.env.get(name).unwrap(), "{name}");
            assert!(a.generated.contains(&name), "{name}");
        }
        assert!(ringback::config::PushConfig::from_env(&a.env).is_ok());
        // Its own are kept as given and not printed.
        let own = Env::from_pairs(
            REAL_VAPI
                .into_iter()
                .chain([("API_TOKEN", "mine-and-long")]),
        );
        let o = LocalOptions::from_env(own).unwrap();
        assert_eq!(o.env.get("API_TOKEN"), Some("mine-and-long"));
        assert!(!o.generated.contains(&"API_TOKEN"));
        // With the simulator the development values stay, so the README's curl lines work.
        let sim = LocalOptions::from_env(Env::default()).unwrap();
        assert_eq!(sim.env.get("API_TOKEN"), Some(DEV_API_TOKEN));
        assert!(sim.generated.is_empty());
    }

    #[test]
    fn a_duration_past_a_year_stops_start_up_by_name_not_a_panic() {
        for name in ["CLEANUP_INTERVAL_SECONDS", "CLEANUP_MARGIN_SECONDS"] {
            let env = Env::from_pairs([(name, "18446744073709551615")]);
            let err = LocalOptions::from_env(env).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn the_deployment_id_is_kept_per_data_directory() {
        let dirs = [tempdir("a"), tempdir("b")];
        let opts = |dir: &std::path::Path| {
            let dir = dir.to_str().unwrap();
            LocalOptions::from_env(Env::from_pairs([("RINGBACK_DATA_DIR", dir)])).unwrap()
        };
        let a = opts(&dirs[0]).deployment_id().unwrap();
        assert_eq!(
            opts(&dirs[0]).deployment_id().unwrap(),
            a,
            "a restart keeps its own"
        );
        assert_ne!(
            opts(&dirs[1]).deployment_id().unwrap(),
            a,
            "another runner differs"
        );
        let set = Env::from_pairs([("DEPLOYMENT_ID", "stack-7")]);
        assert_eq!(
            LocalOptions::from_env(set)
                .unwrap()
                .deployment_id()
                .unwrap()
                .as_str(),
            "stack-7"
        );
        let bad = Env::from_pairs([("DEPLOYMENT_ID", "two words")]);
        let err = LocalOptions::from_env(bad)
            .unwrap()
            .deployment_id()
            .unwrap_err();
        assert!(err.contains("DEPLOYMENT_ID"), "{err}");
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ringback-deployment-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_queue_url_without_an_sqs_endpoint_stops_start_up() {
        let url = "http://127.0.0.1:5000/123456789012/jobs";
        let err =
            LocalOptions::from_env(Env::from_pairs([("ENRICHMENT_QUEUE_URL", url)])).unwrap_err();
        assert!(err.contains("ENRICHMENT_QUEUE_URL"), "{err}");
        assert!(LocalOptions::from_env(Env::from_pairs([
            ("ENRICHMENT_QUEUE_URL", url),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]))
        .is_ok());
    }
}
