//! DynamoDB adapters: the calls table ([`CallsTable`]: call records and idempotency records), the
//! providers and interaction-log tables ([`ProvidersAndLogs`]), and [`ensure_tables`] for the local
//! runner and the tests.
//!
//! ## Calls table (key `callId` S, TTL attribute `expiresAt`)
//!
//! | item | `callId` | attributes |
//! |---|---|---|
//! | call record | `{callId}` | `kind`="call", `version` N, `expiresAt` N (epoch s, now + TTL at every write), `dataStatus` S, `updatedAt` S (write time), `doc` B, `parts` N (only when split), `unfinishedShard`="unfinished" + `deadline` N (only while unfinished) |
//! | document part | `{callId}#part{n}`, n = 1..=`parts` | `kind`="part", `version` N (the main item's), `expiresAt` N (the main item's), `doc` B |
//! | idempotency record | `idem#{key}` | `kind`="idempotency", `requestHash` S, `response` S (SavedResponse JSON, once complete), `expiresAt` N (begin + 24 h), `createdAt` S |
//!
//! `doc` is the gzip-compressed JSON of `{"result": CallResult, "book": Bookkeeping}`. When the
//! compressed document is larger than 350 KiB it is cut into chunks: the main item's
//! `doc` holds the first one and `parts` says how many part items hold the rest. The main item and
//! its parts are written in one `TransactWriteItems`, so a reader never sees a torn document; a
//! reader checks that every part carries the main item's `version`. Parts left over from an
//! earlier, longer version carry an older version, are never read, and expire by TTL.
//!
//! The sparse GSI `unfinished-by-deadline` (HASH `unfinishedShard`, RANGE `deadline`, KEYS_ONLY)
//! holds exactly the records written with a deadline: the cleanup's work list. Its hash key is one
//! of 16 shards (`unfinished#00`..`unfinished#15`, from a fixed hash of the call id), so no single
//! index partition takes every unfinished write; records written before sharding keep the old key
//! `unfinished` and are swept too. `overdue` pages through the shards in turn with an opaque cursor
//! `{shard}:{deadline}.{callId}`; a page may be empty while shards remain.
//!
//! Writes see what reads see: a record whose `expiresAt` has passed is absent for `get`, may be
//! replaced by a create (`expected = None`), and fails an update that expected its version.
//!
//! Call ids never contain `#` ([`crate::domain::CallId`]), so the three key spaces cannot collide,
//! and `get` answers only for `kind = "call"`.

mod archive;
mod attrs;
mod call_index;
mod calls;
mod codec;
mod counters;
mod cursor;
mod erasure;
mod events;
mod fit;
mod idempotency;
mod persistence;
mod prior;
mod reconcile;
mod tables;

pub use call_index::{ensure_call_index_table, summary_version, CallIndexTable};
pub use calls::CallsTable;
pub use events::{EventsTable, EVENT_ID_INDEX};
pub use fit::{row_can_hold, stored_json, stored_text, to_json};
pub use idempotency::IDEMPOTENCY_TTL;
pub use persistence::{log_status, ProvidersAndLogs};
pub use tables::{ensure_events_table, ensure_tables, UNFINISHED_INDEX};

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};

use crate::ports::StoreError;

/// Any failure other than a lost condition: throttling, network, 5xx, validation.
fn unavailable<E, R>(what: &str, err: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("{what}: {}", DisplayErrorContext(err)))
}

/// Every item of `keys` that exists, through BatchGetItem, asking again for unprocessed keys with
/// DynamoDB's advised backoff (8 tries). `what` names the read in errors.
async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<attrs::Item>,
    consistent: bool,
    what: &str,
) -> Result<Vec<attrs::Item>, StoreError> {
    let mut found = batch_get_tables(client, vec![(table, keys)], consistent, what).await?;
    Ok(found.remove(table).unwrap_or_default())
}

/// [`batch_get`] across tables in one request: the items found, by table.
async fn batch_get_tables(
    client: &aws_sdk_dynamodb::Client,
    wanted: Vec<(&str, Vec<attrs::Item>)>,
    consistent: bool,
    what: &str,
) -> Result<HashMap<String, Vec<attrs::Item>>, StoreError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found: HashMap<String, Vec<attrs::Item>> = HashMap::new();
    let mut pending = HashMap::new();
    for (table, keys) in wanted.into_iter().filter(|(_, k)| !k.is_empty()) {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(consistent)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("{what}: BatchGetItem request: {e}")))?;
        pending.insert(table.to_owned(), request);
    }
    for attempt in 0..8u32 {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
        }
        let out = client
            .batch_get_item()
            .set_request_items(Some(std::mem::take(&mut pending)))
            .send()
            .await
            .map_err(|e| unavailable(what, &e))?;
        for (table, items) in out.responses.unwrap_or_default() {
            found.entry(table).or_default().extend(items);
        }
        pending = out.unprocessed_keys.unwrap_or_default();
        pending.retain(|_, k| !k.keys.is_empty());
    }
    match pending.is_empty() {
        true => Ok(found),
        false => Err(StoreError::Unavailable(format!(
            "{what}: keys stayed unprocessed; retry"
        ))),
    }
}
