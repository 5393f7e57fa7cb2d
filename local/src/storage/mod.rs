//! Where the local runner keeps its data: the embedded dynoxide store (a SQLite file served over
//! DynamoDB's own protocol on a loopback port, so the real DynamoDB adapter runs unchanged), or
//! the DynamoDB/SQS endpoints named by `AWS_ENDPOINT_URL*`.

use std::path::Path;

use aws_sdk_dynamodb::config::{Credentials, Region};
use tokio::sync::oneshot;

use crate::durability::GroupSync;

/// The embedded store, served until dropped or stopped.
pub struct EmbeddedDynamo {
    pub endpoint: String,
    /// What a request that acknowledges data waits for (a no-op in memory).
    pub durability: GroupSync,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl EmbeddedDynamo {
    /// Opens (or creates) `dir/ringback.db`; `dir = None` keeps everything in memory (tests).
    pub async fn start(dir: Option<&Path>) -> Result<Self, String> {
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let endpoint = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = dynoxide::server::serve_with_shutdown(listener, db, shutdown).await {
                tracing::error!(error = %e, "embedded DynamoDB store stopped");
            }
        });
        Ok(Self {
            endpoint,
            durability,
            stop: Some(stop),
            served,
        })
    }

    /// Lets running requests finish, then closes the SQLite file.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.served).await;
    }
}

/// SDK configuration for an emulator endpoint: a fixed region and throwaway credentials unless
/// the environment provides its own.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ringback::adapters::https_client());
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
