//! Per-project, per-day invitation counters: the `DailyQuota` port.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::item::*;
use super::*;

use crate::ports::{DailyQuota, StoreError};

impl DailyQuota for DynamoStore {
    async fn reserve(
        &self,
        domain: &str,
        day: &str,
        count: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        if count == 0 {
            return Ok(true);
        }
        if count > limit {
            return Ok(false);
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(usage_pk(domain)))
            .key(SK, s(day_sk(day)))
            // One atomic add, refused if it would pass the limit; in a transaction, whose
            // token makes a retry after a lost answer add nothing more.
            .update_expression("ADD invitations :n SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(invitations) OR invitations <= :room")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":n", n_u32(count))
            .expression_attribute_values(":room", n_u32(limit - count))
            .expression_attribute_values(":ttl", n(usage_expiry(day)))
            .build()
            .expect("update has its required fields");
        Ok(matches!(
            self.transact_or_fail(vec![TransactWriteItem::builder().update(update).build()])
                .await?,
            write::Transacted::Written
        ))
    }

    async fn refund(&self, domain: &str, day: &str, count: u32) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        self.transact_or_fail(vec![self.add_to_usage_item(
            domain,
            day,
            "invitations",
            -i64::from(count),
        )])
        .await?;
        Ok(())
    }
}

fn n_u32(v: u32) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
