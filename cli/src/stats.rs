//! `ringback stats`: calls by state over a window, calls overdue, pushed events pending and
//! dead-lettered, the queues' depths.

use serde_json::Value;

use crate::client::Api;
use crate::text::{aligned, cell};

const DATA_STATUSES: [&str; 5] = ["pending", "partial", "fetching", "complete", "fetch_failed"];
const OUTCOMES: [&str; 5] = ["completed", "no_answer", "voicemail", "timeout", "error"];

pub async fn stats(api: &Api, since: Option<String>, until: Option<String>) -> Result<(), String> {
    let params: Vec<(&str, String)> = [("since", since), ("until", until)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    match api.stats(&params).await? {
        Some(s) => {
            print!("{}", stats_text(&s));
            Ok(())
        }
        None => Err(
            "this deployment cannot count calls (no GET /api/v1/vapi/stats, or no call index); \
             `ringback list --status ...` pages through them"
                .into(),
        ),
    }
}

/// `{unavailable: why}` in place of a part that could not be read.
fn unavailable(part: &Value) -> Option<String> {
    part["unavailable"]
        .as_str()
        .map(|why| format!("unavailable ({why})"))
}

/// Counts of `map` in the order of `known`, then any other it holds.
fn counts(head: &str, map: &Value, known: &[&str]) -> String {
    let mut rows: Vec<Vec<String>> = known
        .iter()
        .map(|k| vec![(*k).to_owned(), cell(&map[*k])])
        .collect();
    if let Some(all) = map.as_object() {
        for (k, v) in all.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
            rows.push(vec![k.clone(), cell(v)]);
        }
    }
    aligned(&[head, "CALLS"], &rows)
}

fn stats_text(s: &Value) -> String {
    let calls = &s["calls"];
    let mut out = match unavailable(calls) {
        Some(why) => format!("calls: {why}\n"),
        None => format!(
            "{} call(s) created from {} to {}\n\n{}\n{}",
            cell(&calls["total"]),
            cell(&calls["since"]),
            cell(&calls["until"]),
            counts("DATA STATUS", &calls["byDataStatus"], &DATA_STATUSES),
            counts("OUTCOME", &calls["byOutcome"], &OUTCOMES),
        ),
    };
    let overdue = &s["overdue"];
    let overdue = unavailable(overdue).unwrap_or_else(|| capped(overdue));
    out += &format!("\noverdue (unsettled past their deadline): {overdue}\n");
    let pushes = &s["pushes"];
    if let Some(why) = unavailable(pushes) {
        out += &format!("pushed events: {why}\n");
    } else if !pushes.is_null() {
        out += &format!(
            "pushed events: {} pending, {} dead-lettered (failed)\n",
            capped(&pushes["pending"]),
            capped(&pushes["failed"])
        );
    }
    let queues = &s["queues"];
    if queues.is_null() {
        out += "queues: not readable by this deployment\n";
    } else if let Some(why) = unavailable(queues) {
        out += &format!("queues: {why}\n");
    } else {
        let row = |name: &str, q: &Value| {
            vec![
                name.to_owned(),
                cell(&q["visible"]),
                cell(&q["inFlight"]),
                cell(&q["delayed"]),
            ]
        };
        out += "\n";
        out += &aligned(
            &["QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED"],
            &[
                row("enrichment", &queues["enrichment"]),
                row("dead-letter", &queues["deadLetter"]),
            ],
        );
    }
    out += &format!("(read at {})\n", cell(&s["at"]));
    out
}

/// `{count, atLeast}` as `12`, or `1000+`.
fn capped(v: &Value) -> String {
    let more = if v["atLeast"] == Value::Bool(true) {
        "+"
    } else {
        ""
    };
    format!("{}{more}", cell(&v["count"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_part_is_printed_and_an_unreadable_one_says_why() {
        let depth = json!({"visible": 2, "inFlight": 1, "delayed": 0});
        let s = json!({
            "at": "2026-12-05T09:30:00.000Z",
            "calls": {"since": "2026-12-04T09:00:00.000Z", "until": "2026-12-05T10:00:00.000Z", "total": 3,
                "byDataStatus": {"complete": 2, "fetch_failed": 0, "fetching": 0, "partial": 0, "pending": 1},
                "byOutcome": {"completed": 1, "error": 0, "no_answer": 1, "timeout": 0, "voicemail": 0}},
            "overdue": {"count": 1000, "atLeast": true},
            "pushes": {"pending": {"count": 4, "atLeast": false}, "failed": {"count": 1, "atLeast": false}},
            "queues": {"enrichment": depth, "deadLetter": depth},
        });
        let out = stats_text(&s);
        assert!(
            out.starts_with(
                "3 call(s) created from 2026-12-04T09:00:00.000Z to 2026-12-05T10:00:00.000Z\n"
            ),
            "{out}"
        );
        let lines: Vec<&str> = out.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("DATA STATUS"))
            .unwrap();
        assert_eq!(lines[at + 1], "pending       1", "{out}");
        assert_eq!(lines[at + 5], "fetch_failed  0", "{out}");
        assert!(out.contains("no_answer  1"), "{out}");
        assert!(out.contains("past their deadline): 1000+"), "{out}");
        assert!(
            out.contains("pushed events: 4 pending, 1 dead-lettered"),
            "{out}"
        );
        assert!(out.contains("dead-letter  2        1          0"), "{out}");

        let s = json!({"at": "t", "calls": {"unavailable": "storage down"},
            "overdue": {"count": 0, "atLeast": false}, "queues": null});
        let out = stats_text(&s);
        assert!(
            out.starts_with("calls: unavailable (storage down)\n"),
            "{out}"
        );
        assert!(out.contains("deadline): 0\n"), "{out}");
        assert!(
            out.contains("queues: not readable by this deployment"),
            "{out}"
        );
    }
}
