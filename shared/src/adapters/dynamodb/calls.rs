//! [`CallsTable`]: call records as versioned, conditionally written items (layout in the module
//! docs of [`super`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, ReturnValue, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use tracing::warn;

use super::attrs::*;
use super::codec::{self, MAX_CHUNKS, MAX_DOC_BYTES};
use super::cursor;
use super::{counters, tables::UNFINISHED_INDEX, unavailable};
use crate::domain::{to_iso, CallRecord};
use crate::ports::{CallStore, Clock, Deadline, OverduePage, StoreError, Versioned};
use crate::search::{CallSummary, Previous, Searchable};

/// The calls table: call records ([`CallStore`]) and idempotency records
/// ([`crate::ports::IdempotencyStore`], in `idempotency.rs`).
#[derive(Clone)]
pub struct CallsTable {
    pub(super) client: Client,
    pub(super) table: String,
    ttl: Duration,
    pub(super) clock: Arc<dyn Clock>,
    /// The call index table ([`super::CallIndexTable`]) a listed write puts the summary in.
    index_table: Option<String>,
}

impl std::fmt::Debug for CallsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallsTable")
            .field("table", &self.table)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A read that found the parts of a split record belonging to another version (a writer got in
/// between the main item and its parts), and what did not match.
struct Torn(String);

impl CallsTable {
    /// The SDK client, for the other tables of the same deployment.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `ttl` is how long a record lives after its last write (`RESULT_TTL_SECONDS`).
    pub fn new(client: Client, table: String, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table,
            ttl,
            clock,
            index_table: None,
        }
    }

    /// Writes each call's listing summary in the same transaction as its record
    /// ([`CallStore::put_listed`]) to `table`, the call index table.
    pub fn with_index(mut self, table: String) -> Self {
        self.index_table = Some(table);
        self
    }

    /// One conditional write of the record, its parts and (if given, and this table has an
    /// index table) its listing summary with the counters it moves: a `PutItem` when it is one
    /// item, else one `TransactWriteItems`, all or nothing.
    async fn write(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
        listing: Option<(&CallSummary, &Previous)>,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let version = expected.map_or(1, |v| v + 1);
        let items = self.items(record, version, deadline, now, None)?;
        debug_assert!(
            listing.is_none() || self.index_table.is_some(),
            "a listed write to a calls table built without its index table"
        );
        let listed = listing.zip(self.index_table.as_deref());
        let Some(((summary, previous), index)) = listed else {
            if items.len() == 1 {
                return self.put_one(items, expected, now).await.map(|()| version);
            }
            let ops = self.record_ops(items, expected, now)?;
            return self.transact(ops).await.map(|()| version);
        };
        let next = summary.searchable();
        self.transact_listed(&record.result.call_id, previous, |prev| {
            let mut ops = self.record_ops(items.clone(), expected, now)?;
            // Conditioned on the state the counters move from: a wrong guess loses only this
            // condition, and is read and written again.
            let (cond, names, values) = counters::summary_condition(prev);
            let item = super::call_index::summary_item(summary, version);
            ops.push(tx_put(
                Put::builder()
                    .table_name(index)
                    .set_item(Some(item))
                    .condition_expression(cond)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(non_empty(values)),
            )?);
            ops.extend(counters::moves(
                index,
                &record.result.call_id,
                prev,
                Some(&next),
            )?);
            Ok(ops)
        })
        .await
        .map(|()| version)
    }

    async fn put_one(
        &self,
        mut items: Vec<Item>,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (cond, names, values) = condition(expected, now.timestamp());
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(items.pop())
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable("PutItem on the calls table", &e)),
        }
    }

    /// The main item's conditional put (first: a cancelled transaction's first reason is the
    /// record's) and its parts' puts.
    fn record_ops(
        &self,
        items: Vec<Item>,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let (cond, names, values) = condition(expected, now.timestamp());
        let mut it = items.into_iter();
        let main = it.next().expect("a main item");
        let mut ops = vec![tx_put(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(main))
                .condition_expression(cond)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values)),
        )?];
        for part in it {
            ops.push(tx_put(
                Put::builder().table_name(&self.table).set_item(Some(part)),
            )?);
        }
        Ok(ops)
    }

    /// Sends the transaction `ops(previous summary state)` builds, reading the summary's state
    /// when it is unknown or turned out wrong (the record's own condition held, the summary's
    /// did not), at most three times.
    async fn transact_listed(
        &self,
        call_id: &str,
        previous: &Previous,
        ops: impl Fn(Option<&Searchable>) -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<(), StoreError> {
        let index = self
            .index_table
            .as_deref()
            .expect("a listed write has an index table");
        let mut prev = match previous {
            Previous::Was(s) => Some(Some(s.clone())),
            Previous::Absent => Some(None),
            Previous::Unknown => None,
        };
        for _ in 0..3 {
            let known = match prev.take() {
                Some(known) => known,
                None => counters::stored_state(&self.client, index, call_id).await?,
            };
            match self.send(ops(known.as_ref())?).await {
                Err(Cancelled::SummaryMoved) => continue,
                Err(Cancelled::Conflict) => return Err(StoreError::Conflict),
                Err(Cancelled::Other(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
        Err(StoreError::Conflict)
    }

    /// One `TransactWriteItems`; a cancelled condition (or a clash with another transaction)
    /// is [`StoreError::Conflict`].
    async fn transact(&self, ops: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        match self.send(ops).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Conflict | Cancelled::SummaryMoved) => Err(StoreError::Conflict),
            Err(Cancelled::Other(e)) => Err(e),
        }
    }

    async fn send(&self, ops: Vec<TransactWriteItem>) -> Result<(), Cancelled> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let codes: Vec<Option<&str>> =
                        c.cancellation_reasons().iter().map(|r| r.code()).collect();
                    let failed = |code: &str| codes.contains(&Some(code));
                    if failed("TransactionConflict")
                        || codes.first() == Some(&Some("ConditionalCheckFailed"))
                    {
                        Cancelled::Conflict
                    } else if failed("ConditionalCheckFailed") {
                        Cancelled::SummaryMoved
                    } else {
                        Cancelled::Other(unavailable("TransactWriteItems on the calls table", &e))
                    }
                }
                _ => Cancelled::Other(unavailable("TransactWriteItems on the calls table", &e)),
            }),
        }
    }

    /// Replaces the record by its tombstone, kept until `until`: its parts (every one a longer
    /// version may have left) and its summary deleted, its counts taken away, in one transaction.
    async fn tombstone(
        &self,
        tombstone: &CallRecord,
        expected: Option<u64>,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let id = tombstone.result.call_id.as_str();
        let version = expected.map_or(1, |v| v + 1);
        let mut items = self.items(tombstone, version, deadline, now, Some(until))?;
        items.truncate(1);
        let ops = |prev: Option<&Searchable>| {
            let mut ops = self.record_ops(items.clone(), expected, now)?;
            for i in 1..MAX_CHUNKS {
                ops.push(tx_delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(Self::key(&codec::part_key(id, i)))),
                )?);
            }
            if let Some(index) = &self.index_table {
                ops.extend(self.unlist(index, id, prev)?);
            }
            Ok(ops)
        };
        match &self.index_table {
            Some(_) => self.transact_listed(id, &Previous::Unknown, ops).await,
            None => self.transact(ops(None)?).await,
        }
        .map(|()| version)
    }

    /// Deletes the record at `expected`, its listing summary and its counts in one transaction.
    /// (Only the initiator's undo of a call it never placed deletes: that record has no parts.)
    async fn delete_listed(
        &self,
        call_id: &str,
        expected: u64,
        index: &str,
    ) -> Result<(), StoreError> {
        self.transact_listed(call_id, &Previous::Unknown, |prev| {
            let mut ops = vec![tx_delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(call_id)))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", VERSION)
                    .expression_attribute_values(":v", n(expected)),
            )?];
            ops.extend(self.unlist(index, call_id, prev)?);
            Ok(ops)
        })
        .await
    }

    /// The summary's delete (held to `prev`) and the counts it takes away; nothing without one.
    fn unlist(
        &self,
        index: &str,
        call_id: &str,
        prev: Option<&Searchable>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        if prev.is_none() {
            return Ok(Vec::new());
        }
        let (cond, names, values) = counters::summary_condition(prev);
        let mut ops = vec![tx_delete(
            Delete::builder()
                .table_name(index)
                .set_key(Some(Self::key(call_id)))
                .condition_expression(cond)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(non_empty(values)),
        )?];
        ops.extend(counters::moves(index, call_id, prev, None)?);
        Ok(ops)
    }

    fn key(id: &str) -> Item {
        HashMap::from([(ID.to_owned(), s(id))])
    }

    async fn read(&self, call_id: &str) -> Result<Result<Option<Versioned>, Torn>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(call_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem on the calls table", &e))?;
        let Some(item) = out.item else {
            return Ok(Ok(None));
        };
        let now = self.clock.now().timestamp();
        if get_s(&item, KIND) != Some(KIND_CALL)
            || get_n::<i64>(&item, EXPIRES_AT).is_some_and(|e| e <= now)
        {
            return Ok(Ok(None));
        }
        let version: u64 = get_n(&item, VERSION)
            .ok_or_else(|| StoreError::Corrupt(format!("{call_id}: no version")))?;
        let first = get_b(&item, DOC)
            .ok_or_else(|| StoreError::Corrupt(format!("{call_id}: no document")))?;
        let parts: usize = get_n(&item, PARTS).unwrap_or(0);
        if parts >= MAX_CHUNKS {
            return Err(StoreError::Corrupt(format!("{call_id}: {parts} parts")));
        }
        let record = if parts == 0 {
            codec::decode(first)?
        } else {
            let mut doc = first.to_vec();
            match self.read_parts(call_id, version, parts).await? {
                Ok(rest) => rest.iter().for_each(|chunk| doc.extend_from_slice(chunk)),
                Err(why) => return Ok(Err(Torn(why))),
            }
            codec::decode(&doc)?
        };
        Ok(Ok(Some(Versioned { record, version })))
    }

    /// The chunks of parts `1..=parts` in order, or why they do not belong to `version`.
    async fn read_parts(
        &self,
        call_id: &str,
        version: u64,
        parts: usize,
    ) -> Result<Result<Vec<Vec<u8>>, String>, StoreError> {
        let keys: Vec<Item> = (1..=parts)
            .map(|i| Self::key(&codec::part_key(call_id, i)))
            .collect();
        let what = format!("BatchGetItem of {call_id}'s parts on the calls table");
        let items = super::batch_get(&self.client, &self.table, keys, true, &what).await?;
        let found: HashMap<String, Item> = items
            .into_iter()
            .filter_map(|item| Some((get_s(&item, ID)?.to_owned(), item)))
            .collect();
        let mut chunks = Vec::with_capacity(parts);
        for i in 1..=parts {
            let key = codec::part_key(call_id, i);
            let Some(item) = found.get(&key) else {
                return Ok(Err(format!("{key} is missing")));
            };
            let part_version = get_n::<u64>(item, VERSION);
            if get_s(item, KIND) != Some(KIND_PART) || part_version != Some(version) {
                return Ok(Err(format!(
                    "{key} has version {part_version:?}, the record {version}"
                )));
            }
            let chunk = get_b(item, DOC)
                .ok_or_else(|| StoreError::Corrupt(format!("{key}: no document")))?;
            chunks.push(chunk.to_vec());
        }
        Ok(Ok(chunks))
    }

    /// The main item and the part items of one version of a record.
    fn items(
        &self,
        record: &CallRecord,
        version: u64,
        deadline: Deadline,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<Item>, StoreError> {
        let id = record.result.call_id.as_str();
        let doc = codec::encode(record)?;
        if doc.len() > MAX_DOC_BYTES {
            return Err(StoreError::Unavailable(format!(
                "{id}: the record is {} bytes compressed; at most {MAX_DOC_BYTES} can be stored",
                doc.len()
            )));
        }
        let expires = n(until.map_or_else(|| self.expires_at(now), |u| u.timestamp()));
        let chunks = codec::chunks(&doc);
        let mut main = HashMap::from([
            (ID.to_owned(), s(id)),
            (KIND.to_owned(), s(KIND_CALL)),
            (VERSION.to_owned(), n(version)),
            (EXPIRES_AT.to_owned(), expires.clone()),
            (
                DATA_STATUS.to_owned(),
                s(record.result.data_status.as_str()),
            ),
            (UPDATED_AT.to_owned(), s(to_iso(now))),
            (DOC.to_owned(), AttributeValue::B(Blob::new(chunks[0]))),
        ]);
        if chunks.len() > 1 {
            main.insert(PARTS.to_owned(), n(chunks.len() - 1));
        }
        if let Some(at) = &record.book.erased_at {
            // Outside the document too: the events table's writes can be refused on it.
            main.insert(ERASED_AT.to_owned(), s(at));
        }
        if let Some(d) = deadline {
            main.insert(SHARD.to_owned(), s(unfinished_shard(id)));
            main.insert(DEADLINE.to_owned(), n(d.timestamp()));
        }
        let mut items = vec![main];
        for (i, chunk) in chunks.iter().enumerate().skip(1) {
            items.push(HashMap::from([
                (ID.to_owned(), s(codec::part_key(id, i))),
                (KIND.to_owned(), s(KIND_PART)),
                (VERSION.to_owned(), n(version)),
                (EXPIRES_AT.to_owned(), expires.clone()),
                (DOC.to_owned(), AttributeValue::B(Blob::new(*chunk))),
            ]));
        }
        Ok(items)
    }

    /// How long a record lives after its last write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn expires_at(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp()
            .saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// Best effort: a deleted record's parts would otherwise wait for TTL.
    async fn delete_parts(&self, call_id: &str, parts: usize) {
        let requests: Vec<WriteRequest> = (1..=parts)
            .filter_map(|i| {
                DeleteRequest::builder()
                    .set_key(Some(Self::key(&codec::part_key(call_id, i))))
                    .build()
                    .ok()
            })
            .map(|d| WriteRequest::builder().delete_request(d).build())
            .collect();
        for batch in requests.chunks(25) {
            let sent = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch.to_vec())
                .send()
                .await;
            if let Err(e) = sent {
                warn!(call_id, error = %unavailable("BatchWriteItem", &e), "parts of a deleted record left to TTL");
            }
        }
    }
}

/// The condition of a write expecting `expected`, with its names and values.
///
/// An expired record counts as absent (TTL deletes late): a create may replace it and an update
/// of it fails, exactly as a read would have told the writer.
fn condition(expected: Option<u64>, now: i64) -> (&'static str, HashMap<String, String>, Item) {
    let mut names = HashMap::from([("#e".to_owned(), EXPIRES_AT.to_owned())]);
    let mut values = HashMap::from([(":now".to_owned(), n(now))]);
    match expected {
        None => {
            names.insert("#id".to_owned(), ID.to_owned());
            ("attribute_not_exists(#id) OR #e <= :now", names, values)
        }
        Some(v) => {
            names.insert("#v".to_owned(), VERSION.to_owned());
            values.insert(":v".to_owned(), n(v));
            ("#v = :v AND #e > :now", names, values)
        }
    }
}

/// Why a transaction did not land.
enum Cancelled {
    /// The record's condition failed, or another transaction clashed: re-read and retry.
    Conflict,
    /// Only the summary's condition failed: the summary is not where the writer thought.
    SummaryMoved,
    Other(StoreError),
}

fn tx_put(
    put: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    put.build()
        .map(|p| TransactWriteItem::builder().put(p).build())
        .map_err(|e| StoreError::Unavailable(format!("TransactWriteItems request: {e}")))
}

fn tx_delete(
    delete: aws_sdk_dynamodb::types::builders::DeleteBuilder,
) -> Result<TransactWriteItem, StoreError> {
    delete
        .build()
        .map(|d| TransactWriteItem::builder().delete(d).build())
        .map_err(|e| StoreError::Unavailable(format!("TransactWriteItems request: {e}")))
}

/// DynamoDB refuses an empty map of expression values.
fn non_empty(values: Item) -> Option<Item> {
    (!values.is_empty()).then_some(values)
}

#[async_trait]
impl CallStore for CallsTable {
    async fn get(&self, call_id: &str) -> Result<Option<Versioned>, StoreError> {
        if call_id.is_empty() {
            return Ok(None);
        }
        match self.read(call_id).await? {
            Ok(found) => Ok(found),
            // A writer replaced the record between our two reads: its new version is complete now.
            Err(Torn(_)) => match self.read(call_id).await? {
                Ok(found) => Ok(found),
                Err(Torn(why)) => Err(StoreError::Unavailable(format!(
                    "record is being rewritten: {why}"
                ))),
            },
        }
    }

    async fn put(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        self.write(record, expected, deadline, None).await
    }

    async fn put_listed(
        &self,
        record: &CallRecord,
        expected: Option<u64>,
        deadline: Deadline,
        summary: &CallSummary,
        previous: &Previous,
    ) -> Result<u64, StoreError> {
        self.write(record, expected, deadline, Some((summary, previous)))
            .await
    }

    async fn erase(
        &self,
        tombstone: &CallRecord,
        expected: Option<u64>,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, StoreError> {
        self.tombstone(tombstone, expected, until, deadline).await
    }

    async fn delete(&self, call_id: &str, expected: u64) -> Result<(), StoreError> {
        if let Some(index) = &self.index_table {
            return self.delete_listed(call_id, expected, index).await;
        }
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(call_id)))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", n(expected))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => {
                let parts: usize = out
                    .attributes
                    .as_ref()
                    .and_then(|old| get_n(old, PARTS))
                    .unwrap_or(0);
                if parts > 0 {
                    self.delete_parts(call_id, parts).await;
                }
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable("DeleteItem on the calls table", &e)),
        }
    }

    async fn recorded(
        &self,
        call_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.recorded_ids(call_ids).await
    }

    async fn overdue(
        &self,
        now: DateTime<Utc>,
        page: Option<String>,
        limit: u32,
    ) -> Result<OverduePage, StoreError> {
        // One shard per page, in order; a page may be empty while shards remain.
        let (position, start) = match page.as_deref() {
            Some(c) => cursor::decode(c)?,
            None => (0, None),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(UNFINISHED_INDEX)
            .key_condition_expression("#s = :s AND #d < :now")
            .expression_attribute_names("#s", SHARD)
            .expression_attribute_names("#d", DEADLINE)
            .expression_attribute_values(":s", s(shard_key(position)))
            .expression_attribute_values(":now", n(now.timestamp()))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("Query on the unfinished index", &e))?;
        let call_ids = out
            .items()
            .iter()
            .filter_map(|item| get_s(item, ID).map(str::to_owned))
            .collect();
        let next = match out.last_evaluated_key.as_ref() {
            Some(last) => Some(cursor::encode(position, last)?),
            None if position + 1 < SWEEP_POSITIONS => Some(cursor::start_of(position + 1)),
            None => None,
        };
        Ok(OverduePage { call_ids, next })
    }
}
