//! Tracing setup: JSON lines in Lambda (CloudWatch parses them), readable text locally.
//! `RUST_LOG` filters by target and level (`info`, `ringback=debug,aws_smithy_runtime=warn`); the
//! default is `info`. `Targets` rather than `EnvFilter`: the same directives a function needs, without
//! the regex engine (a few hundred KB of every package).

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `RUST_LOG` as directives; unset or unreadable means `info` (a typo must not silence the logs).
fn filter() -> Targets {
    let default = || Targets::new().with_default(Level::INFO);
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            eprintln!("RUST_LOG={v:?} is not understood ({e}); logging at info");
            default()
        }),
        _ => default(),
    }
}

pub fn init_json() {
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time(); // Lambda stamps every line itself.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter())
        .try_init();
}

pub fn init_text() {
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter())
        .try_init();
}
