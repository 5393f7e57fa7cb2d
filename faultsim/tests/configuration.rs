//! Bad configuration stops start-up with a message naming the variable: every setting a function
//! reads at start-up, given seeded garbage and edge values one at a time, either parses into a
//! configuration that keeps the deadlines' promises or is refused naming that variable.

use ringback::config::{self, ApiAuth, CallsConfig, Env, Timing, VapiConfig};
use ringback::domain::CallRecord;
use ringback::service::deadline_for;
use ringback::wiring;
use ringback_faultsim::rng::Rng;

const VARIABLES: &[&str] = &[
    "RESULT_TTL_SECONDS",
    "ENRICHMENT_DELAYS",
    "WATCHDOG_DELAY_SECONDS",
    "MAX_CALL_SECONDS",
    "STUCK_GRACE_SECONDS",
    "CLEANUP_MARGIN_SECONDS",
    "CLAIM_LEASE_SECONDS",
    "MAX_WEBHOOK_BYTES",
    "CALLS_TABLE",
    "VAPI_WEBHOOK_SECRET",
    "API_TOKEN",
    "VAPI_API_KEY",
    "VAPI_PHONE_NUMBER_ID",
    "VAPI_WEBHOOK_URL",
    "DEPLOYMENT_ID",
];

const VALUES: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "-1",
    "abc",
    "3,,5",
    "3,5,8",
    "901",
    "900",
    "1e9",
    "1.5",
    "60",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999",
    " 30 ",
    "1800",
    "3,901",
    "\u{1F4A3}",
];

/// What a deployment sets: every required variable, valid.
fn base() -> Env {
    Env::from_pairs([
        ("CALLS_TABLE", "calls"),
        ("VAPI_WEBHOOK_SECRET", "s"),
        ("API_TOKEN", "t"),
        ("VAPI_API_KEY", "k"),
        ("VAPI_PHONE_NUMBER_ID", "pn"),
        ("VAPI_WEBHOOK_URL", "https://x/api/v1/vapi/webhook"),
        ("DEPLOYMENT_ID", "51af3dc0-da77-11e4-872e-1234567db123"),
    ])
}

/// Every start-up reader, as the functions call them before building any client.
fn start_up(env: &Env) -> Vec<Result<(), config::ConfigError>> {
    vec![
        CallsConfig::from_env(env).map(drop),
        Timing::from_env(env).map(drop),
        ApiAuth::from_env(env).map(drop),
        config::webhook_auth(env).map(drop),
        VapiConfig::from_env(env).map(drop),
        wiring::call_settings(env).map(drop),
        config::DeploymentId::from_env(env).map(drop),
        wiring::max_webhook_bytes(env).map(drop),
    ]
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let mut rng = Rng::new(7);
    let now = chrono::Utc::now();
    for _ in 0..3000 {
        let name = *rng.pick(VARIABLES);
        let value = *rng.pick(VALUES);
        let mut env = base();
        env.set(name, value);
        for result in start_up(&env) {
            if let Err(e) = result {
                assert!(
                    e.to_string().contains(name),
                    "{name}={value:?} was refused without naming it: {e}"
                );
            }
        }
        // A timing that starts keeps its promise: no healthy call falls overdue, and no
        // deadline computation overflows.
        if let Ok(t) = Timing::from_env(&env) {
            assert!(
                t.deadline_cap >= t.longest_quiet_gap(),
                "{name}={value:?} started with deadlines that fall due on healthy calls"
            );
            let _ = deadline_for(&CallRecord::new("c", "t"), now, &t);
        }
    }
}
