//! Idempotency records of call creation, in the calls table under `idem#{key}` (Powertools'
//! pattern: a conditional put takes the key, expiry is checked on write because TTL deletes
//! late). Unlike Powertools, a failed request does not free its key unless Vapi certainly placed
//! no call: the key names the attempt that holds it (`attemptId`, `attemptStartedAt`), and only a
//! conditional hand-over moves it to a new attempt.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::DateTime;

use super::attrs::*;
use super::{unavailable, CallsTable};
use crate::domain::to_iso;
use crate::ports::{Attempt, IdempotencyRecord, IdempotencyStore, SavedResponse, StoreError};

/// How long a key is remembered after its first request.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

const ATTEMPT_ID: &str = "attemptId";
const ATTEMPT_STARTED_MS: &str = "attemptStartedMs";

/// The item key of an idempotency key. The HTTP layer bounds the key's length (DynamoDB keys are
/// at most 2048 bytes).
fn item_key(key: &str) -> Item {
    HashMap::from([(ID.to_owned(), s(format!("idem#{key}")))])
}

/// The record an item holds, or `None` when it is not a live idempotency record.
fn parse(item: &Item, now: i64) -> Result<Option<IdempotencyRecord>, StoreError> {
    if get_s(item, KIND) != Some(KIND_IDEMPOTENCY)
        || get_n::<i64>(item, EXPIRES_AT).is_some_and(|e| e <= now)
    {
        return Ok(None);
    }
    let request_hash = get_s(item, REQUEST_HASH).unwrap_or_default().to_owned();
    let response = get_s(item, RESPONSE)
        .map(serde_json::from_str::<SavedResponse>)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("saved response: {e}")))?;
    let attempt = match (
        get_s(item, ATTEMPT_ID),
        get_n::<i64>(item, ATTEMPT_STARTED_MS),
    ) {
        (Some(id), Some(ms)) => Some(Attempt {
            id: id.to_owned(),
            started_at: DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| StoreError::Corrupt(format!("attempt start {ms}")))?,
        }),
        _ => None,
    };
    Ok(Some(IdempotencyRecord {
        request_hash,
        attempt,
        response,
    }))
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl IdempotencyStore for CallsTable {
    async fn begin(
        &self,
        key: &str,
        request_hash: &str,
        attempt: &Attempt,
    ) -> Result<Result<(), IdempotencyRecord>, StoreError> {
        // A holder that vanishes between our put and our read (expired) is raced again.
        for _ in 0..3 {
            let now = self.clock.now();
            let expires = now
                .timestamp()
                .saturating_add(IDEMPOTENCY_TTL.as_secs() as i64);
            let mut item = item_key(key);
            item.extend([
                (KIND.to_owned(), s(KIND_IDEMPOTENCY)),
                (REQUEST_HASH.to_owned(), s(request_hash)),
                (ATTEMPT_ID.to_owned(), s(&attempt.id)),
                (
                    ATTEMPT_STARTED_MS.to_owned(),
                    n(attempt.started_at.timestamp_millis()),
                ),
                (EXPIRES_AT.to_owned(), n(expires)),
                (CREATED_AT.to_owned(), s(to_iso(now))),
            ]);
            let sent = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#id) OR #e <= :now")
                .expression_attribute_names("#id", ID)
                .expression_attribute_names("#e", EXPIRES_AT)
                .expression_attribute_values(":now", n(now.timestamp()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let Some(PutItemError::ConditionalCheckFailedException(held)) = err.as_service_error()
            else {
                return Err(unavailable("PutItem of an idempotency record", &err));
            };
            // DynamoDB returns the holder with the failure; an emulator may not, so read it then.
            let existing = match held.item() {
                Some(item) => parse(item, now.timestamp())?,
                None => self.lookup(key).await?,
            };
            match existing {
                // Our own put landed and the SDK's retry of it lost the condition to itself.
                Some(h) if h.attempt.as_ref().is_some_and(|a| a.id == attempt.id) => {
                    return Ok(Ok(()))
                }
                Some(h) => return Ok(Err(h)),
                None => continue,
            }
        }
        Err(StoreError::Unavailable(format!(
            "idempotency key {key:?} keeps changing hands"
        )))
    }

    async fn lookup(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem of an idempotency record", &e))?;
        let now = self.clock.now().timestamp();
        out.item.as_ref().map_or(Ok(None), |item| parse(item, now))
    }

    async fn complete(&self, key: &str, response: &SavedResponse) -> Result<(), StoreError> {
        let json = serde_json::to_string(response)
            .map_err(|e| StoreError::Corrupt(format!("response does not serialize: {e}")))?;
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(key)))
            .update_expression("SET #r = :r")
            .condition_expression("#k = :k")
            .expression_attribute_names("#r", RESPONSE)
            .expression_attribute_names("#k", KIND)
            .expression_attribute_values(":r", s(json))
            .expression_attribute_values(":k", s(KIND_IDEMPOTENCY))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // Expired meanwhile: nothing holds the key any more.
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable("UpdateItem of an idempotency record", &e)),
        }
    }

    async fn release(&self, key: &str, attempt_id: &str) -> Result<(), StoreError> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key(key)))
            .condition_expression("#a = :a AND attribute_not_exists(#r)")
            .expression_attribute_names("#a", ATTEMPT_ID)
            .expression_attribute_names("#r", RESPONSE)
            .expression_attribute_values(":a", s(attempt_id))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // Another attempt holds it now, or it is gone: not ours to free.
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(()),
            Err(e) => Err(unavailable("DeleteItem of an idempotency record", &e)),
        }
    }

    async fn reattempt(&self, key: &str, from: &str, to: &Attempt) -> Result<(), StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(key)))
            .update_expression("SET #a = :to, #t = :t")
            .condition_expression("#a = :from AND attribute_not_exists(#r)")
            .expression_attribute_names("#a", ATTEMPT_ID)
            .expression_attribute_names("#t", ATTEMPT_STARTED_MS)
            .expression_attribute_names("#r", RESPONSE)
            .expression_attribute_values(":to", s(&to.id))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":t", n(to.started_at.timestamp_millis()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {
                // Our own hand-over may have landed before the SDK's retry lost the condition.
                match self.lookup(key).await? {
                    Some(h)
                        if h.response.is_none()
                            && h.attempt.as_ref().is_some_and(|a| a.id == to.id) =>
                    {
                        Ok(())
                    }
                    _ => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(unavailable("UpdateItem of an idempotency record", &e)),
        }
    }
}
