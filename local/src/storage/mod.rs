//! Where the local runner keeps its data: the embedded dynoxide store (a SQLite file the real
//! DynamoDB adapter reaches through the SDK, answered in process: `in_process`), or the
//! DynamoDB/SQS endpoints named by `AWS_ENDPOINT_URL*`.

mod in_process;

use std::path::Path;

use aws_sdk_dynamodb::config::{Credentials, Region, SharedHttpClient};

use crate::durability::GroupSync;
pub use in_process::InProcess;

/// The embedded store, open until stopped.
pub struct EmbeddedDynamo {
    /// The SDK's HTTP client that answers from the store.
    pub client: InProcess,
    /// What a request that acknowledges data waits for (a no-op in memory).
    pub durability: GroupSync,
}

impl EmbeddedDynamo {
    /// Opens (or creates) `dir/ringback.db`; `dir = None` keeps everything in memory (tests).
    pub fn open(dir: Option<&Path>) -> Result<Self, String> {
        let (db, durability) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let file = dir.join("ringback.db");
                let db = dynoxide::Database::new(&file.to_string_lossy())
                    .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
                // `synchronous = NORMAL` (dynoxide's only public way to set it): commits reach the
                // WAL without an fsync each under the store's lock; GroupSync makes them durable
                // before anything is acknowledged, one fsync per batch of requests.
                db.disable_bulk_loading()
                    .map_err(|e| format!("cannot configure {}: {e}", file.display()))?;
                (db, GroupSync::new(dir.join("ringback.db-wal")))
            }
            None => (
                dynoxide::Database::memory().map_err(|e| e.to_string())?,
                GroupSync::none(),
            ),
        };
        Ok(Self {
            client: InProcess::new(db, durability.clone()),
            durability,
        })
    }

    /// Called once nothing uses the store any more: closes the SQLite file.
    pub fn stop(self) {
        self.client.close();
    }
}

/// SDK configuration for an emulator endpoint: a fixed region and throwaway credentials unless
/// the environment provides its own.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    config_with(endpoint, ringback::adapters::https_client()).await
}

/// The DynamoDB client of the embedded store: its requests answered in process (the endpoint is
/// only named), and unsigned: with no network between them there is nothing for a signature to
/// prove, and SigV4 was ~4 % of the runner's CPU under load.
pub fn embedded_client(store: &InProcess) -> aws_sdk_dynamodb::Client {
    // No credentials at all (not even the environment's): SigV4 does not apply, no-auth does.
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://embedded.ringback.invalid")
        .http_client(store.clone())
        .allow_no_auth()
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn config_with(endpoint: Option<&str>, http: SharedHttpClient) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        loader = loader.region(Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "ringback-local",
        ));
    }
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
