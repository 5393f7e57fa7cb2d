//! What the cleanup's reconciliation with Vapi reads and keeps in the calls table: which listed
//! calls have a record (BatchGetItem, 100 keys a request, instead of one GetItem per call), and
//! its cursor.
//!
//! | item | `callId` | attributes |
//! |---|---|---|
//! | reconciliation cursor | `reconcile#{key}` (key: phone number id and deployment id) | `kind`="reconcile", `cursor` S (JSON, `service::cleanup`), `updatedAt` S, `expiresAt` N (save + 1 day) |
//!
//! Call ids never contain `#`, so the cursor cannot collide with a record; `get` answers only for
//! `kind = "call"`. The cursor expires a day after its last save: a cursor older than the records'
//! TTL says nothing the next run can use (it lists the TTL's window again from its start).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::attrs::*;
use super::calls::CallsTable;
use super::unavailable;
use crate::domain::to_iso;
use crate::ports::{ReconcileCursors, StoreError};

const KIND_CURSOR: &str = "reconcile";
const CURSOR: &str = "cursor";
/// How long an unused cursor is kept.
const CURSOR_TTL_SECONDS: i64 = 86_400;
/// BatchGetItem's limit.
const BATCH: usize = 100;

fn cursor_key(key: &str) -> Item {
    HashMap::from([(ID.to_owned(), s(format!("reconcile#{key}")))])
}

impl CallsTable {
    /// The ids of `call_ids` that have a live record: consistent BatchGetItem reads, 100 ids a
    /// request. A main item answers for its record; part items and expired records do not.
    pub(super) async fn recorded_ids(
        &self,
        call_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let now = self.clock.now().timestamp();
        let mut found = HashSet::new();
        let ids: Vec<&String> = call_ids
            .iter()
            .filter(|id| !id.is_empty() && !id.contains('#'))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for chunk in ids.chunks(BATCH) {
            let keys = chunk
                .iter()
                .map(|id| HashMap::from([(ID.to_owned(), s(id.as_str()))]))
                .collect();
            let what = "BatchGetItem of listed calls on the calls table";
            let items = super::batch_get(&self.client, &self.table, keys, true, what).await?;
            found.extend(items.iter().filter_map(|item| {
                let live = get_s(item, KIND) == Some(KIND_CALL)
                    && get_n::<i64>(item, EXPIRES_AT).is_none_or(|e| e > now);
                live.then(|| get_s(item, ID).map(str::to_owned)).flatten()
            }));
        }
        Ok(found)
    }
}

#[async_trait]
impl ReconcileCursors for CallsTable {
    async fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem of the reconciliation cursor", &e))?;
        Ok(out
            .item
            .filter(|i| get_s(i, KIND) == Some(KIND_CURSOR))
            .and_then(|i| get_s(&i, CURSOR).map(str::to_owned)))
    }

    /// A plain put: two runs at once each save only what they covered themselves, so whichever
    /// lands last is true (at worst a later run lists some calls again, which changes nothing).
    async fn save(&self, key: &str, cursor: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut item = cursor_key(key);
        item.insert(KIND.to_owned(), s(KIND_CURSOR));
        item.insert(CURSOR.to_owned(), s(cursor));
        item.insert(UPDATED_AT.to_owned(), s(to_iso(now)));
        item.insert(
            EXPIRES_AT.to_owned(),
            n(now.timestamp() + CURSOR_TTL_SECONDS),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem of the reconciliation cursor", &e))?;
        Ok(())
    }
}
