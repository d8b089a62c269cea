//! The sender's records: each job's lease and SMS, the deployment's rate, and what was
//! delivered (per SMS, batch and day).

use std::future::Future;

use crate::domain::RegistrationRecord;
use crate::domain::job::SmsJob;
use crate::domain::receipt::DeliveryReport;

use super::store::StoreError;

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

    /// An invitation job dropped unsent (its invitation replaced, expired, registered or
    /// released): settled in its batch, so that the batch can complete. Idempotent.
    fn settle_dropped(&self, job: &SmsJob) -> impl Future<Output = Result<(), StoreError>> + Send;

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
    /// The carrier parts (segments) it is sent as, billed and paced by.
    pub sms_parts: usize,
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
            phone: job.phone.as_str().to_owned(),
            token,
            batch_id,
            part,
            sms_parts: crate::domain::encoding::measure(&job.texts[part]).parts,
            sent_at: at_ms / 1000,
        }
    }
}

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
    /// Of the queued, those held when made: their first SMS waits for the worker's send
    /// window or the request's `send_at`.
    pub scheduled: u64,
    pub sent: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    pub send_failed: u64,
    pub opted_out: u64,
    pub opened: u64,
    pub registered: u64,
    /// Of the registered, those whose account the project's directory made, and those it
    /// could not (docs/accounts.md); the others' accounts are pending or in the table.
    pub accounts_created: u64,
    pub accounts_failed: u64,
    /// Carrier parts of the batch's SMS sent (every SMS of its invitations).
    pub parts_sent: u64,
    /// Of those, the parts of SMS whose receipt says delivered.
    pub parts_delivered: u64,
}

/// A project's day: invitations counted, SMS sent, their receipts and cost.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DayUsage {
    pub invitations: u64,
    pub sms_sent: u64,
    /// Carrier parts of the SMS sent: what carriers bill and pace.
    pub parts_sent: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    /// Carrier parts of the SMS delivered, by their receipts.
    pub parts_delivered: u64,
    pub price_usd: f64,
}

/// What the sender sent and what reached the phones: per SMS, per batch, per day.
pub trait DeliveryLog: Send + Sync {
    /// Records a receipt once: on its SMS, on the invitation (for its first SMS), and in
    /// the counts of its batch and day.
    fn record_receipt(
        &self,
        receipt: &DeliveryReport,
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
