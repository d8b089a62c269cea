//! `Idempotency-Key` records: the `IdempotencyStore` port.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::item::*;
use super::*;
use crate::domain::idempotency::{EarlierUse, verdict};

use crate::domain::Token;
use crate::ports::{IdempotencyBegin, IdempotencyStore, StoreError, StoredResponse};

impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        now: u64,
        lease_for: u64,
        expires_after: u64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let lease = Token::generate().as_str().to_owned();
        let expires_at = now + expires_after;
        let item = Item::from([
            (PK.into(), s(idempotency_pk(domain))),
            (SK.into(), s(idempotency_sk(key))),
            ("kind".into(), s("idempotency")),
            ("request_hash".into(), s(request_hash)),
            ("state".into(), s("running")),
            ("lease".into(), s(&lease)),
            ("lease_until".into(), n(now + lease_for)),
            ("expires_at".into(), n(expires_at)),
            (TTL.into(), n(expires_at)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Expiry is decided here, by the clock, not by when TTL deletes. A run whose
            // lease ran out is not taken over: its outcome is unknown (see below).
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(IdempotencyBegin::Proceed { lease }),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    refusal.item().cloned()
                }
                _ => return Err(store_error(&e)),
            },
        };
        let existing = match existing {
            Some(item) => Some(item),
            None => {
                self.item(idempotency_pk(domain), &idempotency_sk(key))
                    .await?
            }
        };
        let Some(existing) = existing else {
            // Abandoned between the write and the read: the caller may simply retry.
            return Ok(IdempotencyBegin::InProgress);
        };
        let earlier_lease = opt_s(&existing, "lease").unwrap_or_default();
        let earlier = if opt_s(&existing, "state").as_deref() == Some("done") {
            let status = get_n(&existing, "status")?;
            EarlierUse::Answered(StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::Malformed("status".into()))?,
                body: get_s(&existing, "body")?,
            })
        } else {
            EarlierUse::Running {
                lease: &earlier_lease,
                lease_until: get_n(&existing, "lease_until")?,
            }
        };
        let earlier_hash = opt_s(&existing, "request_hash").unwrap_or_default();
        Ok(verdict(request_hash, &lease, &earlier_hash, earlier, now))
    }

    async fn complete(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(idempotency_pk(domain)))
            .key(SK, s(idempotency_sk(key)))
            .update_expression("SET #state = :done, #status = :status, body = :body")
            .condition_expression("lease = :lease")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":status", n(u64::from(response.status)))
            .expression_attribute_values(":body", s(&response.body))
            .expression_attribute_values(":lease", s(lease))
            .send()
            .await;
        ok_unless_lost(result)
    }

    async fn abandon(&self, domain: &str, key: &str, lease: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(idempotency_pk(domain)))
            .key(SK, s(idempotency_sk(key)))
            .condition_expression("lease = :lease")
            .expression_attribute_values(":lease", s(lease))
            .send()
            .await;
        ok_unless_lost(result)
    }
}
