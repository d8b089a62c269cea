//! The traits the service needs from the outside world: project directory, invitation
//! store, SMS sender and clock. Adapters in `adapters` implement them.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::invitation::{ClaimRules, PhoneType, ShownStatus};
use crate::domain::job::SmsJob;
use crate::domain::worker::Worker;
use crate::domain::{ApiKey, Invitation, PhoneNumber, Project, RegistrationRecord};

/// A store call that failed. It carries an error code, never request data, so it is
/// safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable ({code})")]
    Unavailable { code: String },
    #[error("a stored item is malformed ({0})")]
    Malformed(String),
}

/// An SMS that was not accepted, after the sender's own retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SMS was not accepted ({code})")]
pub struct SmsError {
    pub code: String,
}

/// A job that did not reach the send queue, after the queue client's own retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the job was not queued ({code})")]
pub struct QueueError {
    pub code: String,
}

/// The send queue (SQS): the API and the replies function put jobs on it; the sender
/// puts a failed job back with a delay.
pub trait JobQueue: Send + Sync {
    /// Puts at most 10 jobs on the queue in one call; one result per job, in order.
    fn enqueue(&self, jobs: &[SmsJob]) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send;

    /// Makes a received job visible again after `delay_seconds` (a retry later).
    fn retry_later(
        &self,
        receipt_handle: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// What the sender may do with a job it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendStart {
    /// Go on: `sent` SMS of the job already went out, the last at `last_sms_ms`.
    Go {
        sent: usize,
        last_sms_ms: Option<u64>,
    },
    /// Not wanted any more (replaced, registered, expired, failed, released, or done).
    Drop(&'static str),
    /// Another delivery of the same job is being sent right now.
    Busy,
}

/// The sender's record of each job: a lease against concurrent deliveries, and per SMS
/// that it went out (on the invitation for invitation jobs). `delivery` names one delivery
/// of the job, so that a write the SDK retries (after a timeout, say) finds the lease its
/// own and the SMS it recorded recorded.
pub trait SendLedger: Send + Sync {
    /// Checks the job is still wanted and leases it to `delivery` until `now_ms + lease_ms`.
    fn begin_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> impl Future<Output = Result<SendStart, StoreError>> + Send;

    /// Records that SMS `part` (from 0) went out, under SNS's `message_id` (which its
    /// receipt names), with the day's `sms_sent` and, for an invitation's first SMS, its
    /// batch's `sent`: all at once, once. The last one ends the lease. `false` when the
    /// job is no longer wanted (the worker registered meanwhile, say) or no longer this
    /// delivery's.
    fn record_sent(
        &self,
        job: &SmsJob,
        delivery: &str,
        part: usize,
        now_ms: u64,
        message_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends the delivery's lease without sending the rest (a retry comes later). `failed`:
    /// an SMS of the job failed, and is counted on its record. Returns the job's failed
    /// SMS attempts so far (0 when the lease was no longer this delivery's).
    fn end_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        failed: bool,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// After the last attempt: an invitation becomes `failed` with `reason` (or the live,
    /// sent invitation it replaced is put back), never over a registration, its batch
    /// counts it and its day's invitation count is given back, all at once. `true` when
    /// the invitation was still this one.
    fn fail_job(
        &self,
        job: &SmsJob,
        reason: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The outcome of trying to take the deployment's next SMS slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTake {
    Taken,
    /// Another sender instance moved it first: where the next slot stands now (`None`:
    /// no SMS was ever sent).
    Moved(Option<u64>),
}

/// The deployment's SMS rate, shared by every sender instance: one record of when the next
/// SMS may leave, moved forward by one interval per SMS with a compare-and-set.
pub trait RateSlots: Send + Sync {
    /// Sets the next slot (µs since the epoch) of the pace `name` (`sms`, `opt-out-check`)
    /// to `next`, if it is still `expected`.
    fn take_slot(
        &self,
        name: &str,
        expected: Option<u64>,
        next: u64,
    ) -> impl Future<Output = Result<SlotTake, StoreError>> + Send;
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

    /// Records that `phone` opted out at `now`, then marks its queued or pending
    /// invitation `opted_out`.
    fn opt_out(
        &self,
        phone: &PhoneNumber,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets that `phone` opted out.
    fn opt_in(&self, phone: &PhoneNumber) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which of `phones` (at most [`OptOuts::MAX_LOOKUP`]) opted out, as E.164.
    fn opted_out(
        &self,
        phones: &[PhoneNumber],
    ) -> impl Future<Output = Result<std::collections::HashSet<String>, StoreError>> + Send;
}

/// One SMS SNS accepted: kept under its message id, so that its delivery receipt finds
/// the invitation (and batch, and day) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub message_id: String,
    pub domain: String,
    /// E.164.
    pub phone: String,
    /// The invitation's token, for an invitation's SMS.
    pub token: Option<String>,
    pub batch_id: Option<String>,
    /// Which SMS of its job (0: the first, the one an invitation's delivery is judged by).
    pub part: usize,
    /// Seconds since the epoch.
    pub sent_at: u64,
}

impl SentSms {
    /// SMS `part` of `job`, which SNS accepted at `at_ms` under `message_id`.
    pub fn of(job: &SmsJob, part: usize, at_ms: u64, message_id: &str) -> Self {
        let (token, batch_id) = match &job.kind {
            crate::domain::job::JobKind::Invitation {
                token, batch_id, ..
            } => (Some(token.clone()), batch_id.clone()),
            crate::domain::job::JobKind::Message => (None, None),
        };
        SentSms {
            message_id: message_id.to_owned(),
            domain: job.domain.clone(),
            phone: job.phone.clone(),
            token,
            batch_id,
            part,
            sent_at: at_ms / 1000,
        }
    }
}

pub use crate::domain::receipt::Receipt;

/// What became of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    Recorded,
    /// This SMS's receipt was recorded before (a redelivered log batch).
    Duplicate,
    /// No SMS of this service has that message id.
    Unknown,
}

/// A request's batch, as counted while it goes: each count moves once per invitation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchProgress {
    #[serde(skip)]
    pub domain: String,
    pub batch_id: String,
    pub queued: u64,
    pub sent: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    pub send_failed: u64,
    pub opted_out: u64,
    pub opened: u64,
    pub registered: u64,
}

/// A project's day: invitations counted, SMS sent, their receipts and cost.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DayUsage {
    pub invitations: u64,
    pub sms_sent: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    pub price_usd: f64,
}

/// What the sender sent and what reached the phones: per SMS, per batch, per day.
pub trait DeliveryLog: Send + Sync {
    /// Records a receipt once: on its SMS, on the invitation (for its first SMS), and in
    /// the counts of its batch and day.
    fn record_receipt(
        &self,
        receipt: &Receipt,
        now: u64,
    ) -> impl Future<Output = Result<ReceiptOutcome, StoreError>> + Send;

    /// Records the first time an invitation's link was opened (and counts it in its batch).
    fn mark_opened(
        &self,
        invitation: &RegistrationRecord,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A batch's counts.
    fn batch_progress(
        &self,
        batch_id: &str,
    ) -> impl Future<Output = Result<Option<BatchProgress>, StoreError>> + Send;

    /// A project's day (`YYYY-MM-DD`).
    fn day_usage(
        &self,
        domain: &str,
        day: &str,
    ) -> impl Future<Output = Result<DayUsage, StoreError>> + Send;
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

/// A stored answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use (or the earlier use expired or was abandoned): run it, holding `lease`.
    Proceed { lease: String },
    /// Already answered with the same body: answer the same.
    Replay(StoredResponse),
    /// The key was used with another body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
    /// The first request with this key stopped without storing its answer (its function
    /// died or timed out): some of its numbers may have been invited. Never run again,
    /// since that would text every number a second time.
    Unknown,
}

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

    /// Counts an answer to reply `message_id` against the invitation `token`'s answers of
    /// `day`: `false` when `cap` of them were already given (to other replies). The same
    /// reply asked about again (a retry) keeps its answer.
    fn may_answer(
        &self,
        token: &str,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Where `worker_registered` events go, for the organisation's own systems.
pub trait RegistrationEvents: Send + Sync {
    /// Publishes the event; `Ok` also when publishing is not configured.
    fn worker_registered(
        &self,
        event: &serde_json::Value,
    ) -> impl Future<Output = Result<(), SmsError>> + Send;
}

pub trait SmsSender: Send + Sync {
    /// Sends one SMS; the provider's message id (SNS's `MessageId`), which its delivery
    /// receipt names.
    fn send(
        &self,
        to: &PhoneNumber,
        text: &str,
    ) -> impl Future<Output = Result<String, SmsError>> + Send;

    /// Whether the SMS provider has the number opted out (SNS's
    /// `CheckIfPhoneNumberIsOptedOut`, 50 calls per second per account at most).
    fn is_opted_out(&self, to: &PhoneNumber)
    -> impl Future<Output = Result<bool, SmsError>> + Send;
}

/// Seconds since the Unix epoch; a trait so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> u64;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64 {
        self.now() * 1000
    }

    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> u64 {
        self.now_ms() * 1000
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }
}

// Shared adapters (one store serving as directory and invitation store, kept by a test
// for inspection) work through an `Arc`.
impl<T: Directory> Directory for std::sync::Arc<T> {
    fn api_keys_of(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send {
        (**self).api_keys_of(username)
    }

    fn project(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Option<Project>, StoreError>> + Send {
        (**self).project(domain)
    }
}

impl<T: InvitationStore> InvitationStore for std::sync::Arc<T> {
    type Previous = T::Previous;

    fn claim(
        &self,
        invitation: &Invitation,
        rules: ClaimRules<'_>,
    ) -> impl Future<Output = Result<Claim<Self::Previous>, StoreError>> + Send {
        (**self).claim(invitation, rules)
    }

    fn record_batch(
        &self,
        batch: &BatchRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_batch(batch)
    }

    fn encode_previous(&self, previous: &Self::Previous) -> serde_json::Value {
        (**self).encode_previous(previous)
    }

    fn release(
        &self,
        invitation: &Invitation,
        previous: Option<Self::Previous>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(invitation, previous)
    }

    fn find(
        &self,
        phone: &PhoneNumber,
    ) -> impl Future<Output = Result<Option<RegistrationRecord>, StoreError>> + Send {
        (**self).find(phone)
    }

    fn list(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<InvitationPage, StoreError>> + Send {
        (**self).list(query)
    }
}

impl<T: OptOuts> OptOuts for std::sync::Arc<T> {
    fn opt_out(
        &self,
        phone: &PhoneNumber,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).opt_out(phone, now)
    }

    fn opt_in(&self, phone: &PhoneNumber) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).opt_in(phone)
    }

    fn opted_out(
        &self,
        phones: &[PhoneNumber],
    ) -> impl Future<Output = Result<std::collections::HashSet<String>, StoreError>> + Send {
        (**self).opted_out(phones)
    }
}

impl<T: DeliveryLog> DeliveryLog for std::sync::Arc<T> {
    fn record_receipt(
        &self,
        receipt: &Receipt,
        now: u64,
    ) -> impl Future<Output = Result<ReceiptOutcome, StoreError>> + Send {
        (**self).record_receipt(receipt, now)
    }

    fn mark_opened(
        &self,
        invitation: &RegistrationRecord,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_opened(invitation, now)
    }

    fn batch_progress(
        &self,
        batch_id: &str,
    ) -> impl Future<Output = Result<Option<BatchProgress>, StoreError>> + Send {
        (**self).batch_progress(batch_id)
    }

    fn day_usage(
        &self,
        domain: &str,
        day: &str,
    ) -> impl Future<Output = Result<DayUsage, StoreError>> + Send {
        (**self).day_usage(domain, day)
    }
}

impl<T: DailyQuota> DailyQuota for std::sync::Arc<T> {
    fn reserve(
        &self,
        domain: &str,
        day: &str,
        n: u32,
        limit: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).reserve(domain, day, n, limit)
    }

    fn refund(
        &self,
        domain: &str,
        day: &str,
        n: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).refund(domain, day, n)
    }
}

impl<T: IdempotencyStore> IdempotencyStore for std::sync::Arc<T> {
    fn begin(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        now: u64,
        lease_for: u64,
        expires_after: u64,
    ) -> impl Future<Output = Result<IdempotencyBegin, StoreError>> + Send {
        (**self).begin(domain, key, request_hash, now, lease_for, expires_after)
    }

    fn complete(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(domain, key, lease, response)
    }

    fn abandon(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).abandon(domain, key, lease)
    }
}

impl<T: WorkerStore> WorkerStore for std::sync::Arc<T> {
    fn invitation_by_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<RegistrationRecord>, StoreError>> + Send {
        (**self).invitation_by_token(token)
    }

    fn register(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
    ) -> impl Future<Output = Result<RegisterOutcome, StoreError>> + Send {
        (**self).register(invitation, worker)
    }

    fn set_phone_type(
        &self,
        invitation: &RegistrationRecord,
        phone_type: PhoneType,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set_phone_type(invitation, phone_type)
    }
}

impl<T: InboundLog> InboundLog for std::sync::Arc<T> {
    fn first_time(
        &self,
        message_id: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).first_time(message_id, now)
    }

    fn forget(&self, message_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).forget(message_id)
    }

    fn may_answer(
        &self,
        token: &str,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).may_answer(token, day, message_id, cap)
    }
}

impl<T: RegistrationEvents> RegistrationEvents for std::sync::Arc<T> {
    fn worker_registered(
        &self,
        event: &serde_json::Value,
    ) -> impl Future<Output = Result<(), SmsError>> + Send {
        (**self).worker_registered(event)
    }
}

impl<T: SmsSender> SmsSender for std::sync::Arc<T> {
    fn send(
        &self,
        to: &PhoneNumber,
        text: &str,
    ) -> impl Future<Output = Result<String, SmsError>> + Send {
        (**self).send(to, text)
    }

    fn is_opted_out(
        &self,
        to: &PhoneNumber,
    ) -> impl Future<Output = Result<bool, SmsError>> + Send {
        (**self).is_opted_out(to)
    }
}

impl<T: JobQueue> JobQueue for std::sync::Arc<T> {
    fn enqueue(&self, jobs: &[SmsJob]) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send {
        (**self).enqueue(jobs)
    }

    fn retry_later(
        &self,
        receipt_handle: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).retry_later(receipt_handle, delay_seconds)
    }
}

impl<T: SendLedger> SendLedger for std::sync::Arc<T> {
    fn begin_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> impl Future<Output = Result<SendStart, StoreError>> + Send {
        (**self).begin_send(job, delivery, now_ms, lease_ms)
    }

    fn record_sent(
        &self,
        job: &SmsJob,
        delivery: &str,
        part: usize,
        now_ms: u64,
        message_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record_sent(job, delivery, part, now_ms, message_id)
    }

    fn end_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        failed: bool,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send {
        (**self).end_send(job, delivery, failed)
    }

    fn fail_job(
        &self,
        job: &SmsJob,
        reason: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).fail_job(job, reason, now)
    }
}

impl<T: RateSlots> RateSlots for std::sync::Arc<T> {
    fn take_slot(
        &self,
        name: &str,
        expected: Option<u64>,
        next: u64,
    ) -> impl Future<Output = Result<SlotTake, StoreError>> + Send {
        (**self).take_slot(name, expected, next)
    }
}
