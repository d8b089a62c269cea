//! DynamoDB adapter: one table holds projects, apps, API keys, registrations and the
//! sender's records. One file per port; the helpers every file uses are here.

mod accounts;
mod admin;
mod delivery;
mod directory;
mod idempotency;
mod inbound;
mod invitations;
pub mod item;
mod ledger;
mod optout;
pub mod outbox;
mod quota;
mod workers;
mod write;

pub use admin::{MarkRegistered, ProjectUpdate, language_list};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use item::*;

use crate::domain::RegistrationRecord;
use crate::ports::StoreError;

/// Turns an SDK failure into a loggable error.
pub(crate) fn store_error<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> StoreError {
    StoreError::Unavailable {
        code: crate::adapters::error_code(error),
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// The store over the table `table`, its one client made from `aws` to retry a plain
    /// write that met a transaction in flight (see [`write`]).
    pub fn new(aws: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(aws)
            .retry_classifier(write::RetryTransactionConflicts)
            .build();
        DynamoStore {
            client: Client::from_conf(config),
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every item of a partition, through all pages.
    pub(crate) async fn partition(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

/// Whether a query stopped before the end of what it selects.
fn has_more(last_evaluated_key: &Option<Item>) -> bool {
    last_evaluated_key.as_ref().is_some_and(|k| !k.is_empty())
}

fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error.code() == Some("ConditionalCheckFailedException")
}

/// A conditional write: `true` when written, `false` when its condition refused it.
pub(crate) fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(store_error(&e)),
    }
}

/// For writes conditioned on still owning an item (a token, a lease): losing it to a newer
/// write is not an error, there is simply nothing of ours left to change.
pub(crate) fn ok_unless_lost<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata,
{
    written(result).map(|_| ())
}

impl DynamoStore {
    /// The item as a conditional write's refusal brought it back (`ALL_OLD`), or read
    /// again when the refusal came without it (moto may leave it out).
    pub(crate) async fn refused_item(
        &self,
        refused: Option<&Item>,
        pk: String,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        match refused.filter(|i| !i.is_empty()) {
            Some(item) => Ok(Some(item.clone())),
            None => self.item(pk, sk).await,
        }
    }

    /// One item, read consistently.
    pub(crate) async fn item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?
            .item)
    }

    /// Whether a queued claim's job reached the queue, by its batch's record.
    pub(crate) async fn batch_queued(
        &self,
        record: &RegistrationRecord,
    ) -> Result<bool, StoreError> {
        let Some(batch) = &record.batch_id else {
            return Ok(false);
        };
        let item = self.item(batch_pk(batch), BATCH_SK).await?;
        Ok(item.is_some_and(|batch| match batch.get("queued") {
            Some(AttributeValue::Ss(tokens)) => tokens.iter().any(|t| t == record.token.as_str()),
            _ => false,
        }))
    }
}

/// A project's day of counts (`YYYY-MM-DD`) is kept `USAGE_DAYS` for `smsreg-admin usage`,
/// then TTL may drop it.
pub(crate) fn usage_expiry(day: &str) -> u64 {
    crate::domain::time::day_start(day).map_or(0, |start| start + delivery::USAGE_DAYS * 86_400)
}

impl crate::ports::Store for DynamoStore {}
