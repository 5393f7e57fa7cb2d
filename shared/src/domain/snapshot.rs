//! What one source (a webhook message or Vapi's `GET /call`) says about a call, already read
//! leniently at the edge. Merging a snapshot into a record is the only way a record learns things.

use chrono::{DateTime, Utc};

use super::{Analysis, CallMethod, CallStatus, ConversationMessage};

/// Correlation ids and request details we put in `assistantOverrides.metadata` when placing a call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallMetadata {
    pub provider_id: Option<String>,
    pub service_request_id: Option<String>,
    pub provider_name: Option<String>,
    pub provider_phone: Option<String>,
    pub service_needed: Option<String>,
    pub user_criteria: Option<String>,
    pub location: Option<String>,
    pub urgency: Option<String>,
    pub call_method: Option<CallMethod>,
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallSnapshot {
    pub call_id: String,
    pub call_status: Option<CallStatus>,
    /// When Vapi created the call: the record's `createdAt` when a record is built from a source
    /// (it stays stable if an expired record is rebuilt, unlike the time of the rebuild).
    pub created_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Legacy `durationSeconds`: used only when the timestamps cannot give a duration.
    pub duration_seconds: Option<f64>,
    pub transcript: Option<String>,
    pub messages: Vec<ConversationMessage>,
    pub analysis: Analysis,
    pub cost: Option<f64>,
    pub recording_url: Option<String>,
    pub metadata: CallMetadata,
    pub customer_number: Option<String>,
}
