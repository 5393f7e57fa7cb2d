//! The pure core: what a call record is and how it may change.
//! Nothing here knows about AWS, HTTP or Lambda; every rule is a plain function with table-driven tests.

mod call;
mod call_request;
pub mod callback_host;
mod cleanup;
mod enrichment;
pub mod erase;
pub mod fit;
mod ids;
mod merge;
mod outcome;
pub mod push;
pub mod replay;
mod snapshot;
mod state;
mod time;
mod transcript;

pub use call::{
    Analysis, CallMethod, CallResult, CallStatus, ConversationMessage, DataStatus, Outcome,
    Provider, RequestInfo,
};
pub use call_request::{parse_call_request, CallRequest, CustomPrompt, FieldError, Urgency, E164};
pub use cleanup::{plan_cleanup, CleanupAction, MAX_REDRIVES};
pub use enrichment::*;
pub use ids::{is_uuid, CallId, InvalidCallId, MAX_CALL_ID_CHARS};
pub use merge::{is_complete, keep_prior, merge_snapshot, Completeness, Prior};
pub use outcome::outcome_from_ended_reason;
pub use snapshot::{CallMetadata, CallSnapshot};
pub use state::{apply_webhook, Bookkeeping, CallRecord, EventKey, WebhookOutcome};
pub use time::{duration_minutes, parse_timestamp, to_iso};
pub use transcript::{parse_transcript, TranscriptLine};
