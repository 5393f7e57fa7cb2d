//! `vapi-simulator`: serves the fake Vapi on 127.0.0.1 until Ctrl-C.

use clap::Parser;
use vapi_simulator::{Simulator, SimulatorConfig, Timings};

/// A fake Vapi (REST API + webhooks) on 127.0.0.1, for offline development.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3001, env = "SIMULATOR_PORT")]
    port: u16,
    /// Require this API key (`Authorization: Bearer KEY`); by default any non-empty key works.
    #[arg(long, env = "SIMULATOR_API_KEY")]
    api_key: Option<String>,
    /// Webhook URL for calls that set no `server.url` (must be a loopback URL).
    #[arg(long, env = "SIMULATOR_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Multiply every call phase duration by this (0.1 = ten times faster).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// How many GET /call/{id} answer 500 in the api-flaky scenario.
    #[arg(long, default_value_t = 3)]
    flaky_failures: u32,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let sim = Simulator::start(SimulatorConfig {
        api_key: args.api_key,
        default_webhook_url: args.webhook_url,
        timings: Timings::default().scaled(args.time_scale),
        port: Some(args.port),
        flaky_failures: args.flaky_failures,
    })
    .await?;
    println!("Vapi simulator on {} (Ctrl-C to stop)", sim.base_url());
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
