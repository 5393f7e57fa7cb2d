//! [`WebhookArchive`] on the events table: each authenticated webhook delivery, raw and
//! gzip-compressed, under `sk` = `webhook#{receivedAt}#{id}` (so a Query reads a call's deliveries
//! in the order they came), with `kind`="webhook", `messageType`, `auth`, `outcome`, `bodyBytes` N,
//! `body` B and `expiresAt` N (`EVENT_RETENTION_DAYS`). The id is a digest of the body.
//!
//! Big bodies are split the way the calls table splits a record: a gzip over 350 KiB is cut into
//! chunks, the first in the main item and the rest in part items `{sk}#part{n}` (`kind`="part").
//! Parts are written first and the main item last, so a reader that finds the main item finds
//! every part it names; parts without a main item are never read and expire.
//!
//! Each call has one tally item, `sk` = `webhooks#tally` (`kind`="tally"): `kept` N, `keptBytes` N,
//! `ids` SS (the digests kept) and `notKept` N. Keeping a delivery first claims its
//! place with a conditional update of the tally (its id new, the call within
//! [`MAX_KEPT_WEBHOOKS`] and [`MAX_KEPT_WEBHOOK_BYTES`]) in one `TransactWriteItems` with the
//! body: one request, exact under concurrent deliveries, and never a claim without its body (a
//! failed keep leaves nothing, so the sender's retry, after the webhook's 503, is kept). A
//! refused claim (DynamoDB returns the tally with it) writes nothing for a body kept already (the
//! `WebhooksResent` metric counts it), and counts `notKept` when the bound is reached. A delivery
//! that changed nothing in the record (outcome `duplicate`, most likely a re-send) reads the tally
//! first: a body kept already then costs one small read, not a transaction carrying its gzip.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::attrs::{get_b, get_n, get_s, n, s, Item, EXPIRES_AT, ID};
use super::codec::{chunks, part_key};
use super::events::{EventsTable, SORT_KEY};
use super::fit::gzip;
use super::unavailable;
use crate::ports::{
    ErasureMark, Keeping, KeptWebhook, StoreError, StoredWebhook, WebhookArchive, WebhookLog,
    MAX_KEPT_WEBHOOKS, MAX_KEPT_WEBHOOK_BYTES,
};

const PREFIX: &str = "webhook#";
const TALLY: &str = "webhooks#tally";
/// Tries of a keep that lost a clash with another transaction on the tally.
const CLASH_RETRIES: u32 = 3;

fn gunzip_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

impl EventsTable {
    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("PutItem (webhook)", &e))
    }

    fn decode_webhook(main: &Item, parts: &[&Item]) -> Result<StoredWebhook, StoredError> {
        let mut gz = get_b(main, "body").unwrap_or_default().to_vec();
        let want: usize = get_n(main, "parts").unwrap_or(0);
        if parts.len() < want {
            return Err(StoredError(format!(
                "{} of {want} parts found",
                parts.len()
            )));
        }
        for p in parts.iter().take(want) {
            gz.extend_from_slice(get_b(p, "body").unwrap_or_default());
        }
        let body = gunzip_bytes(&gz).ok_or_else(|| StoredError("body is not gzip".into()))?;
        let sk = get_s(main, SORT_KEY).unwrap_or_default();
        Ok(StoredWebhook {
            call_id: get_s(main, ID).unwrap_or_default().to_owned(),
            id: sk.rsplit('#').next().unwrap_or_default().to_owned(),
            received_at: get_s(main, "receivedAt").unwrap_or_default().to_owned(),
            message_type: get_s(main, "messageType").unwrap_or_default().to_owned(),
            auth: get_s(main, "auth").unwrap_or_default().to_owned(),
            outcome: get_s(main, "outcome").unwrap_or_default().to_owned(),
            body,
        })
    }
}

struct StoredError(String);

/// What a keep's transaction did.
enum Claim {
    Written,
    /// The claim was refused, with the tally when DynamoDB returns it.
    Refused(Option<Item>),
    /// The call is erased: nothing written (but parts, deleted again).
    Erased,
}

/// Whether the tally names body `id` as kept.
fn holds(tally: Option<&Item>, id: &str) -> bool {
    tally
        .and_then(|t| t.get("ids"))
        .and_then(|v| v.as_ss().ok())
        .is_some_and(|ids| ids.iter().any(|kept| kept == id))
}

impl EventsTable {
    fn tally_key(call_id: &str) -> Item {
        Item::from([(ID.to_owned(), s(call_id)), (SORT_KEY.to_owned(), s(TALLY))])
    }

    async fn tally(&self, call_id: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::tally_key(call_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (webhook tally)", &e))?;
        Ok(out.item)
    }

    /// Adds one to the tally's `what`. The tally lives as long as the call's last delivery.
    async fn count(&self, call_id: &str, what: &str) -> Result<(), StoreError> {
        let expires = self.clock.now().timestamp() + self.retention.as_secs() as i64;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::tally_key(call_id)))
            .update_expression(format!("SET #kind = :k, {EXPIRES_AT} = :e ADD {what} :one"))
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":k", s("tally"))
            .expression_attribute_values(":e", n(expires))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("UpdateItem (webhook tally)", &e))
    }

    /// Keeps `w` with one `TransactWriteItems`, all or nothing: the tally's claim (the id new,
    /// the call within its bound: a conditional update, so concurrent deliveries cannot pass the
    /// bound or keep one body twice) and the body's main item. A big body's parts go first.
    /// The transaction also holds the call's erasure mark absent ([`super::erasure`]).
    async fn claim_and_write(&self, w: &StoredWebhook) -> Result<Claim, StoreError> {
        let bytes = w.body.len() as u64;
        let Some(room) = MAX_KEPT_WEBHOOK_BYTES.checked_sub(bytes) else {
            return Ok(Claim::Refused(None));
        };
        let expires = self.clock.now().timestamp() + self.retention.as_secs() as i64;
        let sk = format!("{PREFIX}{}#{}", w.received_at, w.id);
        let gz = gzip(&w.body);
        let pieces = chunks(&gz);
        for (i, piece) in pieces.iter().enumerate().skip(1) {
            self.put(Item::from([
                (ID.to_owned(), s(&w.call_id)),
                (SORT_KEY.to_owned(), s(part_key(&sk, i))),
                ("kind".to_owned(), s("part")),
                (
                    "body".to_owned(),
                    AttributeValue::B(Blob::new(piece.to_vec())),
                ),
                (EXPIRES_AT.to_owned(), n(expires)),
            ]))
            .await?;
        }
        let mut main = Item::from([
            (ID.to_owned(), s(&w.call_id)),
            (SORT_KEY.to_owned(), s(&sk)),
            ("kind".to_owned(), s("webhook")),
            ("receivedAt".to_owned(), s(&w.received_at)),
            ("messageType".to_owned(), s(&w.message_type)),
            ("auth".to_owned(), s(&w.auth)),
            ("outcome".to_owned(), s(&w.outcome)),
            ("bodyBytes".to_owned(), n(w.body.len())),
            (
                "body".to_owned(),
                AttributeValue::B(Blob::new(pieces[0].to_vec())),
            ),
            (EXPIRES_AT.to_owned(), n(expires)),
        ]);
        if pieces.len() > 1 {
            main.insert("parts".to_owned(), n(pieces.len() - 1));
        }
        let request =
            |e: BuildError| StoreError::Unavailable(format!("TransactWriteItems request: {e}"));
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::tally_key(&w.call_id)))
            .update_expression(format!(
                "SET #kind = :k, {EXPIRES_AT} = :e ADD kept :one, keptBytes :bytes, ids :ids"
            ))
            .condition_expression(
                "(attribute_not_exists(ids) OR NOT contains(ids, :id)) AND \
                 (attribute_not_exists(kept) OR (kept < :max AND keptBytes <= :room))",
            )
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":k", s("tally"))
            .expression_attribute_values(":e", n(expires))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":bytes", n(bytes))
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![w.id.clone()]))
            .expression_attribute_values(":id", s(&w.id))
            .expression_attribute_values(":max", n(MAX_KEPT_WEBHOOKS))
            .expression_attribute_values(":room", n(room))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(request)?;
        let body = Put::builder()
            .table_name(&self.table)
            .set_item(Some(main))
            .build()
            .map_err(request)?;
        let ops = vec![
            TransactWriteItem::builder().update(claim).build(),
            TransactWriteItem::builder().put(body).build(),
            TransactWriteItem::builder()
                .condition_check(self.not_erased(&w.call_id)?)
                .build(),
        ];
        // Two deliveries of one call at once may clash on the tally: the loser tries again, after
        // a short backoff (the other transaction is still in flight).
        for attempt in 0..CLASH_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(ops.clone()))
                .send()
                .await;
            let Err(e) = sent else {
                return Ok(Claim::Written);
            };
            let reasons = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons()
                }
                _ => return Err(unavailable("TransactWriteItems (webhook)", &e)),
            };
            if reasons.get(2).and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
                self.drop_parts(&w.call_id, &sk, pieces.len()).await;
                return Ok(Claim::Erased);
            }
            match reasons.first() {
                Some(r) if r.code() == Some("ConditionalCheckFailed") => {
                    return Ok(Claim::Refused(r.item().cloned()))
                }
                _ if reasons
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict")) => {}
                _ => return Err(unavailable("TransactWriteItems (webhook)", &e)),
            }
        }
        Err(StoreError::Unavailable(
            "the call's webhook tally kept clashing with concurrent deliveries".into(),
        ))
    }
}

impl EventsTable {
    /// Best effort: the parts a refused keep wrote first (they would otherwise wait for TTL).
    async fn drop_parts(&self, call_id: &str, sk: &str, pieces: usize) {
        for i in 1..pieces {
            let sent = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(ID, s(call_id))
                .key(SORT_KEY, s(part_key(sk, i)))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::warn!(call_id, error = %unavailable("DeleteItem (webhook part)", &e), "part of a refused webhook left to TTL");
            }
        }
    }
}

#[async_trait]
impl WebhookArchive for EventsTable {
    async fn keep(&self, w: &StoredWebhook) -> Result<Keeping, StoreError> {
        // A delivery that changed nothing is most likely a re-send: a look at the tally (ids are
        // only ever added, with their body) spares compressing and sending a body kept already.
        if w.outcome == StoredWebhook::DUPLICATE
            && holds(self.tally(&w.call_id).await?.as_ref(), &w.id)
        {
            return Ok(Keeping::AlreadyKept);
        }
        let held = match self.claim_and_write(w).await? {
            Claim::Written => return Ok(Keeping::Kept),
            Claim::Erased => return Ok(Keeping::Erased),
            Claim::Refused(held) => held,
        };
        // DynamoDB returns the tally with the refusal; an emulator may not, so read it then.
        let tally = match held {
            Some(t) => Some(t),
            None => self.tally(&w.call_id).await?,
        };
        if holds(tally.as_ref(), &w.id) {
            // A re-send costs one request, as keeping it did before (the metric counts it).
            return Ok(Keeping::AlreadyKept);
        }
        self.count(&w.call_id, "notKept").await?;
        Ok(Keeping::OverBound)
    }

    async fn webhooks(&self, call_id: &str) -> Result<Vec<StoredWebhook>, StoreError> {
        let items = self.query_prefix(call_id, PREFIX).await?;
        let mut out = Vec::new();
        for main in items.iter().filter(|i| get_s(i, "kind") == Some("webhook")) {
            let sk = get_s(main, SORT_KEY).unwrap_or_default();
            let mut parts: Vec<&Item> = items
                .iter()
                .filter(|i| {
                    get_s(i, "kind") == Some("part")
                        && get_s(i, SORT_KEY).is_some_and(|p| p.starts_with(&format!("{sk}#part")))
                })
                .collect();
            parts.sort_by_key(|p| {
                get_s(p, SORT_KEY)
                    .and_then(|k| k.rsplit("#part").next())
                    .and_then(|n| n.parse::<usize>().ok())
            });
            match Self::decode_webhook(main, &parts) {
                Ok(w) => out.push(w),
                // A torn or damaged delivery is reported, not hidden: the rest still replay.
                Err(StoredError(why)) => {
                    tracing::error!(call_id, sk, why, "kept webhook unreadable")
                }
            }
        }
        Ok(out)
    }

    async fn log(&self, call_id: &str) -> Result<WebhookLog, StoreError> {
        // Never the bodies: a timeline reads what each delivery was, not what it said.
        let items = self
            .query_prefix_projected(
                call_id,
                PREFIX,
                &[
                    SORT_KEY,
                    "kind",
                    "receivedAt",
                    "messageType",
                    "auth",
                    "outcome",
                    "bodyBytes",
                ],
            )
            .await?;
        let kept = items
            .iter()
            .filter(|i| get_s(i, "kind") == Some("webhook"))
            .map(|i| KeptWebhook {
                id: get_s(i, SORT_KEY)
                    .and_then(|sk| sk.rsplit('#').next())
                    .unwrap_or_default()
                    .to_owned(),
                received_at: get_s(i, "receivedAt").unwrap_or_default().to_owned(),
                message_type: get_s(i, "messageType").unwrap_or_default().to_owned(),
                auth: get_s(i, "auth").unwrap_or_default().to_owned(),
                outcome: get_s(i, "outcome").unwrap_or_default().to_owned(),
                bytes: get_n(i, "bodyBytes").unwrap_or(0),
            })
            .collect();
        let tally = self.tally(call_id).await?;
        let counted = |name: &str| tally.as_ref().and_then(|t| get_n(t, name)).unwrap_or(0);
        Ok(WebhookLog {
            kept,
            not_kept: counted("notKept"),
        })
    }

    async fn erase(&self, call_id: &str, mark: &ErasureMark) -> Result<u64, StoreError> {
        self.write_mark(call_id, mark).await?;
        self.delete_history(call_id).await
    }
}
