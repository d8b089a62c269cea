//! The record of each number, written with conditional writes, and its listings: the
//! `InvitationStore` port.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::item::*;
use super::*;
use tracing::warn;

use crate::domain::invitation::ShownStatus;
use crate::domain::invitation::{ClaimCheck, ClaimRules};
use crate::domain::{Invitation, RegistrationRecord, RegistrationStatus};
use crate::ports::{BatchRecord, Claim, InvitationPage, InvitationStore, ListQuery, StoreError};

/// Condition under which a claim may replace the record of a number: see
/// `RegistrationRecord::claim_check`, which states the same rule in Rust. A stale queued
/// claim is looked at after a refusal, with its batch's record.
const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR #status = :failed OR \
     #status = :opted_out OR ((#status = :queued OR #status = :pending) AND attribute_not_exists(account_status) AND (#domain = :domain OR expires_at <= :now))";

impl InvitationStore for DynamoStore {
    type Previous = Item;

    async fn claim(
        &self,
        invitation: &Invitation,
        rules: ClaimRules<'_>,
    ) -> Result<Claim<Item>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registration_item(invitation)))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#domain", "domain")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":opted_out", s("opted_out"))
            .expression_attribute_values(":domain", s(rules.domain))
            .expression_attribute_values(":now", n(rules.now))
            .return_values(ReturnValue::AllOld)
            // The holder's status comes back with the refusal, for the log, in one call.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let holder = match result {
            Ok(out) => {
                return Ok(Claim::Taken {
                    previous: out.attributes.filter(|item| !item.is_empty()),
                });
            }
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    // The holder comes back with the refusal (moto may leave it out).
                    self.refused_item(
                        refusal.item(),
                        phone_pk(invitation.phone.as_str()),
                        REGISTRATION_SK,
                    )
                    .await?
                }
                _ => return Err(store_error(&error)),
            },
        };
        let Some(holder) = holder else {
            return Ok(Claim::InUse);
        };
        let record = registration_from_item(&holder)?;
        if record.token == invitation.token {
            // Our own claim: applied, its answer lost, and the SDK's retry refused by it.
            // What it replaced came back with the lost answer only: it counts as nothing
            // (should this claim be undone, the number is freed rather than put back).
            warn!("claim found applied by its own earlier attempt");
            return Ok(Claim::Taken { previous: None });
        }
        tracing::debug!(holder = record.status.as_str(), "claim refused");
        let in_use = match record.claim_check(rules) {
            ClaimCheck::InUse => true,
            // A stale claim made before batches were recorded, or a record that changed
            // between the refusal and the read.
            ClaimCheck::Claimable => false,
            ClaimCheck::UnlessQueued => self.batch_queued(&record).await?,
        };
        if in_use {
            return Ok(Claim::InUse);
        }
        // Taken over, if the record is still the one judged.
        let mut same = "#token = :token AND #status = :status".to_owned();
        if record.enqueued_at.is_none() {
            same.push_str(" AND attribute_not_exists(enqueued_at)");
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registration_item(invitation)))
            .condition_expression(same)
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(record.token.as_str()))
            .expression_attribute_values(":status", s(record.status.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let ours = match result {
            Ok(_) => true,
            // Refused by our own write (its answer lost), or by someone else's.
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => refusal
                    .item()
                    .and_then(|i| opt_s(i, TOKEN))
                    .is_some_and(|t| t == invitation.token.as_str()),
                _ => return Err(store_error(&error)),
            },
        };
        Ok(if ours {
            Claim::Taken {
                previous: Some(holder),
            }
        } else {
            Claim::InUse
        })
    }

    async fn record_batch(&self, batch: &BatchRecord) -> Result<(), StoreError> {
        // An update, not a put: the sender may already count the batch's first SMS. Set,
        // never added, so that a retry after a lost answer changes nothing; in a
        // transaction, as every write to the batch's counters is (see `write`).
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(batch_pk(&batch.id)))
            .key(SK, s(BATCH_SK))
            .expression_attribute_names("#domain", "domain")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":kind", s("batch"))
            .expression_attribute_values(":domain", s(&batch.domain))
            .expression_attribute_values(":at", n(batch.queued_at))
            .expression_attribute_values(":ttl", n(batch.expires_at))
            .expression_attribute_values(":count", n(batch.queued.len() as u64))
            .expression_attribute_values(":scheduled", n(batch.scheduled));
        let set = "SET kind = :kind, #domain = :domain, queued_at = :at, #ttl = :ttl, \
                   queued_count = :count, scheduled_count = :scheduled";
        update = if batch.queued.is_empty() {
            update.update_expression(set)
        } else {
            update
                .update_expression(format!("{set} ADD queued :tokens"))
                .expression_attribute_values(":tokens", AttributeValue::Ss(batch.queued.clone()))
        };
        let update = update.build().expect("update has its required fields");
        self.transact_or_fail(vec![TransactWriteItem::builder().update(update).build()])
            .await?;
        Ok(())
    }

    fn encode_previous(&self, previous: &Item) -> serde_json::Value {
        item_to_json(previous)
    }

    async fn release(
        &self,
        invitation: &Invitation,
        previous: Option<Item>,
    ) -> Result<(), StoreError> {
        let phone = invitation.phone.as_str();
        let token = s(invitation.token.as_str());
        // Someone else's claim may have replaced ours meanwhile: theirs stays. Ours, once
        // no longer queued (its SMS went out after all, the worker registered), stays too.
        let still_ours = "#token = :token AND #status = :queued";
        match previous {
            Some(previous) => ok_unless_lost(
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(previous))
                    .condition_expression(still_ours)
                    .expression_attribute_names("#token", TOKEN)
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":token", token)
                    .expression_attribute_values(":queued", s("queued"))
                    .send()
                    .await,
            ),
            None => ok_unless_lost(
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, s(phone_pk(phone)))
                    .key(SK, s(REGISTRATION_SK))
                    .condition_expression(still_ours)
                    .expression_attribute_names("#token", TOKEN)
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":token", token)
                    .expression_attribute_values(":queued", s("queued"))
                    .send()
                    .await,
            ),
        }
    }

    async fn find(
        &self,
        phone: &crate::domain::PhoneNumber,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        self.item(phone_pk(phone.as_str()), REGISTRATION_SK)
            .await?
            .as_ref()
            .map(registration_from_item)
            .transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<InvitationPage, StoreError> {
        match query.status {
            None => self.list_all(query).await,
            Some(status) => self.list_by_status(query, status).await,
        }
    }
}

/// The stored statuses a shown status is made of, and which side of `now` their expiry
/// lies (`Some(true)`: still live, `Some(false)`: expired, `None`: either).
fn status_partitions(status: ShownStatus) -> (&'static [RegistrationStatus], Option<bool>) {
    use RegistrationStatus as S;
    match status {
        ShownStatus::Queued => (&[S::Queued], Some(true)),
        ShownStatus::Pending => (&[S::Pending], Some(true)),
        ShownStatus::Expired => (&[S::Queued, S::Pending], Some(false)),
        ShownStatus::Registered => (&[S::Registered], None),
        ShownStatus::Failed => (&[S::Failed], None),
        ShownStatus::OptedOut => (&[S::OptedOut], None),
    }
}

impl DynamoStore {
    /// A page of every invitation of the project, newest first: one query of the project's
    /// index.
    async fn list_all(&self, query: &ListQuery) -> Result<InvitationPage, StoreError> {
        let partition = invites_pk(&query.domain);
        // A position in the project's own partition: the partition always comes from the
        // project, so no cursor can reach another project's invitations.
        let start = query.after.as_ref().map(|after| {
            Item::from([
                (GSI1_PK.into(), s(&partition)),
                (
                    GSI1_SK.into(),
                    s(format!("{:012}#{}", after.created_at, after.phone)),
                ),
                (PK.into(), s(phone_pk(&after.phone))),
                (SK.into(), s(REGISTRATION_SK)),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INVITES_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(&partition))
            .scan_index_forward(false)
            .limit(i32::try_from(query.limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let items = out
            .items()
            .iter()
            .map(registration_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InvitationPage::of(items, has_more(&out.last_evaluated_key)))
    }

    /// A page of the project's invitations in one status, from the status index: one query
    /// per stored status it is made of (two for `expired`), never more, whatever the size
    /// of the project, since the key condition (not a filter) selects what is returned.
    async fn list_by_status(
        &self,
        query: &ListQuery,
        status: ShownStatus,
    ) -> Result<InvitationPage, StoreError> {
        let (stored, live) = status_partitions(status);
        // Expired: `expires_at <= now`; every sort key of an expiry of `now` or before
        // sorts below this one, every later one above.
        let now_key = format!("{:012}#~", query.now);
        let after_key = query
            .after
            .as_ref()
            .map(|after| status_sk(after.expires_at, &after.phone));
        if live == Some(true) && after_key.as_ref().is_some_and(|k| *k < now_key) {
            // The rest of a live listing expired since the last page.
            return Ok(InvitationPage {
                items: Vec::new(),
                next: None,
            });
        }
        let limit = i32::try_from(query.limit).unwrap_or(i32::MAX);
        let queries = stored.iter().map(|&stored_status| {
            let partition = status_pk(&query.domain, stored_status);
            let start = query
                .after
                .as_ref()
                .zip(after_key.as_ref())
                .map(|(after, key)| {
                    Item::from([
                        (GSI3_PK.into(), s(&partition)),
                        (GSI3_SK.into(), s(key)),
                        (PK.into(), s(phone_pk(&after.phone))),
                        (SK.into(), s(REGISTRATION_SK)),
                    ])
                });
            let condition = match live {
                None => "gsi3pk = :pk",
                Some(true) => "gsi3pk = :pk AND gsi3sk > :now",
                Some(false) => "gsi3pk = :pk AND gsi3sk < :now",
            };
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", s(partition))
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start);
            if live.is_some() {
                request = request.expression_attribute_values(":now", s(&now_key));
            }
            request.send()
        });
        let outs = futures::future::try_join_all(queries)
            .await
            .map_err(|e| store_error(&e))?;
        let mut more = false;
        let mut items = Vec::new();
        for out in &outs {
            more |= has_more(&out.last_evaluated_key);
            for item in out.items() {
                items.push(registration_from_item(item)?);
            }
        }
        items.sort_by(|a, b| query.order_of(b).cmp(&query.order_of(a)));
        more |= items.len() > query.limit;
        items.truncate(query.limit);
        Ok(InvitationPage::of(items, more))
    }
}
