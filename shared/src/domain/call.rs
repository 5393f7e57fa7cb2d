//! CallResult: the JSON document a client polls for (api.md §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The outcome of a finished call; `None` on the record while the call runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    NoAnswer,
    Voicemail,
    Timeout,
    Error,
}

impl Outcome {
    pub const ALL: [Self; 5] = [
        Self::Completed,
        Self::NoAnswer,
        Self::Voicemail,
        Self::Timeout,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::NoAnswer => "no_answer",
            Outcome::Voicemail => "voicemail",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// Vapi's call lifecycle, ordered so that `max` never moves it backwards.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    #[default]
    Queued,
    Ringing,
    InProgress,
    Forwarding,
    Ended,
}

impl CallStatus {
    /// Reads Vapi's status words; `scheduled` counts as queued, and words outside the lifecycle
    /// (`not-found`, `deletion-failed`, future ones) are not a step of it.
    pub fn parse(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "scheduled" | "queued" => Some(Self::Queued),
            "ringing" => Some(Self::Ringing),
            "in-progress" | "in_progress" => Some(Self::InProgress),
            "forwarding" => Some(Self::Forwarding),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Forwarding => "forwarding",
            Self::Ended => "ended",
        }
    }
}

/// How far the record is from Vapi's final word on the call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataStatus {
    /// Started by us, no webhook yet.
    #[default]
    Pending,
    /// A webhook arrived; enrichment is scheduled or will be.
    Partial,
    /// Enrichment is asking Vapi.
    Fetching,
    Complete,
    /// Vapi never gave complete data; everything received is kept and persisted.
    FetchFailed,
}

impl DataStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Partial,
        Self::Fetching,
        Self::Complete,
        Self::FetchFailed,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Complete | Self::FetchFailed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Partial => "partial",
            Self::Fetching => "fetching",
            Self::Complete => "complete",
            Self::FetchFailed => "fetch_failed",
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallMethod {
    #[default]
    DirectVapi,
    Kestra,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMessage {
    pub role: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_from_start: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub summary: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub structured_data: Option<Map<String, Value>>,
    pub success_evaluation: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provider {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub service: Option<String>,
    pub location: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RequestInfo {
    pub criteria: Option<String>,
    pub urgency: Option<String>,
}

/// One call as clients see it. Unknown values are `null`, never invented defaults:
/// a missing cost is `null`, a cost of 0 is `0`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallResult {
    pub call_id: String,
    pub status: Option<Outcome>,
    pub call_status: CallStatus,
    pub data_status: DataStatus,
    pub ended_reason: Option<String>,
    pub duration: Option<f64>,
    pub transcript: Option<String>,
    pub messages: Vec<ConversationMessage>,
    pub analysis: Analysis,
    pub provider: Provider,
    pub request: RequestInfo,
    pub provider_id: Option<String>,
    pub service_request_id: Option<String>,
    pub cost: Option<f64>,
    pub recording_url: Option<String>,
    pub call_method: CallMethod,
    pub webhook_received_at: Option<String>,
    pub fetched_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub fetch_attempts: u32,
    pub fetch_error: Option<String>,
    /// Vapi's `startedAt`/`endedAt`, kept so a later source can recompute the duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Where the call's completion events are pushed (`CallRequest.callbackUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Only in a pushed event whose data had to be cut to fit its carrier ([`super::fit`]): the
    /// record itself is never cut, and never says this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl CallResult {
    /// A new record for a call we know only by id, created at `now` (ISO-8601).
    pub fn new(call_id: impl Into<String>, now: &str) -> Self {
        Self {
            call_id: call_id.into(),
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            ..Self::default()
        }
    }
}
