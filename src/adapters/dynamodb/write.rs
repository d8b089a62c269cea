//! Writes that hold under DynamoDB's ordinary faults: a write applied whose answer was lost
//! (the SDK's retry then meets it), a plain write meeting a transaction in flight
//! (`TransactionConflictException`, which the SDK does not retry on its own), and a
//! transaction cancelled by another one (`TransactionConflict`).
//!
//! Every counter (a batch's progress, a project's day) is written only inside a transaction
//! with the change it counts, and every transaction carries one `ClientRequestToken` across
//! all its tries whose outcome is unknown: DynamoDB recognises it for 10 minutes, so a
//! transaction retried after a lost answer is applied once, and a count moves once.

use std::time::Duration;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use tracing::warn;

use super::item::Item;
use super::{DynamoStore, store_error};
use crate::domain::Token;
use crate::ports::StoreError;

/// Tries of one transaction that other transactions keep cancelling, or whose answers keep
/// being lost, before the caller is told.
const TRANSACT_TRIES: u32 = 6;
/// The first wait between two tries; it doubles each time, with full jitter.
const TRANSACT_BACKOFF: Duration = Duration::from_millis(20);

/// Makes the SDK retry `TransactionConflictException` on `PutItem`, `UpdateItem` and
/// `DeleteItem`, with its usual jittered backoff, as it retries throttling: the write met a
/// transaction in flight on its item and was not applied, so trying again is safe. (The
/// SDK's own list names `TransactionInProgressException`, another error.)
#[derive(Debug, Default)]
pub(crate) struct RetryTransactionConflicts;

impl ClassifyRetry for RetryTransactionConflicts {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let conflict = error
            .downcast_ref::<UpdateItemError>()
            .is_some_and(UpdateItemError::is_transaction_conflict_exception)
            || error
                .downcast_ref::<PutItemError>()
                .is_some_and(PutItemError::is_transaction_conflict_exception)
            || error
                .downcast_ref::<DeleteItemError>()
                .is_some_and(DeleteItemError::is_transaction_conflict_exception);
        if conflict {
            RetryAction::throttling_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "TransactionConflictException"
    }
}

/// What became of a transaction.
#[derive(Debug)]
pub(crate) enum Transacted {
    Written,
    /// A condition was false: per item of the transaction, the item as it was when its own
    /// condition failed (`ALL_OLD`), `None` for the items whose condition held.
    Refused(Vec<Option<Item>>),
    /// Other transactions (or throttling) kept cancelling it: nothing was written.
    Busy,
}

impl Transacted {
    /// Whether item `index`'s own condition was the one that failed.
    pub(crate) fn refused_at(&self, index: usize) -> bool {
        matches!(self, Transacted::Refused(items) if items.get(index).is_some_and(Option::is_some))
    }
}

/// Full jitter: a random wait up to `cap`.
pub(crate) fn jittered(cap: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    let fraction = (u64::from_le_bytes(bytes) % 1_000) as u32;
    cap * fraction / 1_000
}

impl DynamoStore {
    /// Runs `items` as one transaction. Cancelled for a conflict or throttling (nothing
    /// written), it is tried again with a fresh token; failed with an unknown outcome (a
    /// lost answer, a timeout), with the same token, so DynamoDB applies it at most once.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transacted, StoreError> {
        let mut token = Token::generate();
        let mut backoff = TRANSACT_BACKOFF;
        let mut last = StoreError::Unavailable {
            code: "TransactionConflict".into(),
        };
        let mut busy = false;
        for _ in 0..TRANSACT_TRIES {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(token.as_str())
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(Transacted::Written),
                Err(error) => error,
            };
            match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let reasons = cancelled.cancellation_reasons();
                    if reasons
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        return Ok(Transacted::Refused(
                            reasons
                                .iter()
                                .map(|r| {
                                    (r.code() == Some("ConditionalCheckFailed"))
                                        .then(|| r.item().cloned().unwrap_or_default())
                                })
                                .collect(),
                        ));
                    }
                    // Not applied: a new token, so that this is a new request.
                    busy = true;
                    token = Token::generate();
                }
                _ => {
                    // Perhaps applied: the same token, so that DynamoDB recognises it.
                    busy = false;
                    last = store_error(&error);
                }
            }
            tokio::time::sleep(jittered(backoff)).await;
            backoff *= 2;
        }
        if busy {
            warn!("transaction cancelled by conflicts at every try");
            return Ok(Transacted::Busy);
        }
        Err(last)
    }

    /// [`DynamoStore::transact`] for writes that must happen: `Busy` is an error.
    pub(crate) async fn transact_or_fail(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transacted, StoreError> {
        match self.transact(items).await? {
            Transacted::Busy => Err(StoreError::Unavailable {
                code: "TransactionConflict".into(),
            }),
            done => Ok(done),
        }
    }
}
