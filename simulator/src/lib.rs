//! A fake Vapi for offline development and tests: Vapi's REST API (`POST /call`,
//! `GET /call/{id}`) and its server webhooks (`status-update`, `end-of-call-report`), with
//! scripted failure [`Scenario`]s. It binds 127.0.0.1 only and never sends traffic off the
//! machine: webhooks to a non-loopback URL are counted as failures and not sent.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use vapi_simulator::{Simulator, SimulatorConfig, Timings};
//! let sim = Simulator::start(SimulatorConfig { timings: Timings::fast(), ..Default::default() }).await?;
//! println!("Vapi base URL: {}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod content;
mod lifecycle;
mod scenario;
mod store;
mod validate;
mod webhook;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use content::OVERSIZED_SUMMARY_BYTES;
pub use scenario::{Scenario, UnknownScenario};
pub use store::{incomplete, FetchScript, ListOrder, Stats};

/// The `orgId` of every simulated call.
pub const ORG_ID: &str = "5e7a1c00-0000-4000-8000-00000000c0de";

/// How long each phase of a simulated call lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// `queued` → `ringing` (or → `ended` for `busy`).
    pub dial: Duration,
    /// `ringing` → `in-progress`; a `no-answer` call rings twice as long, then ends.
    pub ring: Duration,
    /// `in-progress` → `ended`.
    pub talk: Duration,
    /// `ended` → the `end-of-call-report` webhook.
    pub report_delay: Duration,
    /// `ended` → `GET /call/{id}` carries the full analysis (counted from the end, not the report).
    pub analysis_delay: Duration,
    /// One second of a backoff plan's `baseDelaySeconds` (only calls that set `server.backoffPlan` retry).
    pub retry_unit: Duration,
}

impl Default for Timings {
    /// Demo pace: ring ~1 s, talk ~3 s, analysis ready ~2 s after the end.
    fn default() -> Self {
        Timings {
            dial: Duration::from_millis(300),
            ring: Duration::from_secs(1),
            talk: Duration::from_secs(3),
            report_delay: Duration::from_millis(500),
            analysis_delay: Duration::from_secs(2),
            retry_unit: Duration::from_secs(1),
        }
    }
}

impl Timings {
    /// Test pace: a whole call, analysis included, in about 100 ms.
    pub fn fast() -> Self {
        let ms = Duration::from_millis;
        Timings {
            dial: ms(5),
            ring: ms(20),
            talk: ms(30),
            report_delay: ms(10),
            analysis_delay: ms(40),
            retry_unit: ms(10),
        }
    }

    /// Every duration multiplied by `factor` (e.g. 0.1 for a ten times faster demo).
    pub fn scaled(self, factor: f64) -> Self {
        let f = |d: Duration| d.mul_f64(factor.max(0.0));
        Timings {
            dial: f(self.dial),
            ring: f(self.ring),
            talk: f(self.talk),
            report_delay: f(self.report_delay),
            analysis_delay: f(self.analysis_delay),
            retry_unit: f(self.retry_unit),
        }
    }
}

/// What the simulator accepts and how fast it runs.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// `Some(key)`: requests must carry `Authorization: Bearer key`; `None`: any non-empty key.
    pub api_key: Option<String>,
    /// Webhook URL for calls that set neither `assistantOverrides.server.url` nor `assistant.server.url`.
    pub default_webhook_url: Option<String>,
    pub timings: Timings,
    /// Port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// How many `GET /call/{id}` answer 500 in the `api-flaky` scenario (default 3).
    pub flaky_failures: u32,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            api_key: None,
            default_webhook_url: None,
            timings: Timings::default(),
            port: None,
            flaky_failures: 3,
        }
    }
}

/// The simulator's shared state: what [`router`] serves. Cheap to clone.
#[derive(Clone)]
pub struct SimulatorState(Arc<Shared>);

struct Shared {
    config: SimulatorConfig,
    base_url: String,
    store: store::Store,
    http: reqwest::Client,
    tasks: Mutex<JoinSet<()>>,
}

impl SimulatorState {
    /// State for a simulator reachable at `base_url` (used in the recording links it hands out).
    pub fn new(config: SimulatorConfig, base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            // Loopback only: no proxy from the environment, no redirect to elsewhere.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client without TLS roots to load");
        SimulatorState(Arc::new(Shared {
            config,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            store: store::Store::default(),
            http,
            tasks: Mutex::new(JoinSet::new()),
        }))
    }

    /// E.g. `http://127.0.0.1:41234`, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.0.base_url
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.0.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.0.store.lock().stats.clone()
    }

    /// How many `GET /call/{id}` requests named this id.
    pub fn get_calls_for(&self, id: &str) -> u32 {
        self.0
            .store
            .lock()
            .stats
            .get_call
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// The order `GET /call` lists in from now on (newest first by default, as Vapi does).
    pub fn set_list_order(&self, order: ListOrder) {
        self.0.store.lock().list_order = order;
    }

    /// The stored call as it is now, before any fetch script applies.
    pub fn call(&self, id: &str) -> Option<Value> {
        self.0.store.lock().calls.get(id).map(|e| e.call.clone())
    }

    /// Puts `call` in the store as is, answered by `GET /call/{id}` through `script`; no
    /// lifecycle, no webhooks. Uses `call.id` (a new uuid is set when it has none) and returns it.
    pub fn seed_call(&self, mut call: Value, script: FetchScript) -> String {
        let id = match call["id"].as_str() {
            Some(id) => id.to_string(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                call["id"] = id.clone().into();
                id
            }
        };
        self.0.store.insert(&id, call, script, true);
        id
    }

    /// See [`store::Store::set_script`].
    pub fn set_script(&self, id: &str, script: FetchScript) -> bool {
        self.0.store.set_script(id, script)
    }

    /// Waits until the call's lifecycle is over: final GET state reached and every webhook
    /// attempted. Returns false for an unknown id. Seeded calls are finished at once.
    pub async fn wait_call_finished(&self, id: &str) -> bool {
        let Some(mut rx) = self.0.store.finished_rx(id) else {
            return false;
        };
        let done = rx.wait_for(|done| *done).await.is_ok();
        done
    }

    pub(crate) fn store(&self) -> &store::Store {
        &self.0.store
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.0.http
    }

    /// Runs a call's task so that shutdown can stop it.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.0.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    fn abort_all(&self) {
        self.0
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }
}

/// The simulator's routes, for embedding in another axum server.
pub fn router(state: SimulatorState) -> axum::Router {
    api::routes(state)
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds 127.0.0.1 (`config.port`, or a free port) and serves in the background.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port.unwrap_or(0)));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = SimulatorState::new(config, format!("http://{addr}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        tracing::info!(%addr, "Vapi simulator listening");
        Ok(SimulatorHandle {
            state,
            addr,
            stop: Some(stop),
            server: Some(server),
        })
    }
}

/// A running simulator. Dropping it stops the server and the calls in flight too.
pub struct SimulatorHandle {
    state: SimulatorState,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    /// E.g. `http://127.0.0.1:41234`: the Vapi base URL to give clients.
    pub fn base_url(&self) -> String {
        self.state.base_url().to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &SimulatorState {
        &self.state
    }

    /// See [`SimulatorState::stats`].
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// See [`SimulatorState::get_calls_for`].
    pub fn get_calls_for(&self, id: &str) -> u32 {
        self.state.get_calls_for(id)
    }

    /// See [`SimulatorState::call`].
    pub fn call(&self, id: &str) -> Option<Value> {
        self.state.call(id)
    }

    /// See [`SimulatorState::set_list_order`].
    pub fn set_list_order(&self, order: ListOrder) {
        self.state.set_list_order(order)
    }

    /// See [`SimulatorState::seed_call`].
    pub fn seed_call(&self, call: Value, script: FetchScript) -> String {
        self.state.seed_call(call, script)
    }

    /// See [`SimulatorState::set_script`].
    pub fn set_script(&self, id: &str, script: FetchScript) -> bool {
        self.state.set_script(id, script)
    }

    /// See [`SimulatorState::wait_call_finished`].
    pub async fn wait_call_finished(&self, id: &str) -> bool {
        self.state.wait_call_finished(id).await
    }

    /// Stops the calls in flight and the server; waits up to a second for open connections.
    pub async fn shutdown(mut self) {
        self.state.abort_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(1), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.state.abort_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// ISO-8601 with milliseconds and `Z`, as Vapi writes timestamps.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
