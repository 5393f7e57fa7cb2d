//! An erased call's mark in the events table, and the erase of everything else there.
//!
//! Item `sk` = `erased` (`kind`="erasure", `erasedAt` S, `expiresAt` N: the tombstone's
//! lifetime). Every write that adds to a call's history (a kept webhook, a pushed event) is a
//! transaction holding a `ConditionCheck` that this item does not exist, so once the mark is
//! written nothing is added any more, and the erase deletes what was there before it: the order
//! (mark, then delete) leaves nothing, whatever ran concurrently.

use aws_sdk_dynamodb::types::{ConditionCheck, DeleteRequest, WriteRequest};

use super::attrs::{get_s, n, s, Item, EXPIRES_AT, ID};
use super::events::{EventsTable, SORT_KEY};
use super::unavailable;
use crate::ports::{ErasureMark, StoreError};

const MARK: &str = "erased";

impl EventsTable {
    fn mark_key(call_id: &str) -> Item {
        Item::from([(ID.to_owned(), s(call_id)), (SORT_KEY.to_owned(), s(MARK))])
    }

    /// The condition a history write holds: the call is not erased.
    pub(super) fn not_erased(&self, call_id: &str) -> Result<ConditionCheck, StoreError> {
        ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::mark_key(call_id)))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", SORT_KEY)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("TransactWriteItems request: {e}")))
    }

    pub(super) async fn write_mark(
        &self,
        call_id: &str,
        mark: &ErasureMark,
    ) -> Result<(), StoreError> {
        let mut item = Self::mark_key(call_id);
        item.extend([
            ("kind".to_owned(), s("erasure")),
            ("erasedAt".to_owned(), s(&mark.erased_at)),
            (EXPIRES_AT.to_owned(), n(mark.until.timestamp())),
        ]);
        // The first erase's time stands; a repeat only finishes its work.
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", SORT_KEY)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("PutItem (erasure mark)", &e)),
        }
    }

    /// Deletes every item of the call but its mark, 25 a request; returns how many.
    pub(super) async fn delete_history(&self, call_id: &str) -> Result<u64, StoreError> {
        let keys: Vec<Item> = self
            .query_prefix_projected(call_id, "", &[ID, SORT_KEY])
            .await?
            .into_iter()
            .filter(|k| get_s(k, SORT_KEY) != Some(MARK))
            .collect();
        let count = keys.len() as u64;
        for batch in keys.chunks(25) {
            let mut requests: Vec<WriteRequest> = batch
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| {
                            StoreError::Unavailable(format!("BatchWriteItem request: {e}"))
                        })
                })
                .collect::<Result<_, _>>()?;
            for attempt in 0..8u32 {
                if requests.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut requests))
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem (erase)", &e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
            }
            if !requests.is_empty() {
                return Err(StoreError::Unavailable(
                    "BatchWriteItem (erase): items stayed unprocessed; retry".into(),
                ));
            }
        }
        Ok(count)
    }
}
