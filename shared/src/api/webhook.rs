//! `POST /api/v1/vapi/webhook`.

use http::{HeaderMap, StatusCode};
use tracing::{info, warn};

use super::wire::{WebhookAccepted, WebhookIgnored};
use super::{error, ok_typed, Code, Response};
use crate::service::webhook::{IngestError, Ingested, WebhookService};

pub async fn post_webhook(svc: &WebhookService, headers: &HeaderMap, body: &[u8]) -> Response {
    match svc.ingest(headers, body).await {
        Ok(Ingested::Ignored { message_type }) => {
            tracing::debug!(message_type, "webhook type not recorded");
            ok_typed(StatusCode::OK, &WebhookIgnored { ignored: true })
        }
        // Answered as taken, so Vapi stops sending it.
        Ok(Ingested::Erased { .. }) => ok_typed(StatusCode::OK, &WebhookIgnored { ignored: true }),
        Ok(Ingested::Accepted {
            call_id,
            data_status,
            ..
        }) => ok_typed(
            StatusCode::OK,
            &WebhookAccepted {
                call_id,
                data_status,
            },
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
