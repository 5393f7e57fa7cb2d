//! The SDK's DynamoDB requests answered by the embedded store in this process.
//!
//! The DynamoDB adapter runs unchanged (the SDK still builds and parses every request and response,
//! retries and all; unsigned, see `embedded_client`), but its HTTP client hands the request to
//! dynoxide's own operations instead of a socket: no loopback connection, no hyper on either side,
//! no wake-ups of a server task. The load benchmark's profile had that hop at ~20 % of a request's CPU.
//!
//! What dynoxide's HTTP server does around an operation is done here in the same way: the
//! `X-Amz-Target` names the operation, the body is its JSON request, the answer its JSON response,
//! or its error as DynamoDB writes it (`__type`, message, cancellation reasons) with its status.
//! A write is answered once SQLite committed it, as before, and counted for `GroupSync`, which
//! makes it durable before anything that depends on it is acknowledged.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use dynoxide::{Database, DynoxideError};
use serde::{de::DeserializeOwned, Serialize};

use crate::durability::GroupSync;

const TARGET_PREFIX: &str = "DynamoDB_20120810.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The operations [`dispatch`] answers, in the order [`InProcess::served`] counts them.
const OPERATIONS: [&str; 16] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
    "CreateTable",
    "DescribeTable",
    "DeleteTable",
    "ListTables",
    "UpdateTimeToLive",
    "DescribeTimeToLive",
];

/// The SDK's HTTP client for the embedded store; every clone answers from the same database
/// until [`InProcess::close`].
#[derive(Clone)]
pub struct InProcess {
    db: Arc<RwLock<Option<Database>>>,
    durability: GroupSync,
    /// Requests answered, by operation (see [`OPERATIONS`]): what the runner reports on `SIGUSR1`.
    served: Arc<[AtomicU64; OPERATIONS.len()]>,
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InProcess(embedded dynoxide)")
    }
}

impl InProcess {
    pub fn new(db: Database, durability: GroupSync) -> Self {
        Self {
            db: Arc::new(RwLock::new(Some(db))),
            durability,
            served: Arc::default(),
        }
    }

    /// The requests answered so far, by operation (those answered at least once).
    pub fn served(&self) -> Vec<(&'static str, u64)> {
        OPERATIONS
            .iter()
            .zip(self.served.iter())
            .map(|(op, n)| (*op, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Closes the database (its SQLite file) once the requests running now have been answered;
    /// a request after that is answered as a store that is not there (HTTP 500, which the SDK retries
    /// and then reports).
    pub fn close(&self) {
        let db = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(db);
    }

    fn answer(&self, request: &HttpRequest) -> (u16, String) {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let Some(db) = guard.as_ref() else {
            return error(&DynoxideError::InternalServerError(
                "the embedded store is closed".into(),
            ));
        };
        // One lookup names the operation and its counter; one not listed is unknown here.
        let Some((index, operation)) = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .and_then(|op| OPERATIONS.iter().position(|o| *o == op))
            .map(|i| (i, OPERATIONS[i]))
        else {
            return bare(400, "UnknownOperationException");
        };
        let Some(body) = request.body().bytes() else {
            // The SDK's DynamoDB requests are always in memory; a streamed body would be a new SDK.
            return bare(400, "SerializationException");
        };
        self.served[index].fetch_add(1, Ordering::Relaxed);
        let answered = dispatch(db, operation, body);
        // A refused write (a failed condition, a cancelled transaction) committed nothing: dynoxide
        // rolls it back, so it has nothing to make durable.
        if writes(operation) && matches!(answered, Some(Ok(_))) {
            self.durability.note_write();
        }
        match answered {
            Some(Ok(json)) => (200, json),
            Some(Err(e)) => error(&e),
            None => bare(400, "UnknownOperationException"),
        }
    }
}

/// The operations ringback's adapters, its table set-up and its tools use; `None` for any other.
fn dispatch(db: &Database, operation: &str, body: &[u8]) -> Option<dynoxide::Result<String>> {
    Some(match operation {
        "GetItem" => run(body, |r| db.get_item(r)),
        "PutItem" => run(body, |r| db.put_item(r)),
        "UpdateItem" => run(body, |r| db.update_item(r)),
        "DeleteItem" => run(body, |r| db.delete_item(r)),
        "Query" => run(body, |r| db.query(r)),
        "Scan" => run(body, |r| db.scan(r)),
        "BatchGetItem" => run(body, |r| db.batch_get_item(r)),
        "BatchWriteItem" => run(body, |r| db.batch_write_item(r)),
        "TransactWriteItems" => run(body, |r| db.transact_write_items(without_token(r))),
        "TransactGetItems" => run(body, |r| db.transact_get_items(r)),
        "CreateTable" => run(body, |r| db.create_table(r)),
        "DescribeTable" => run(body, |r| db.describe_table(r)),
        "DeleteTable" => run(body, |r| db.delete_table(r)),
        "ListTables" => run(body, |r| db.list_tables(r)),
        "UpdateTimeToLive" => run(body, |r| db.update_time_to_live(r)),
        "DescribeTimeToLive" => run(body, |r| db.describe_time_to_live(r)),
        _ => return None,
    })
}

/// The SDK gives every transaction a `ClientRequestToken` so that a retry of one whose answer was
/// lost on the network is not applied twice. In process no answer is lost: the SDK retries only
/// what the store refused, and rolled back (and the store's token cache is in memory, gone with a
/// restart). Dropping the token keeps the store from its token cache, which it sweeps entry by entry
/// on every transaction: 10 minutes of tokens under load made that sweep the largest cost of a new
/// call (17 % of the runner's CPU after 10 s of new webhooks, growing with every second).
fn without_token(
    mut request: dynoxide::actions::transact_write_items::TransactWriteItemsRequest,
) -> dynoxide::actions::transact_write_items::TransactWriteItemsRequest {
    request.client_request_token = None;
    request
}

/// Operations that may commit something (counted when the store took them).
fn writes(operation: &str) -> bool {
    matches!(
        operation,
        "PutItem"
            | "UpdateItem"
            | "DeleteItem"
            | "BatchWriteItem"
            | "TransactWriteItems"
            | "CreateTable"
            | "DeleteTable"
            | "UpdateTimeToLive"
    )
}

fn run<Req: DeserializeOwned, Resp: Serialize>(
    body: &[u8],
    op: impl FnOnce(Req) -> dynoxide::Result<Resp>,
) -> dynoxide::Result<String> {
    let request = serde_json::from_slice(body).map_err(|e| unreadable(&e.to_string()))?;
    let response = op(request)?;
    serde_json::to_string(&response).map_err(|e| DynoxideError::InternalServerError(e.to_string()))
}

/// A request dynoxide's types refused as they read it, as its server classifies it: its readers
/// mark a message with the error class DynamoDB gives (`VALIDATION…:`, `SERIALIZATION…:`); serde's
/// own messages are a validation error for a missing or null member and an unknown variant, else a
/// serialization error. (Only the wording of such refusals may differ from the server's: ringback's
/// requests come from the SDK, well formed.)
fn unreadable(message: &str) -> DynoxideError {
    let at = message.rfind(" at line ").unwrap_or(message.len());
    let (marked, bare) = (message, &message[..at]);
    for (marker, validation) in [
        ("VALIDATION_AS_READ:", true),
        ("SERIALIZATION_AS_READ:", false),
        ("VALIDATION_REQUEST:", true),
        ("VALIDATION:", true),
        ("SERIALIZATION:", false),
    ] {
        if let Some(rest) = bare.strip_prefix(marker) {
            return if validation {
                DynoxideError::ValidationException(rest.to_owned())
            } else {
                DynoxideError::SerializationException(rest.to_owned())
            };
        }
    }
    if ["missing field", "unknown variant", "invalid type: null"]
        .iter()
        .any(|m| marked.contains(m))
    {
        DynoxideError::ValidationException(bare.to_owned())
    } else {
        DynoxideError::SerializationException(bare.to_owned())
    }
}

fn error(e: &DynoxideError) -> (u16, String) {
    (e.status_code(), e.to_json())
}

fn bare(status: u16, kind: &str) -> (u16, String) {
    (
        status,
        format!(r#"{{"__type":"com.amazon.coral.service#{kind}"}}"#),
    )
}

impl HttpConnector for InProcess {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (status, json) = self.answer(&request);
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("a valid status code"),
            SdkBody::from(json),
        );
        response.headers_mut().insert("content-type", CONTENT_TYPE);
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for InProcess {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

#[cfg(test)]
mod tests;
