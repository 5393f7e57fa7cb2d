//! Building the services from configuration with their real adapters, once per cold start.
//! Configuration is read before any client is built, so a missing variable fails fast by name.

use std::sync::Arc;

use crate::adapters::dynamodb::{CallsTable, ProvidersAndLogs};
use crate::adapters::sqs::SqsQueue;
use crate::config::{self, ApiAuth, CallsConfig, ConfigError, Env, Timing, VapiConfig};
use crate::metrics::Metrics;
use crate::ports::{CallStore, Clock, ResultSink, SystemClock};
use crate::service::cleanup::CleanupService;
use crate::service::initiate::InitiatorService;
use crate::service::status::StatusService;
use crate::service::webhook::WebhookService;
use crate::vapi::{CallSettings, VapiClient, VapiClientConfig};

/// The SDK clients, built once and cloned cheaply.
#[derive(Clone, Debug)]
pub struct Aws {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Aws {
    pub async fn from_env() -> Self {
        let cfg = crate::adapters::aws_config().await;
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(&cfg),
            sqs: aws_sdk_sqs::Client::new(&cfg),
        }
    }
}

pub fn calls_store(aws: &Aws, cfg: &CallsConfig, clock: Arc<dyn Clock>) -> Arc<dyn CallStore> {
    Arc::new(CallsTable::new(
        aws.dynamo.clone(),
        cfg.calls_table.clone(),
        cfg.result_ttl,
        clock,
    ))
}

pub fn max_webhook_bytes(env: &Env) -> Result<usize, ConfigError> {
    env.parse_or("MAX_WEBHOOK_BYTES", 1024 * 1024)
}

pub async fn webhook_service(env: &Env) -> Result<WebhookService, ConfigError> {
    let calls = CallsConfig::from_env(env)?;
    let queue_url = env.required("ENRICHMENT_QUEUE_URL")?;
    let auth = config::webhook_auth(env)?;
    let timing = Timing::from_env(env)?;
    let max_bytes = max_webhook_bytes(env)?;
    let aws = Aws::from_env().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(WebhookService {
        store: calls_store(&aws, &calls, clock.clone()),
        queue: Arc::new(SqsQueue::new(aws.sqs.clone(), queue_url)),
        clock,
        auth,
        max_bytes,
        timing,
        metrics: Metrics::emf(),
    })
}

pub async fn status_service(env: &Env) -> Result<(StatusService, ApiAuth), ConfigError> {
    let calls = CallsConfig::from_env(env)?;
    let auth = ApiAuth::from_env(env)?;
    let aws = Aws::from_env().await;
    Ok((
        StatusService {
            store: calls_store(&aws, &calls, Arc::new(SystemClock)),
        },
        auth,
    ))
}

/// Deployment settings for placing calls: the webhook Vapi should call back, with its secret.
pub fn call_settings(env: &Env) -> Result<CallSettings, ConfigError> {
    Ok(CallSettings {
        phone_number_id: env.required("VAPI_PHONE_NUMBER_ID")?,
        assistant_id: env.get("VAPI_ASSISTANT_ID").map(str::to_owned),
        webhook_url: env.required("VAPI_WEBHOOK_URL")?,
        webhook_secret: env.get("VAPI_WEBHOOK_SECRET").map(str::to_owned),
    })
}

pub fn vapi_client(env: &Env) -> Result<VapiClient, ConfigError> {
    let cfg = VapiConfig::from_env(env)?;
    Ok(
        VapiClient::new(VapiClientConfig::new(cfg.base_url, cfg.api_key))
            .with_metrics(Metrics::emf()),
    )
}

pub async fn initiator_service(env: &Env) -> Result<(InitiatorService, ApiAuth), ConfigError> {
    let calls = CallsConfig::from_env(env)?;
    let queue_url = env.required("ENRICHMENT_QUEUE_URL")?;
    let settings = call_settings(env)?;
    let timing = Timing::from_env(env)?;
    let auth = ApiAuth::from_env(env)?;
    let vapi = vapi_client(env)?;
    let aws = Aws::from_env().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let table = Arc::new(CallsTable::new(
        aws.dynamo.clone(),
        calls.calls_table.clone(),
        calls.result_ttl,
        clock.clone(),
    ));
    let svc = InitiatorService {
        store: table.clone(),
        idempotency: table,
        queue: Arc::new(SqsQueue::new(aws.sqs.clone(), queue_url)),
        vapi: Arc::new(vapi),
        clock,
        settings,
        timing,
        idempotency_wait: std::time::Duration::from_secs(10),
        metrics: Metrics::emf(),
    };
    Ok((svc, auth))
}

pub fn result_sink(
    aws: &Aws,
    env: &Env,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn ResultSink>, ConfigError> {
    Ok(Arc::new(ProvidersAndLogs::new(
        aws.dynamo.clone(),
        env.required("PROVIDERS_TABLE")?,
        env.required("INTERACTION_LOGS_TABLE")?,
        clock,
    )))
}

pub async fn cleanup_service(env: &Env) -> Result<CleanupService, ConfigError> {
    let calls = CallsConfig::from_env(env)?;
    let queue_url = env.required("ENRICHMENT_QUEUE_URL")?;
    let timing = Timing::from_env(env)?;
    env.required("PROVIDERS_TABLE")?;
    env.required("INTERACTION_LOGS_TABLE")?;
    let aws = Aws::from_env().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(CleanupService {
        store: calls_store(&aws, &calls, clock.clone()),
        queue: Arc::new(SqsQueue::new(aws.sqs.clone(), queue_url)),
        sink: result_sink(&aws, env, clock.clone())?,
        clock,
        timing,
        page_size: 100,
        metrics: Metrics::emf(),
    })
}
