//! Starting and stopping the whole system in one process: store, queue, Vapi (simulated or real),
//! the HTTP routes, the enrichment consumer and the cleanup schedule.

use std::net::SocketAddr;
use std::sync::Arc;

use ringback::adapters::dynamodb::{ensure_call_index_table, ensure_events_table, ensure_tables};
use ringback::config::{ApiAuth, CallsConfig, Timing};
use ringback::metrics::Metrics;
use ringback::ports::{CallStore, Clock, SystemClock, VapiApi};
use ringback::search::SearchService;
use ringback::service::cleanup::CleanupService;
use ringback::stats::StatsService;
use ringback::vapi::{VapiClient, VapiClientConfig};
use ringback::wiring::{indexed_calls, result_sink, Core};
use tokio::sync::watch;

use crate::durability::GroupSync;
use crate::http::{router, Routes};
use crate::options::LocalOptions;
use crate::queue::{LocalQueue, QueueRole};
use crate::storage::{embedded_client, sdk_config, EmbeddedDynamo};
use crate::workers;

/// A running system. Dropping it without [`System::stop`] loses the in-process queue's state.
pub struct System {
    pub addr: SocketAddr,
    pub base_url: String,
    pub simulator: Option<vapi_simulator::SimulatorHandle>,
    pub store: Arc<dyn CallStore>,
    pub queue: LocalQueue,
    /// Push jobs' own queue, consumed apart from enrichment (api.md §9: a receiver cannot slow a
    /// call's enrichment).
    pub push_queue: LocalQueue,
    pub dynamo: aws_sdk_dynamodb::Client,
    /// Where the data lives, for the banner.
    pub storage: String,
    /// The cleanup, also run on its schedule; tests call it directly.
    pub cleanup: Arc<CleanupService>,
    /// The identity its calls carry (`DEPLOYMENT_ID`, else kept in the data directory).
    pub deployment: ringback::config::DeploymentId,
    stop: watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    embedded: Option<EmbeddedDynamo>,
}

impl System {
    pub async fn start(opts: LocalOptions) -> Result<Self, String> {
        let env = &opts.env;
        let calls_cfg = CallsConfig::from_env(env).map_err(|e| e.to_string())?;
        let timing = Timing::from_env(env)
            .map_err(|e| e.to_string())?
            .cap_claim_lease(opts.visibility_timeout);
        let api_auth = ApiAuth::from_env(env).map_err(|e| e.to_string())?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // EMF lines on stdout only when asked for (`RINGBACK_METRICS=emf`): locally they are noise.
        let metrics = Metrics::from_env(env);

        let (embedded, dynamo, storage, durability) = match &opts.dynamodb_endpoint {
            Some(url) => (
                None,
                aws_sdk_dynamodb::Client::new(&sdk_config(Some(url)).await),
                format!("DynamoDB at {url}"),
                GroupSync::none(),
            ),
            None => {
                let dir = (!opts.in_memory).then_some(opts.data_dir.as_path());
                let db = EmbeddedDynamo::open(dir)?;
                let client = embedded_client(&db.client);
                let where_ = match dir {
                    Some(d) => format!("{}/ringback.db (embedded dynoxide)", d.display()),
                    None => "memory (embedded dynoxide)".to_owned(),
                };
                let durability = db.durability.clone();
                (Some(db), client, where_, durability)
            }
        };
        let providers = env.get("PROVIDERS_TABLE").unwrap_or_default();
        let logs = env.get("INTERACTION_LOGS_TABLE").unwrap_or_default();
        ensure_tables(&dynamo, &calls_cfg.calls_table, providers, logs)
            .await
            .map_err(|e| format!("cannot create the tables: {e}"))?;
        if let Some(index) = &calls_cfg.call_index_table {
            ensure_call_index_table(&dynamo, index)
                .await
                .map_err(|e| format!("cannot create the call index table: {e}"))?;
        }
        let sink = result_sink(&dynamo, env, clock.clone()).map_err(|e| e.to_string())?;
        let events_table = env.get("EVENTS_TABLE").unwrap_or_default();
        ensure_events_table(&dynamo, events_table)
            .await
            .map_err(|e| format!("cannot create the events table: {e}"))?;

        let queue = LocalQueue::start(&opts, QueueRole::Enrichment).await?;
        let push_queue = LocalQueue::start(&opts, QueueRole::Push).await?;
        let core = Core {
            calls: Arc::new(indexed_calls(&dynamo, calls_cfg.clone(), clock.clone())),
            queue: queue.port(),
            push_queue: push_queue.port(),
            clock,
            metrics: metrics.clone(),
            timing,
        };

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", opts.port))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}");

        let webhook_url = opts.webhook_url(&base_url);
        let simulator = match &opts.vapi_base_url {
            Some(_) => None,
            None => Some(
                vapi_simulator::Simulator::start(vapi_simulator::SimulatorConfig {
                    default_webhook_url: Some(webhook_url.clone()),
                    timings: vapi_simulator::Timings::default().scaled(opts.simulator_time_scale),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("cannot start the Vapi simulator: {e}"))?,
            ),
        };
        let vapi_base = match (&simulator, &opts.vapi_base_url) {
            (Some(sim), _) => sim.base_url(),
            (None, Some(url)) => url.clone(),
            (None, None) => unreachable!("one of them is set"),
        };
        let api_key = env.get("VAPI_API_KEY").unwrap_or_default().to_owned();
        let vapi: Arc<dyn VapiApi> = Arc::new(
            VapiClient::new(VapiClientConfig::new(vapi_base, api_key))
                .with_metrics(metrics.clone()),
        );
        // Vapi calls back the runner's own webhook unless VAPI_WEBHOOK_URL says otherwise.
        let mut env = env.clone();
        env.set("VAPI_WEBHOOK_URL", webhook_url);
        let deployment = opts.deployment_id()?;
        env.set("DEPLOYMENT_ID", deployment.as_str());
        let config_error = |e: ringback::config::ConfigError| e.to_string();
        // An EventBridge bus only when asked for (`EVENT_BUS_NAME` and its endpoint and credentials).
        let bus = match env.get("EVENT_BUS_NAME") {
            Some(_) => ringback::wiring::event_bus(&env, &ringback::adapters::aws_config().await)
                .map_err(config_error)?,
            None => None,
        };
        let push = core.push(&env, bus).map_err(config_error)?;
        let events = push.as_ref().map(|p| p.store.clone());
        let erase = Arc::new(
            core.eraser(&env, vapi.clone(), sink.clone())
                .map_err(config_error)?,
        );
        let stats = core.calls.index().cloned().map(|index| StatsService {
            index,
            store: core.calls.clone(),
            pushes: events.clone(),
            queues: Some(queue.gauge()),
            clock: core.clock.clone(),
        });
        let routes = Arc::new(Routes {
            webhook: core.webhook(&env).map_err(config_error)?,
            status: core.status(),
            search: core
                .calls
                .index()
                .cloned()
                .map(|index| SearchService { index }),
            initiator: core.initiator(&env, vapi.clone()).map_err(config_error)?,
            api_auth,
            durability,
            calls: core.calls.clone(),
            events,
            redelivery: core.redelivery(&env).map_err(config_error)?,
            webhooks: core
                .events(&env)
                .map_err(config_error)?
                .map(|e| e as Arc<dyn ringback::ports::WebhookArchive>),
            replay: core.replay(&env).map_err(config_error)?,
            receiver: crate::receiver::DevReceiver::new(
                push.as_ref().and_then(|p| p.secret.clone()),
            ),
            console: crate::console::ConsoleConfig {
                dev_token: env
                    .get("API_TOKEN")
                    .filter(|t| *t == crate::options::DEV_API_TOKEN)
                    .map(str::to_owned),
                simulator: simulator.is_some(),
            },
            erase: erase.clone(),
            stats,
        });
        let (stop, mut stopped) = watch::channel(false);
        let enrichment = Arc::new(core.enrichment(vapi.clone(), sink.clone(), None, push.clone()));
        let consumer = workers::start_consumer(
            QueueRole::Enrichment,
            &queue,
            enrichment.clone(),
            opts.visibility_timeout,
            stop.subscribe(),
        );
        let pusher = workers::start_consumer(
            QueueRole::Push,
            &push_queue,
            enrichment,
            opts.visibility_timeout,
            stop.subscribe(),
        );
        let reconcile = ringback::service::cleanup::Reconcile::new(
            vapi,
            env.get("VAPI_PHONE_NUMBER_ID").unwrap_or_default(),
            deployment.clone(),
            calls_cfg.result_ttl,
            Arc::new(core.calls.inner().clone()),
        );
        let cleanup = Arc::new(core.cleanup(sink, Some(reconcile), push, Some(erase)));
        let cleaner = opts
            .cleanup_interval
            .map(|every| workers::start_cleanup(cleanup.clone(), every, stop.subscribe()));
        let app = router(routes);
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });

        Ok(Self {
            addr,
            base_url,
            simulator,
            store: core.calls,
            queue,
            push_queue,
            dynamo,
            storage,
            cleanup,
            deployment,
            stop,
            server,
            workers: [Some(consumer), Some(pusher), cleaner]
                .into_iter()
                .flatten()
                .collect(),
            embedded,
        })
    }

    /// The embedded store's client (its request counts), when the store is embedded.
    pub fn embedded_store(&self) -> Option<crate::storage::InProcess> {
        self.embedded.as_ref().map(|db| db.client.clone())
    }

    /// Stops taking requests, lets the ones in flight finish, saves the queue, closes the store.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        for w in self.workers {
            let _ = w.await;
        }
        if let Some(sim) = self.simulator {
            sim.shutdown().await;
        }
        self.queue.stop().await;
        self.push_queue.stop().await;
        if let Some(db) = self.embedded {
            db.stop();
        }
    }
}
