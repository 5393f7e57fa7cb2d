//! Attribute names and small conversions between Rust values and `AttributeValue`s.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

pub(crate) type Item = HashMap<String, AttributeValue>;

// Calls table.
pub(crate) const ID: &str = "callId";
pub(crate) const KIND: &str = "kind";
pub(crate) const VERSION: &str = "version";
pub(crate) const EXPIRES_AT: &str = "expiresAt";
pub(crate) const DATA_STATUS: &str = "dataStatus";
pub(crate) const UPDATED_AT: &str = "updatedAt";
pub(crate) const DOC: &str = "doc";
pub(crate) const PARTS: &str = "parts";
pub(crate) const SHARD: &str = "unfinishedShard";
pub(crate) const DEADLINE: &str = "deadline";
pub(crate) const REQUEST_HASH: &str = "requestHash";
pub(crate) const RESPONSE: &str = "response";
pub(crate) const CREATED_AT: &str = "createdAt";
/// On an erased call's tombstone ([`crate::domain::erase`]).
pub(crate) const ERASED_AT: &str = "erasedAt";

pub(crate) const KIND_CALL: &str = "call";
pub(crate) const KIND_PART: &str = "part";
pub(crate) const KIND_IDEMPOTENCY: &str = "idempotency";
/// How many partitions of the unfinished index the records are spread over. One partition of a GSI
/// takes about 1,000 writes/s; every unfinished record is written a few times, so a single key would
/// throttle the table's writes at a few hundred calls per second (docs/scaling.md).
pub(crate) const UNFINISHED_SHARDS: u32 = 16;
/// The hash key records had before sharding: still swept, so an upgrade strands nothing.
pub(crate) const SHARD_LEGACY: &str = "unfinished";

/// The index's hash key for a call: `unfinished#NN`, from a stable hash of its id (FNV-1a, fixed by
/// this code, not by the standard library's hasher, so every version of every function agrees).
pub(crate) fn unfinished_shard(call_id: &str) -> String {
    let hash = call_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    shard_key((hash % u64::from(UNFINISHED_SHARDS)) as u32)
}

/// The hash key of sweep position `i`: the shards in order, then the legacy key.
pub(crate) fn shard_key(i: u32) -> String {
    if i < UNFINISHED_SHARDS {
        format!("{SHARD_LEGACY}#{i:02}")
    } else {
        SHARD_LEGACY.to_owned()
    }
}

/// Sweep positions: every shard and the legacy key.
pub(crate) const SWEEP_POSITIONS: u32 = UNFINISHED_SHARDS + 1;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A finite float as a number, anything else as NULL.
pub(crate) fn f64_or_null(v: Option<f64>) -> AttributeValue {
    match v {
        Some(x) if fits_number(x) => AttributeValue::N(json_number(x)),
        _ => AttributeValue::Null(true),
    }
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|x| x.parse().ok())
}

pub(crate) fn get_b<'a>(item: &'a Item, name: &str) -> Option<&'a [u8]> {
    item.get(name)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref())
}

/// A JSON value as the matching DynamoDB type (object → M, array → L, number → N, null → NULL).
/// Numbers DynamoDB cannot hold (beyond ±1e125 or below 1e-130) are kept as their text.
pub(crate) fn from_json(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(num) => match num.as_f64() {
            Some(x) if num.is_f64() && !fits_number(x) => AttributeValue::S(num.to_string()),
            _ => AttributeValue::N(num.to_string()),
        },
        Value::String(t) => AttributeValue::S(t.clone()),
        Value::Array(xs) => AttributeValue::L(xs.iter().map(from_json).collect()),
        Value::Object(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

fn fits_number(x: f64) -> bool {
    x.is_finite() && (x == 0.0 || (1e-130..1e125).contains(&x.abs()))
}

/// Shortest round-tripping text of a float (`5.5`, `0.1`, `1e-7`), which DynamoDB accepts.
fn json_number(x: f64) -> String {
    serde_json::Number::from_f64(x).map_or_else(|| "0".to_owned(), |num| num.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_becomes_native_dynamodb_types() {
        let av = from_json(
            &json!({"ok": true, "n": 3, "f": 0.5, "s": "x", "l": [null, 1], "huge": 1e200}),
        );
        let m = av.as_m().unwrap();
        assert_eq!(m["ok"], AttributeValue::Bool(true));
        assert_eq!(m["n"], AttributeValue::N("3".into()));
        assert_eq!(m["f"], AttributeValue::N("0.5".into()));
        assert_eq!(m["s"], AttributeValue::S("x".into()));
        assert_eq!(
            m["l"],
            AttributeValue::L(vec![
                AttributeValue::Null(true),
                AttributeValue::N("1".into())
            ])
        );
        let huge = m["huge"].as_s().expect("kept as text");
        assert_eq!(huge.parse::<f64>().unwrap(), 1e200);
    }

    #[test]
    fn floats_and_nulls() {
        assert_eq!(f64_or_null(Some(5.5)), AttributeValue::N("5.5".into()));
        assert_eq!(f64_or_null(Some(0.0)), AttributeValue::N("0.0".into()));
        assert_eq!(f64_or_null(None), AttributeValue::Null(true));
        assert_eq!(f64_or_null(Some(f64::NAN)), AttributeValue::Null(true));
    }
}
