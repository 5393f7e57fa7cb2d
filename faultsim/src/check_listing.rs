//! The listing, checked once the run is quiet: every live record's summary in the call index says
//! what the record says (the data status and outcome a listing filters on), and the index lists
//! no call that never had a record.

use aws_sdk_dynamodb::types::AttributeValue;
use ringback::ports::CallStore;

use crate::world::{World, INDEX_TABLE, TABLES};

impl World {
    pub(crate) async fn check_listing(&mut self) {
        let calls = ringback::adapters::dynamodb::CallsTable::new(
            self.dynamo.clone(),
            TABLES.0.into(),
            std::time::Duration::from_secs(1800),
            self.clock.clone(),
        );
        let known: Vec<String> = {
            let committed = self.committed.lock().unwrap();
            committed.lifetimes.keys().cloned().collect()
        };
        for id in &known {
            let Some(live) = calls.get(id).await.expect("calls readable") else {
                continue;
            };
            if live.record.book.erased_at.is_some() {
                // A tombstone is not listed (`check_erase.rs`).
                continue;
            }
            let r = &live.record.result;
            let summary = self.summary(id).await;
            let said = summary.as_ref().map(|s| {
                let word = |k: &str| s.get(k).and_then(|v| v.as_s().ok()).cloned();
                (word("dataStatus"), word("status"))
            });
            let is = (
                Some(r.data_status.as_str().to_owned()),
                r.status.map(|o| o.as_str().to_owned()),
            );
            match said {
                None => self.violation(format!("call {id}: recorded, yet not listed")),
                Some(said) if said != is => self.violation(format!(
                    "call {id}: the listing says {said:?}, the record {is:?}"
                )),
                Some(_) => {}
            }
        }
        for item in self.index_items().await {
            let id = item
                .get("callId")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            // Counter items (`stats#…`) are no call.
            if !id.starts_with("stats#")
                && !self.committed.lock().unwrap().lifetimes.contains_key(&id)
            {
                self.violation(format!("call {id}: listed, yet never recorded"));
            }
        }
    }

    /// Every item of the call index (summaries and counters), read strongly consistently.
    pub(crate) async fn index_items(
        &self,
    ) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let (mut items, mut start) = (Vec::new(), None);
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(INDEX_TABLE)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("the index is scannable");
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    pub(crate) async fn summary(
        &self,
        id: &str,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(INDEX_TABLE)
            .key("callId", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("the index is readable")
            .item
    }
}
