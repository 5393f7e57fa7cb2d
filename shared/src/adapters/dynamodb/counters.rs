//! Counters of calls by state per hour of creation, in the call index table: what
//! `GET /api/v1/vapi/stats` reads instead of counting summaries.
//!
//! Item `callId` = `stats#{YYYY-MM-DDTHH}#{s}` (call ids never hold `#`), `s` = 0..[`SHARDS`] from
//! the call id, with one number per state: `ds_{dataStatus}` and `o_{outcome}`. No index key,
//! so no listing ever reads one.
//!
//! **Exact.** A summary's write moves its call's count in the same transaction: minus one where
//! the summary was (its hour, state and outcome), plus one where it goes (nothing for an erase).
//! The summary's write is conditioned on that previous state, so a writer that guessed it wrong
//! (its memory of the record was cleared, a record re-created after it expired) loses only the
//! condition, reads the summary and writes again: the counts never drift, whatever fails.
//!
//! **Hot items.** Every call of an hour moves the same few items, and DynamoDB refuses
//! concurrent transactions on one item (a `TransactionConflict`, retried as a lost race); [`SHARDS`]
//! items per hour spread that. A window reads `hours × SHARDS` items with `BatchGetItem`
//! (100 a request, concurrently): 96 items, one request, for the default day.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};

use super::attrs::{get_n, get_s, n, s, Item, ID};
use super::unavailable;
use crate::domain::{DataStatus, Outcome};
use crate::ports::StoreError;
use crate::search::{data_status_from_word, fixed_iso, fnv1a, outcome_from_word, Searchable};
use crate::stats::{floor_hour, CallCounts};

/// Counter items per hour.
pub const SHARDS: u32 = 4;
const PREFIX: &str = "stats#";

/// The hour a call is counted in, from its `createdAt` (the epoch when it is not a time, as the
/// listing sorts it).
fn hour_of(created_at: &str) -> DateTime<Utc> {
    let at = DateTime::parse_from_rfc3339(created_at.trim())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    floor_hour(at)
}

fn key(hour: DateTime<Utc>, shard: u32) -> String {
    format!("{PREFIX}{}#{shard}", &fixed_iso(hour)[..13])
}

fn shard(call_id: &str) -> u32 {
    (fnv1a(call_id) % u64::from(SHARDS)) as u32
}

fn ds_attr(d: DataStatus) -> String {
    format!("ds_{}", d.as_str())
}

fn o_attr(o: Outcome) -> String {
    format!("o_{}", o.as_str())
}

/// The counter updates that move `call_id` from `prev` to `next` (`None`: not counted).
pub(super) fn moves(
    table: &str,
    call_id: &str,
    prev: Option<&Searchable>,
    next: Option<&Searchable>,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let mut deltas: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (state, by) in [(prev, -1), (next, 1)] {
        let Some(state) = state else { continue };
        let item = deltas
            .entry(key(hour_of(&state.created_at), shard(call_id)))
            .or_default();
        *item.entry(ds_attr(state.data_status)).or_default() += by;
        if let Some(o) = state.status {
            *item.entry(o_attr(o)).or_default() += by;
        }
    }
    let mut ops = Vec::new();
    for (item_key, attrs) in deltas {
        let attrs: Vec<_> = attrs.into_iter().filter(|(_, d)| *d != 0).collect();
        if attrs.is_empty() {
            continue;
        }
        let mut update = Update::builder().table_name(table).key(ID, s(item_key));
        let mut adds = Vec::new();
        for (i, (attr, delta)) in attrs.into_iter().enumerate() {
            adds.push(format!("#a{i} :d{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), attr)
                .expression_attribute_values(format!(":d{i}"), n(delta));
        }
        let update = update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("TransactWriteItems request: {e}")))?;
        ops.push(TransactWriteItem::builder().update(update).build());
    }
    Ok(ops)
}

/// The condition that holds a summary's write to the state it moves the counts from.
pub(super) fn summary_condition(
    prev: Option<&Searchable>,
) -> (String, HashMap<String, String>, Item) {
    let mut names = HashMap::from([("#sid".to_owned(), ID.to_owned())]);
    let Some(p) = prev else {
        return ("attribute_not_exists(#sid)".into(), names, Item::new());
    };
    names.insert("#sds".into(), "dataStatus".into());
    names.insert("#sca".into(), "createdAt".into());
    names.insert("#sst".into(), "status".into());
    let mut values = HashMap::from([
        (":sds".to_owned(), s(p.data_status.as_str())),
        (":sca".to_owned(), s(&p.created_at)),
    ]);
    let status = match p.status {
        Some(o) => {
            values.insert(":sst".into(), s(o.as_str()));
            "#sst = :sst"
        }
        None => "attribute_not_exists(#sst)",
    };
    (
        format!("attribute_exists(#sid) AND #sds = :sds AND #sca = :sca AND {status}"),
        names,
        values,
    )
}

/// A call's summary state as stored (strongly consistent), for a writer that does not know it.
pub(super) async fn stored_state(
    client: &Client,
    table: &str,
    call_id: &str,
) -> Result<Option<Searchable>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key(ID, s(call_id))
        .consistent_read(true)
        .projection_expression("#d, #s, #c")
        .expression_attribute_names("#d", "dataStatus")
        .expression_attribute_names("#s", "status")
        .expression_attribute_names("#c", "createdAt")
        .send()
        .await
        .map_err(|e| unavailable("GetItem on the call index", &e))?;
    Ok(out.item.and_then(|item| {
        Some(Searchable::counted(
            data_status_from_word(get_s(&item, "dataStatus")?)?,
            get_s(&item, "status").and_then(outcome_from_word),
            get_s(&item, "createdAt").unwrap_or_default().to_owned(),
        ))
    }))
}

/// The counts of calls created in the hours from `since`'s to the one before `until` (both
/// whole hours): `hours × SHARDS` items, a `BatchGetItem` per 100, all at once.
pub(super) async fn read(
    client: &Client,
    table: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<CallCounts, StoreError> {
    let mut keys = Vec::new();
    let mut hour = since;
    while hour < until {
        keys.extend((0..SHARDS).map(|i| HashMap::from([(ID.to_owned(), s(key(hour, i)))])));
        hour += Duration::hours(1);
    }
    let mut reads = tokio::task::JoinSet::new();
    for batch in keys.chunks(100) {
        let (client, table, batch) = (client.clone(), table.to_owned(), batch.to_vec());
        reads.spawn(async move {
            super::batch_get(
                &client,
                &table,
                batch,
                false,
                "BatchGetItem of the call counters",
            )
            .await
        });
    }
    let mut counts = CallCounts::new(since, until);
    while let Some(done) = reads.join_next().await {
        let items = done.map_err(|e| StoreError::Unavailable(format!("counter read: {e}")))??;
        for item in &items {
            for d in DataStatus::ALL {
                counts.add_data_status(d, get_n::<i64>(item, &ds_attr(d)).unwrap_or(0));
            }
            for o in Outcome::ALL {
                counts.add_outcome(o, get_n::<i64>(item, &o_attr(o)).unwrap_or(0));
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_counted_in_the_hour_it_was_created() {
        assert_eq!(
            key(hour_of("2026-12-05T09:59:59.999Z"), 2),
            "stats#2026-12-05T09#2"
        );
        assert_eq!(
            key(hour_of("2026-12-05T10:00:00+01:00"), 0),
            "stats#2026-12-05T09#0"
        );
        assert_eq!(key(hour_of("not a time"), 1), "stats#1970-01-01T00#1");
    }

    #[test]
    fn a_move_within_one_hour_is_one_update_and_no_move_is_none() {
        let p = Searchable::counted(DataStatus::Partial, None, "2026-12-05T09:00:00Z".into());
        let c = Searchable::counted(
            DataStatus::Complete,
            Some(Outcome::Completed),
            "2026-12-05T09:00:00Z".into(),
        );
        assert_eq!(moves("t", "c1", Some(&p), Some(&c)).unwrap().len(), 1);
        assert!(moves("t", "c1", Some(&p), Some(&p)).unwrap().is_empty());
        let later = Searchable::counted(DataStatus::Partial, None, "2026-12-05T10:00:00Z".into());
        assert_eq!(moves("t", "c1", Some(&p), Some(&later)).unwrap().len(), 2);
        assert_eq!(moves("t", "c1", Some(&c), None).unwrap().len(), 1);
    }
}
