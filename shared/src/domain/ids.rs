//! Identifiers, built only by parsing.

use std::fmt;

/// The longest call id accepted (api.md §8). Vapi's ids are UUIDs; the bound keeps any id far below
/// DynamoDB's 2048-byte key limit, so a strange id is a 400, never a failed write.
pub const MAX_CALL_ID_CHARS: usize = 256;

/// A Vapi call id as it reaches us in a path or a payload: non-empty, printable, bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a call id must be 1-{MAX_CALL_ID_CHARS} printable characters without '#'")]
pub struct InvalidCallId;

impl CallId {
    pub fn parse(raw: &str) -> Result<Self, InvalidCallId> {
        let ok = !raw.is_empty()
            && raw.chars().count() <= MAX_CALL_ID_CHARS
            // '#' is reserved for the store's own keys (split documents, idempotency records).
            && raw.chars().all(|c| !c.is_control() && c != '#');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidCallId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The old backend's guard before writing provider and interaction rows: an RFC 4122 UUID,
/// version 1-5, variant 8/9/a/b, any case.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => c == b'-',
            14 => (b'1'..=b'5').contains(&c),
            19 => matches!(c.to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'),
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_guard_matches_the_old_backend() {
        let cases = [
            ("5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34", true),
            ("0F9E8D7C-6B5A-4C3D-AE2F-1A0B9C8D7E6F", true),
            ("0f9e8d7c-6b5a-6c3d-8e2f-1a0b9c8d7e6f", false), // version 6
            ("0f9e8d7c-6b5a-4c3d-7e2f-1a0b9c8d7e6f", false), // variant 7
            ("task-1234", false),
            ("", false),
            ("0f9e8d7c6b5a4c3d8e2f1a0b9c8d7e6f", false),
            ("0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6g", false),
        ];
        for (s, want) in cases {
            assert_eq!(is_uuid(s), want, "{s}");
        }
    }

    #[test]
    fn call_ids_are_parsed_not_trusted() {
        assert!(CallId::parse("call-1").is_ok());
        assert!(CallId::parse("a/b c").is_ok());
        assert_eq!(CallId::parse(""), Err(InvalidCallId));
        assert_eq!(CallId::parse("x#part1"), Err(InvalidCallId));
        assert_eq!(CallId::parse("a\nb"), Err(InvalidCallId));
        assert!(CallId::parse(&"é".repeat(MAX_CALL_ID_CHARS)).is_ok());
        assert_eq!(CallId::parse(&"x".repeat(257)), Err(InvalidCallId));
    }
}
