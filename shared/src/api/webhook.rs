//! `POST /api/v1/vapi/webhook`.

use http::{HeaderMap, StatusCode};
use serde_json::json;
use tracing::{info, warn};

use super::{error, ok, Code, Response};
use crate::service::webhook::{IngestError, Ingested, WebhookService};

pub async fn post_webhook(svc: &WebhookService, headers: &HeaderMap, body: &[u8]) -> Response {
    match svc.ingest(headers, body).await {
        Ok(Ingested::Ignored { message_type }) => {
            tracing::debug!(message_type, "webhook type not recorded");
            ok(StatusCode::OK, json!({"ignored": true}))
        }
        Ok(Ingested::Accepted {
            call_id,
            data_status,
            ..
        }) => ok(
            StatusCode::OK,
            json!({"callId": call_id, "dataStatus": data_status.as_str()}),
        ),
        Err(IngestError::TooLarge { size, limit }) => {
            info!(size, limit, "webhook rejected: too large");
            error(
                Code::PayloadTooLarge,
                format!("body is {size} bytes; the limit is {limit}"),
            )
        }
        Err(IngestError::Unauthorized(why)) => {
            info!(reason = why.reason(), "webhook rejected: unauthorized");
            error(Code::Unauthorized, "webhook authentication failed")
        }
        Err(IngestError::Invalid(e)) => {
            info!(error = %e, "webhook rejected: invalid payload");
            error(Code::InvalidPayload, e.to_string())
        }
        Err(IngestError::Unavailable(e)) => {
            warn!(error = %e, "webhook not stored: dependency unavailable");
            error(
                Code::Unavailable,
                "storage or queue unavailable; retry later",
            )
        }
    }
}
