//! [`ProvidersAndLogs`]: a finished call written to the providers table and the interaction-log
//! table (SPEC §5), idempotently and never letting an older save overwrite a newer one.
//!
//! Provider row (key `providerId`), one UpdateItem that creates the row if needed:
//! `call_status` (outcome or `unknown`), `call_result` (structured data as a native map, M),
//! `call_transcript`, `call_summary`, `call_duration_minutes` (N), `call_cost` (N), `call_method`,
//! `call_id`, `called_at` (save time), `call_data_status`, `call_updated_at` (the record's
//! `updatedAt`, the ordering guard). Unknown values are NULL.
//!
//! Interaction log (key `requestId` + `callId`): `step_name`, `status`, `detail`, `transcript`
//! (L of M `{speaker, text}`, NULL when there are no lines), `created_at` (first save only),
//! `call_updated_at` (the ordering guard).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::{
    builders::UpdateItemFluentBuilder, UpdateItemError,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tracing::info;

use super::attrs::{f64_or_null, from_json, s, s_or_null};
use crate::domain::{
    is_uuid, parse_transcript, to_iso, CallMethod, CallResult, DataStatus, Outcome,
};
use crate::ports::{Clock, Persisted, ResultSink, SinkError};

/// The providers and interaction-log tables.
#[derive(Clone)]
pub struct ProvidersAndLogs {
    client: Client,
    providers: String,
    logs: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ProvidersAndLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvidersAndLogs")
            .field("providers", &self.providers)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

/// The interaction log's `status`: `success` only for a completed call with complete data.
pub fn log_status(r: &CallResult) -> &'static str {
    match (r.status, r.data_status) {
        (Some(Outcome::Completed), DataStatus::Complete) => "success",
        (Some(Outcome::Error), _) => "error",
        _ => "warning",
    }
}

fn provider_name(r: &CallResult) -> &str {
    r.provider
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Unknown Provider")
}

fn outcome(r: &CallResult) -> &'static str {
    r.status.map_or("unknown", Outcome::as_str)
}

/// The summary, or `Call to {name}: {outcome}` without one.
fn detail(r: &CallResult) -> String {
    match r
        .analysis
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(summary) => summary.to_owned(),
        None => format!("Call to {}: {}", provider_name(r), outcome(r)),
    }
}

/// Structured data as a native map, so operators can query into it.
fn structured(r: &CallResult) -> AttributeValue {
    match &r.analysis.structured_data {
        Some(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
        None => AttributeValue::Null(true),
    }
}

fn method(m: CallMethod) -> &'static str {
    match m {
        CallMethod::DirectVapi => "direct_vapi",
        CallMethod::Kestra => "kestra",
    }
}

/// `true` when the write landed or lost its condition to a newer save of the same call.
fn landed(
    sent: Result<impl Sized, SdkError<UpdateItemError, impl std::fmt::Debug>>,
    what: &str,
) -> Result<bool, SinkError> {
    match sent {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(true)
        }
        Err(e) => Err(SinkError(format!("{what}: {}", DisplayErrorContext(&e)))),
    }
}

/// `SET a = :a, ...` over `fields`, with a `#name`/`:name` pair per field.
fn set_all(
    mut req: UpdateItemFluentBuilder,
    fields: Vec<(&str, AttributeValue)>,
) -> (UpdateItemFluentBuilder, String) {
    let mut sets = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        sets.push(format!("#{name} = :{name}"));
        req = req
            .expression_attribute_names(format!("#{name}"), name)
            .expression_attribute_values(format!(":{name}"), value);
    }
    (req, format!("SET {}", sets.join(", ")))
}

impl ProvidersAndLogs {
    pub fn new(
        client: Client,
        providers_table: String,
        logs_table: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            providers: providers_table,
            logs: logs_table,
            clock,
        }
    }

    async fn save_provider(
        &self,
        r: &CallResult,
        provider_id: &str,
        now: &str,
    ) -> Result<bool, SinkError> {
        let fields = vec![
            ("call_status", s(outcome(r))),
            ("call_result", structured(r)),
            ("call_transcript", s_or_null(r.transcript.as_deref())),
            ("call_summary", s_or_null(r.analysis.summary.as_deref())),
            ("call_duration_minutes", f64_or_null(r.duration)),
            ("call_cost", f64_or_null(r.cost)),
            ("call_method", s(method(r.call_method))),
            ("call_id", s(&r.call_id)),
            ("called_at", s(now)),
            ("call_data_status", s(r.data_status.as_str())),
            ("call_updated_at", s(&r.updated_at)),
        ];
        let req = self
            .client
            .update_item()
            .table_name(&self.providers)
            .key("providerId", s(provider_id));
        let (req, update) = set_all(req, fields);
        // Another call for this provider replaces the row; the same call only with newer data.
        let sent = req
            .update_expression(update)
            .condition_expression(
                "attribute_not_exists(#call_id) OR #call_id <> :call_id \
                 OR attribute_not_exists(#call_updated_at) OR #call_updated_at <= :call_updated_at",
            )
            .send()
            .await;
        landed(sent, "UpdateItem on the providers table")
    }

    async fn save_log(
        &self,
        r: &CallResult,
        request_id: &str,
        now: &str,
    ) -> Result<bool, SinkError> {
        let lines = parse_transcript(r.transcript.as_deref().unwrap_or_default());
        let transcript = if lines.is_empty() {
            AttributeValue::Null(true)
        } else {
            let line = |l: crate::domain::TranscriptLine| {
                AttributeValue::M(HashMap::from([
                    ("speaker".to_owned(), s(l.speaker)),
                    ("text".to_owned(), s(l.text)),
                ]))
            };
            AttributeValue::L(lines.into_iter().map(line).collect())
        };
        let fields = vec![
            ("step_name", s(format!("Call to {}", provider_name(r)))),
            ("status", s(log_status(r))),
            ("detail", s(detail(r))),
            ("transcript", transcript),
            ("call_updated_at", s(&r.updated_at)),
        ];
        let req = self
            .client
            .update_item()
            .table_name(&self.logs)
            .key("requestId", s(request_id))
            .key("callId", s(&r.call_id));
        let (req, update) = set_all(req, fields);
        let sent = req
            .update_expression(format!(
                "{update}, #created_at = if_not_exists(#created_at, :now)"
            ))
            .expression_attribute_names("#created_at", "created_at")
            .expression_attribute_values(":now", s(now))
            .condition_expression(
                "attribute_not_exists(#call_updated_at) OR #call_updated_at <= :call_updated_at",
            )
            .send()
            .await;
        landed(sent, "UpdateItem on the interaction-log table")
    }
}

#[async_trait]
impl ResultSink for ProvidersAndLogs {
    /// `provider_row` / `interaction_log` are `false` only when the id is not a UUID and the write
    /// was skipped; a save that lost to a newer save of the same call counts as written (the row
    /// holds this call's final data).
    async fn save(&self, result: &CallResult) -> Result<Persisted, SinkError> {
        let now = to_iso(self.clock.now());
        let call_id = result.call_id.as_str();
        let provider_row = match usable_id(result.provider_id.as_deref(), "providerId", call_id) {
            Some(id) => self.save_provider(result, id, &now).await?,
            None => false,
        };
        let interaction_log = match usable_id(
            result.service_request_id.as_deref(),
            "serviceRequestId",
            call_id,
        ) {
            Some(id) => self.save_log(result, id, &now).await?,
            None => false,
        };
        Ok(Persisted {
            provider_row,
            interaction_log,
        })
    }
}

/// The old backend's rule: only UUID ids are written; anything else is skipped with a log line
/// that says which case it is (absent is normal for calls started outside the concierge flow).
fn usable_id<'a>(id: Option<&'a str>, field: &str, call_id: &str) -> Option<&'a str> {
    match id.filter(|s| !s.is_empty()) {
        Some(id) if is_uuid(id) => Some(id),
        Some(_) => {
            info!(call_id, field, "id is not a UUID: its row is not written");
            None
        }
        None => {
            info!(call_id, field, "no id given: its row is not written");
            None
        }
    }
}
