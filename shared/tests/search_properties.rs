//! Properties of the listing's untrusted input: any query parameters and any cursor text are either
//! read or refused by name, never a panic; a cursor handed out reads back as itself; sort keys
//! order calls by creation time whatever their ids.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use ringback::domain::CallResult;
use ringback::search::{fixed_iso, CallSummary, Cursor, Filter, SearchQuery};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("serviceRequestId".to_owned()),
        Just("providerId".to_owned()),
        Just("status".to_owned()),
        Just("since".to_owned()),
        Just("until".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_parameters_are_read_or_refused_by_name(
        pairs in proptest::collection::vec((name(), ".{0,40}"), 0..6)
    ) {
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        match SearchQuery::parse(refs.iter().copied()) {
            Ok(q) => {
                prop_assert!((1..=100).contains(&q.limit));
                if let (Some(s), Some(u)) = (q.since, q.until) {
                    prop_assert!(s <= u);
                }
            }
            Err(e) => prop_assert!(
                refs.iter().any(|(k, _)| *k == e.parameter),
                "{e} names no given parameter"
            ),
        }
    }

    #[test]
    fn any_cursor_text_is_refused_or_reads_back_as_itself(text in ".{0,120}") {
        if let Ok(c) = Cursor::decode(&text, &Filter::All) {
            prop_assert_eq!(Cursor::decode(&c.encode(&Filter::All), &Filter::All).unwrap(), c);
        }
    }

    #[test]
    fn sort_keys_order_calls_by_creation_time(
        a in 0i64..4_000_000_000_000, b in 0i64..4_000_000_000_000,
        id_a in "[a-z0-9-]{1,40}", id_b in "[a-z0-9-]{1,40}",
    ) {
        let at = |ms| fixed_iso(Utc.timestamp_millis_opt(ms).unwrap());
        let ka = CallSummary::of(&CallResult::new(id_a.clone(), &at(a))).sort_key();
        let kb = CallSummary::of(&CallResult::new(id_b.clone(), &at(b))).sort_key();
        if a != b {
            prop_assert_eq!(a < b, ka < kb, "{} vs {}", ka, kb);
        }
        let f = Filter::Provider("p".into());
        let c = Cursor { after: ka.clone() };
        prop_assert_eq!(Cursor::decode(&c.encode(&f), &f).unwrap(), c);
    }
}
