//! Building the services. [`Core`] holds what every service shares (the calls table, the
//! enrichment queue, the clock, metrics, timing) and builds each one, reading the rest of its
//! configuration by name; the Lambdas make their `Core` from AWS clients (the `*_service`
//! functions, once per cold start), `ringback-local` from its embedded store and queue.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::callback_http::HttpCallbacks;
use crate::adapters::dynamodb::{CallIndexTable, CallsTable, EventsTable, ProvidersAndLogs};
use crate::adapters::eventbridge::EventBridgeBus;
use crate::adapters::sqs::{SqsGauge, SqsPoisonSink, SqsQueue};
use crate::config::{
    self, ApiAuth, CallsConfig, ConfigError, DeploymentId, Env, EventsConfig, PushConfig, Timing,
    VapiConfig,
};
use crate::domain::erase::tombstone_lifetime;
use crate::metrics::Metrics;
use crate::ports::{
    CallStore, Clock, EnrichmentQueue, EventBus, PoisonSink, PushStore, ResultSink, SystemClock,
    VapiApi, WebhookArchive,
};
use crate::search::{CallIndex, IndexedCalls, SearchService};
use crate::service::cleanup::{CleanupService, Reconcile, Revive};
use crate::service::enrichment::EnrichmentService;
use crate::service::erase::EraseService;
use crate::service::initiate::{Callbacks, InitiatorService};
use crate::service::push::{random_jitter, PushService};
use crate::service::redeliver::Redelivery;
use crate::service::replay::ReplayService;
use crate::service::status::StatusService;
use crate::service::webhook::WebhookService;
use crate::stats::{QueueGauge, StatsService};
use crate::vapi::{CallSettings, VapiClient, VapiClientConfig};

/// How long a repeated call request waits for the first one with its `Idempotency-Key`.
const IDEMPOTENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// When an attempt's `POST /call` can no longer create a call: the Vapi client's 10 s timeout,
/// with ample slack for a request Vapi received and processes late.
const IN_DOUBT_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// Overdue records the cleanup reads per page of the unfinished index.
const CLEANUP_PAGE: u32 = 100;

/// What every service is built on.
#[derive(Clone)]
pub struct Core {
    /// The calls table: the call store and, for the initiator, the idempotency store; with
    /// `CALL_INDEX_TABLE`, every record write keeps the call's durable summary too.
    pub calls: Arc<IndexedCalls<CallsTable>>,
    pub queue: Arc<dyn EnrichmentQueue>,
    /// Where push jobs (delivering events to receivers) go: a queue of their own, consumed apart
    /// from enrichment, so that a receiver that hangs delays other pushes, never a call's
    /// enrichment (a batch waits for its slowest message).
    pub push_queue: Arc<dyn EnrichmentQueue>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub timing: Timing,
}

impl Core {
    pub fn webhook(&self, env: &Env) -> Result<WebhookService, ConfigError> {
        let archive = self.events(env)?;
        Ok(WebhookService {
            archive: archive.map(|a| a as Arc<dyn WebhookArchive>),
            store: self.calls.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            auth: config::webhook_auth(env)?,
            max_bytes: max_webhook_bytes(env)?,
            timing: self.timing.clone(),
            metrics: self.metrics.clone(),
        })
    }

    pub fn status(&self) -> StatusService {
        StatusService {
            store: self.calls.clone(),
        }
    }

    pub fn initiator(
        &self,
        env: &Env,
        vapi: Arc<dyn VapiApi>,
    ) -> Result<InitiatorService, ConfigError> {
        let callbacks = match PushConfig::from_env(env)?.filter(|c| c.secret.is_some()) {
            Some(c) => Callbacks::On { hosts: c.hosts },
            None => Callbacks::Off,
        };
        Ok(InitiatorService {
            store: self.calls.clone(),
            idempotency: self.calls.clone(),
            queue: self.queue.clone(),
            vapi,
            clock: self.clock.clone(),
            settings: call_settings(env)?,
            timing: self.timing.clone(),
            idempotency_wait: IDEMPOTENCY_WAIT,
            in_doubt_after: IN_DOUBT_AFTER,
            metrics: self.metrics.clone(),
            callbacks,
        })
    }

    pub fn enrichment(
        &self,
        vapi: Arc<dyn VapiApi>,
        sink: Arc<dyn ResultSink>,
        poison: Option<Arc<dyn PoisonSink>>,
        push: Option<Arc<PushService>>,
    ) -> EnrichmentService {
        EnrichmentService {
            store: self.calls.clone(),
            queue: self.queue.clone(),
            vapi,
            sink,
            clock: self.clock.clone(),
            timing: self.timing.clone(),
            poison,
            push,
            metrics: self.metrics.clone(),
        }
    }

    /// The events table, when `EVENTS_TABLE` is set.
    pub fn events(&self, env: &Env) -> Result<Option<Arc<EventsTable>>, ConfigError> {
        Ok(EventsConfig::from_env(env)?.map(|c| Arc::new(self.events_table(c))))
    }

    fn events_table(&self, c: EventsConfig) -> EventsTable {
        let client = self.calls.inner().client().clone();
        EventsTable::new(client, c.table, c.retention, self.clock.clone())
    }

    /// Replays from the kept webhooks, when `EVENTS_TABLE` is set.
    pub fn replay(&self, env: &Env) -> Result<Option<ReplayService>, ConfigError> {
        Ok(self.events(env)?.map(|archive| ReplayService {
            store: self.calls.clone(),
            archive,
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            timing: self.timing.clone(),
        }))
    }

    /// An operator's redelivery of pushed events, when pushes are on (a signing secret is set).
    pub fn redelivery(&self, env: &Env) -> Result<Option<Redelivery>, ConfigError> {
        let Some(cfg) = PushConfig::from_env(env)?.filter(|c| c.secret.is_some()) else {
            return Ok(None);
        };
        Ok(Some(Redelivery {
            store: Arc::new(self.events_table(cfg.events)),
            queue: self.push_queue.clone(),
            clock: self.clock.clone(),
        }))
    }

    /// The pushed-events service, when `CALLBACK_SIGNING_SECRET` is set.
    pub fn push(
        &self,
        env: &Env,
        bus: Option<Arc<dyn EventBus>>,
    ) -> Result<Option<Arc<PushService>>, ConfigError> {
        let Some(cfg) = PushConfig::from_env(env)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(PushService {
            store: Arc::new(self.events_table(cfg.events)),
            queue: self.push_queue.clone(),
            sender: Arc::new(HttpCallbacks::new(cfg.hosts)),
            secret: cfg.secret,
            bus,
            clock: self.clock.clone(),
            retry_delays: cfg.retry_delays,
            hosts: cfg.hosts,
            jitter: Arc::new(random_jitter),
            metrics: self.metrics.clone(),
        })))
    }

    /// Erasing calls (`DELETE /api/v1/vapi/calls/{id}`), and the cleanup's finishing of an
    /// erase that stopped half-way.
    pub fn eraser(
        &self,
        env: &Env,
        vapi: Arc<dyn VapiApi>,
        sink: Arc<dyn ResultSink>,
    ) -> Result<EraseService, ConfigError> {
        let events = EventsConfig::from_env(env)?;
        let retention = events.as_ref().map_or(Duration::ZERO, |c| c.retention);
        Ok(EraseService {
            store: self.calls.clone(),
            index: self.calls.index().cloned(),
            archive: events.map(|c| Arc::new(self.events_table(c)) as Arc<dyn WebhookArchive>),
            sink,
            vapi,
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            lifetime: tombstone_lifetime(retention, self.calls.inner().ttl()),
            placing: IN_DOUBT_AFTER,
            vapi_after: crate::adapters::dynamodb::IDEMPOTENCY_TTL,
        })
    }

    pub fn cleanup(
        &self,
        sink: Arc<dyn ResultSink>,
        reconcile: Option<Reconcile>,
        push: Option<Arc<PushService>>,
        erase: Option<Arc<EraseService>>,
    ) -> CleanupService {
        // Calls whose record expired unfinished are found through the listing, if there is one.
        let revive = self.calls.index().map(|index| Revive {
            index: index.clone(),
            ttl: self.calls.inner().ttl(),
        });
        CleanupService {
            reconcile,
            revive,
            store: self.calls.clone(),
            queue: self.queue.clone(),
            sink,
            clock: self.clock.clone(),
            timing: self.timing.clone(),
            page_size: CLEANUP_PAGE,
            metrics: self.metrics.clone(),
            push,
            erase,
        }
    }
}

pub fn max_webhook_bytes(env: &Env) -> Result<usize, ConfigError> {
    env.parse_or("MAX_WEBHOOK_BYTES", 1024 * 1024)
}

/// Deployment settings for placing calls: the webhook Vapi should call back, with its secret.
pub fn call_settings(env: &Env) -> Result<CallSettings, ConfigError> {
    Ok(CallSettings {
        phone_number_id: env.required("VAPI_PHONE_NUMBER_ID")?,
        assistant_id: env.get("VAPI_ASSISTANT_ID").map(str::to_owned),
        webhook_url: env.required("VAPI_WEBHOOK_URL")?,
        webhook_secret: config::webhook_secret(env)?,
        deployment_id: DeploymentId::from_env(env)?,
    })
}

/// The providers and interaction-logs tables (`PROVIDERS_TABLE`, `INTERACTION_LOGS_TABLE`).
pub fn result_sink(
    dynamo: &aws_sdk_dynamodb::Client,
    env: &Env,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn ResultSink>, ConfigError> {
    Ok(Arc::new(ProvidersAndLogs::new(
        dynamo.clone(),
        env.required("PROVIDERS_TABLE")?,
        env.required("INTERACTION_LOGS_TABLE")?,
        clock,
    )))
}

// ---- the Lambdas: AWS clients from the environment, once per cold start ----

/// The SDK clients, built once and cloned cheaply.
#[derive(Clone, Debug)]
pub struct Aws {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sdk: aws_config::SdkConfig,
}

impl Aws {
    pub async fn from_env() -> Self {
        let cfg = crate::adapters::aws_config().await;
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(&cfg),
            sqs: aws_sdk_sqs::Client::new(&cfg),
            sdk: cfg,
        }
    }
}

/// The calls table, its connection opened during init: one read of a key no call has (every
/// function may already read the table) pays the TLS handshake before the first request rather
/// than in it. Ignored if it fails or is slow: warming up must never fail or stall a cold start.
async fn calls_table(
    aws: &Aws,
    cfg: CallsConfig,
    clock: Arc<dyn Clock>,
) -> Arc<IndexedCalls<CallsTable>> {
    let table = Arc::new(indexed_calls(&aws.dynamo, cfg, clock));
    let _ = tokio::time::timeout(Duration::from_secs(1), table.get("ringback-warm-up")).await;
    table
}

/// A Lambda's `Core`: `CALLS_TABLE`, `RESULT_TTL_SECONDS`, `ENRICHMENT_QUEUE_URL` and the timing
/// variables are read before any client is built, so a missing one fails fast by name.
/// `PUSH_QUEUE_URL` is the push jobs' queue (the template always sets it); unset, they share the
/// enrichment queue, as before it existed.
async fn aws_core(env: &Env) -> Result<(Aws, Core), ConfigError> {
    let calls = CallsConfig::from_env(env)?;
    let queue_url = env.required("ENRICHMENT_QUEUE_URL")?;
    let push_queue_url = env.get("PUSH_QUEUE_URL").unwrap_or(&queue_url).to_owned();
    let timing = Timing::from_env(env)?;
    let aws = Aws::from_env().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let core = Core {
        calls: calls_table(&aws, calls, clock.clone()).await,
        queue: Arc::new(SqsQueue::new(aws.sqs.clone(), queue_url)),
        push_queue: Arc::new(SqsQueue::new(aws.sqs.clone(), push_queue_url)),
        clock,
        metrics: Metrics::emf(),
        timing,
    };
    Ok((aws, core))
}

/// The calls table behind its search index (when `CALL_INDEX_TABLE` is set).
pub fn indexed_calls(
    dynamo: &aws_sdk_dynamodb::Client,
    cfg: CallsConfig,
    clock: Arc<dyn Clock>,
) -> IndexedCalls<CallsTable> {
    let table = CallsTable::new(dynamo.clone(), cfg.calls_table, cfg.result_ttl, clock);
    match cfg.call_index_table {
        // The summaries are written by the calls table, in each record write's transaction.
        Some(t) => IndexedCalls::new(
            table.with_index(t.clone()),
            Some(Arc::new(CallIndexTable::new(dynamo.clone(), t)) as Arc<dyn CallIndex>),
        ),
        None => IndexedCalls::new(table, None),
    }
}

/// The EventBridge bus `EVENT_BUS_NAME`, if set (endpoint: `AWS_ENDPOINT_URL_EVENTBRIDGE`, else
/// `AWS_ENDPOINT_URL`, else the region's).
pub fn event_bus(
    env: &Env,
    sdk: &aws_config::SdkConfig,
) -> Result<Option<Arc<dyn EventBus>>, ConfigError> {
    let Some(bus) = env.get("EVENT_BUS_NAME") else {
        return Ok(None);
    };
    let endpoint = env
        .get("AWS_ENDPOINT_URL_EVENTBRIDGE")
        .or(env.get("AWS_ENDPOINT_URL"))
        .map(str::to_owned);
    let bus = EventBridgeBus::new(sdk, bus.to_owned(), endpoint).map_err(|reason| {
        ConfigError::Invalid {
            name: "EVENT_BUS_NAME",
            reason,
        }
    })?;
    Ok(Some(Arc::new(bus)))
}

pub fn vapi_client(env: &Env) -> Result<VapiClient, ConfigError> {
    let cfg = VapiConfig::from_env(env)?;
    Ok(
        VapiClient::new(VapiClientConfig::new(cfg.base_url, cfg.api_key))
            .with_metrics(Metrics::emf()),
    )
}

/// The webhook function's routes: Vapi's server messages (`WebhookApi`), and an operator's replay
/// of a call's kept webhooks (`HttpApi`, with the client API's token): replaying is applying
/// webhooks again, which is this function's work.
pub struct WebhookRoutes {
    pub webhook: WebhookService,
    pub replay: Option<ReplayService>,
    pub auth: ApiAuth,
}

pub async fn webhook_service(env: &Env) -> Result<WebhookRoutes, ConfigError> {
    let auth = ApiAuth::from_env(env)?;
    let (_, core) = aws_core(env).await?;
    Ok(WebhookRoutes {
        webhook: core.webhook(env)?,
        replay: core.replay(env)?,
        auth,
    })
}

/// What the call-status function serves; it only reads. The events table (`EVENTS_TABLE`) gives
/// a call's timeline, the call index (`CALL_INDEX_TABLE`) the listing; it needs neither the queue
/// nor timing, nor the signing secret.
pub struct StatusRoutes {
    pub status: StatusService,
    pub search: Option<SearchService>,
    pub events: Option<Arc<EventsTable>>,
    /// With `CALL_INDEX_TABLE`; the queues' depths with `ENRICHMENT_QUEUE_URL` and
    /// `ENRICHMENT_DLQ_URL`.
    pub stats: Option<StatsService>,
    pub auth: ApiAuth,
}

pub async fn status_service(env: &Env) -> Result<StatusRoutes, ConfigError> {
    let calls = CallsConfig::from_env(env)?;
    let auth = ApiAuth::from_env(env)?;
    let events = EventsConfig::from_env(env)?;
    let aws = Aws::from_env().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // One client for every table: the calls table's warm-up opens the connection for all.
    let store = calls_table(&aws, calls, clock.clone()).await;
    let search = store.index().cloned().map(|index| SearchService { index });
    let queues = match (
        env.get("ENRICHMENT_QUEUE_URL"),
        env.get("ENRICHMENT_DLQ_URL"),
    ) {
        (Some(q), Some(dlq)) => Some(Arc::new(SqsGauge::new(
            aws.sqs.clone(),
            q.to_owned(),
            dlq.to_owned(),
        )) as Arc<dyn QueueGauge>),
        _ => None,
    };
    let events = events.map(|c| {
        let table = EventsTable::new(aws.dynamo.clone(), c.table, c.retention, clock.clone());
        Arc::new(table)
    });
    let stats = store.index().cloned().map(|index| StatsService {
        index,
        store: store.clone(),
        pushes: events.clone().map(|e| e as Arc<dyn PushStore>),
        queues,
        clock: clock.clone(),
    });
    Ok(StatusRoutes {
        status: StatusService { store },
        search,
        events,
        stats,
        auth,
    })
}

/// The call-initiator function's routes: placing calls, and an operator's redelivery of a pushed
/// event, which needs what placing a call needs: a table write and the queue.
pub struct InitiatorRoutes {
    pub initiator: InitiatorService,
    pub redelivery: Option<Redelivery>,
    /// Erasing a call: writes where placing one does, and may ask Vapi to delete it.
    pub erase: EraseService,
    pub auth: ApiAuth,
}

pub async fn initiator_service(env: &Env) -> Result<InitiatorRoutes, ConfigError> {
    let auth = ApiAuth::from_env(env)?;
    let vapi = Arc::new(vapi_client(env)?);
    let (aws, core) = aws_core(env).await?;
    let sink = result_sink(&aws.dynamo, env, core.clock.clone())?;
    Ok(InitiatorRoutes {
        redelivery: core.redelivery(env)?,
        erase: core.eraser(env, vapi.clone(), sink)?,
        initiator: core.initiator(env, vapi)?,
        auth,
    })
}

/// Bodies that are not jobs are parked in `ENRICHMENT_DLQ_URL` when it is set.
pub async fn enrichment_service(env: &Env) -> Result<EnrichmentService, ConfigError> {
    let vapi = Arc::new(vapi_client(env)?);
    let (aws, core) = aws_core(env).await?;
    let sink = result_sink(&aws.dynamo, env, core.clock.clone())?;
    let poison = env
        .get("ENRICHMENT_DLQ_URL")
        .map(|url| Arc::new(SqsPoisonSink::new(aws.sqs.clone(), url)) as Arc<dyn PoisonSink>);
    let push = core.push(env, event_bus(env, &aws.sdk)?)?;
    Ok(core.enrichment(vapi, sink, poison, push))
}

pub async fn cleanup_service(env: &Env) -> Result<CleanupService, ConfigError> {
    let vapi = Arc::new(vapi_client(env)?);
    let vapi_for_erase: Arc<dyn VapiApi> = vapi.clone();
    let phone_number_id = env.required("VAPI_PHONE_NUMBER_ID")?;
    let deployment = DeploymentId::from_env(env)?;
    let window = CallsConfig::from_env(env)?.result_ttl;
    let (aws, core) = aws_core(env).await?;
    let cursors = Arc::new(core.calls.inner().clone());
    let reconcile = Reconcile::new(vapi, phone_number_id, deployment, window, cursors);
    let sink = result_sink(&aws.dynamo, env, core.clock.clone())?;
    let push = core.push(env, event_bus(env, &aws.sdk)?)?;
    let erase = Arc::new(core.eraser(env, vapi_for_erase, sink.clone())?);
    Ok(core.cleanup(sink, Some(reconcile), push, Some(erase)))
}
