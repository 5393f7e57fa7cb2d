//! The bodies the HTTP API answers with, as types: the handlers serialise these and nothing else, so
//! the OpenAPI document (`api::openapi`, derived from them) describes what is really sent.
//! A CallResult, a listing's summary and a pushed event are domain types and are sent as they are.

use serde::Serialize;

use crate::domain::push::EventType;
use crate::domain::{CallStatus, DataStatus};
use crate::ports::{DeliveryAttempt, PushRecord, PushState};
use crate::search::CallSummary;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `GET /health`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// A webhook that was recorded.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookAccepted {
    pub call_id: String,
    pub data_status: DataStatus,
}

/// A webhook whose `message.type` ringback does not record: answered, nothing stored.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookIgnored {
    /// Always `true`.
    pub ignored: bool,
}

/// `POST /api/v1/vapi/calls`: the call is placed; poll `pollUrl` for its record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CallAccepted {
    pub call_id: String,
    /// Vapi's status when the call was placed: `queued`.
    pub status: CallStatus,
    /// `pending` until the first webhook.
    pub data_status: DataStatus,
    pub poll_url: String,
}

/// `DELETE /api/v1/vapi/calls/{id}`: the call is erased (the same answer again for a repeat).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CallErased {
    pub call_id: String,
    /// Always `true`.
    pub erased: bool,
    /// When it was first erased (ISO-8601).
    pub erased_at: String,
    /// Kept webhooks, pushed events and their attempts deleted by this request (0 for a repeat).
    pub history_items_deleted: u64,
    /// Its provider row holds it no more (`false`: no row, or no usable provider id).
    pub provider_row: bool,
    /// Its interaction log holds no transcript or summary (`false`: no usable service request id).
    pub interaction_log: bool,
    /// Only with `?vapi=true`: what Vapi answered to deleting its copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vapi: Option<crate::service::erase::VapiDeletion>,
}

/// A page of calls, newest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CallPage {
    pub calls: Vec<CallSummary>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/vapi/calls/{callId}/replay`: the record is rebuilt and enriched again.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReplayAccepted {
    pub call_id: String,
    /// How many kept webhooks the record was rebuilt from.
    pub replayed_events: usize,
    pub data_status: DataStatus,
    pub poll_url: String,
}

/// A pushed event and every attempt to deliver it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Push {
    /// The event's id, sent as `webhook-id`: the same on every attempt.
    pub event_id: String,
    pub call_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub created_at: String,
    /// The receiver (the call's `callbackUrl`).
    pub url: String,
    pub state: PushState,
    /// When a `pending` event is tried next.
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<DeliveryAttempt>,
}

impl From<&PushRecord> for Push {
    fn from(p: &PushRecord) -> Self {
        Self {
            event_id: p.event.id.clone(),
            call_id: p.event.data.call_id.clone(),
            kind: p.event.kind,
            created_at: p.event.timestamp.clone(),
            url: p.url.clone(),
            state: p.state,
            next_attempt_at: p.next_attempt_at.clone(),
            attempts: p.attempts.clone(),
        }
    }
}

/// How many webhook deliveries of the call are kept, and how many were only counted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookCounts {
    pub kept: usize,
    pub not_kept: u64,
}

/// `GET /api/v1/vapi/calls/{callId}/events`: a call's history.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Timeline {
    pub call_id: String,
    /// `null` once the record itself has expired (its events outlive it).
    pub data_status: Option<DataStatus>,
    pub pushes: Vec<Push>,
    pub webhooks: WebhookCounts,
    /// Everything that happened, oldest first.
    pub timeline: Vec<Moment>,
}

/// One moment of a call's history: `at` and `what`, and what `what` has to say.
#[derive(Debug, Serialize)]
#[serde(tag = "what")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Moment {
    #[serde(rename = "record.created")]
    RecordCreated { at: String },
    /// The call was erased: the one thing its timeline still shows.
    #[serde(rename = "call.erased")]
    Erased { at: String },
    #[serde(rename = "record.first_webhook")]
    FirstWebhook { at: String },
    #[serde(rename = "record.fetched", rename_all = "camelCase")]
    Fetched {
        at: String,
        fetch_attempts: u32,
        fetch_error: Option<String>,
    },
    #[serde(rename = "record.updated", rename_all = "camelCase")]
    Updated { at: String, data_status: DataStatus },
    /// A webhook delivery kept raw (its body is not shown here).
    #[serde(rename = "webhook.received", rename_all = "camelCase")]
    WebhookReceived {
        at: String,
        message_type: String,
        /// The scheme that authenticated it.
        auth: String,
        /// `applied` or `duplicate`.
        outcome: String,
        bytes: u64,
    },
    #[serde(rename = "push.made", rename_all = "camelCase")]
    PushMade {
        at: String,
        event_id: String,
        #[serde(rename = "type")]
        kind: EventType,
    },
    #[serde(rename = "push.attempt", rename_all = "camelCase")]
    PushAttempt {
        at: String,
        event_id: String,
        attempt: u32,
        /// The receiver's status; `null` when no answer came.
        status: Option<u16>,
        latency_ms: u64,
        error: Option<String>,
    },
}

impl Moment {
    pub fn at(&self) -> &str {
        match self {
            Self::RecordCreated { at }
            | Self::Erased { at }
            | Self::FirstWebhook { at }
            | Self::Fetched { at, .. }
            | Self::Updated { at, .. }
            | Self::WebhookReceived { at, .. }
            | Self::PushMade { at, .. }
            | Self::PushAttempt { at, .. } => at,
        }
    }
}
