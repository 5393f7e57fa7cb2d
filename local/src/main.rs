use ringback::config::Env;
use ringback_local::options::{DEV_API_TOKEN, DEV_CALLBACK_SECRET, DEV_WEBHOOK_SECRET};
use ringback_local::{LocalOptions, System};

/// Allocation was the largest single cost in the load benchmark's profile (glibc malloc/free and
/// its consolidation, ~18 % of the CPU of a GET): every request allocates the SDK's request and
/// response, two HTTP exchanges and the JSON documents. mimalloc's thread-local free lists halve it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Development values, and secrets generated at this start, are printed (once, here) so they
/// can be pasted; secrets given in the environment never are.
fn shown(opts: &LocalOptions, dev: &str, name: &'static str) -> String {
    match opts.env.get(name) {
        Some(v) if v == dev || opts.generated.contains(&name) => v.to_owned(),
        _ => format!("(the value of {name})"),
    }
}

const USAGE: &str = "\
ringback-local: the whole of ringback on this machine (API, webhook, enrichment, cleanup, a simulated Vapi)

usage: ringback-local [--help | --version]

It takes no arguments: it is configured by environment variables (docs/api.md §6 and §7), each with a
development default. The common ones:
  PORT=3000                 where it listens (127.0.0.1)
  RINGBACK_DATA_DIR=.ringback  where it keeps its data; RINGBACK_IN_MEMORY=1 keeps nothing
  VAPI_BASE_URL             a real Vapi (or compatible server) instead of the built-in simulator
  AWS_ENDPOINT_URL[_DYNAMODB|_SQS]  DynamoDB/SQS servers instead of the embedded ones
  API_TOKEN, VAPI_WEBHOOK_SECRET, CALLBACK_SIGNING_SECRET  secrets (development values by default)
";

/// The runner takes no arguments; one given by mistake must not start a server the user did not ask for.
fn check_args() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            std::process::exit(0);
        }
        Some("-V" | "--version") => {
            println!("ringback-local {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        Some(other) => {
            eprintln!("ringback-local: unexpected argument '{other}' (it is configured by environment variables; try --help)");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() {
    check_args();
    ringback::telemetry::init_text();
    let opts = match LocalOptions::from_env(Env::from_process()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ringback-local: {e}");
            std::process::exit(2);
        }
    };
    let system = match System::start(opts.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringback-local: {e}");
            std::process::exit(1);
        }
    };
    let env = &opts.env;
    let vapi = match &system.simulator {
        Some(sim) => format!("built-in simulator at {}", sim.base_url()),
        None => format!(
            "{} (VAPI_BASE_URL)",
            env.get("VAPI_BASE_URL").unwrap_or_default()
        ),
    };
    println!(
        "\nringback-local is up\n  console      {base}/console/ (calls live, a call's timeline, replay; place simulated calls)\n  API          {base}\n  webhook      {base}{webhook}\n  webhook auth X-Vapi-Secret: {secret}\n  API token    Authorization: Bearer {token}\n  callbacks    signed with {callback} (Standard Webhooks)\n               try \"callbackUrl\": \"{base}/dev/callbacks\", then GET it to see what arrived\n  data         {storage}\n  deployment   {deployment} (DEPLOYMENT_ID: its cleanup adopts only calls carrying it)\n  queue        {queue}\n  push queue   {push_queue}\n  Vapi         {vapi}\n\nCtrl-C stops it cleanly.\n",
        base = system.base_url,
        webhook = ringback::api::WEBHOOK_PATH,
        secret = shown(&opts, DEV_WEBHOOK_SECRET, "VAPI_WEBHOOK_SECRET"),
        token = shown(&opts, DEV_API_TOKEN, "API_TOKEN"),
        callback = shown(&opts, DEV_CALLBACK_SECRET, "CALLBACK_SIGNING_SECRET"),
        storage = system.storage,
        deployment = system.deployment,
        queue = system.queue.describe(),
        push_queue = system.push_queue.describe(),
    );
    if let Some(store) = system.embedded_store() {
        tokio::spawn(report_store_requests(store));
    }
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping: finishing requests in flight and saving the queue...");
    system.stop().await;
    println!("stopped.");
}

/// On `SIGUSR1`, logs the embedded store's requests so far by operation (the load benchmark reads
/// them before and after a run: its store requests per HTTP request).
async fn report_store_requests(store: ringback_local::InProcess) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return;
    };
    while usr1.recv().await.is_some() {
        let served = store.served();
        let total: u64 = served.iter().map(|(_, n)| n).sum();
        let by_operation: Vec<String> = served.iter().map(|(op, n)| format!("{op} {n}")).collect();
        tracing::info!(
            "store requests served: total {total} ({})",
            by_operation.join(", ")
        );
    }
}
