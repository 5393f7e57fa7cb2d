//! Listing calls for a client: the query parsed, one page read through the index.

use std::sync::Arc;

use super::{CallIndex, QueryError, SearchPage, SearchQuery};
use crate::ports::StoreError;

pub struct SearchService {
    pub index: Arc<dyn CallIndex>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Invalid(#[from] QueryError),
    #[error("{0}")]
    Unavailable(String),
}

impl SearchService {
    /// One page for the decoded query-string pairs.
    pub async fn list<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(SearchQuery, SearchPage), SearchError> {
        let query = SearchQuery::parse(pairs)?;
        let page = self
            .index
            .search(&query)
            .await
            .map_err(|e: StoreError| SearchError::Unavailable(e.to_string()))?;
        Ok((query, page))
    }
}
