//! [`ProvidersAndLogs`]: a finished call written to the providers table and the interaction-log
//! table (api.md §5), idempotently and never letting an older save overwrite a newer one.
//!
//! Provider row (key `providerId`), one UpdateItem that creates the row if needed:
//! `call_status` (outcome or `unknown`), `call_result` (structured data), `call_transcript`,
//! `call_summary`, `call_duration_minutes` (N), `call_cost` (N), `call_method`, `call_id`,
//! `called_at` (save time), `call_data_status`, `call_started_ms` (N: Vapi's `startedAt`, else
//! the record's `createdAt`, in epoch ms) and `call_updated_at` (the record's `updatedAt`).
//! The row holds the most recently *started* call to the provider, whatever order calls finish
//! in; the same call replaces it only with data at least as new. Unknown values are NULL.
//!
//! Interaction log (key `requestId` + `callId`): `step_name`, `status`, `detail`, `transcript`
//! (L of M `{speaker, text}`, NULL when there are no lines), `created_at` (first save only),
//! `call_updated_at` (the ordering guard).
//!
//! Any call fits ([`super::fit`]): structured data DynamoDB cannot hold natively (an empty key,
//! nesting past 32 levels) is stored as JSON text; when an item would pass 400 KB, its large
//! texts go gzip-compressed into `*_gz` binary attributes (`call_transcript_gz`,
//! `call_summary_gz`, `call_result_gz`, `transcript_gz`, `detail_gz`) beside a readable preview.
//! [`super::stored_text`] and [`super::stored_json`] read every form back whole. Only a call whose
//! *compressed* texts still pass the limit loses them (previews kept, `data_truncated = true`,
//! logged at error level). A refusal DynamoDB would repeat for ever is a permanent [`SinkError`].
//!
//! A save never takes data away from a call's rows: what they already hold (read back first) is
//! folded under the record being saved ([`crate::domain::keep_prior`]), so a record rebuilt from
//! Vapi after the first one expired (a dead letter redriven late, say) cannot clobber them.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::{
    builders::UpdateItemFluentBuilder, UpdateItemError,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tracing::{error, info};

use super::attrs::{f64_or_null, n, s};
use super::fit::{self, Form};
use crate::domain::{
    is_uuid, keep_prior, parse_timestamp, parse_transcript, to_iso, CallMethod, CallResult,
    DataStatus, Outcome, TranscriptLine,
};
use crate::ports::{Clock, Persisted, ResultSink, SinkError};

/// The providers and interaction-log tables.
#[derive(Clone)]
pub struct ProvidersAndLogs {
    pub(super) client: Client,
    pub(super) providers: String,
    pub(super) logs: String,
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

/// A provider row holding an erased call: its texts are gone, and no save of that call writes
/// them again.
const PROVIDER_ERASED: &str = "call_erased";
/// An interaction log of an erased call (the same promise).
const LOG_ERASED: &str = "erased";
/// The provider row holds a call started before `:call_started_ms` (ties by call id).
const LATER_CALL: &str = "(#call_id <> :call_id AND (attribute_not_exists(#call_started_ms) \
     OR #call_started_ms < :call_started_ms \
     OR (#call_started_ms = :call_started_ms AND #call_id < :call_id)))";

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

fn method(m: CallMethod) -> &'static str {
    match m {
        CallMethod::DirectVapi => "direct_vapi",
        CallMethod::Kestra => "kestra",
    }
}

/// `Ok(true)` when the write landed or lost its condition to newer data; a refusal DynamoDB
/// would repeat (a ValidationException: the item is too large or holds what it cannot store)
/// is permanent, anything else (throttling, the network, 5xx) transient.
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
        Err(e) => {
            let message = format!("{what}: {}", DisplayErrorContext(&e));
            let refused = e
                .as_service_error()
                .and_then(|s| s.meta().code())
                .is_some_and(|c| c == "ValidationException");
            Err(if refused {
                SinkError::permanent(message)
            } else {
                SinkError::transient(message)
            })
        }
    }
}

/// When the call started, for ordering provider rows: Vapi's `startedAt`, else the record's
/// `createdAt`, in epoch milliseconds (0 when neither reads as a time).
fn started_ms(r: &CallResult) -> i64 {
    [r.started_at.as_deref(), Some(r.created_at.as_str())]
        .into_iter()
        .flatten()
        .find_map(|t| parse_timestamp(&serde_json::Value::String(t.to_owned())))
        .map_or(0, |t| t.timestamp_millis())
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

    /// Saves in the plainest form that fits (see [`fit::Form`]), moving to the next form when an
    /// item would be too large or DynamoDB refuses it.
    async fn save_fitted<F, Fut>(save: F) -> Result<bool, SinkError>
    where
        F: Fn(Form) -> Fut,
        Fut: std::future::Future<Output = Result<bool, SinkError>>,
    {
        let mut form = Form::Plain;
        loop {
            match save(form).await {
                Err(e) if e.permanent => match form.next() {
                    Some(next) => form = next,
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    fn provider_fields(
        r: &CallResult,
        now: &str,
        form: Form,
    ) -> Option<Vec<(&'static str, AttributeValue)>> {
        let mut fields = vec![
            ("call_status", s(outcome(r))),
            ("call_duration_minutes", f64_or_null(r.duration)),
            ("call_cost", f64_or_null(r.cost)),
            ("call_method", s(method(r.call_method))),
            ("call_id", s(&r.call_id)),
            ("called_at", s(now)),
            ("call_data_status", s(r.data_status.as_str())),
            ("call_started_ms", n(started_ms(r))),
            ("call_updated_at", s(&r.updated_at)),
        ];
        fields.extend(fit::json_fields(
            "call_result",
            "call_result_gz",
            r.analysis.structured_data.as_ref(),
            form,
        ));
        fields.extend(fit::text_fields(
            "call_transcript",
            "call_transcript_gz",
            r.transcript.as_deref(),
            form,
        ));
        fields.extend(fit::text_fields(
            "call_summary",
            "call_summary_gz",
            r.analysis.summary.as_deref(),
            form,
        ));
        finish_fields(fields, form, &r.call_id, "provider row")
    }

    async fn save_provider(
        &self,
        r: &CallResult,
        provider_id: &str,
        now: &str,
        form: Form,
    ) -> Result<bool, SinkError> {
        let Some(fields) = Self::provider_fields(r, now, form) else {
            return Err(SinkError::permanent("provider row too large"));
        };
        let req = self
            .client
            .update_item()
            .table_name(&self.providers)
            .key("providerId", s(provider_id));
        let (req, update) = set_all(req, fields);
        // The same call: only newer data, and never once it is erased. Another call: only one
        // started later (ties by call id).
        // A call that takes over an erased call's row clears the mark (it is that call's only).
        let sent = req
            .update_expression(format!("{update} REMOVE #call_erased"))
            .condition_expression(format!(
                "(attribute_not_exists(#call_id) \
                 OR (#call_id = :call_id AND (attribute_not_exists(#call_updated_at) \
                     OR #call_updated_at <= :call_updated_at)) \
                 OR {LATER_CALL}) \
                 AND (attribute_not_exists(#call_erased) OR #call_id <> :call_id)"
            ))
            .expression_attribute_names("#call_erased", PROVIDER_ERASED)
            .send()
            .await;
        landed(sent, "UpdateItem on the providers table")
    }

    fn log_fields(r: &CallResult, form: Form) -> Option<Vec<(&'static str, AttributeValue)>> {
        let lines = parse_transcript(r.transcript.as_deref().unwrap_or_default());
        let mut fields = vec![
            ("step_name", s(format!("Call to {}", provider_name(r)))),
            ("status", s(log_status(r))),
            ("call_updated_at", s(&r.updated_at)),
        ];
        let transcript = if lines.is_empty() {
            [
                ("transcript", AttributeValue::Null(true)),
                ("transcript_gz", AttributeValue::Null(true)),
            ]
        } else if form == Form::Plain {
            let line = |l: TranscriptLine| {
                AttributeValue::M(HashMap::from([
                    ("speaker".to_owned(), s(l.speaker)),
                    ("text".to_owned(), s(l.text)),
                ]))
            };
            [
                (
                    "transcript",
                    AttributeValue::L(lines.into_iter().map(line).collect()),
                ),
                ("transcript_gz", AttributeValue::Null(true)),
            ]
        } else {
            let json = serde_json::to_vec(&lines).expect("lines serialise");
            [
                ("transcript", AttributeValue::Null(true)),
                (
                    "transcript_gz",
                    AttributeValue::B(fit::gzip_smallest(&json).into()),
                ),
            ]
        };
        fields.extend(transcript);
        fields.extend(fit::text_fields(
            "detail",
            "detail_gz",
            Some(&detail(r)),
            form,
        ));
        finish_fields(fields, form, &r.call_id, "interaction log")
    }

    async fn save_log(
        &self,
        r: &CallResult,
        request_id: &str,
        now: &str,
        form: Form,
    ) -> Result<bool, SinkError> {
        let Some(fields) = Self::log_fields(r, form) else {
            return Err(SinkError::permanent("interaction log too large"));
        };
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
                "(attribute_not_exists(#call_updated_at) OR #call_updated_at <= :call_updated_at) \
                 AND attribute_not_exists(#erased)",
            )
            .expression_attribute_names("#erased", LOG_ERASED)
            .send()
            .await;
        landed(sent, "UpdateItem on the interaction-log table")
    }
}

/// The fields as they will be written in `form`, flagged `data_truncated`; `None` when they are
/// over the budget and a further form remains to try.
fn finish_fields(
    mut fields: Vec<(&'static str, AttributeValue)>,
    form: Form,
    call_id: &str,
    what: &str,
) -> Option<Vec<(&'static str, AttributeValue)>> {
    let truncated = form == Form::Truncated && fit::drop_until_fits(&mut fields);
    if truncated {
        error!(
            call_id,
            what, "call data too large even compressed: stored truncated, previews kept"
        );
    }
    fields.push(("data_truncated", AttributeValue::Bool(truncated)));
    (form == Form::Truncated || fit::fields_size(&fields) <= fit::ITEM_BUDGET).then_some(fields)
}

#[async_trait]
impl ResultSink for ProvidersAndLogs {
    /// `provider_row` / `interaction_log` are `false` only when the id is not a UUID and the write
    /// was skipped; a save that lost to a newer save of the same call counts as written (the row
    /// holds this call's final data).
    async fn save(&self, result: &CallResult) -> Result<Persisted, SinkError> {
        let now = to_iso(self.clock.now());
        let call_id = result.call_id.as_str();
        let provider_id = usable_id(result.provider_id.as_deref(), "providerId", call_id);
        let request_id = usable_id(
            result.service_request_id.as_deref(),
            "serviceRequestId",
            call_id,
        );
        // What the rows already hold of this call stays: a save never takes data away.
        let mut merged = result.clone();
        keep_prior(
            &mut merged,
            &self.prior(call_id, provider_id, request_id).await?,
        );
        let result = &merged;
        // Independent rows: written at once, one round trip for both.
        let provider_row = async {
            match provider_id {
                Some(id) => {
                    Self::save_fitted(|form| self.save_provider(result, id, &now, form)).await
                }
                None => Ok(false),
            }
        };
        let interaction_log = async {
            match request_id {
                Some(id) => Self::save_fitted(|form| self.save_log(result, id, &now, form)).await,
                None => Ok(false),
            }
        };
        let (provider_row, interaction_log) = tokio::join!(provider_row, interaction_log);
        let (provider_row, interaction_log) = (provider_row?, interaction_log?);
        Ok(Persisted {
            provider_row,
            interaction_log,
        })
    }

    async fn erase(&self, tombstone: &CallResult) -> Result<Persisted, SinkError> {
        let call_id = tombstone.call_id.as_str();
        let provider_id = usable_id(tombstone.provider_id.as_deref(), "providerId", call_id);
        let request_id = usable_id(
            tombstone.service_request_id.as_deref(),
            "serviceRequestId",
            call_id,
        );
        let provider_row = async {
            match provider_id {
                Some(id) => self.erase_provider(tombstone, id).await,
                None => Ok(false),
            }
        };
        let interaction_log = async {
            match request_id {
                Some(id) => self.erase_log(tombstone, id).await,
                None => Ok(false),
            }
        };
        let (provider_row, interaction_log) = tokio::join!(provider_row, interaction_log);
        Ok(Persisted {
            provider_row: provider_row?,
            interaction_log: interaction_log?,
        })
    }
}

impl ProvidersAndLogs {
    /// The provider row as the erased call leaves it, if the row is the call's or would be (it
    /// holds an earlier-started call, or none): a save of the call still in flight then finds
    /// it erased, instead of writing its texts into a row the erase had passed.
    async fn erase_provider(&self, r: &CallResult, provider_id: &str) -> Result<bool, SinkError> {
        let null = || AttributeValue::Null(true);
        let fields = vec![
            ("call_id", s(&r.call_id)),
            ("call_started_ms", n(started_ms(r))),
            ("call_updated_at", s(&r.updated_at)),
            (PROVIDER_ERASED, AttributeValue::Bool(true)),
            ("call_result", null()),
            ("call_result_gz", null()),
            ("call_transcript", null()),
            ("call_transcript_gz", null()),
            ("call_summary", null()),
            ("call_summary_gz", null()),
        ];
        let req = self
            .client
            .update_item()
            .table_name(&self.providers)
            .key("providerId", s(provider_id));
        let (req, update) = set_all(req, fields);
        let sent = req
            .update_expression(update)
            .condition_expression(format!(
                "attribute_not_exists(#call_id) OR #call_id = :call_id OR {LATER_CALL}"
            ))
            .send()
            .await;
        landed(sent, "UpdateItem on the providers table (erase)")
    }

    /// The interaction log without its transcript and detail, marked erased (created so if a
    /// save has yet to land: it will not).
    async fn erase_log(&self, r: &CallResult, request_id: &str) -> Result<bool, SinkError> {
        let null = || AttributeValue::Null(true);
        let fields = vec![
            (LOG_ERASED, AttributeValue::Bool(true)),
            ("transcript", null()),
            ("transcript_gz", null()),
            ("detail", s("erased")),
            ("detail_gz", null()),
        ];
        let req = self
            .client
            .update_item()
            .table_name(&self.logs)
            .key("requestId", s(request_id))
            .key("callId", s(&r.call_id));
        let (req, update) = set_all(req, fields);
        let sent = req.update_expression(update).send().await;
        landed(sent, "UpdateItem on the interaction-log table (erase)")
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
