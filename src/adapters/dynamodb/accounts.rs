//! Worker accounts in a project's directory, tracked on their invitations: the
//! `AccountStore` port. Every write is conditioned on the attempt (`account_attempt`), so
//! a retry after a lost answer, or a second attempt, changes nothing twice.

use aws_sdk_dynamodb::operation::update_item;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::item::*;
use super::*;
use crate::domain::account::{AccountState, AccountStatus};
use crate::domain::event::OrgEvent;
use crate::domain::invitation::RegistrationStatus;
use crate::domain::worker::Worker;
use crate::ports::{AccountOutcome, AccountStore, ClaimOutcome, StoreError};

/// The sealed password of an account while it waits, removed once it is settled.
const SEALED: &str = "sealed_password";

impl DynamoStore {
    fn invitation_update(
        &self,
        invitation: &RegistrationRecord,
    ) -> update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
    }

    /// The event of a settled account, and its batch's counter to add one to.
    fn settled_items(
        &self,
        invitation: &RegistrationRecord,
        account: &AccountState,
        outcome: AccountOutcome<'_>,
        now: u64,
    ) -> (Option<TransactWriteItem>, Option<&'static str>) {
        let (counter, event) = match outcome {
            AccountOutcome::Pending(_) => return (None, None),
            AccountOutcome::Created => (
                "accounts_created",
                OrgEvent::account_created(
                    invitation.into(),
                    &account.directory,
                    &account.username,
                    &account.attempt,
                    now,
                ),
            ),
            AccountOutcome::Failed(reason) => (
                "accounts_failed",
                OrgEvent::account_failed(
                    invitation.into(),
                    &account.directory,
                    &account.username,
                    &account.attempt,
                    reason,
                    now,
                ),
            ),
        };
        (Some(self.outbox_put(&event)), Some(counter))
    }
}

/// The `SET` and `REMOVE` of an account's new status, with its values: a settled one's
/// sealed password goes, a made one's reason too.
fn status_change(
    update: Update_,
    outcome: AccountOutcome<'_>,
) -> (Update_, &'static str, &'static str) {
    let (status, reason, remove) = match outcome {
        AccountOutcome::Created => (
            AccountStatus::Created,
            None,
            "account_reason, sealed_password",
        ),
        AccountOutcome::Failed(why) => (AccountStatus::Failed, Some(why), "sealed_password"),
        AccountOutcome::Pending(why) => (AccountStatus::Pending, Some(why), ""),
    };
    let update = update.expression_attribute_values(":account", s(status.as_str()));
    match reason {
        None => (update, "account_status = :account", remove),
        Some(why) => (
            update.expression_attribute_values(":reason", s(why)),
            "account_status = :account, account_reason = :reason",
            remove,
        ),
    }
}

type Update_ = aws_sdk_dynamodb::types::builders::UpdateBuilder;

fn account_of(invitation: &RegistrationRecord, attempt: &str) -> Result<AccountState, StoreError> {
    invitation
        .account
        .clone()
        .filter(|a| a.attempt == attempt)
        .ok_or_else(|| StoreError::Malformed("the invitation holds no such attempt".into()))
}

impl AccountStore for DynamoStore {
    async fn claim_account(
        &self,
        invitation: &RegistrationRecord,
        account: &AccountState,
        sealed_password: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let email = if account.email.is_some() {
            ", account_email = :email"
        } else {
            ""
        };
        let update = self
            .invitation_update(invitation)
            .update_expression(format!(
                "SET account_status = :claimed, account_directory = :directory, \
                 account_username = :username, account_attempt = :attempt, \
                 account_since = :since, sealed_password = :sealed{email}"
            ))
            .condition_expression(
                "#token = :token AND (#status = :queued OR #status = :pending) AND \
                 expires_at > :since AND attribute_not_exists(account_status)",
            )
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":claimed", s(AccountStatus::Claimed.as_str()))
            .expression_attribute_values(":directory", s(&account.directory))
            .expression_attribute_values(":username", s(&account.username))
            .expression_attribute_values(":attempt", s(&account.attempt))
            .expression_attribute_values(":since", n(account.since))
            .expression_attribute_values(":sealed", s(sealed_password))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        let update = match &account.email {
            Some(email) => update.expression_attribute_values(":email", s(email)),
            None => update,
        };
        let result = update.send().await;
        let refused = match result {
            Ok(_) => return Ok(ClaimOutcome::Claimed),
            Err(error) => match error.as_service_error() {
                Some(update_item::UpdateItemError::ConditionalCheckFailedException(refusal)) => {
                    refusal.item().cloned()
                }
                _ => return Err(store_error(&error)),
            },
        };
        let now = self
            .refused_item(
                refused.as_ref(),
                phone_pk(invitation.phone.as_str()),
                REGISTRATION_SK,
            )
            .await?;
        let Some(now) = now else {
            return Ok(ClaimOutcome::InvitationChanged);
        };
        if opt_s(&now, TOKEN).as_deref() != Some(invitation.token.as_str()) {
            return Ok(ClaimOutcome::InvitationChanged);
        }
        Ok(match opt_s(&now, "account_attempt") {
            // This very claim, applied before its answer was lost.
            Some(attempt) if attempt == account.attempt => ClaimOutcome::Claimed,
            Some(_) => ClaimOutcome::InFlight,
            None => ClaimOutcome::InvitationChanged,
        })
    }

    async fn release_claim(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .invitation_update(invitation)
            .update_expression(
                "REMOVE account_status, account_directory, account_username, account_attempt, \
                 account_since, account_reason, account_notified, account_email, sealed_password",
            )
            .condition_expression("account_attempt = :attempt AND account_status = :claimed")
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(":claimed", s(AccountStatus::Claimed.as_str()))
            .send()
            .await;
        ok_unless_lost(result)
    }

    async fn register_claimed(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
        attempt: &str,
        outcome: AccountOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let account = account_of(invitation, attempt)?;
        let now = worker.registered_at;
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .condition_expression(
                "#token = :token AND account_attempt = :attempt AND account_status = :claimed",
            )
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(":claimed", s(AccountStatus::Claimed.as_str()))
            .expression_attribute_values(":registered", s("registered"))
            .expression_attribute_values(
                ":in_registered",
                s(status_pk(
                    &invitation.domain,
                    RegistrationStatus::Registered,
                )),
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":username", s(&worker.username));
        let (update, set, remove) = status_change(update, outcome);
        let remove = if remove.is_empty() {
            "#ttl".to_owned()
        } else {
            format!("#ttl, {remove}")
        };
        let update = update
            .update_expression(format!(
                "SET #status = :registered, gsi3pk = :in_registered, registered_at = :now, \
                 username = :username, {set} REMOVE {remove}"
            ))
            .build()
            .expect("update has its required fields");
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        let event =
            OrgEvent::worker_registered(invitation.into(), &worker.into(), worker.registered_at);
        items.push(self.outbox_put(&event));
        let (settled, counter) = self.settled_items(invitation, &account, outcome, now);
        items.extend(settled);
        // One change of the batch's item: a transaction may change an item only once.
        if let Some(batch) = &invitation.batch_id {
            let counters: Vec<&str> = std::iter::once("registered").chain(counter).collect();
            items.push(self.count_all_in_batch_item(batch, &counters));
        }
        Ok(matches!(
            self.transact_or_fail(items).await?,
            write::Transacted::Written
        ))
    }

    async fn settle_account(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
        outcome: AccountOutcome<'_>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let account = account_of(invitation, attempt)?;
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .condition_expression("account_attempt = :attempt AND account_status = :pending")
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(":pending", s(AccountStatus::Pending.as_str()));
        let (update, set, remove) = status_change(update, outcome);
        let expression = if remove.is_empty() {
            format!("SET {set}")
        } else {
            format!("SET {set} REMOVE {remove}")
        };
        let update = update
            .update_expression(expression)
            .build()
            .expect("update has its required fields");
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        let (settled, counter) = self.settled_items(invitation, &account, outcome, now);
        items.extend(settled);
        if let (Some(batch), Some(counter)) = (&invitation.batch_id, counter) {
            items.push(self.count_in_batch_item(batch, counter));
        }
        Ok(matches!(
            self.transact_or_fail(items).await?,
            write::Transacted::Written
        ))
    }

    async fn mark_account_notified(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .invitation_update(invitation)
            .update_expression("SET account_notified = :yes")
            .condition_expression("account_attempt = :attempt")
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(
                ":yes",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .send()
            .await;
        ok_unless_lost(result)
    }

    async fn sealed_password(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> Result<Option<String>, StoreError> {
        let item = self
            .item(phone_pk(invitation.phone.as_str()), REGISTRATION_SK)
            .await?;
        Ok(item
            .filter(|i| opt_s(i, "account_attempt").as_deref() == Some(attempt))
            .and_then(|i| opt_s(&i, SEALED)))
    }
}
