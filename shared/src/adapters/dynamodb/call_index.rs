//! [`CallIndexTable`]: every call's durable summary and the indexes a search reads
//! ([`crate::search::CallIndex`]).
//!
//! ## Call index table (`CALL_INDEX_TABLE`, key `callId` S, **no TTL**)
//!
//! One item per call, rewritten when a searchable field changes (`crate::search::IndexedCalls`
//! says when and in what order): `callId`, `version` N (the record version it was written for),
//! `dataStatus`, `status` (the outcome, once known), `callStatus`, `providerName`, `providerId`,
//! `serviceRequestId`, `createdAt`, `updatedAt`, and the keys of its indexes:
//! `sortKey` = `{createdAt, fixed-width UTC ISO}#{callId}` (unique, time-ordered),
//! `timeShard` = `t#NN`, `dataStatusShard` = `{dataStatus}#NN`, `outcomeShard` = `{status}#NN`,
//! where `NN` (00-15) is a fixed hash of the call id. About 300 bytes: one write unit per write.
//!
//! **Every call fits** ([`Self::item`]): DynamoDB refuses a sort key over 1,024 bytes, an index
//! hash key over 2,048 and an item over 400 KB, and the summary is written before the record, so a
//! refusal would block the call. A call id of 256 four-byte characters makes `sortKey` longer than
//! that: its id part is then a SHA-256 (`~{hex}`: still unique, only the order among calls of the
//! same millisecond changes). A `providerId` / `serviceRequestId` longer than a listing may ask
//! for (256 characters) is no index key (`*Unindexed` instead), and every text kept for display is
//! cut to [`MAX_TEXT_CHARS`].
//!
//! | GSI (all KEYS_ONLY, RANGE `sortKey`) | HASH | answers |
//! |---|---|---|
//! | `by-service-request` | `serviceRequestId` (sparse) | `?serviceRequestId=` |
//! | `by-provider` | `providerId` (sparse) | `?providerId=` |
//! | `by-data-status` | `dataStatusShard` | `?status=pending…fetch_failed` |
//! | `by-outcome` | `outcomeShard` (sparse) | `?status=completed…error` |
//! | `by-time` | `timeShard` | no filter: every call |
//!
//! **Hot partitions.** A status word or "every call" would otherwise be one index partition taking
//! every call's writes (about 1,000 writes/s each, the ceiling docs/scaling.md describes for the
//! unfinished index), and `createdAt` only grows, so DynamoDB's split-for-heat cannot spread it.
//! Those keys are cut into 16 shards by the call id; a page reads the 16 shards in parallel (a
//! `Query` each, newest first, `Limit` = page + 2) and merges them. A service request or provider
//! has few calls a second, so their keys are not sharded: one `Query`.
//!
//! **The cursor is a sort key, not a `LastEvaluatedKey`.** Every page is "the calls whose sort key
//! is below the last one shown", a key condition each shard can answer on its own, so a merged page
//! needs one position, not sixteen. It is the same for an unsharded index.
//!
//! **KEYS_ONLY**, then one `BatchGetItem` of the page's summaries (at most 100 keys, one request):
//! projecting the summary into five indexes would rewrite all five at every status change; with
//! keys only, a status change rewrites the index whose key it changes and no other. An index lags
//! its table a little, so a summary that no longer matches the filter is left out of the page.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ScalarAttributeType};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::attrs::{get_n, get_s, n, s, Item};
use super::unavailable;
use crate::domain::CallStatus;
use crate::ports::StoreError;
use crate::search::{
    data_status_from_word, fnv1a, outcome_from_word, CallIndex, CallSummary, Cursor, Filter,
    SearchPage, SearchQuery,
};

pub const BY_SERVICE_REQUEST: &str = "by-service-request";
pub const BY_PROVIDER: &str = "by-provider";
pub const BY_DATA_STATUS: &str = "by-data-status";
pub const BY_OUTCOME: &str = "by-outcome";
pub const BY_TIME: &str = "by-time";

/// Shards of the status and time indexes (fixed: a change strands summaries where no query looks).
pub const INDEX_SHARDS: u32 = 16;

const ID: &str = "callId";
const SORT_KEY: &str = "sortKey";
const VERSION: &str = "version";
const DATA_STATUS: &str = "dataStatus";
const STATUS: &str = "status";
const CALL_STATUS: &str = "callStatus";
const PROVIDER_NAME: &str = "providerName";
const PROVIDER_ID: &str = "providerId";
const SERVICE_REQUEST_ID: &str = "serviceRequestId";
const CREATED_AT: &str = "createdAt";
const UPDATED_AT: &str = "updatedAt";
const TIME_SHARD: &str = "timeShard";
const DATA_STATUS_SHARD: &str = "dataStatusShard";
const OUTCOME_SHARD: &str = "outcomeShard";

/// DynamoDB's limit on a sort key, in bytes.
const MAX_SORT_KEY_BYTES: usize = 1024;
/// The longest id a listing filters on ([`crate::search::SearchQuery`]): a longer one is kept,
/// unindexed, since no listing could ask for it.
const MAX_INDEXED_ID_CHARS: usize = 256;
/// A text kept only to be shown in a listing (a provider's name) is cut to this.
pub const MAX_TEXT_CHARS: usize = 1024;

/// `sortKey` of a call: [`CallSummary::sort_key`], its id part hashed when it would not fit.
fn index_sort_key(summary: &CallSummary) -> String {
    let key = summary.sort_key();
    if key.len() <= MAX_SORT_KEY_BYTES {
        return key;
    }
    let (at, _) = key.split_once('#').unwrap_or((&key, ""));
    format!(
        "{at}#~{}",
        hex::encode(Sha256::digest(summary.call_id.as_bytes()))
    )
}

fn cut_text(v: &str) -> &str {
    v.char_indices()
        .nth(MAX_TEXT_CHARS)
        .map_or(v, |(end, _)| &v[..end])
}

fn unindexed(name: &str) -> String {
    format!("{name}Unindexed")
}

fn shard(call_id: &str) -> u32 {
    (fnv1a(call_id) % u64::from(INDEX_SHARDS)) as u32
}

fn shard_keys(prefix: &str) -> Vec<String> {
    (0..INDEX_SHARDS)
        .map(|i| format!("{prefix}#{i:02}"))
        .collect()
}

/// The summaries table ([`CallIndex`]).
#[derive(Clone, Debug)]
pub struct CallIndexTable {
    client: Client,
    table: String,
}

impl CallIndexTable {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn item(summary: &CallSummary, version: u64) -> Item {
        summary_item(summary, version)
    }
}

/// A call's summary as the index table keeps it, written for record `version`.
pub(super) fn summary_item(summary: &CallSummary, version: u64) -> Item {
    let id = summary.call_id.as_str();
    let nn = format!("{:02}", shard(id));
    let mut item = HashMap::from([
        (ID.to_owned(), s(id)),
        (SORT_KEY.to_owned(), s(index_sort_key(summary))),
        (VERSION.to_owned(), n(version)),
        (DATA_STATUS.to_owned(), s(summary.data_status.as_str())),
        (CALL_STATUS.to_owned(), s(summary.call_status.as_str())),
        (CREATED_AT.to_owned(), s(&summary.created_at)),
        (UPDATED_AT.to_owned(), s(&summary.updated_at)),
        (TIME_SHARD.to_owned(), s(format!("t#{nn}"))),
        (
            DATA_STATUS_SHARD.to_owned(),
            s(format!("{}#{nn}", summary.data_status.as_str())),
        ),
    ]);
    if let Some(o) = summary.status {
        item.insert(STATUS.to_owned(), s(o.as_str()));
        item.insert(OUTCOME_SHARD.to_owned(), s(format!("{}#{nn}", o.as_str())));
    }
    // Index keys may not be empty strings: an empty id is no id.
    if let Some(v) = summary.provider_name.as_deref().filter(|v| !v.is_empty()) {
        item.insert(PROVIDER_NAME.to_owned(), s(cut_text(v)));
    }
    for (name, value) in [
        (PROVIDER_ID, &summary.provider_id),
        (SERVICE_REQUEST_ID, &summary.service_request_id),
    ] {
        match value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) if v.chars().count() <= MAX_INDEXED_ID_CHARS => {
                item.insert(name.to_owned(), s(v));
            }
            Some(v) => {
                item.insert(unindexed(name), s(cut_text(v)));
            }
            None => {}
        }
    }
    item
}

impl CallIndexTable {
    fn summary_of(item: &Item) -> Option<CallSummary> {
        let text = |name: &str| get_s(item, name).map(str::to_owned);
        Some(CallSummary {
            call_id: text(ID)?,
            data_status: data_status_from_word(get_s(item, DATA_STATUS)?)?,
            status: get_s(item, STATUS).and_then(outcome_from_word),
            call_status: get_s(item, CALL_STATUS)
                .and_then(CallStatus::parse)
                .unwrap_or_default(),
            provider_name: text(PROVIDER_NAME),
            provider_id: text(PROVIDER_ID).or_else(|| text(&unindexed(PROVIDER_ID))),
            service_request_id: text(SERVICE_REQUEST_ID)
                .or_else(|| text(&unindexed(SERVICE_REQUEST_ID))),
            created_at: text(CREATED_AT).unwrap_or_default(),
            updated_at: text(UPDATED_AT).unwrap_or_default(),
        })
    }

    /// The summaries of `ids`, by id (absent ones left out).
    async fn fetch(&self, ids: &[String]) -> Result<HashMap<String, CallSummary>, StoreError> {
        let keys: Vec<Item> = ids
            .iter()
            .map(|id| HashMap::from([(ID.to_owned(), s(id))]))
            .collect();
        let what = "BatchGetItem on the call index";
        let items = super::batch_get(&self.client, &self.table, keys, false, what).await?;
        Ok(items
            .iter()
            .filter_map(Self::summary_of)
            .map(|summary| (summary.call_id.clone(), summary))
            .collect())
    }
}

/// Where a filter's calls are: the index, its hash key attribute, and the key values to read.
fn plan(filter: &Filter) -> (&'static str, &'static str, Vec<String>) {
    match filter {
        Filter::All => (BY_TIME, TIME_SHARD, shard_keys("t")),
        Filter::ServiceRequest(v) => (BY_SERVICE_REQUEST, SERVICE_REQUEST_ID, vec![v.clone()]),
        Filter::Provider(v) => (BY_PROVIDER, PROVIDER_ID, vec![v.clone()]),
        Filter::DataStatus(d) => (BY_DATA_STATUS, DATA_STATUS_SHARD, shard_keys(d.as_str())),
        Filter::Outcome(o) => (BY_OUTCOME, OUTCOME_SHARD, shard_keys(o.as_str())),
    }
}

/// One key of one index, newest first: up to `want` `(sortKey, callId)` within `[lo, hi]`.
#[allow(clippy::too_many_arguments)]
async fn query_key(
    client: Client,
    table: String,
    index: &'static str,
    hash: &'static str,
    value: String,
    lo: Option<String>,
    hi: Option<String>,
    want: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let condition = match (&lo, &hi) {
        (Some(_), Some(_)) => "#h = :h AND #k BETWEEN :lo AND :hi",
        (Some(_), None) => "#h = :h AND #k >= :lo",
        (None, Some(_)) => "#h = :h AND #k <= :hi",
        (None, None) => "#h = :h",
    };
    let mut values = HashMap::from([(":h".to_owned(), s(value))]);
    let mut names = HashMap::from([("#h".to_owned(), hash.to_owned())]);
    if lo.is_some() || hi.is_some() {
        names.insert("#k".to_owned(), SORT_KEY.to_owned());
    }
    if let Some(lo) = lo {
        values.insert(":lo".to_owned(), s(lo));
    }
    if let Some(hi) = hi {
        values.insert(":hi".to_owned(), s(hi));
    }
    let mut keys = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = client
            .query()
            .table_name(&table)
            .index_name(index)
            .key_condition_expression(condition)
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values(Some(values.clone()))
            .scan_index_forward(false)
            .limit(i32::try_from(want - keys.len()).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| unavailable(&format!("Query on the call index {index}"), &e))?;
        for item in out.items() {
            if let (Some(k), Some(id)) = (get_s(item, SORT_KEY), get_s(item, ID)) {
                keys.push((k.to_owned(), id.to_owned()));
            }
        }
        // A page of keys is far below 1 MB; a short one ends only where the index does.
        match out.last_evaluated_key {
            Some(last) if keys.len() < want => start = Some(last),
            _ => return Ok(keys),
        }
    }
}

#[async_trait]
impl CallIndex for CallIndexTable {
    async fn upsert(
        &self,
        summary: &CallSummary,
        version: u64,
        create: bool,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(summary, version)));
        if !create {
            put = put
                .condition_expression("attribute_not_exists(#id) OR #v <= :v")
                .expression_attribute_names("#id", ID)
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(version));
        }
        match put.send().await {
            Ok(_) => Ok(()),
            // A summary for a later version is there already: it stays.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("PutItem on the call index", &e)),
        }
    }

    async fn remove(&self, call_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(ID, s(call_id))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("DeleteItem on the call index", &e))
    }

    async fn summary(&self, call_id: &str) -> Result<Option<CallSummary>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(call_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem on the call index", &e))?;
        Ok(out.item.as_ref().and_then(Self::summary_of))
    }

    async fn counts(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::stats::CallCounts, StoreError> {
        super::counters::read(&self.client, &self.table, since, until).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        let limit = query.limit.max(1) as usize;
        let (lo, mut hi) = query.key_bounds();
        if let Some(c) = &query.cursor {
            // Inclusive here; the cursor's own call is dropped below.
            if hi.as_ref().is_none_or(|h| c.after < *h) {
                hi = Some(c.after.clone());
            }
        }
        if let (Some(l), Some(h)) = (&lo, &hi) {
            if l > h {
                return Ok(SearchPage::default());
            }
        }
        let (index, hash, values) = plan(&query.filter);
        let mut reads = JoinSet::new();
        for value in values {
            reads.spawn(query_key(
                self.client.clone(),
                self.table.clone(),
                index,
                hash,
                value,
                lo.clone(),
                hi.clone(),
                limit + 2,
            ));
        }
        let mut keys: Vec<(String, String)> = Vec::new();
        while let Some(done) = reads.join_next().await {
            let found = done.map_err(|e| StoreError::Unavailable(format!("index read: {e}")))??;
            keys.extend(found);
        }
        if let Some(c) = &query.cursor {
            keys.retain(|(k, _)| *k < c.after);
        }
        keys.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        keys.dedup_by(|a, b| a.1 == b.1);
        let more = keys.len() > limit;
        keys.truncate(limit);
        let ids: Vec<String> = keys.iter().map(|(_, id)| id.clone()).collect();
        let mut summaries = self.fetch(&ids).await?;
        let calls = ids
            .iter()
            .filter_map(|id| summaries.remove(id))
            .filter(|s| query.filter.matches(s))
            .collect();
        let next = more
            .then(|| keys.last().map(|(k, _)| Cursor { after: k.clone() }))
            .flatten();
        Ok(SearchPage { calls, next })
    }
}

/// Creates the call index table with its five indexes if it does not exist, and waits until it is
/// active (the local runner and the tests; a deployed stack gets it from `template.yaml`, which
/// must match this). An existing table is taken as it is.
pub async fn ensure_call_index_table(client: &Client, table: &str) -> Result<(), StoreError> {
    use super::tables::{create, keys_only_index, wait_active};
    let indexes = [
        (BY_SERVICE_REQUEST, SERVICE_REQUEST_ID),
        (BY_PROVIDER, PROVIDER_ID),
        (BY_DATA_STATUS, DATA_STATUS_SHARD),
        (BY_OUTCOME, OUTCOME_SHARD),
        (BY_TIME, TIME_SHARD),
    ]
    .into_iter()
    .map(|(index, hash)| keys_only_index(index, hash, Some(SORT_KEY)))
    .collect::<Result<Vec<_>, _>>()?;
    let attributes: Vec<(&str, ScalarAttributeType)> = [
        ID,
        SORT_KEY,
        SERVICE_REQUEST_ID,
        PROVIDER_ID,
        DATA_STATUS_SHARD,
        OUTCOME_SHARD,
        TIME_SHARD,
    ]
    .into_iter()
    .map(|name| (name, ScalarAttributeType::S))
    .collect();
    create(client, table, &attributes, &[(ID, KeyType::Hash)], indexes).await?;
    wait_active(client, table).await
}

/// The stored version of a call's summary, for tests and repairs.
pub async fn summary_version(
    client: &Client,
    table: &str,
    call_id: &str,
) -> Result<Option<u64>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key(ID, AttributeValue::S(call_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| unavailable("GetItem on the call index", &e))?;
    Ok(out.item.as_ref().and_then(|i| get_n(i, VERSION)))
}
