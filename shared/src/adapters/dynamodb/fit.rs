//! Fitting a finished call into DynamoDB's limits (api.md §8, "durable tables take any call"): a map
//! key must not be empty, a value nests at most 32 levels (the attribute itself is level 1), an
//! item holds at most 400 KB. What cannot be stored as it is, is stored in a form that can:
//! structured data as its JSON text, a large text gzip-compressed in a binary `*_gz` attribute
//! beside a readable preview. [`stored_text`] and [`stored_json`] read either form back.

use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{Map, Value};

use super::attrs::{from_json, Item};

/// What an item may weigh by [`item_size`]: below the 400 KB limit, with room for rounding.
pub(crate) const ITEM_BUDGET: usize = 380 * 1024;
/// Levels a value may nest, counting the attribute itself as level 1.
const MAX_LEVELS: usize = 32;
/// A compacted text keeps this many characters readable in its plain attribute.
const PREVIEW_CHARS: usize = 2000;
/// Texts up to this size stay plain even in a compacted item.
const SMALL_TEXT: usize = 4 * 1024;

/// How hard an item is squeezed: each step is taken only when the one before did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Form {
    /// Everything as it is: native maps and lists, plain text.
    Plain,
    /// Large texts gzip-compressed beside a preview; structured data as JSON text.
    Compact,
    /// Compacted, and the compressed texts that still do not fit dropped (their previews kept):
    /// the last resort, flagged on the item and logged.
    Truncated,
}

impl Form {
    pub(crate) fn next(self) -> Option<Self> {
        match self {
            Self::Plain => Some(Self::Compact),
            Self::Compact => Some(Self::Truncated),
            Self::Truncated => None,
        }
    }
}

/// Structured data as a native map when DynamoDB can hold it so (no empty key, not too deep).
pub(crate) fn native_map(m: &Map<String, Value>) -> Option<AttributeValue> {
    let v = Value::Object(m.clone());
    (levels(&v) <= MAX_LEVELS && !has_empty_key(&v)).then(|| from_json(&v))
}

fn levels(v: &Value) -> usize {
    match v {
        Value::Array(xs) => 1 + xs.iter().map(levels).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(levels).max().unwrap_or(0),
        _ => 1,
    }
}

fn has_empty_key(v: &Value) -> bool {
    match v {
        Value::Array(xs) => xs.iter().any(has_empty_key),
        Value::Object(m) => m.iter().any(|(k, v)| k.is_empty() || has_empty_key(v)),
        _ => false,
    }
}

/// A text in `name`, and in `gz_name` when compacted: plain while small or while `form` is
/// [`Form::Plain`]; otherwise a preview in `name` and the whole text gzip-compressed in `gz_name`.
/// Both attributes are always set, so a save never leaves another call's value behind.
pub(crate) fn text_fields(
    name: &'static str,
    gz_name: &'static str,
    text: Option<&str>,
    form: Form,
) -> [(&'static str, AttributeValue); 2] {
    let null = || AttributeValue::Null(true);
    match text {
        None => [(name, null()), (gz_name, null())],
        Some(t) if form == Form::Plain || t.len() <= SMALL_TEXT => {
            [(name, AttributeValue::S(t.to_owned())), (gz_name, null())]
        }
        Some(t) => [
            (name, AttributeValue::S(preview(t))),
            (
                gz_name,
                AttributeValue::B(Blob::new(gzip_smallest(t.as_bytes()))),
            ),
        ],
    }
}

/// Structured data: a native map while it fits as one, else its JSON text (see [`text_fields`]).
pub(crate) fn json_fields(
    name: &'static str,
    gz_name: &'static str,
    data: Option<&Map<String, Value>>,
    form: Form,
) -> [(&'static str, AttributeValue); 2] {
    let Some(m) = data else {
        return text_fields(name, gz_name, None, form);
    };
    match native_map(m).filter(|_| form == Form::Plain) {
        Some(native) => [(name, native), (gz_name, AttributeValue::Null(true))],
        None => {
            let json = Value::Object(m.clone()).to_string();
            text_fields(name, gz_name, Some(&json), form)
        }
    }
}

/// In [`Form::Truncated`], drops compressed attributes (largest first) until the fields fit;
/// `true` when something was dropped.
pub(crate) fn drop_until_fits(fields: &mut [(&'static str, AttributeValue)]) -> bool {
    let mut dropped = false;
    while fields_size(fields) > ITEM_BUDGET {
        let largest = fields
            .iter_mut()
            .filter(|(_, v)| v.is_b())
            .max_by_key(|(_, v)| size(v));
        match largest {
            Some((_, v)) => {
                *v = AttributeValue::Null(true);
                dropped = true;
            }
            None => break,
        }
    }
    dropped
}

fn preview(t: &str) -> String {
    let mut p: String = t.chars().take(PREVIEW_CHARS).collect();
    p.push('…');
    p
}

/// Whether one row certainly holds all of `texts`, compressed as a save compresses them, beside
/// their previews (up to [`PREVIEW_CHARS`] characters each) and the row's other attributes. A
/// save drops a text ([`Form::Truncated`]) only when its item would not fit; checkers hold the
/// tables to that.
pub fn row_can_hold(texts: &[&str]) -> bool {
    const ROW_OVERHEAD: usize = 32 * 1024;
    let compressed: usize = texts
        .iter()
        .map(|t| gzip_smallest(t.as_bytes()).len())
        .sum();
    compressed + ROW_OVERHEAD <= ITEM_BUDGET
}

/// For a kept webhook, on its request path: level 6 gives Vapi's payloads within 0.2 % of
/// level 9's size (the report fixture: 1,836 against 1,833 bytes) in about 70 % of its time.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_at(bytes, Compression::default())
}

/// For what must fit under 400 KB (long texts, pushed events): there every byte counts.
pub(crate) fn gzip_smallest(bytes: &[u8]) -> Vec<u8> {
    gzip_at(bytes, Compression::best())
}

fn gzip_at(bytes: &[u8], level: Compression) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), level);
    gz.write_all(bytes)
        .and_then(|()| gz.finish())
        .expect("gzip into memory cannot fail")
}

pub(crate) fn gunzip(bytes: &[u8]) -> Option<String> {
    let mut out = String::new();
    GzDecoder::new(bytes).read_to_string(&mut out).ok()?;
    Some(out)
}

/// The size DynamoDB counts for a value (rounded up: numbers at their 21-byte maximum).
pub(crate) fn size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(_) => 21,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(xs) => 3 + xs.iter().map(|x| 1 + size(x)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + size(x)).sum::<usize>(),
        AttributeValue::Ss(xs) => xs.iter().map(String::len).sum(),
        AttributeValue::Ns(xs) => 21 * xs.len(),
        AttributeValue::Bs(xs) => xs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// Names and values of an item's attributes, as DynamoDB weighs them.
pub(crate) fn fields_size(fields: &[(&str, AttributeValue)]) -> usize {
    fields.iter().map(|(k, v)| k.len() + size(v)).sum()
}

/// A text stored by [`text_fields`], whole: decompressed when compacted, `None` when absent.
pub fn stored_text(item: &Item, name: &str, gz_name: &str) -> Option<String> {
    if let Some(AttributeValue::B(b)) = item.get(gz_name) {
        return gunzip(b.as_ref());
    }
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Structured data stored by [`json_fields`], whole, in whichever form it was stored.
pub fn stored_json(item: &Item, name: &str, gz_name: &str) -> Option<Value> {
    match item.get(name) {
        Some(AttributeValue::M(_)) => item.get(name).map(to_json),
        _ => stored_text(item, name, gz_name).and_then(|t| serde_json::from_str(&t).ok()),
    }
}

/// A native DynamoDB value back as JSON (the inverse of [`from_json`] for what it produces).
pub fn to_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::from_str(n).unwrap_or(Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(xs) => Value::Array(xs.iter().map(to_json).collect()),
        AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(wraps: usize) -> Map<String, Value> {
        let mut v = json!("leaf");
        for _ in 0..wraps {
            v = json!({"d": v});
        }
        v.as_object().unwrap().clone()
    }

    #[test]
    fn what_dynamodb_can_hold_natively() {
        // DynamoDB accepts 31 map-wraps around a scalar and refuses 32.
        assert!(native_map(&nested(31)).is_some());
        assert!(native_map(&nested(32)).is_none());
        assert!(native_map(json!({"a": {"": 1}}).as_object().unwrap()).is_none());
        assert!(native_map(json!({"a": [{"b": 1}]}).as_object().unwrap()).is_some());
    }

    #[test]
    fn every_form_reads_back_whole() {
        let long = "AI: hello there\nUser: hi\n".repeat(2000);
        let data = json!({"": {"x": [1, 2.5, null]}, "ok": true});
        for form in [Form::Plain, Form::Compact] {
            let mut item = Item::new();
            for (k, v) in text_fields("t", "t_gz", Some(&long), form)
                .into_iter()
                .chain(json_fields("j", "j_gz", data.as_object(), form))
            {
                item.insert(k.to_owned(), v);
            }
            assert_eq!(
                stored_text(&item, "t", "t_gz").as_deref(),
                Some(long.as_str())
            );
            assert_eq!(stored_json(&item, "j", "j_gz"), Some(data.clone()));
        }
        let compact = text_fields("t", "t_gz", Some(&long), Form::Compact);
        assert!(compact[0].1.as_s().unwrap().chars().count() <= PREVIEW_CHARS + 1);
        assert!(size(&compact[1].1) < long.len() / 10);
        // A small text stays plain even compacted.
        assert_eq!(
            text_fields("t", "t_gz", Some("short"), Form::Compact)[1].1,
            AttributeValue::Null(true)
        );
    }

    #[test]
    fn truncation_drops_the_largest_blob_first() {
        let big = AttributeValue::B(Blob::new(vec![0u8; ITEM_BUDGET]));
        let small = AttributeValue::B(Blob::new(vec![0u8; 10]));
        let mut fields = [("a_gz", small.clone()), ("b_gz", big)];
        assert!(drop_until_fits(&mut fields));
        assert_eq!(fields[0].1, small);
        assert_eq!(fields[1].1, AttributeValue::Null(true));
        assert!(!drop_until_fits(&mut fields));
    }
}
