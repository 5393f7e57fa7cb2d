//! Showing one call to a polling client.

use std::sync::Arc;

use crate::domain::{CallId, CallResult};
use crate::ports::{CallStore, StoreError};

pub struct StatusService {
    pub store: Arc<dyn CallStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no call {0} (unknown or expired)")]
    NotFound(String),
    /// The call was erased (at the time given).
    #[error("call {0} was erased at {1}")]
    Erased(String, String),
    #[error("{0}")]
    Unavailable(String),
}

impl StatusService {
    /// The call and its version (the ETag).
    pub async fn get(&self, raw_id: &str) -> Result<(CallResult, u64), StatusError> {
        let id = CallId::parse(raw_id).map_err(|_| StatusError::NotFound(raw_id.to_owned()))?;
        match self.store.get(id.as_str()).await {
            Ok(Some(v)) => match v.record.book.erased_at {
                Some(at) => Err(StatusError::Erased(raw_id.to_owned(), at)),
                None => Ok((v.record.result, v.version)),
            },
            Ok(None) => Err(StatusError::NotFound(raw_id.to_owned())),
            Err(
                e @ (StoreError::Unavailable(_) | StoreError::Conflict | StoreError::Corrupt(_)),
            ) => Err(StatusError::Unavailable(e.to_string())),
        }
    }
}
