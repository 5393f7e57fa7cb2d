//! The overdue cursor: the index position `{deadline}.{callId}` as plain text (the hash key is a
//! constant), so it fits a queue message or a log line as it is.

use std::collections::HashMap;

use super::attrs::*;
use crate::ports::StoreError;

pub(super) fn encode(last: &Item) -> Result<String, StoreError> {
    match (get_n::<i64>(last, DEADLINE), get_s(last, ID)) {
        (Some(d), Some(id)) => Ok(format!("{d}.{id}")),
        _ => Err(StoreError::Corrupt(format!(
            "unexpected index position {last:?}"
        ))),
    }
}

pub(super) fn decode(cursor: &str) -> Result<Item, StoreError> {
    let bad = || StoreError::Corrupt(format!("not an overdue cursor: {cursor:?}"));
    let (deadline, id) = cursor.split_once('.').ok_or_else(bad)?;
    let deadline: i64 = deadline.parse().map_err(|_| bad())?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok(HashMap::from([
        (ID.to_owned(), s(id)),
        (SHARD.to_owned(), s(SHARD_UNFINISHED)),
        (DEADLINE.to_owned(), n(deadline)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let key = decode("1700000000.call.with.dots").unwrap();
        assert_eq!(get_s(&key, ID), Some("call.with.dots"));
        assert_eq!(encode(&key).unwrap(), "1700000000.call.with.dots");
        assert!(decode("nope").is_err());
        assert!(decode("12.").is_err());
        assert!(decode("x.y").is_err());
    }
}
