//! Inbound SMS already handled, and answers given to replies: the `InboundLog` port.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::item::*;
use super::*;

use crate::domain::{PhoneNumber, Token};
use crate::ports::{InboundLog, StoreError};

impl InboundLog for DynamoStore {
    async fn first_time(&self, message_id: &str, now: u64) -> Result<bool, StoreError> {
        // `attempt`: a retry that finds this very write applied (its answer lost) knows it
        // as its own, and the reply is handled rather than skipped as a duplicate.
        let attempt = Token::generate();
        // Kept a week: SNS redeliveries come within hours.
        let item = Item::from([
            (PK.into(), s(format!("INBOUND#{message_id}"))),
            (SK.into(), s("INBOUND")),
            ("kind".into(), s("inbound_sms")),
            ("received_at".into(), n(now)),
            ("attempt".into(), s(attempt.as_str())),
            (TTL.into(), n(now + 7 * 86_400)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(true),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    self.refused_item(refusal.item(), format!("INBOUND#{message_id}"), "INBOUND")
                        .await?
                }
                _ => return Err(store_error(&error)),
            },
        };
        Ok(existing.is_some_and(|e| opt_s(&e, "attempt").as_deref() == Some(attempt.as_str())))
    }

    async fn may_answer(
        &self,
        phone: &PhoneNumber,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> Result<bool, StoreError> {
        // One item per number and day, beside the number's invitation and opt-out (the
        // number is already their key): the set of replies answered. Keyed by number, not
        // by invitation, so that a new invitation, or none, does not start a new count.
        // Adding to a set is idempotent, so a retry after a lost answer (or the same reply
        // again) passes by `contains` and changes nothing.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(phone_pk(phone.as_str())))
            .key(SK, s(answers_sk(day)))
            .update_expression("ADD replies :id SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression(
                "attribute_not_exists(replies) OR size(replies) < :cap OR contains(replies, :reply)",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":id", AttributeValue::Ss(vec![message_id.to_owned()]))
            .expression_attribute_values(":reply", s(message_id))
            .expression_attribute_values(":cap", n(cap as u64))
            // Needed for its day only.
            .expression_attribute_values(
                ":ttl",
                n(crate::domain::time::day_start(day).unwrap_or(0) + 2 * 86_400),
            )
            .send()
            .await;
        written(result)
    }

    async fn forget(&self, message_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(format!("INBOUND#{message_id}")))
            .key(SK, s("INBOUND"))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }
}
