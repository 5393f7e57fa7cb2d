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

/// The SDK's HTTP client for the embedded store; every clone answers from the same database
/// until [`InProcess::close`].
#[derive(Clone)]
pub struct InProcess {
    db: Arc<RwLock<Option<Database>>>,
    durability: GroupSync,
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
        }
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
        let Some(operation) = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        else {
            return bare(400, "UnknownOperationException");
        };
        let Some(body) = request.body().bytes() else {
            // The SDK's DynamoDB requests are always in memory; a streamed body would be a new SDK.
            return bare(400, "SerializationException");
        };
        let answered = dispatch(db, operation, body);
        if writes(operation) {
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

/// Operations that may commit something (counted whatever their outcome: a refused one only costs a sync).
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
mod tests {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, Put,
        ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TransactWriteItem,
    };
    use aws_sdk_dynamodb::Client;

    use super::*;
    use crate::storage::embedded_client;

    async fn client() -> (Client, InProcess, GroupSync) {
        let dir = tempfile::tempdir().unwrap().keep();
        let sync = GroupSync::new(dir.join("x.db-wal"));
        let store = InProcess::new(Database::memory().unwrap(), sync.clone());
        let client = embedded_client(&store);
        client
            .create_table()
            .table_name("calls")
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        (client, store, sync)
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[tokio::test]
    async fn the_sdk_writes_and_reads_through_it() {
        let (db, _, _) = client().await;
        db.put_item()
            .table_name("calls")
            .item("pk", s("a"))
            .item("n", s("1"))
            .send()
            .await
            .unwrap();
        let got = db
            .get_item()
            .table_name("calls")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.item().unwrap().get("n"), Some(&s("1")));
        let none = db
            .get_item()
            .table_name("calls")
            .key("pk", s("b"))
            .send()
            .await
            .unwrap();
        assert!(none.item().is_none());
    }

    #[tokio::test]
    async fn a_refused_condition_reaches_the_sdk_as_dynamodb_words_it_with_the_item() {
        let (db, _, _) = client().await;
        db.put_item()
            .table_name("calls")
            .item("pk", s("a"))
            .item("n", s("1"))
            .send()
            .await
            .unwrap();
        let err = db
            .put_item()
            .table_name("calls")
            .item("pk", s("a"))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(err.is_conditional_check_failed_exception(), "{err:?}");
        let aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) =
            err
        else {
            unreachable!()
        };
        assert_eq!(e.item().and_then(|i| i.get("n")), Some(&s("1")));
    }

    #[tokio::test]
    async fn a_cancelled_transaction_carries_its_reasons() {
        let (db, _, _) = client().await;
        db.put_item()
            .table_name("calls")
            .item("pk", s("a"))
            .send()
            .await
            .unwrap();
        let put = |pk: &str| {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name("calls")
                        .item("pk", s(pk))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let err = db
            .transact_write_items()
            .transact_items(put("b"))
            .transact_items(put("a"))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) = err else {
            panic!("{err:?}")
        };
        let codes: Vec<_> = e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or_default())
            .collect();
        assert_eq!(codes, ["None", "ConditionalCheckFailed"]);
        // Nothing of a cancelled transaction was kept.
        let b = db
            .get_item()
            .table_name("calls")
            .key("pk", s("b"))
            .send()
            .await
            .unwrap();
        assert!(b.item().is_none());
    }

    #[tokio::test]
    async fn an_operation_error_keeps_its_type_and_message() {
        let (db, _, _) = client().await;
        let err = db
            .get_item()
            .table_name("missing")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(err.is_resource_not_found_exception(), "{err:?}");
        assert_eq!(
            err.message(),
            Some("Requested resource not found"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_request_refused_as_it_is_read_is_a_validation_error() {
        let (db, _, _) = client().await;
        // DynamoDB's table names have at least 3 characters: dynoxide refuses it as it reads it.
        let err = db
            .get_item()
            .table_name("t")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
        let message = err.message().unwrap_or_default();
        assert!(
            message.contains("tableName") && !message.contains("VALIDATION:"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn writes_are_counted_for_the_group_commit_and_reads_are_not() {
        let (db, _, sync) = client().await;
        let before = sync.writes_noted();
        db.get_item()
            .table_name("calls")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap();
        db.query()
            .table_name("calls")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("a"))
            .send()
            .await
            .unwrap();
        assert_eq!(sync.writes_noted(), before, "reads owe no sync");
        db.put_item()
            .table_name("calls")
            .item("pk", s("a"))
            .send()
            .await
            .unwrap();
        db.delete_item()
            .table_name("calls")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap();
        assert_eq!(sync.writes_noted(), before + 2);
    }

    /// Records whether each request the SDK sends carries a signature.
    #[derive(Debug, Clone, Default)]
    struct SeenAuth(Arc<std::sync::Mutex<Vec<bool>>>);

    impl aws_sdk_dynamodb::config::Intercept for SeenAuth {
        fn name(&self) -> &'static str {
            "SeenAuth"
        }

        fn read_before_transmit(
            &self,
            context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<
                '_,
            >,
            _: &RuntimeComponents,
            _: &mut aws_sdk_dynamodb::config::ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            let signed = context.request().headers().contains_key("authorization");
            self.0.lock().unwrap().push(signed);
            Ok(())
        }
    }

    #[tokio::test]
    async fn requests_go_unsigned_even_with_credentials_in_the_environment() {
        let (db, _, _) = client().await;
        let seen = SeenAuth::default();
        let db = Client::from_conf(db.config().to_builder().interceptor(seen.clone()).build());
        // The test runner may export AWS credentials; the embedded client must not pick them up.
        db.get_item()
            .table_name("calls")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap();
        db.put_item()
            .table_name("calls")
            .item("pk", s("a"))
            .send()
            .await
            .unwrap();
        assert_eq!(*seen.0.lock().unwrap(), [false, false]);
    }

    #[tokio::test]
    async fn a_closed_store_is_an_error_the_caller_sees_not_a_hang() {
        let (db, store, _) = client().await;
        store.close();
        let err = db
            .get_item()
            .table_name("calls")
            .key("pk", s("a"))
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(
            err.message().unwrap_or_default().contains("closed"),
            "{err:?}"
        );
    }
}
