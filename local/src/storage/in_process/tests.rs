use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use std::collections::HashMap;

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

/// Puts `{pk, n?}` into the test table.
async fn put(db: &Client, pk: &str, n: Option<&str>) {
    let mut put = db.put_item().table_name("calls").item("pk", s(pk));
    if let Some(n) = n {
        put = put.item("n", s(n));
    }
    put.send().await.unwrap();
}

/// Puts `{pk}` only if `condition` holds: whether the store took it.
async fn put_if(db: &Client, pk: &str, condition: &str) -> bool {
    let put = db.put_item().table_name("calls").item("pk", s(pk));
    put.condition_expression(condition).send().await.is_ok()
}

/// The item under `pk` in the test table, if any.
async fn get(db: &Client, pk: &str) -> Option<HashMap<String, AttributeValue>> {
    let got = db.get_item().table_name("calls").key("pk", s(pk));
    got.send().await.unwrap().item
}

#[tokio::test]
async fn the_sdk_writes_and_reads_through_it() {
    let (db, _, _) = client().await;
    put(&db, "a", Some("1")).await;
    assert_eq!(get(&db, "a").await.unwrap().get("n"), Some(&s("1")));
    assert!(get(&db, "b").await.is_none());
}

#[tokio::test]
async fn a_refused_condition_reaches_the_sdk_as_dynamodb_words_it_with_the_item() {
    let (db, _, _) = client().await;
    put(&db, "a", Some("1")).await;
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
    put(&db, "a", None).await;
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
    assert!(get(&db, "b").await.is_none());
}

/// The error the SDK reports for a GetItem of key "a" in `table`, which must fail.
async fn refused_get(
    db: &Client,
    table: &str,
) -> aws_sdk_dynamodb::operation::get_item::GetItemError {
    db.get_item()
        .table_name(table)
        .key("pk", s("a"))
        .send()
        .await
        .unwrap_err()
        .into_service_error()
}

#[tokio::test]
async fn an_operation_error_keeps_its_type_and_message() {
    let (db, _, _) = client().await;
    let err = refused_get(&db, "missing").await;
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
    let err = refused_get(&db, "t").await;
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    let message = err.message().unwrap_or_default();
    assert!(
        message.contains("tableName") && !message.contains("VALIDATION:"),
        "{message}"
    );
}

#[tokio::test]
async fn writes_taken_are_counted_for_the_group_commit_and_reads_and_refusals_are_not() {
    let (db, _, sync) = client().await;
    let before = sync.writes_noted();
    get(&db, "a").await;
    db.query()
        .table_name("calls")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(sync.writes_noted(), before, "reads owe no sync");
    put(&db, "a", None).await;
    db.delete_item()
        .table_name("calls")
        .key("pk", s("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(sync.writes_noted(), before + 2);
    // A refused condition committed nothing: a duplicate owes no sync.
    assert!(
        !put_if(&db, "a", "attribute_exists(pk)").await,
        "the condition fails: no item a"
    );
    assert_eq!(
        sync.writes_noted(),
        before + 2,
        "a refused write owes no sync"
    );
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
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
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
    get(&db, "a").await;
    put(&db, "a", None).await;
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

#[tokio::test]
async fn each_request_answered_is_counted_by_its_operation() {
    let (db, store, _) = client().await;
    assert_eq!(store.served(), vec![("CreateTable", 1)]);
    put(&db, "a", None).await;
    get(&db, "a").await;
    get(&db, "b").await;
    assert!(!put_if(&db, "a", "attribute_not_exists(pk)").await);
    assert_eq!(
        store.served(),
        vec![("GetItem", 2), ("PutItem", 2), ("CreateTable", 1)],
        "a refused write is a request answered too"
    );
}

/// Every operation the counter lists is one the store answers: the two lists cannot drift apart.
#[test]
fn every_counted_operation_is_dispatched() {
    let db = Database::memory().unwrap();
    for op in OPERATIONS {
        assert!(
            dispatch(&db, op, b"{}").is_some(),
            "{op} is counted but not answered"
        );
    }
    assert!(dispatch(&db, "RestoreTableFromBackup", b"{}").is_none());
}
