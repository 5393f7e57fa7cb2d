//! Timestamps from Vapi arrive as ISO-8601 text or epoch milliseconds (as numbers or strings).
//! Anything unparsable is "unknown", never a crash and never NaN.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

/// Epoch values below this are taken as seconds, above as milliseconds (1e11 s is year 5138).
const MS_THRESHOLD: f64 = 1e11;

pub fn parse_timestamp(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => from_epoch(n.as_f64()?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
                return Some(dt.with_timezone(&Utc));
            }
            s.parse::<f64>().ok().and_then(from_epoch)
        }
        _ => None,
    }
}

fn from_epoch(x: f64) -> Option<DateTime<Utc>> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let ms = if x < MS_THRESHOLD { x * 1000.0 } else { x };
    Utc.timestamp_millis_opt(ms as i64).single()
}

/// Minutes between two instants; `None` unless both are known and the end is not before the start.
pub fn duration_minutes(
    started: Option<DateTime<Utc>>,
    ended: Option<DateTime<Utc>>,
) -> Option<f64> {
    let (s, e) = (started?, ended?);
    let ms = (e - s).num_milliseconds();
    (ms >= 0).then(|| ms as f64 / 60_000.0)
}

pub fn to_iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_in_every_shape() {
        let iso = parse_timestamp(&json!("2026-03-02T15:04:11.004Z")).unwrap();
        assert_eq!(to_iso(iso), "2026-03-02T15:04:11.004Z");
        let cases = [
            (json!(1772463918811u64), Some("2026-03-02T15:05:18.811Z")),
            (json!("1772463918811"), Some("2026-03-02T15:05:18.811Z")),
            (json!(1772463918), Some("2026-03-02T15:05:18.000Z")),
            (
                json!("2026-03-02T16:04:11.004+01:00"),
                Some("2026-03-02T15:04:11.004Z"),
            ),
            (json!("not a date"), None),
            (json!(""), None),
            (json!(null), None),
            (json!(-5), None),
            (json!({"a": 1}), None),
            (json!("NaN"), None),
            (json!("1e400"), None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_timestamp(&v).map(to_iso).as_deref(), want, "{v}");
        }
    }

    #[test]
    fn duration_is_minutes_and_never_nan() {
        let t = |s: &str| parse_timestamp(&json!(s));
        let d =
            duration_minutes(t("2026-03-02T15:04:11.004Z"), t("2026-03-02T15:05:12.240Z")).unwrap();
        assert!((d - 61.236 / 60.0).abs() < 1e-9, "{d}");
        assert_eq!(
            duration_minutes(t("garbage"), t("2026-03-02T15:05:12.240Z")),
            None
        );
        assert_eq!(duration_minutes(t("2026-03-02T15:05:12.240Z"), None), None);
        // An end before the start is a broken pair, not a negative call.
        assert_eq!(
            duration_minutes(t("2026-03-02T15:05:12Z"), t("2026-03-02T15:04:12Z")),
            None
        );
    }
}
