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
//! `ids` SS (the digests kept), `resent` N and `notKept` N. A delivery whose digest is kept already
//! only counts as `resent`; one past [`MAX_KEPT_WEBHOOKS`] or [`MAX_KEPT_WEBHOOK_BYTES`] only counts
//! as `notKept`. The tally is read, then the body written, then the tally added to: a failure at
//! any step leaves nothing that stops the sender's retry from being kept. Two identical deliveries
//! at the same instant may both be kept (the bound is then passed by as many): harmless, and
//! cheaper than a transaction per webhook.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::{get_b, get_n, get_s, n, s, Item, EXPIRES_AT, ID};
use super::codec::{chunks, part_key};
use super::events::{EventsTable, SORT_KEY};
use super::fit::gzip;
use super::unavailable;
use crate::ports::{
    Keeping, KeptWebhook, StoreError, StoredWebhook, WebhookArchive, WebhookLog, MAX_KEPT_WEBHOOKS,
    MAX_KEPT_WEBHOOK_BYTES,
};

const PREFIX: &str = "webhook#";
const TALLY: &str = "webhooks#tally";

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

    /// Adds one to the tally's `add` (and, for a kept delivery, its bytes and id). The tally
    /// lives as long as the call's last delivery.
    async fn count(
        &self,
        call_id: &str,
        add: &str,
        kept: Option<&StoredWebhook>,
    ) -> Result<(), StoreError> {
        let expires = self.clock.now().timestamp() + self.retention.as_secs() as i64;
        let mut update = format!("SET #kind = :k, {EXPIRES_AT} = :e ADD {add} :one");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::tally_key(call_id)))
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":k", s("tally"))
            .expression_attribute_values(":e", n(expires))
            .expression_attribute_values(":one", n(1));
        if let Some(w) = kept {
            update.push_str(", keptBytes :bytes, ids :id");
            req = req
                .expression_attribute_values(":bytes", n(w.body.len()))
                .expression_attribute_values(":id", AttributeValue::Ss(vec![w.id.clone()]));
        }
        req.update_expression(update)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("UpdateItem (webhook tally)", &e))
    }

    async fn write_body(&self, w: &StoredWebhook) -> Result<(), StoreError> {
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
        self.put(main).await
    }
}

#[async_trait]
impl WebhookArchive for EventsTable {
    async fn keep(&self, w: &StoredWebhook) -> Result<Keeping, StoreError> {
        let tally = self.tally(&w.call_id).await?;
        let counted = |name: &str| tally.as_ref().and_then(|t| get_n::<u64>(t, name));
        let already = tally
            .as_ref()
            .and_then(|t| t.get("ids"))
            .and_then(|v| v.as_ss().ok())
            .is_some_and(|ids| ids.contains(&w.id));
        if already {
            self.count(&w.call_id, "resent", None).await?;
            return Ok(Keeping::AlreadyKept);
        }
        let bytes = w.body.len() as u64;
        if counted("kept").unwrap_or(0) >= MAX_KEPT_WEBHOOKS
            || counted("keptBytes").unwrap_or(0) + bytes > MAX_KEPT_WEBHOOK_BYTES
        {
            self.count(&w.call_id, "notKept", None).await?;
            return Ok(Keeping::OverBound);
        }
        self.write_body(w).await?;
        self.count(&w.call_id, "kept", Some(w)).await?;
        Ok(Keeping::Kept)
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
            resent: counted("resent"),
            not_kept: counted("notKept"),
        })
    }
}
