//! [`EventsTable`]: what happened to a call, kept for `EVENT_RETENTION_DAYS` (TTL `expiresAt`).
//! Key `callId` (S) + `sk` (S), so one Query reads a call's whole history.
//!
//! | item | `sk` | attributes |
//! |---|---|---|
//! | kept webhook | `webhook#{receivedAt}#{id}` (+ parts) | see [`super::archive`] |
//! | pushed event | `push#{eventId}` | `kind`="push", `eventId`, `eventType`, `url`, `state`, `attemptCount` N, `attempts` L of S (each a [`DeliveryAttempt`] as JSON), `roundStart` N, `nextAttemptAt` S (while pending), `event` B (gzip of the event as sent), `createdAt`, `expiresAt` N |
//!
//! The sparse GSI `by-event-id` (HASH `eventId`, KEYS_ONLY) finds an event's call for an
//! operator's redelivery; the sparse GSI `by-open-state` (HASH `openState` = `{pending|failed}#{s}`,
//! `s` = 0..[`OPEN_SHARDS`] from the call id, KEYS_ONLY) holds exactly the events still pending or
//! dead-lettered, for `GET /stats` to count (every state change sets or removes the key, and TTL's
//! deletes take the entry with the event); everything else reads the table itself, strongly
//! consistently.
//!
//! An event is kept whole: its gzip is far below 400 KB for almost any call. Should one not fit
//! (texts that do not compress), it is kept cut to fit ([`crate::domain::fit`], marked
//! `data.truncated`), so the call still settles and is pushed: logged at error level.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use tracing::error;

use super::attrs::{get_b, get_n, get_s, n, s, Item, EXPIRES_AT, ID};
use super::fit::{gunzip, gzip_smallest};
use super::unavailable;
use crate::domain::fit::fitted;
use crate::domain::push::CallEvent;
use crate::domain::to_iso;
use crate::ports::{Clock, DeliveryAttempt, PushRecord, PushState, PushStore, StoreError};

/// The events table's sort key attribute.
pub const SORT_KEY: &str = "sk";
/// The sparse index from an event's id to its call.
pub const EVENT_ID_INDEX: &str = "by-event-id";
pub(crate) const EVENT_ID: &str = "eventId";
/// The sparse index of the events still open (pending or failed), counted by `GET /stats`.
pub const OPEN_INDEX: &str = "by-open-state";
pub(crate) const OPEN: &str = "openState";
/// Shards of the open-state index: a state would otherwise be one index partition.
pub const OPEN_SHARDS: u32 = 4;

/// The open-state index key of an event of `call_id` in `state`; `None` when it is settled
/// (delivered or gone): then it has no entry.
fn open_key(call_id: &str, state: PushState) -> Option<String> {
    matches!(state, PushState::Pending | PushState::Failed).then(|| {
        let shard = crate::search::fnv1a(call_id) % u64::from(OPEN_SHARDS);
        format!("{}#{shard}", state.as_str())
    })
}

/// The largest compressed event kept as it is (DynamoDB's item limit is 400 KB).
const MAX_EVENT_BYTES: usize = 350 * 1024;

#[derive(Clone)]
pub struct EventsTable {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) retention: Duration,
    pub(super) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EventsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsTable")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn push_key(event_id: &str) -> String {
    format!("push#{event_id}")
}

fn state_word(state: PushState) -> AttributeValue {
    s(state.as_str())
}

fn parse_state(word: &str) -> Option<PushState> {
    [
        PushState::Pending,
        PushState::Delivered,
        PushState::Gone,
        PushState::Failed,
    ]
    .into_iter()
    .find(|st| st.as_str() == word)
}

/// The event's gzip, made to fit an item ([`crate::domain::fit`]): a call too large is kept cut,
/// marked `truncated`, and logged; its record keeps everything.
fn packed(event: &CallEvent) -> Vec<u8> {
    let gz_of = |e: &CallEvent| gzip_smallest(&serde_json::to_vec(e).expect("events serialise"));
    let whole = gz_of(event);
    if whole.len() <= MAX_EVENT_BYTES {
        return whole;
    }
    let (slim, cut) = fitted(event, |e| gz_of(e).len() <= MAX_EVENT_BYTES);
    error!(call_id = %event.data.call_id, event_id = %event.id, ?cut, "event too large to keep whole: kept cut, marked truncated");
    gz_of(&slim)
}

impl EventsTable {
    /// Every item of `call_id` whose sort key starts with `prefix`, read strongly consistently.
    pub(super) async fn query_prefix(
        &self,
        call_id: &str,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_prefix_projected(call_id, prefix, &[]).await
    }

    /// [`Self::query_prefix`] returning only the attributes named (all when none are).
    pub(super) async fn query_prefix_projected(
        &self,
        call_id: &str,
        prefix: &str,
        attributes: &[&str],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        let placeholders: Vec<String> = (0..attributes.len()).map(|i| format!("#p{i}")).collect();
        let projection = (!attributes.is_empty()).then(|| placeholders.join(", "));
        loop {
            let mut query = self.client.query();
            for (p, name) in placeholders.iter().zip(attributes) {
                query = query.expression_attribute_names(p, *name);
            }
            let page = query
                .table_name(&self.table)
                .key_condition_expression("#id = :id AND begins_with(#sk, :p)")
                .expression_attribute_names("#id", ID)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":id", s(call_id))
                .expression_attribute_values(":p", s(prefix))
                .set_projection_expression(projection.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query (events)", &e))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// `retention`: how long events are kept after they are made (`EVENT_RETENTION_DAYS`).
    pub fn new(client: Client, table: String, retention: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table,
            retention,
            clock,
        }
    }

    fn key(call_id: &str, event_id: &str) -> Item {
        Item::from([
            (ID.to_owned(), s(call_id)),
            (SORT_KEY.to_owned(), s(push_key(event_id))),
        ])
    }

    fn decode(item: &Item) -> Result<PushRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("pushed event: {what}"));
        let doc = get_b(item, "event").ok_or_else(|| corrupt("no event"))?;
        let json = gunzip(doc).ok_or_else(|| corrupt("event is not gzip"))?;
        let event: CallEvent =
            serde_json::from_str(&json).map_err(|e| corrupt(&format!("event: {e}")))?;
        let attempts = match item.get("attempts") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .filter_map(|v| v.as_s().ok())
                .map(|j| serde_json::from_str::<DeliveryAttempt>(j))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| corrupt(&format!("attempts: {e}")))?,
            _ => Vec::new(),
        };
        Ok(PushRecord {
            event,
            url: get_s(item, "url").unwrap_or_default().to_owned(),
            state: get_s(item, "state")
                .and_then(parse_state)
                .ok_or_else(|| corrupt("state"))?,
            attempts,
            round_start: get_n(item, "roundStart").unwrap_or(0),
            next_attempt_at: get_s(item, "nextAttemptAt").map(str::to_owned),
        })
    }
}

#[async_trait]
impl PushStore for EventsTable {
    async fn create(&self, push: &PushRecord) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let expires = now.timestamp() + self.retention.as_secs() as i64;
        let mut item = Self::key(&push.event.data.call_id, &push.event.id);
        item.extend([
            ("kind".to_owned(), s("push")),
            (EVENT_ID.to_owned(), s(&push.event.id)),
            ("eventType".to_owned(), s(push.event.kind.as_str())),
            ("url".to_owned(), s(&push.url)),
            ("state".to_owned(), state_word(push.state)),
            ("attemptCount".to_owned(), n(push.attempts.len())),
            ("roundStart".to_owned(), n(push.round_start)),
            (
                "event".to_owned(),
                AttributeValue::B(Blob::new(packed(&push.event))),
            ),
            ("createdAt".to_owned(), s(to_iso(now))),
            (EXPIRES_AT.to_owned(), n(expires)),
        ]);
        if let Some(at) = &push.next_attempt_at {
            item.insert("nextAttemptAt".to_owned(), s(at));
        }
        if let Some(k) = open_key(&push.event.data.call_id, push.state) {
            item.insert(OPEN.to_owned(), s(k));
        }
        // With the call's erasure mark held absent ([`super::erasure`]): an erased call makes no
        // event.
        let request = |e: aws_sdk_dynamodb::error::BuildError| {
            StoreError::Unavailable(format!("TransactWriteItems request: {e}"))
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", ID)
            .build()
            .map_err(request)?;
        let check = self.not_erased(&push.event.data.call_id)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(|s| match s {
                    TransactWriteItemsError::TransactionCanceledException(c) => c
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")),
                    _ => false,
                }) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("TransactWriteItems (event)", &e)),
        }
    }

    async fn get(&self, call_id: &str, event_id: &str) -> Result<Option<PushRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(call_id, event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (event)", &e))?;
        out.item.as_ref().map(Self::decode).transpose()
    }

    async fn find(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(EVENT_ID_INDEX)
            .key_condition_expression("#e = :e")
            .expression_attribute_names("#e", EVENT_ID)
            .expression_attribute_values(":e", s(event_id))
            .limit(1)
            .send()
            .await
            .map_err(|e| unavailable("Query (event id)", &e))?;
        Ok(out
            .items()
            .first()
            .and_then(|i| get_s(i, ID))
            .map(str::to_owned))
    }

    async fn record_attempt(
        &self,
        call_id: &str,
        event_id: &str,
        expected: PushState,
        attempt: &DeliveryAttempt,
        state: PushState,
        next_attempt_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let one = AttributeValue::L(vec![s(
            serde_json::to_string(attempt).expect("attempts serialise")
        )]);
        // The open-state key follows the state: set while pending or failed, gone once settled.
        let open = open_key(call_id, state);
        let mut sets = vec![
            "#st = :st",
            "attemptCount = :n",
            "attempts = list_append(if_not_exists(attempts, :none), :one)",
        ];
        let mut removes = Vec::new();
        match next_attempt_at {
            Some(_) => sets.push("nextAttemptAt = :next"),
            None => removes.push("nextAttemptAt"),
        }
        match open {
            Some(_) => sets.push("#open = :open"),
            None => removes.push("#open"),
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update += &format!(" REMOVE {}", removes.join(", "));
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(call_id, event_id)))
            .update_expression(update)
            .condition_expression("#st = :expected AND attemptCount = :before")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", state_word(state))
            .expression_attribute_values(":expected", state_word(expected))
            .expression_attribute_values(":n", n(attempt.attempt))
            .expression_attribute_values(":before", n(attempt.attempt.saturating_sub(1)))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":one", one)
            .expression_attribute_names("#open", OPEN);
        if let Some(next) = next_attempt_at {
            req = req.expression_attribute_values(":next", s(next));
        }
        if let Some(open) = open {
            req = req.expression_attribute_values(":open", s(open));
        }
        conditional(req.send().await, "UpdateItem (attempt)")
    }

    async fn reopen(&self, call_id: &str, event_id: &str, now: &str) -> Result<(), StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(call_id, event_id)))
            .update_expression(
                "SET #st = :pending, roundStart = attemptCount, nextAttemptAt = :now, #open = :open",
            )
            .condition_expression("attribute_exists(#st) AND #st <> :pending")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#open", OPEN)
            .set_expression_attribute_values(
                open_key(call_id, PushState::Pending).map(|k| [(":open".to_owned(), s(k))].into()),
            )
            .expression_attribute_values(":pending", state_word(PushState::Pending))
            .expression_attribute_values(":now", s(now))
            .send()
            .await;
        conditional(sent, "UpdateItem (reopen)")
    }

    async fn restore(
        &self,
        call_id: &str,
        event_id: &str,
        state: PushState,
        round_start: u32,
        reopened_at: &str,
    ) -> Result<(), StoreError> {
        let open = open_key(call_id, state);
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(call_id, event_id)))
            .update_expression(match open {
                Some(_) => "SET #st = :st, roundStart = :rs, #open = :open REMOVE nextAttemptAt",
                None => "SET #st = :st, roundStart = :rs REMOVE nextAttemptAt, #open",
            })
            .condition_expression(
                "#st = :pending AND nextAttemptAt = :at AND attemptCount = roundStart",
            )
            .set_expression_attribute_values(open.map(|k| [(":open".to_owned(), s(k))].into()))
            .expression_attribute_names("#open", OPEN)
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", state_word(state))
            .expression_attribute_values(":rs", n(round_start))
            .expression_attribute_values(":pending", state_word(PushState::Pending))
            .expression_attribute_values(":at", s(reopened_at))
            .send()
            .await;
        conditional(sent, "UpdateItem (restore)")
    }

    async fn open_count(&self, state: PushState, cap: u32) -> Result<(u64, bool), StoreError> {
        let mut reads = tokio::task::JoinSet::new();
        for shard in 0..OPEN_SHARDS {
            let (client, table) = (self.client.clone(), self.table.clone());
            let key = format!("{}#{shard}", state.as_str());
            reads.spawn(async move { count_key(&client, &table, &key, cap).await });
        }
        let mut total = 0u64;
        let mut more = false;
        while let Some(done) = reads.join_next().await {
            let (n, m) =
                done.map_err(|e| StoreError::Unavailable(format!("open count: {e}")))??;
            total += n;
            more |= m;
        }
        let over = total > u64::from(cap);
        Ok((total.min(u64::from(cap)), more || over))
    }

    async fn list(&self, call_id: &str) -> Result<Vec<PushRecord>, StoreError> {
        let items = self.query_prefix(call_id, "push#").await?;
        let mut out = items
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.event.timestamp.cmp(&b.event.timestamp));
        Ok(out)
    }
}

/// How many entries one key of the open-state index has, counted up to `cap` (`true`: more).
async fn count_key(
    client: &Client,
    table: &str,
    key: &str,
    cap: u32,
) -> Result<(u64, bool), StoreError> {
    let (mut count, mut start) = (0u64, None);
    loop {
        let out = client
            .query()
            .table_name(table)
            .index_name(OPEN_INDEX)
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", OPEN)
            .expression_attribute_values(":o", s(key))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("Query (open events)", &e))?;
        count += out.count().max(0) as u64;
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok((count, false));
        }
        if count > u64::from(cap) {
            return Ok((count, true));
        }
    }
}

fn conditional<T, E, R>(
    sent: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    what: &str,
) -> Result<(), StoreError>
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match sent {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.code())
                .is_some_and(|c| c == "ConditionalCheckFailedException") =>
        {
            Err(StoreError::Conflict)
        }
        Err(e) => Err(unavailable(what, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::push::EventType;
    use crate::domain::CallResult;

    /// Text gzip cannot shrink much: six random bits a character.
    fn noise(len: usize) -> String {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                        [(x & 63) as usize],
                )
            })
            .collect()
    }

    fn event(data: CallResult) -> CallEvent {
        CallEvent {
            kind: EventType::Completed,
            id: "evt_1".into(),
            timestamp: "2026-12-03T00:00:00.000Z".into(),
            data,
        }
    }

    fn unpacked(gz: &[u8]) -> CallEvent {
        serde_json::from_str(&gunzip(gz).unwrap()).unwrap()
    }

    #[test]
    fn an_event_whose_analysis_no_item_holds_is_kept_cut_to_fit() {
        // No transcript to cut: what used to loop for ever.
        let mut data = CallResult::new("c1", "2026-12-03T00:00:00.000Z");
        data.analysis.summary = Some(noise(600 * 1024));
        let gz = packed(&event(data));
        assert!(gz.len() <= MAX_EVENT_BYTES, "{} bytes", gz.len());
        let kept = unpacked(&gz);
        assert!(kept.data.truncated);
        assert_eq!(kept.data.analysis.summary, None);
        assert_eq!(kept.id, "evt_1");
    }

    #[test]
    fn an_event_that_fits_is_kept_whole() {
        let mut data = CallResult::new("c1", "2026-12-03T00:00:00.000Z");
        data.transcript = Some(noise(100 * 1024));
        let e = event(data);
        assert_eq!(unpacked(&packed(&e)), e);
    }
}
