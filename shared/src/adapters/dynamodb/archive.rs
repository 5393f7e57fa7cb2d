//! [`WebhookArchive`] on the events table: each authenticated webhook delivery, raw and
//! gzip-compressed, under `sk` = `webhook#{receivedAt}#{id}` (so a Query reads a call's deliveries
//! in the order they came), with `kind`="webhook", `messageType`, `auth`, `outcome`, `bodyBytes` N,
//! `body` B and `expiresAt` N (`EVENT_RETENTION_DAYS`).
//!
//! Big bodies are split the way the calls table splits a record: a gzip over 350 KiB is cut into
//! chunks, the first in the main item and the rest in part items `{sk}#part{n}` (`kind`="part").
//! Parts are written first and the main item last, so a reader that finds the main item finds
//! every part it names; parts without a main item are never read and expire.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::{get_b, get_n, get_s, n, s, Item, EXPIRES_AT, ID};
use super::codec::{chunks, part_key};
use super::events::{EventsTable, SORT_KEY};
use super::fit::gzip;
use super::unavailable;
use crate::ports::{StoreError, StoredWebhook, WebhookArchive};

const PREFIX: &str = "webhook#";

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

#[async_trait]
impl WebhookArchive for EventsTable {
    async fn keep(&self, w: &StoredWebhook) -> Result<(), StoreError> {
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
}
