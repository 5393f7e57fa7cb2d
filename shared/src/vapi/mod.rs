//! Vapi at the edge: its payloads read leniently into domain snapshots, webhook authentication on
//! the raw body, and the REST client.

mod assistant;
mod auth;
mod client;
mod read;
mod webhook;

pub use assistant::{
    create_call_body, webhook_backoff_plan, CallSettings, ATTEMPT_ID_KEY, DEPLOYMENT_ID_KEY,
};
pub use auth::{
    sign, Algorithm, AuthError, Encoding, Scheme, WebhookAuth, DEFAULT_SIGNATURE_HEADERS,
};
pub use client::{VapiClient, VapiClientConfig};
pub use read::snapshot_from_call;
pub use webhook::{parse_webhook, CallEventKind, PayloadError, WebhookMessage};
