//! Creating the three tables when they are missing: for the local runner and the tests (a deployed
//! stack gets them from `template.yaml`, which must match this).

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::attrs::{DEADLINE, EXPIRES_AT, ID, SHARD};
use super::unavailable;
use crate::ports::StoreError;

/// The calls table's sparse index of unfinished records by deadline (KEYS_ONLY).
pub const UNFINISHED_INDEX: &str = "unfinished-by-deadline";

/// Creates the calls, providers and interaction-log tables if they do not exist, waits until they
/// are active, and turns on TTL (`expiresAt`) on the calls table. Safe to call at every start.
/// An existing table is taken as it is: its keys and index are not checked.
pub async fn ensure_tables(
    client: &Client,
    calls: &str,
    providers: &str,
    logs: &str,
) -> Result<(), StoreError> {
    let calls_index = keys_only_index(UNFINISHED_INDEX, SHARD, Some(DEADLINE))?;
    create(
        client,
        calls,
        &[
            (ID, ScalarAttributeType::S),
            (SHARD, ScalarAttributeType::S),
            (DEADLINE, ScalarAttributeType::N),
        ],
        &[(ID, KeyType::Hash)],
        vec![calls_index],
    )
    .await?;
    create(
        client,
        providers,
        &[("providerId", ScalarAttributeType::S)],
        &[("providerId", KeyType::Hash)],
        Vec::new(),
    )
    .await?;
    create(
        client,
        logs,
        &[
            ("requestId", ScalarAttributeType::S),
            ("callId", ScalarAttributeType::S),
        ],
        &[("requestId", KeyType::Hash), ("callId", KeyType::Range)],
        Vec::new(),
    )
    .await?;
    for table in [calls, providers, logs] {
        wait_active(client, table).await?;
    }
    enable_ttl(client, calls).await
}

/// Creates the events table (`callId` + `sk`, TTL `expiresAt`, indexes `by-event-id` and
/// `by-open-state`) if missing.
pub async fn ensure_events_table(client: &Client, table: &str) -> Result<(), StoreError> {
    use super::events::{EVENT_ID, EVENT_ID_INDEX, OPEN, OPEN_INDEX, SORT_KEY};
    let by_event = keys_only_index(EVENT_ID_INDEX, EVENT_ID, None)?;
    let by_open = keys_only_index(OPEN_INDEX, OPEN, None)?;
    create(
        client,
        table,
        &[
            (ID, ScalarAttributeType::S),
            (SORT_KEY, ScalarAttributeType::S),
            (EVENT_ID, ScalarAttributeType::S),
            (OPEN, ScalarAttributeType::S),
        ],
        &[(ID, KeyType::Hash), (SORT_KEY, KeyType::Range)],
        vec![by_event, by_open],
    )
    .await?;
    wait_active(client, table).await?;
    enable_ttl(client, table).await
}

/// A KEYS_ONLY global secondary index on `hash` (and `range`).
pub(super) fn keys_only_index(
    name: &str,
    hash: &str,
    range: Option<&str>,
) -> Result<GlobalSecondaryIndex, StoreError> {
    let mut index = GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        );
    if let Some(range) = range {
        index = index.key_schema(key(range, KeyType::Range)?);
    }
    index.build().map_err(invalid)
}

/// Waits (up to 2 minutes) until `table` is active.
pub(super) async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(120))
        .await
        .map(|_| ())
        .map_err(|e| {
            let e = aws_sdk_dynamodb::error::DisplayErrorContext(e);
            StoreError::Unavailable(format!("table {table} did not become active: {e}"))
        })
}

/// CreateTable, on demand; a table that exists already is taken as it is.
pub(super) async fn create(
    client: &Client,
    table: &str,
    attributes: &[(&str, ScalarAttributeType)],
    keys: &[(&str, KeyType)],
    indexes: Vec<GlobalSecondaryIndex>,
) -> Result<(), StoreError> {
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, ty) in attributes {
        let def = AttributeDefinition::builder()
            .attribute_name(*name)
            .attribute_type(ty.clone())
            .build();
        req = req.attribute_definitions(def.map_err(invalid)?);
    }
    for (name, ty) in keys {
        req = req.key_schema(key(name, ty.clone())?);
    }
    match req
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(&format!("CreateTable {table}"), &e)),
    }
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), StoreError> {
    let status = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| unavailable(&format!("DescribeTimeToLive {table}"), &e))?
        .time_to_live_description
        .and_then(|d| d.time_to_live_status);
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(EXPIRES_AT)
        .build()
        .map_err(invalid)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| unavailable(&format!("UpdateTimeToLive {table}"), &e))
}

fn key(name: &str, ty: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(ty)
        .build()
        .map_err(invalid)
}

fn invalid(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("invalid table definition: {e}"))
}
