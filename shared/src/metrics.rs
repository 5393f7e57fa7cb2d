//! Metrics as CloudWatch embedded metric format (EMF): one JSON line on stdout per data point,
//! which CloudWatch Logs turns into a metric in namespace [`NAMESPACE`]. No agent, no API call.
//!
//! Each document declares two dimension sets, the given dimensions and none (`[["reason"], []]`),
//! so a metric is both split (`WebhooksRejected` by `reason`) and totalled (`WebhooksRejected`
//! alone, for alarms). The function name travels as a plain property, not a dimension, so the
//! series are the same whichever function emits them.
//!
//! Dimension values must come from a small fixed set (an outcome, an operation): never a call id,
//! a phone number or anything a caller controls. Each distinct value is a metric of its own.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::config::Env;

pub const NAMESPACE: &str = "Ringback";

/// Where the metrics go. Cheap to clone: clones share one destination.
#[derive(Clone, Debug, Default)]
pub struct Metrics(Sink);

#[derive(Clone, Debug, Default)]
enum Sink {
    #[default]
    Off,
    Stdout {
        function: Arc<str>,
    },
    Capture {
        function: Arc<str>,
        lines: Arc<Mutex<Vec<String>>>,
    },
}

impl Metrics {
    /// EMF lines on stdout (Lambda's log stream), tagged with `AWS_LAMBDA_FUNCTION_NAME`.
    pub fn emf() -> Self {
        Self(Sink::Stdout {
            function: function_name(),
        })
    }

    /// Nothing is emitted.
    pub fn off() -> Self {
        Self(Sink::Off)
    }

    /// The documents are kept in memory, for tests: see [`Metrics::documents`] and [`Metrics::total`].
    pub fn capture() -> Self {
        Self(Sink::Capture {
            function: function_name(),
            lines: Arc::default(),
        })
    }

    /// `RINGBACK_METRICS=emf`: [`Metrics::emf`]; anything else: [`Metrics::off`]. For the local runner.
    pub fn from_env(env: &Env) -> Self {
        match env.get("RINGBACK_METRICS") {
            Some("emf") => Self::emf(),
            _ => Self::off(),
        }
    }

    /// A count (unit `Count`).
    pub fn count(&self, name: &str, value: u64, dims: &[(&str, &str)]) {
        self.emit(name, "Count", json!(value), dims);
    }

    /// A duration in milliseconds (unit `Milliseconds`); negative or non-finite values are clamped to 0.
    pub fn millis(&self, name: &str, value: f64, dims: &[(&str, &str)]) {
        let value = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        self.emit(name, "Milliseconds", json!(value), dims);
    }

    fn emit(&self, name: &str, unit: &str, value: Value, dims: &[(&str, &str)]) {
        let (function, capture) = match &self.0 {
            Sink::Off => return,
            Sink::Stdout { function } => (function, None),
            Sink::Capture { function, lines } => (function, Some(lines)),
        };
        let doc = document(name, unit, value, dims, function, now_ms());
        let mut line = doc.to_string();
        match capture {
            Some(lines) => lines.lock().unwrap_or_else(|e| e.into_inner()).push(line),
            None => {
                // One write per line, so concurrent emitters never interleave within a line.
                line.push('\n');
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
        }
    }

    /// The captured documents, parsed, in emission order (empty unless built by [`Metrics::capture`]).
    pub fn documents(&self) -> Vec<Value> {
        match &self.0 {
            Sink::Capture { lines, .. } => lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|l| serde_json::from_str(l).expect("an EMF line is JSON"))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The sum of the captured values of `name` whose dimensions include every pair of `dims`
    /// (`&[]`: all of them, the dimensionless total).
    pub fn total(&self, name: &str, dims: &[(&str, &str)]) -> f64 {
        self.documents()
            .iter()
            .filter(|d| dims.iter().all(|(k, v)| d[*k] == *v))
            .filter_map(|d| d.get(name).and_then(Value::as_f64))
            .sum()
    }
}

/// One EMF document: one metric, declared with the dimension set `dims` and the empty set.
fn document(
    name: &str,
    unit: &str,
    value: Value,
    dims: &[(&str, &str)],
    function: &str,
    ts_ms: u64,
) -> Value {
    let keys: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let sets = if keys.is_empty() {
        json!([[]])
    } else {
        json!([keys, []])
    };
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": [{"Name": name, "Unit": unit}],
            }],
        }),
    );
    doc.insert("function".into(), json!(function));
    for (k, v) in dims {
        doc.insert((*k).into(), json!(v));
    }
    doc.insert(name.into(), value);
    Value::Object(doc)
}

fn function_name() -> Arc<str> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_else(|_| "local".into())
        .into()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_follows_the_emf_spec() {
        let d = document(
            "WebhooksRejected",
            "Count",
            json!(1),
            &[("reason", "unauthorized")],
            "fn-webhook",
            1_700_000_000_123,
        );
        assert_eq!(d["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Ringback");
        assert_eq!(directive["Dimensions"], json!([["reason"], []]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "WebhooksRejected", "Unit": "Count"}])
        );
        // Every referenced member is at the top level, the value a number.
        assert_eq!(d["reason"], "unauthorized");
        assert_eq!(d["WebhooksRejected"], 1);
        assert_eq!(d["function"], "fn-webhook");
        assert_eq!(d.as_object().unwrap().len(), 4, "nothing else: {d}");
    }

    #[test]
    fn several_dimensions_form_one_set_and_none_a_single_empty_one() {
        let d = document(
            "VapiApiCalls",
            "Count",
            json!(1),
            &[("operation", "get_call"), ("result", "ok")],
            "f",
            0,
        );
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["operation", "result"], []])
        );
        assert_eq!(
            (d["operation"].as_str(), d["result"].as_str()),
            (Some("get_call"), Some("ok"))
        );

        let d = document("CallsSettledByCleanup", "Count", json!(2), &[], "f", 0);
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(d["CallsSettledByCleanup"], 2);
    }

    #[test]
    fn capture_keeps_one_line_per_call_and_totals_them() {
        let m = Metrics::capture();
        let shared = m.clone();
        m.count("WebhooksRejected", 1, &[("reason", "unauthorized")]);
        shared.count("WebhooksRejected", 1, &[("reason", "invalid_payload")]);
        m.millis("VapiApiLatency", 12.5, &[("operation", "get_call")]);
        m.millis("TimeToComplete", -3.0, &[]);

        let docs = m.documents();
        assert_eq!(docs.len(), 4);
        assert_eq!(
            docs[2]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(docs[2]["VapiApiLatency"], 12.5);
        assert_eq!(
            docs[3]["TimeToComplete"], 0.0,
            "a negative duration is clamped"
        );
        assert_eq!(m.total("WebhooksRejected", &[]), 2.0);
        assert_eq!(
            m.total("WebhooksRejected", &[("reason", "unauthorized")]),
            1.0
        );
        assert_eq!(
            m.total("WebhooksRejected", &[("reason", "payload_too_large")]),
            0.0
        );
    }

    #[test]
    fn off_and_emf_keep_nothing() {
        let off = Metrics::off();
        off.count("X", 1, &[]);
        assert!(off.documents().is_empty());
        assert!(matches!(
            Metrics::from_env(&Env::from_pairs([("RINGBACK_METRICS", "emf")])).0,
            Sink::Stdout { .. }
        ));
        assert!(matches!(
            Metrics::from_env(&Env::from_pairs([])).0,
            Sink::Off
        ));
    }
}
