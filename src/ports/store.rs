//! The store's ports: what the service keeps and reads (DynamoDB on AWS, in memory in
//! tests). One adapter implements them all; the service takes it as one type, [`Store`].

use std::future::Future;

use crate::domain::account::AccountState;
use crate::domain::invitation::{ClaimRules, PhoneType, ShownStatus};
use crate::domain::worker::Worker;
use crate::domain::{ApiKey, Invitation, PhoneNumber, Project, RegistrationRecord};

pub use super::ledger::*;

/// Every store port at once: the one store type the service is generic over. A store is a
/// cheap handle (`Clone`), as the DynamoDB client is. Each store says it is one
/// (`impl Store for DynamoStore {}`), once it implements every port.
pub trait Store:
    Directory
    + DailyQuota
    + IdempotencyStore
    + InvitationStore
    + WorkerStore
    + AccountStore
    + InboundLog
    + OptOuts
    + DeliveryLog
    + SendLedger
    + RateSlots
    + Clone
    + Send
    + Sync
    + 'static
{
}

/// A store call that failed. It carries an error code, never request data, so it is
/// safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable ({code})")]
    Unavailable { code: String },
    #[error("a stored item is malformed ({0})")]
    Malformed(String),
}

impl StoreError {
    /// The store refused the request itself (DynamoDB's `ValidationException`: a key over
    /// its size limit, say): the same request is refused again, however often it is tried.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, StoreError::Unavailable { code } if code == "ValidationException")
    }
}

/// Projects, their apps, and API keys: read-only for the function.
pub trait Directory: Send + Sync {
    /// Every key of a user, one per project the user belongs to.
    fn api_keys_of(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    fn project(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Option<Project>, StoreError>> + Send;
}

/// The result of a claim: the number is ours now, or somebody else's.
#[derive(Debug)]
pub enum Claim<P> {
    /// Recorded; `previous` is what the claim replaced, to put back on a rollback.
    Taken { previous: Option<P> },
    /// Registered, or held by another project's live invitation.
    InUse,
}

/// What is kept of one request's batch of invitations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub id: String,
    pub domain: String,
    /// When its jobs were put on the queue.
    pub queued_at: u64,
    /// Kept until its invitations expire.
    pub expires_at: u64,
    /// Tokens of its invitations whose job reached the queue.
    pub queued: Vec<String>,
    /// Of those, the invitations held when made (for the project's send window or the
    /// request's `send_at`).
    pub scheduled: u64,
}

/// The record of each phone number, written with conditional writes, and the numbers that
/// opted out.
pub trait InvitationStore: OptOuts + DeliveryLog + Send + Sync {
    /// What a claim replaced, exactly as stored.
    type Previous: Send + Sync;

    /// Records the invitation in one conditional write, if [`ClaimRules`] allow it.
    fn claim(
        &self,
        invitation: &Invitation,
        rules: ClaimRules<'_>,
    ) -> impl Future<Output = Result<Claim<Self::Previous>, StoreError>> + Send;

    /// Records a request's batch once its jobs are on the queue. A stale queued claim
    /// that its batch's record does not list (a crash between the claim and this, or a
    /// job that did not reach the queue) no longer holds its number.
    fn record_batch(
        &self,
        batch: &BatchRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What a claim replaced, as JSON for a send job (to put back if sending fails).
    fn encode_previous(&self, previous: &Self::Previous) -> serde_json::Value;

    /// Undoes a claim: puts back what it replaced, or removes it, if it is still ours.
    fn release(
        &self,
        invitation: &Invitation,
        previous: Option<Self::Previous>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What is stored for a number.
    fn find(
        &self,
        phone: &PhoneNumber,
    ) -> impl Future<Output = Result<Option<RegistrationRecord>, StoreError>> + Send;

    /// A page of a project's invitations, newest first, from an index (no scan).
    fn list(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<InvitationPage, StoreError>> + Send;
}

/// Numbers that opted out (replied STOP, or SNS has them opted out): texted no more until
/// they opt back in (START).
pub trait OptOuts: Send + Sync {
    /// Most numbers asked about in one [`OptOuts::opted_out`] call.
    const MAX_LOOKUP: usize = 100;

    /// Records that `phone` opted out at `now`, with its `Worker Opted Out` event (once:
    /// a number already opted out changes nothing), then marks its queued or pending
    /// invitation `opted_out`. `cause`: what told of it (the reply's message id, the send
    /// job's id), which makes the event's id.
    fn opt_out(
        &self,
        phone: &PhoneNumber,
        now: u64,
        cause: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets that `phone` opted out, with its `Worker Opted In` event (none when it had
    /// not opted out).
    fn opt_in(
        &self,
        phone: &PhoneNumber,
        now: u64,
        cause: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which of `phones` (at most [`OptOuts::MAX_LOOKUP`]) opted out, as E.164.
    fn opted_out(
        &self,
        phones: &[PhoneNumber],
    ) -> impl Future<Output = Result<std::collections::HashSet<String>, StoreError>> + Send;
}

/// Where a page of invitations starts: after this invitation, in the listing's order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListCursor {
    #[serde(rename = "c")]
    pub created_at: u64,
    #[serde(rename = "p")]
    pub phone: String,
    /// Its expiry: the position in a listing by status.
    #[serde(rename = "e", default)]
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub domain: String,
    pub status: Option<ShownStatus>,
    /// Decides which pending invitations count as expired.
    pub now: u64,
    pub limit: usize,
    pub after: Option<ListCursor>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvitationPage {
    pub items: Vec<RegistrationRecord>,
    /// Where the next page starts, when there may be one.
    pub next: Option<ListCursor>,
}

impl InvitationPage {
    /// A page of `items`; when `more` may follow, the next page starts after its last one.
    pub fn of(items: Vec<RegistrationRecord>, more: bool) -> Self {
        let next = if more {
            items.last().map(ListCursor::after)
        } else {
            None
        };
        InvitationPage { items, next }
    }
}

impl ListCursor {
    pub fn after(record: &RegistrationRecord) -> Self {
        ListCursor {
            created_at: record.created_at,
            phone: record.phone.as_str().to_owned(),
            expires_at: record.expires_at,
        }
    }
}

impl ListQuery {
    /// A record's place in the listing, which runs from the greatest down: newest first;
    /// filtered by status, latest expiry first (the same order while the lifetime of
    /// invitations stays the same), as the status index keeps them.
    pub fn order_of<'a>(&self, record: &'a RegistrationRecord) -> (u64, &'a str) {
        let at = match self.status {
            None => record.created_at,
            Some(_) => record.expires_at,
        };
        (at, record.phone.as_str())
    }

    /// The cursor's place in the listing (see [`ListQuery::order_of`]).
    pub fn order_of_cursor<'a>(&self, cursor: &'a ListCursor) -> (u64, &'a str) {
        let at = match self.status {
            None => cursor.created_at,
            Some(_) => cursor.expires_at,
        };
        (at, cursor.phone.as_str())
    }
}

/// Per-project, per-day counters of invitations, changed atomically.
pub trait DailyQuota: Send + Sync {
    /// Adds `n` to the day's count if it stays within `limit`; returns whether it did.
    fn reserve(
        &self,
        domain: &str,
        day: &str,
        n: u32,
        limit: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives back `n` reserved invitations that were not sent.
    fn refund(
        &self,
        domain: &str,
        day: &str,
        n: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub use crate::domain::idempotency::{IdempotencyBegin, StoredResponse};

/// Records of `Idempotency-Key` uses, scoped to a project.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request whose body hashes to `request_hash`, unless a live
    /// record says otherwise. Records older than `expires_after` seconds count as absent,
    /// as do running ones whose lease of `lease_for` seconds ran out.
    fn begin(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        now: u64,
        lease_for: u64,
        expires_after: u64,
    ) -> impl Future<Output = Result<IdempotencyBegin, StoreError>> + Send;

    /// Stores the answer, if the lease is still ours.
    fn complete(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the key (the request failed as a whole), if the lease is still ours.
    fn abandon(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why completing an invitation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    Registered,
    /// Another worker of the project has the username.
    UsernameTaken,
    /// The invitation is no longer the same pending, unexpired one.
    InvitationChanged,
    /// Neither condition failed: the store turned the write away for now (a transaction
    /// in flight on the same item, throttling). Nothing was stored; try again.
    TryAgain,
}

/// Worker accounts, and the invitations they complete.
pub trait WorkerStore: Send + Sync {
    /// The invitation (pending or registered) a registration link's token names.
    fn invitation_by_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<RegistrationRecord>, StoreError>> + Send;

    /// In one transaction: creates the account if the username is free, and marks the
    /// invitation registered if it is still the same pending, unexpired one.
    fn register(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
    ) -> impl Future<Output = Result<RegisterOutcome, StoreError>> + Send;

    /// Records the phone type a worker replied with, if the invitation is still the same.
    fn set_phone_type(
        &self,
        invitation: &RegistrationRecord,
        phone_type: PhoneType,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a claimed invitation's account came to, as its registration records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOutcome<'a> {
    Created,
    /// Still being made: what it waits for.
    Pending(&'a str),
    /// It cannot be made: why.
    Failed(&'a str),
}

/// Why an account attempt could not claim its invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// Another attempt holds it (the form posted twice, or from two tabs).
    InFlight,
    /// It is no longer the same pending, unexpired invitation.
    InvitationChanged,
}

/// Worker accounts in a project's directory (Cognito, CommCare HQ), tracked on their
/// invitations: claimed while the page makes one, then registered with it pending, made
/// or failed. A sealed password waits on the invitation until its account is settled.
pub trait AccountStore: Send + Sync {
    /// Claims the invitation for `account` (status claimed) with its sealed password, if
    /// it is still the same pending, unexpired one and no attempt holds it. A retry of
    /// the same attempt (an answer lost) is `Claimed`.
    fn claim_account(
        &self,
        invitation: &RegistrationRecord,
        account: &AccountState,
        sealed_password: &str,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Drops a claim that made no account (the directory said taken, or refused it): the
    /// invitation is pending again, as it was.
    fn release_claim(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one transaction: the claimed invitation registered, its account `outcome`, its
    /// batch's counts and its events (`Worker Registered`, and `Worker Account Created`
    /// or `Failed`); the sealed password erased unless pending. `false`: the claim was no
    /// longer this attempt's (this very write applied before, or the invitation changed).
    fn register_claimed(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
        attempt: &str,
        outcome: AccountOutcome<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A pending account made or failed (its counts, its event, the password erased), or
    /// (`Pending`) what it waits for now. `false`: not this attempt's pending account.
    fn settle_account(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
        outcome: AccountOutcome<'_>,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The worker was texted that the account is ready.
    fn mark_account_notified(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sealed password of `attempt`, while its account waits.
    fn sealed_password(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// Inbound SMS already handled, so that a reply delivered twice is handled once.
pub trait InboundLog: Send + Sync {
    /// Records `message_id`; `false` when it was already recorded.
    fn first_time(
        &self,
        message_id: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets `message_id`, so that a redelivery is handled (after a failure).
    fn forget(&self, message_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts an answer to reply `message_id` against the answers of `day` to `phone`:
    /// `false` when `cap` of them were already given (to other replies). The same reply
    /// asked about again (a retry) keeps its answer.
    fn may_answer(
        &self,
        phone: &PhoneNumber,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
