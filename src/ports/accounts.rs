//! Worker accounts outside the service's table: the directories that hold them (a Cognito
//! user pool, a CommCare HQ project), the key that seals a password while its account
//! waits, and the queue of accounts still to make (docs/accounts.md).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::account::{Accounts, NewAccount, Password};

/// Why a directory did not make an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The username belongs to an account the service did not make (for this attempt).
    #[error("the username is taken in the directory")]
    Taken,
    /// The directory refused what the worker gave (HQ's 400, Cognito's invalid password
    /// or attribute): the same account is refused again. The message is the directory's,
    /// safe to show the worker and to log (it never holds the password).
    #[error("the directory refused the account: {0}")]
    Invalid(String),
    /// The deployment cannot make accounts there (no key, a key without a permission, a
    /// plan without API access, no pool): an operator must act; retried meanwhile.
    #[error("the directory cannot be used: {0}")]
    Denied(String),
    /// Throttled (HQ's 429, Cognito's TooManyRequestsException): try again after the
    /// directory's wait when it gave one.
    #[error("the directory is throttling")]
    Throttled(Option<Duration>),
    /// No answer, or a failure of the directory's own (5xx, a timeout): the account may
    /// or may not have been made.
    #[error("the directory did not answer: {0}")]
    Unavailable(String),
}

impl AccountError {
    /// Trying the same account again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AccountError::Denied(_) | AccountError::Throttled(_) | AccountError::Unavailable(_)
        )
    }
}

/// The directories of every kind a project may choose.
pub trait AccountDirectory: Send + Sync {
    /// Makes `account` in the directory of `accounts`, or finds the one an earlier try of
    /// the same attempt made (its reference is written into it): `Ok` means it exists and
    /// signs in with `account.password`. Never called for [`Accounts::Service`].
    fn create(
        &self,
        accounts: &Accounts,
        account: &NewAccount,
    ) -> impl Future<Output = Result<(), AccountError>> + Send;
}

/// Why a password could not be sealed or opened. Carries no part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the password key is unavailable ({0})")]
    Unavailable(String),
    #[error("the sealed password cannot be opened ({0})")]
    Corrupt(String),
}

/// Seals a password while its account waits: envelope encryption under a KMS key that
/// only the functions that make accounts may use. `context` (the attempt's id, never a
/// secret) is bound to the seal: it opens only with the same context.
pub trait PasswordSealer: Send + Sync {
    fn seal(
        &self,
        context: &str,
        password: &Password,
    ) -> impl Future<Output = Result<String, SealError>> + Send;

    fn open(
        &self,
        context: &str,
        sealed: &str,
    ) -> impl Future<Output = Result<Password, SealError>> + Send;
}

/// One account to make or finish, on the accounts queue: names the invitation and the
/// attempt, holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountJob {
    pub domain: String,
    /// E.164: the invitation's key.
    pub phone: String,
    pub attempt: String,
}

/// Seconds an account job waits on its queue before the accounts function first sees it:
/// past the registration page's whole life (the API's timeout), so that the page, not the
/// function, makes the accounts it can make in time.
pub const ACCOUNT_JOB_DELAY_SECONDS: u32 = 60;

/// The queue of accounts still to make (SQS on AWS).
pub trait AccountQueue: Send + Sync {
    /// Puts `job` on the queue, seen after `delay_seconds`.
    fn put(
        &self,
        job: &AccountJob,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), super::QueueError>> + Send;

    /// Makes a received job visible again after `delay_seconds` (a retry later).
    fn retry_later(
        &self,
        receipt_handle: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), super::QueueError>> + Send;
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The three account ports as one object, so that the service holds them only where a
/// deployment makes accounts (`RegistrationService::with_accounts`).
pub trait AccountPorts: Send + Sync {
    fn create<'a>(
        &'a self,
        accounts: &'a Accounts,
        account: &'a NewAccount,
    ) -> Boxed<'a, Result<(), AccountError>>;
    fn seal<'a>(
        &'a self,
        context: &'a str,
        password: &'a Password,
    ) -> Boxed<'a, Result<String, SealError>>;
    fn open<'a>(
        &'a self,
        context: &'a str,
        sealed: &'a str,
    ) -> Boxed<'a, Result<Password, SealError>>;
    fn put_job<'a>(
        &'a self,
        job: &'a AccountJob,
        delay_seconds: u32,
    ) -> Boxed<'a, Result<(), super::QueueError>>;
    fn retry_later<'a>(
        &'a self,
        receipt_handle: &'a str,
        delay_seconds: u32,
    ) -> Boxed<'a, Result<(), super::QueueError>>;
}

/// A directory, a sealer and a queue, as [`AccountPorts`].
pub struct AccountBackend<D, K, A> {
    pub directory: D,
    pub sealer: K,
    pub queue: A,
}

impl<D: AccountDirectory, K: PasswordSealer, A: AccountQueue> AccountPorts
    for AccountBackend<D, K, A>
{
    fn create<'a>(
        &'a self,
        accounts: &'a Accounts,
        account: &'a NewAccount,
    ) -> Boxed<'a, Result<(), AccountError>> {
        Box::pin(self.directory.create(accounts, account))
    }

    fn seal<'a>(
        &'a self,
        context: &'a str,
        password: &'a Password,
    ) -> Boxed<'a, Result<String, SealError>> {
        Box::pin(self.sealer.seal(context, password))
    }

    fn open<'a>(
        &'a self,
        context: &'a str,
        sealed: &'a str,
    ) -> Boxed<'a, Result<Password, SealError>> {
        Box::pin(self.sealer.open(context, sealed))
    }

    fn put_job<'a>(
        &'a self,
        job: &'a AccountJob,
        delay_seconds: u32,
    ) -> Boxed<'a, Result<(), super::QueueError>> {
        Box::pin(self.queue.put(job, delay_seconds))
    }

    fn retry_later<'a>(
        &'a self,
        receipt_handle: &'a str,
        delay_seconds: u32,
    ) -> Boxed<'a, Result<(), super::QueueError>> {
        Box::pin(self.queue.retry_later(receipt_handle, delay_seconds))
    }
}
