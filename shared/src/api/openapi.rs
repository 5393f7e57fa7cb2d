//! The OpenAPI 3.1 document of the HTTP API, derived from the wire types ([`super::wire`], the
//! domain's CallResult and summaries, the error envelope) and the routes below. `openapi.json` at
//! the repository's root is this document, kept in step by `local/tests/openapi.rs`; the Lambdas
//! serve that file, `ringback-local` serves [`document`].
//!
//! The functions here are never called: each one's `#[utoipa::path]` is the route's description.
//! What utoipa cannot say for OpenAPI 3.1 (the pushed events as `webhooks`) is added by [`document`].

#![allow(dead_code)] // the path functions and body types exist to be described, not called

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::envelope::{Code, Failure, Problem};
use super::wire::*;
use crate::domain::push::{CallEvent, EventType};
use crate::domain::{
    Analysis, CallMethod, CallResult, CallStatus, ConversationMessage, DataStatus, Outcome,
    Provider, RequestInfo,
};
use crate::ports::{DeliveryAttempt, PushState};
use crate::search::CallSummary;
use crate::service::erase::VapiDeletion;
use crate::stats::{CallCounts, Capped, PushCounts, QueueDepth, QueueDepths, Stats};

/// The document, with the pushed events as OpenAPI 3.1 `webhooks`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    doc["webhooks"] = webhooks();
    // What utoipa has no attribute for: "any type but these", and links between operations.
    doc["components"]["schemas"]["OtherMessage"]["properties"]["type"]["not"] =
        json!({"enum": ["status-update", "end-of-call-report"]});
    let link = |op: &str, from: &str| json!({"operationId": op, "parameters": {"callId": from}});
    let placed = "$response.body#/data/callId";
    doc["paths"]["/api/v1/vapi/calls"]["post"]["responses"]["202"]["links"] = json!({
        "GetCall": link("getCall", placed),
        "GetCallEvents": link("getCallEvents", placed),
        "ReplayCall": link("replayCall", placed),
    });
    let listed = "$response.body#/data/calls/0/callId";
    doc["paths"]["/api/v1/vapi/calls"]["get"]["responses"]["200"]["links"] = json!({
        "GetCall": link("getCall", listed),
        "GetCallEvents": link("getCallEvents", listed),
    });
    doc["paths"]["/api/v1/vapi/calls/{callId}/events"]["get"]["responses"]["200"]["links"] = json!({
        "RedeliverEvent": {"operationId": "redeliverEvent",
            "parameters": {"eventId": "$response.body#/data/pushes/0/eventId"}},
    });
    doc
}

/// The document as committed (`openapi.json`): pretty, with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serialises");
    text.push('\n');
    text
}

macro_rules! envelope {
    ($name:ident, $data:ty, $what:literal) => {
        #[doc = concat!("`{\"success\": true, \"data\": ", $what, "}`.")]
        #[derive(ToSchema)]
        struct $name {
            /// Always `true`.
            success: bool,
            data: $data,
        }
    };
}
envelope!(CallResultOk, CallResult, "CallResult");
envelope!(CallAcceptedOk, CallAccepted, "CallAccepted");
envelope!(CallPageOk, CallPage, "CallPage");
envelope!(TimelineOk, Timeline, "Timeline");
envelope!(ReplayAcceptedOk, ReplayAccepted, "ReplayAccepted");
envelope!(PushOk, Push, "Push");
envelope!(HealthOk, Health, "Health");
envelope!(CallErasedOk, CallErased, "CallErased");
envelope!(StatsOk, Stats, "Stats");
envelope!(WebhookOk, WebhookAnswer, "WebhookAccepted | WebhookIgnored");

/// What the webhook answers: the call it recorded, or that the type is not recorded.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum WebhookAnswer {
    Accepted(WebhookAccepted),
    Ignored(WebhookIgnored),
}

/// Calls by `dataStatus`: every one, zero included.
#[derive(ToSchema)]
pub(crate) struct DataStatusCounts {
    pending: i64,
    partial: i64,
    fetching: i64,
    complete: i64,
    fetch_failed: i64,
}

/// Calls by outcome: every one, zero included (calls still running have none).
#[derive(ToSchema)]
pub(crate) struct OutcomeCounts {
    completed: i64,
    no_answer: i64,
    voicemail: i64,
    timeout: i64,
    error: i64,
}

/// What `status` filters on: a dataStatus, or an outcome.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusWord {
    Pending,
    Partial,
    Fetching,
    Complete,
    FetchFailed,
    Completed,
    NoAnswer,
    Voicemail,
    Timeout,
    Error,
}

/// Urgency of a call request.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Urgency {
    Immediate,
    // serde's snake_case does not split digits off: named as the API reads them.
    #[serde(rename = "within_24_hours")]
    Within24Hours,
    #[serde(rename = "within_2_days")]
    Within2Days,
    Flexible,
}

/// A prompt of the client's own instead of the built-in assistant.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CustomPrompt {
    #[schema(max_length = 20000, pattern = r"\S")]
    system_prompt: String,
    #[schema(max_length = 2000, pattern = r"\S")]
    first_message: String,
    #[schema(max_length = 2000, pattern = r"\S")]
    closing_script: Option<String>,
}

/// The body of `POST /api/v1/vapi/calls` (read strictly: an unknown field is a 400). Text is
/// trimmed; a required text needs a character that is not a space.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CallRequest {
    #[schema(max_length = 200, pattern = r"\S", example = "Bayside Plumbing")]
    provider_name: String,
    /// E.164: `+` then 7-15 digits, the first not 0.
    #[schema(
        max_length = 32,
        pattern = r"^\s*\+[1-9][0-9]{6,14}\s*$",
        example = "+14155550123"
    )]
    provider_phone: String,
    #[schema(max_length = 2000, pattern = r"\S", example = "plumber")]
    service_needed: String,
    #[schema(max_length = 2000, example = "licensed, can come this week")]
    user_criteria: String,
    #[schema(max_length = 2000, pattern = r"\S", example = "Oakland, CA")]
    location: String,
    urgency: Urgency,
    /// A UUID to persist the call's provider row under (other values skip that write).
    #[schema(max_length = 200, pattern = r"\S")]
    provider_id: Option<String>,
    /// A UUID to persist the call's interaction log under (other values skip that write).
    #[schema(max_length = 200, pattern = r"\S")]
    service_request_id: Option<String>,
    custom_prompt: Option<CustomPrompt>,
    /// Where the call's events are pushed (see `webhooks`): https to a public host on a
    /// deployment; `ringback-local` takes loopback receivers, over http too. Refused with 400
    /// when the deployment has no `CALLBACK_SIGNING_SECRET`.
    #[schema(max_length = 2048, pattern = r"^\s*https?://")]
    callback_url: Option<String>,
}

/// A Vapi server message: only the envelope is checked, everything else is read leniently (see
/// docs/vapi.md and fixtures/vapi/).
#[derive(ToSchema)]
struct VapiServerMessage {
    message: VapiMessage,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum VapiMessage {
    Recorded(RecordedMessage),
    Other(OtherMessage),
}

/// A message ringback records: it must name its call.
#[derive(Serialize, ToSchema)]
struct RecordedMessage {
    #[serde(rename = "type")]
    kind: RecordedType,
    call: VapiCall,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
enum RecordedType {
    StatusUpdate,
    EndOfCallReport,
}

#[derive(Serialize, ToSchema)]
struct VapiCall {
    /// Vapi's call id: 1-256 characters, no `#` and no control character.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^#\x00-\x1f\x7f-\x9f]+$"
    )]
    id: String,
}

/// Any other type (`conversation-update`, `hang`, …): answered 200 and not stored.
#[derive(Serialize, ToSchema)]
struct OtherMessage {
    /// Not `status-update` nor `end-of-call-report` (see [`document`]).
    #[serde(rename = "type")]
    #[schema(example = "conversation-update")]
    kind: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ringback",
        version = "1",
        description = "Vapi phone calls in, complete and durable call records out. Clients place \
            calls and poll (or are pushed) their records; Vapi posts its server messages to the \
            webhook. Every answer is an envelope: `{success: true, data}` or `{success: false, \
            error: {code, message}}`. The contract in prose is docs/api.md.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:3000", description = "ringback-local, as the README starts it")),
    paths(
        health, post_webhook, post_call, list_calls, get_call, get_events, post_replay,
        delete_call, get_stats, post_redeliver, get_openapi, get_docs, get_console, get_dev_callbacks, post_dev_callbacks
    ),
    components(schemas(
        CallResult, Outcome, CallStatus, DataStatus, CallMethod, ConversationMessage, Analysis,
        Provider, RequestInfo, CallSummary, CallEvent, EventType, PushState, DeliveryAttempt,
        Failure, Problem, Code, Health, WebhookAccepted, WebhookIgnored, CallAccepted, CallPage,
        ReplayAccepted, Push, WebhookCounts, Timeline, Moment, StatusWord, CallErased, VapiDeletion,
        Stats, CallCounts, DataStatusCounts, OutcomeCounts, Capped, PushCounts, QueueDepths,
        QueueDepth
    )),
    modifiers(&Security),
    tags(
        (name = "calls", description = "Place calls, read their records, find, count and erase them (client API token)"),
        (name = "operations", description = "A call's history, replay, redelivery (API token, always)"),
        (name = "vapi", description = "Vapi's server messages"),
        (name = "meta", description = "Health and this description"),
        (name = "local", description = "ringback-local only: a receiver for pushed events"),
    ),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        c.add_security_scheme("apiToken", bearer("`Authorization: Bearer <API_TOKEN>`"));
        c.add_security_scheme(
            "vapiSecret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Vapi-Secret",
                "`X-Vapi-Secret: <VAPI_WEBHOOK_SECRET>`, Vapi's legacy scheme",
            ))),
        );
        c.add_security_scheme(
            "vapiBearer",
            bearer("`Authorization: Bearer <VAPI_WEBHOOK_SECRET>` (a Vapi bearer credential)"),
        );
        c.add_security_scheme(
            "vapiSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-signature",
                "A Vapi HMAC credential: hex HMAC-SHA256 of `{x-timestamp}.{body}` (or of the body \
                 without a timestamp) with VAPI_WEBHOOK_SECRET; `x-vapi-signature` is read too, \
                 and header, hash and encoding are configurable",
            ))),
        );
    }
}

const CALL_ID: &str = "Vapi's call id: 1-256 characters, no `#`";

/// Liveness, without authentication.
#[utoipa::path(get, path = "/health", tag = "meta", operation_id = "health",
    responses((status = 200, description = "Up", body = HealthOk)))]
fn health() {}

/// Vapi's server messages. Authenticated on the raw body before anything is read; any configured
/// scheme suffices.
#[utoipa::path(post, path = "/api/v1/vapi/webhook", tag = "vapi", operation_id = "postWebhook",
    request_body(content = VapiServerMessage, content_type = "application/json"),
    security(("vapiSecret" = []), ("vapiBearer" = []), ("vapiSignature" = [])),
    responses(
        (status = 200, description = "Recorded, or a type that is not recorded", body = WebhookOk),
        (status = 400, description = "Not a Vapi server message (the JSON path at fault is named)", body = Failure),
        (status = 401, description = "No valid webhook credential", body = Failure),
        (status = 413, description = "Larger than MAX_WEBHOOK_BYTES (1 MiB)", body = Failure),
        (status = 503, description = "Storage or queue unavailable: Vapi's backoff plan retries", body = Failure),
    ))]
fn post_webhook() {}

/// Places a call through Vapi, records it `pending` and answers at once; poll `pollUrl`, or pass
/// `callbackUrl` to be pushed its events.
#[utoipa::path(post, path = "/api/v1/vapi/calls", tag = "calls", operation_id = "placeCall",
    request_body(content = CallRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 200,
        description = "A retry with the same key and body gets the first answer and places no second call")),
    security(("apiToken" = [])),
    responses(
        (status = 202, description = "Placed", body = CallAcceptedOk,
            headers(("Location" = String, description = "The call's pollUrl"))),
        (status = 400, description = "Invalid request: each bad field named by its JSON path", body = Failure),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 409, description = "The key was used with another body, or its first request is still placing the call (retry after Retry-After)", body = Failure,
            headers(("Retry-After" = Option<u32>, description = "Seconds, when the first request is still running"))),
        (status = 413, description = "Larger than 64 KiB", body = Failure),
        (status = 502, description = "Vapi refused or failed to start the call; Vapi's reason is given", body = Failure),
        (status = 503, description = "Unavailable, or the start is in doubt: retry with the same key", body = Failure,
            headers(("Retry-After" = Option<u32>, description = "Seconds"))),
    ))]
fn post_call() {}

/// Calls newest first, by one filter at most, a page at a time (index-backed, never a scan).
#[utoipa::path(get, path = "/api/v1/vapi/calls", tag = "calls", operation_id = "listCalls",
    params(
        ("serviceRequestId" = Option<String>, Query, min_length = 1, max_length = 256,
            description = "Calls of one service request (one filter at a time)"),
        ("providerId" = Option<String>, Query, min_length = 1, max_length = 256,
            description = "Calls to one provider (one filter at a time)"),
        ("status" = Option<StatusWord>, Query, description = "A dataStatus or an outcome (one filter at a time)"),
        ("since" = Option<String>, Query, min_length = 1,
            description = "Created at or after: RFC 3339 (2026-12-02T10:00:00Z) or a date (2026-12-02, its start)"),
        ("until" = Option<String>, Query, min_length = 1,
            description = "Created at or before: RFC 3339, or a date (its end); not before since"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 20 by default"),
        ("cursor" = Option<String>, Query, min_length = 1,
            description = "The previous page's nextCursor, with the same filter (opaque: one made up is refused)"),
    ),
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "A page", body = CallPageOk),
        (status = 400, description = "A query parameter is invalid (it is named)", body = Failure),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "This deployment has no call index", body = Failure),
        (status = 503, description = "Storage unavailable", body = Failure),
    ))]
fn list_calls() {}

/// A call's record. `ETag` is its version: `If-None-Match` with it answers 304 while nothing changed.
#[utoipa::path(get, path = "/api/v1/vapi/calls/{callId}", tag = "calls", operation_id = "getCall",
    params(
        ("callId" = String, Path, description = CALL_ID),
        ("If-None-Match" = Option<String>, Header, description = "An ETag this call answered before"),
    ),
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "The record", body = CallResultOk,
            headers(("ETag" = String, description = "The record's version"))),
        (status = 304, description = "Not changed since the ETag given",
            headers(("ETag" = String, description = "The record's version"))),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "Unknown, or expired", body = Failure),
        (status = 410, description = "Erased (`gone`): the message says when", body = Failure),
        (status = 503, description = "Storage unavailable", body = Failure),
    ))]
fn get_call() {}

/// Erases a call everywhere ringback wrote it.
///
/// Its record becomes a tombstone (a later `GET` answers 410), its kept webhooks, pushed events and listing entry are deleted, its provider row
/// and interaction log lose their texts. Idempotent: a repeat answers the same `erasedAt`, and
/// finishes an erase a 503 left unfinished. Webhooks that arrive for it later are ignored.
#[utoipa::path(delete, path = "/api/v1/vapi/calls/{callId}", tag = "calls", operation_id = "eraseCall",
    params(
        ("callId" = String, Path, description = CALL_ID),
        ("vapi" = Option<bool>, Query,
            description = "`true`: also delete Vapi's copy (`DELETE /call/{id}`), reported apart in `vapi`; ringback's erase does not depend on it"),
    ),
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "Erased (now, or before: the same `erasedAt`)", body = CallErasedOk),
        (status = 400, description = "`vapi` is not true or false, or an unknown parameter (it is named)", body = Failure),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "Unknown: no record and no listing entry", body = Failure),
        (status = 409, description = "The call is still being placed (retry after Retry-After)", body = Failure,
            headers(("Retry-After" = u32, description = "Seconds"))),
        (status = 503, description = "Storage unavailable: retry, erasing again finishes what this one started", body = Failure),
    ))]
fn delete_call() {}

/// Calls created in a window by `dataStatus` and outcome, calls overdue, the queues' depths.
///
/// From counters: a bounded number of reads whatever the number of calls; a part that
/// cannot be read is `{unavailable}` while the others are answered.
#[utoipa::path(get, path = "/api/v1/vapi/stats", tag = "calls", operation_id = "getStats",
    params(
        ("since" = Option<String>, Query, min_length = 1,
            description = "Created at or after: RFC 3339 or a date (its start); 24 hours before until by default. Widened to the hour"),
        ("until" = Option<String>, Query, min_length = 1,
            description = "Created before: RFC 3339 or a date (its end); now by default. Widened to the hour; the window is at most 31 days"),
    ),
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "The stats", body = StatsOk),
        (status = 400, description = "A query parameter is invalid, the window empty or longer than 31 days (the parameter is named)", body = Failure),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "This deployment has no call index", body = Failure),
    ))]
fn get_stats() {}

/// A call's history: the record's milestones, each kept webhook, each pushed event and attempt.
#[utoipa::path(get, path = "/api/v1/vapi/calls/{callId}/events", tag = "operations", operation_id = "getCallEvents",
    params(("callId" = String, Path, description = CALL_ID)),
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "The timeline", body = TimelineOk),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "Nothing known of the call (or all of it expired)", body = Failure),
        (status = 503, description = "Storage unavailable", body = Failure),
    ))]
fn get_events() {}

/// Rebuilds a settled call from its kept webhooks through today's code and enriches it again.
#[utoipa::path(post, path = "/api/v1/vapi/calls/{callId}/replay", tag = "operations", operation_id = "replayCall",
    params(("callId" = String, Path, description = CALL_ID)),
    security(("apiToken" = [])),
    responses(
        (status = 202, description = "Rebuilt; enrichment runs again", body = ReplayAcceptedOk),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "No kept webhooks for the call, or none are kept here", body = Failure),
        (status = 409, description = "The call is still being worked on", body = Failure),
        (status = 410, description = "Erased (`gone`)", body = Failure),
        (status = 503, description = "Storage or queue unavailable", body = Failure),
    ))]
fn post_replay() {}

/// Sends a delivered, gone or failed event again, with a new round of retries.
#[utoipa::path(post, path = "/api/v1/vapi/callbacks/{eventId}/redeliver", tag = "operations", operation_id = "redeliverEvent",
    params(("eventId" = String, Path, description = "`evt_` and 32 hex digits (the event's webhook-id)")),
    security(("apiToken" = [])),
    responses(
        (status = 202, description = "Queued for delivery", body = PushOk),
        (status = 401, description = "No valid API token", body = Failure),
        (status = 404, description = "Unknown or expired event, or pushes are off here", body = Failure),
        (status = 409, description = "Still being delivered, or kept for the event bus only", body = Failure),
        (status = 503, description = "Storage or queue unavailable", body = Failure),
    ))]
fn post_redeliver() {}

/// This document: behind the API token on a deployment, open in ringback-local (its /docs reads it).
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi",
    security((), ("apiToken" = [])),
    responses(
        (status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object),
        (status = 401, description = "No valid API token (deployments; ringback-local serves it openly)", body = Failure),
    ))]
fn get_openapi() {}

/// An interactive reference of this document (ringback-local only; offline).
#[utoipa::path(get, path = "/docs", tag = "local", operation_id = "docs",
    responses((status = 200, description = "Swagger UI", content_type = "text/html", body = String)))]
fn get_docs() {}

/// The operator console (ringback-local only): calls live, a call's timeline and actions, health;
/// it speaks only this API, so its files also serve a deployment (CORS: `ConsoleOrigins`).
#[utoipa::path(get, path = "/console/", tag = "local", operation_id = "console",
    responses((status = 200, description = "The console's page", content_type = "text/html", body = String)))]
fn get_console() {}

/// The last 100 events the runner's own receiver got, each with its signature check.
#[utoipa::path(get, path = "/dev/callbacks", tag = "local", operation_id = "listDevCallbacks",
    responses((status = 200, description = "`{success, data: {received: [...]}}`", body = Object)))]
fn get_dev_callbacks() {}

/// A receiver for pushed events (`"callbackUrl": "http://127.0.0.1:3000/dev/callbacks"`).
#[utoipa::path(post, path = "/dev/callbacks", tag = "local", operation_id = "receiveDevCallback",
    request_body(content = CallEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Received; the signature verified", body = Object),
        (status = 400, description = "Not an event", body = Failure),
        (status = 401, description = "The Standard Webhooks signature does not verify", body = Failure),
        (status = 413, description = "Larger than 1 MiB", body = Failure),
    ))]
fn post_dev_callbacks() {}

/// The pushed events, as OpenAPI 3.1 `webhooks`: POSTed to the call's `callbackUrl`, signed per
/// Standard Webhooks.
fn webhooks() -> Value {
    let op = |kind: &str, when: &str| {
        json!({"post": {
            "operationId": format!("event_{}", kind.replace('.', "_")),
            "summary": format!("{kind}: {when}"),
            "description": "POSTed to the call's callbackUrl, at least once, one webhook-id per \
                event (de-duplicate on it); retried with backoff over about 16 hours until a 2xx \
                (410 stops retries). Verify webhook-signature with any Standard Webhooks library \
                and CALLBACK_SIGNING_SECRET.",
            "parameters": [
                {"name": "webhook-id", "in": "header", "required": true, "schema": {"type": "string"},
                 "description": "The event's id (evt_ and 32 hex digits), the same on every attempt"},
                {"name": "webhook-timestamp", "in": "header", "required": true, "schema": {"type": "string"},
                 "description": "Seconds since the epoch, when this attempt was signed"},
                {"name": "webhook-signature", "in": "header", "required": true, "schema": {"type": "string"},
                 "description": "v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">"}
            ],
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CallEvent"}}}},
            "responses": {
                "2XX": {"description": "Received"},
                "410": {"description": "Gone: never tried again"},
                "default": {"description": "Any other answer, or none within 5 s: tried again later"}
            }
        }})
    };
    json!({
        "call.completed": op("call.completed", "the call settled with complete data"),
        "call.failed": op("call.failed", "the call settled fetch_failed (everything received is kept)"),
        "call.updated": op("call.updated", "a settled call got new data"),
    })
}
