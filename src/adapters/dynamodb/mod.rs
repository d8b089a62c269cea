//! DynamoDB adapter: one table holds projects, apps, API keys and registrations.

mod admin;
pub mod item;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

pub use admin::{ListedInvitation, MarkRegistered};
use item::*;

use crate::domain::invitation::ClaimRules;
use crate::domain::{ApiKey, Invitation, Plan, Project};
use crate::ports::{Claim, Directory, InvitationStore, StoreError};

/// Turns an SDK failure into a loggable error.
pub(crate) fn store_error<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> StoreError {
    StoreError::Unavailable {
        code: crate::adapters::error_code(error),
    }
}

/// Condition under which a claim may replace the record of a number: see
/// `RegistrationRecord::can_be_claimed`, which states the same rule in Rust.
const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR (#status = :pending AND \
     (#domain = :domain OR expires_at <= :now OR \
     (attribute_not_exists(sent_at) AND created_at <= :stale_before)))";

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Directory for DynamoStore {
    async fn api_keys_of(&self, username: &str) -> Result<Vec<ApiKey>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :key)")
            .expression_attribute_values(":pk", s(user_pk(username)))
            .expression_attribute_values(":key", s("KEY#"))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.items().iter().map(key_from_item).collect()
    }

    async fn project(&self, domain: &str) -> Result<Option<Project>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(project_pk(domain)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let Some(meta) = items
            .iter()
            .find(|i| opt_s(i, SK).as_deref() == Some(PROJECT_SK))
        else {
            return Ok(None);
        };
        let plan: Plan = get_s(meta, "plan")?
            .parse()
            .map_err(|_| StoreError::Malformed("plan".into()))?;
        let apps = items
            .iter()
            .filter(|i| opt_s(i, SK).is_some_and(|sk| sk.starts_with("APP#")))
            .map(app_from_item)
            .collect::<Result<_, _>>()?;
        Ok(Some(Project {
            name: domain.to_owned(),
            display_name: opt_s(meta, "display_name"),
            plan,
            registration_enabled: get_bool(meta, "registration_enabled"),
            apps,
        }))
    }
}

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
            .expression_attribute_values(":domain", s(rules.domain))
            .expression_attribute_values(":now", n(rules.now))
            .expression_attribute_values(":stale_before", n(rules.stale_before))
            .return_values(ReturnValue::AllOld)
            // The holder's status comes back with the refusal, for the log, in one call.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Taken {
                previous: out.attributes.filter(|item| !item.is_empty()),
            }),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    let holder = refusal.item().and_then(|i| opt_s(i, "status"));
                    tracing::debug!(
                        holder = holder.as_deref().unwrap_or("unknown"),
                        "claim refused"
                    );
                    Ok(Claim::InUse)
                }
                _ => Err(store_error(&error)),
            },
        }
    }

    async fn mark_sent(&self, invitation: &Invitation, sent_at: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression("SET sent_at = :sent_at")
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .expression_attribute_values(":sent_at", n(sent_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Replaced meanwhile by a newer claim: nothing of ours left to mark.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn release(
        &self,
        invitation: &Invitation,
        previous: Option<Item>,
    ) -> Result<(), StoreError> {
        let phone = invitation.phone.as_str();
        let token = s(invitation.token.as_str());
        let result = match previous {
            Some(previous) => self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(previous))
                .condition_expression("#token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", token)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let lost = e
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception());
                    (lost, store_error(&e))
                }),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(PK, s(phone_pk(phone)))
                .key(SK, s(REGISTRATION_SK))
                .condition_expression("#token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", token)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let lost = e
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception());
                    (lost, store_error(&e))
                }),
        };
        match result {
            Ok(()) => Ok(()),
            // Someone else's claim replaced ours meanwhile: theirs stays.
            Err((true, _)) => Ok(()),
            Err((false, error)) => Err(error),
        }
    }
}
