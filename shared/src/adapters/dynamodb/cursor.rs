//! The overdue cursor: the sweep position (a shard of the unfinished index) and, within it, the index
//! position `{deadline}.{callId}`, as plain text `{shard}:{deadline}.{callId}` (or `{shard}:` at a
//! shard's start), so it fits a queue message or a log line as it is.

use std::collections::HashMap;

use super::attrs::*;
use crate::ports::StoreError;

pub(super) fn encode(position: u32, last: &Item) -> Result<String, StoreError> {
    match (get_n::<i64>(last, DEADLINE), get_s(last, ID)) {
        (Some(d), Some(id)) => Ok(format!("{position}:{d}.{id}")),
        _ => Err(StoreError::Corrupt(format!(
            "unexpected index position {last:?}"
        ))),
    }
}

pub(super) fn start_of(position: u32) -> String {
    format!("{position}:")
}

/// The sweep position and the key to start after, if any.
pub(super) fn decode(cursor: &str) -> Result<(u32, Option<Item>), StoreError> {
    let bad = || StoreError::Corrupt(format!("not an overdue cursor: {cursor:?}"));
    let (position, rest) = cursor.split_once(':').ok_or_else(bad)?;
    let position: u32 = position.parse().map_err(|_| bad())?;
    if position >= SWEEP_POSITIONS {
        return Err(bad());
    }
    if rest.is_empty() {
        return Ok((position, None));
    }
    let (deadline, id) = rest.split_once('.').ok_or_else(bad)?;
    let deadline: i64 = deadline.parse().map_err(|_| bad())?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((
        position,
        Some(HashMap::from([
            (ID.to_owned(), s(id)),
            (SHARD.to_owned(), s(shard_key(position))),
            (DEADLINE.to_owned(), n(deadline)),
        ])),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let (position, key) = decode("3:1700000000.call.with.dots").unwrap();
        let key = key.unwrap();
        assert_eq!(position, 3);
        assert_eq!(get_s(&key, ID), Some("call.with.dots"));
        assert_eq!(get_s(&key, SHARD), Some("unfinished#03"));
        assert_eq!(encode(3, &key).unwrap(), "3:1700000000.call.with.dots");
        assert_eq!(decode(&start_of(16)).unwrap(), (16, None));
        for bad in [
            "nope",
            "1700000000.x",
            "3:12.",
            "3:x.y",
            "17:",
            "-1:",
            ":1.x",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn calls_spread_over_every_shard_and_each_call_keeps_its_own() {
        let mut counts = [0u32; UNFINISHED_SHARDS as usize];
        for i in 0..16_000 {
            let key = unfinished_shard(&format!("019a{i:08x}-5c3e-7d2a-b1f0-6e5d4c3b2a10"));
            let shard: usize = key.strip_prefix("unfinished#").unwrap().parse().unwrap();
            counts[shard] += 1;
        }
        // 1,000 expected per shard; a bad hash piles them up.
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(unfinished_shard("call-a"), unfinished_shard("call-a"));
        // Fixed by this code: a changed hash would leave records where no sweep looks.
        assert_eq!(unfinished_shard(""), "unfinished#05");
    }
}
