//! What a call's rows already hold, read back before a save so that the save never takes data
//! away from them (see [`crate::domain::keep_prior`]): a record rebuilt from Vapi after the first
//! one expired (a dead letter redriven late, say) may know less than its rows.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::{get_n, s, Item};
use super::batch_get_tables;
use super::fit::{stored_json, stored_text, to_json};
use super::persistence::ProvidersAndLogs;
use crate::domain::{parse_transcript, Prior, TranscriptLine};
use crate::ports::SinkError;

impl ProvidersAndLogs {
    /// What the call's rows already hold: its provider row (when it holds this call) and its
    /// interaction log, read together.
    pub(super) async fn prior(
        &self,
        call_id: &str,
        provider_id: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Prior, SinkError> {
        let mut prior = Prior::default();
        let provider_key = provider_id.map(|id| {
            let key = HashMap::from([("providerId".to_owned(), s(id))]);
            (self.providers.as_str(), key)
        });
        let log_key = request_id.map(|id| {
            let key = HashMap::from([
                ("requestId".to_owned(), s(id)),
                ("callId".to_owned(), s(call_id)),
            ]);
            (self.logs.as_str(), key)
        });
        let keys = provider_key
            .into_iter()
            .chain(log_key)
            .map(|(t, k)| (t, vec![k]));
        let mut rows = batch_get_tables(&self.client, keys.collect(), true, "the call's rows")
            .await
            .map_err(|e| SinkError::transient(e.to_string()))?;
        let mut first = |table: &str| {
            rows.remove(table)
                .and_then(|items| items.into_iter().next())
        };
        let holds_this_call = |row: &Item| {
            row.get("call_id")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|id| id == call_id)
        };
        if let Some(row) = first(&self.providers).filter(holds_this_call) {
            prior.transcript = stored_text(&row, "call_transcript", "call_transcript_gz");
            prior.summary = stored_text(&row, "call_summary", "call_summary_gz");
            prior.structured_data = stored_json(&row, "call_result", "call_result_gz")
                .and_then(|v| v.as_object().cloned());
            let num = |name: &str| get_n::<f64>(&row, name);
            prior.duration = num("call_duration_minutes");
            prior.cost = num("call_cost");
        }
        if let Some(log) = first(&self.logs) {
            let lines: Option<Vec<TranscriptLine>> = match log.get("transcript") {
                Some(l @ AttributeValue::L(_)) => serde_json::from_value(to_json(l)).ok(),
                _ => stored_text(&log, "transcript", "transcript_gz")
                    .and_then(|t| serde_json::from_str(&t).ok()),
            };
            // The provider row's text is the original; the log's lines count only when it
            // holds more of them (the row may hold another call, or none).
            let held = parse_transcript(prior.transcript.as_deref().unwrap_or_default()).len();
            if let Some(ls) = lines.filter(|ls| ls.len() > held) {
                let text: Vec<String> = ls
                    .iter()
                    .map(|l| format!("{}: {}", l.speaker, l.text))
                    .collect();
                prior.transcript = Some(text.join("\n"));
            }
        }
        Ok(prior)
    }
}
