//! Sending: the sender takes each job off the queue and texts its SMS through the SMS
//! provider, paced to the deployment's SMS rate (shared by every instance), one SMS per
//! second to a phone, each SMS recorded so that a job delivered twice sends it once.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::RegistrationService;
use super::pace::{Pacer, Turn};
use crate::config::Config;
use crate::domain::encoding;
use crate::domain::job::{SmsJob, suspended_delay_seconds};
use crate::ports::queue::{MAX_VISIBILITY_SECONDS, RECEIVE_MARGIN_SECONDS};
use crate::ports::{
    JobQueue, Outgoing, QueueError, SendStart, SmsError, SmsFailure, SmsProvider, Store, StoreError,
};

/// The gap between two SMS to one phone (AWS refuses a second within a second), with a
/// margin for the clocks of two sender instances.
const PER_PHONE_GAP_MS: u64 = 1_050;
/// How long a delivery of a job holds it against another delivery: past the sender's
/// timeout, so that a crashed delivery's lease runs out before SQS hands the job out again.
pub const LEASE_MS: u64 = 150_000;
/// How long an SMS may take to be accepted, past the last moment one may start (`until`):
/// providers answer within seconds even when slow. What is left of the invocation after it
/// is for recording the SMS.
pub const SEND_ALLOWANCE: Duration = Duration::from_secs(5);
/// The most an SMS is waited for without a deadline (replayed events, local runs).
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// When a job that did not get through for the store comes back.
const STORE_RETRY_SECONDS: u32 = 5;
/// When a job another delivery holds is looked at again: once that one should be done.
const BUSY_RETRY_SECONDS: u32 = 30;
/// The longest a job waiting for the rate is handed back for (SQS's visibility can be set
/// up to 12 hours; a quarter of an hour keeps the queue's order roughly kept).
const MAX_HAND_BACK_SECONDS: u32 = 900;
/// The longest a held job is handed back for: what SQS allows just after the receive (the
/// sender function takes off the time since); a longer hold is handed back again.
const MAX_HOLD_SECONDS: u32 = MAX_VISIBILITY_SECONDS - RECEIVE_MARGIN_SECONDS;

/// What became of one delivery of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// This many SMS went out now (0 when a duplicate delivery found them all sent).
    Sent(usize),
    /// Not sent: not wanted any more.
    Dropped(&'static str),
    /// An SMS of the job failed; `failures` of them so far, counted on the job's record.
    /// Tried again after a growing delay.
    Failed { error: SmsError, failures: u32 },
    /// An SMS failed for the last time: the invitation is `failed` (or the earlier one it
    /// replaced is back), its number free, its count given back.
    GaveUp(SmsError),
    /// Handed back without an SMS failing: no attempt spent. Back after
    /// [`Later::delay`] seconds.
    Later(Later),
}

/// Why a job is handed back without an attempt spent, each with its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Later {
    /// Too close to the invocation's deadline to start.
    DeadlineTooClose,
    /// Another delivery of the job is sending it.
    Busy,
    /// No slot of the rate (or of the phone's gap) before the deadline; the rate has room
    /// again in about `wait` seconds.
    NoSlotBeforeDeadline { wait: u32 },
    /// The store did not answer (or an SMS failed and its failure could not be counted).
    Store(StoreError),
    /// The SMS provider could not say whether the number opted out.
    Provider(SmsError),
    /// The SMS provider cannot send for now ([`SmsFailure::Suspended`]: the account's
    /// monthly spend limit): held, without an attempt spent, until it can.
    Suspended(SmsError),
    /// Its moment has not come (the project's send window is closed for the worker, or
    /// the request's `send_at` is ahead): back in `wait` seconds, or a little under SQS's
    /// 12 hours if that is sooner.
    Held { wait: u64 },
}

impl Later {
    /// Seconds until the job is looked at again, at its `receive_count`-th receive.
    pub fn delay(&self, receive_count: u32) -> u32 {
        match self {
            Later::DeadlineTooClose => 0,
            Later::Busy => BUSY_RETRY_SECONDS,
            Later::NoSlotBeforeDeadline { wait } => (*wait).min(MAX_HAND_BACK_SECONDS),
            Later::Store(_) | Later::Provider(_) => STORE_RETRY_SECONDS,
            // Longer each time it comes back, so that a limit left for days does not spend
            // the queue's receives.
            Later::Suspended(_) => suspended_delay_seconds(receive_count),
            Later::Held { wait } => u32::try_from(*wait)
                .unwrap_or(MAX_HOLD_SECONDS)
                .min(MAX_HOLD_SECONDS),
        }
    }

    /// For logs and metrics.
    pub fn reason(&self) -> String {
        match self {
            Later::DeadlineTooClose => "DeadlineTooClose".into(),
            Later::Busy => "Busy".into(),
            Later::NoSlotBeforeDeadline { .. } => "NoSlotBeforeDeadline".into(),
            Later::Store(error) => error.to_string(),
            Later::Provider(error) | Later::Suspended(error) => error.code.clone(),
            Later::Held { .. } => "Held".into(),
        }
    }
}

/// The sender's use case: the service, the SMS provider and the instance's share of the
/// deployment's paces.
pub struct Sender<St, Q, P> {
    service: RegistrationService<St, Q>,
    provider: P,
    pacer: Pacer,
}

impl<St: Store, Q: JobQueue, P: SmsProvider> Sender<St, Q, P> {
    pub fn new(service: RegistrationService<St, Q>, provider: P) -> Self {
        let pacer = Pacer::new(
            service.config.sms_rate_per_second,
            provider.opt_out_checks_per_second().unwrap_or(1),
        );
        Sender {
            service,
            provider,
            pacer,
        }
    }

    pub fn config(&self) -> &Config {
        &self.service.config
    }

    /// Makes a received job visible again after `delay_seconds`, on the queue `from` (its
    /// ARN) when it is not the send queue.
    pub async fn hand_back(
        &self,
        receipt_handle: &str,
        from: Option<&str>,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        self.service
            .queue
            .retry_later(receipt_handle, from, delay_seconds)
            .await
    }

    /// Whether the number opted out, by our record (a STOP reply) or the provider's list
    /// (asked only of a provider that does not refuse opted-out numbers when sent to);
    /// then its invitation is marked `opted_out`. Asked before a job's first SMS. `None`:
    /// the provider could not be asked before `not_after` (µs), so the job waits for
    /// another invocation.
    async fn opted_out(&self, job: &SmsJob, not_after: Option<u64>) -> Result<Option<bool>, Later> {
        let phone = &job.phone;
        let store = &self.service.store;
        let clock = self.service.clock.as_ref();
        let ours = store
            .opted_out(std::slice::from_ref(phone))
            .await
            .map_err(Later::Store)?;
        if ours.is_empty() {
            if self.provider.opt_out_checks_per_second().is_none() {
                return Ok(Some(false));
            }
            let turn = self
                .pacer
                .wait_check_turn(store, clock, not_after)
                .await
                .map_err(Later::Store)?;
            if let Turn::Later(_) = turn {
                return Ok(None);
            }
            match self.provider.is_opted_out(phone).await {
                Ok(false) => return Ok(Some(false)),
                Ok(true) => {}
                Err(error) => {
                    return Err(Later::Provider(error));
                }
            }
        }
        self.record_opt_out(job).await?;
        Ok(Some(true))
    }

    /// Records that the provider has the job's number opted out, so that the create call
    /// answers it in `opted_out_numbers` and its invitation shows `opted_out`.
    async fn record_opt_out(&self, job: &SmsJob) -> Result<(), Later> {
        let phone = &job.phone;
        self.service
            .store
            .opt_out(phone, self.service.clock.now(), &job.id)
            .await
            .map_err(Later::Store)?;
        info!(phone = %phone.masked(), "opted out: not texted");
        Ok(())
    }

    /// Sends what is left of a job, unless it is not wanted any more. Stops, to be tried
    /// again, at the first failure, or at the first SMS whose slot of the rate comes after
    /// `until` (no SMS is started after it).
    pub async fn send_job(&self, job: &SmsJob, until: Option<Instant>) -> JobResult {
        if until.is_some_and(|u| Instant::now() >= u) {
            return JobResult::Later(Later::DeadlineTooClose);
        }
        // Held until its moment: no lease, no slot of the rate, no attempt spent. (A job
        // whose invitation was replaced or expired meanwhile is dropped when it comes.)
        let now = self.service.clock.now();
        if let Some(at) = job.schedule.hold_until(&job.phone, now) {
            return JobResult::Later(Later::Held { wait: at - now });
        }
        // This delivery of the job: a write of ours that the SDK retries (after a timeout,
        // say) then finds the lease, or the SMS it recorded, its own.
        let delivery = SmsJob::new_id();
        let store = &self.service.store;
        let clock = self.service.clock.as_ref();
        let (mut part, mut last) = match store
            .begin_send(job, &delivery, clock.now_ms(), LEASE_MS)
            .await
        {
            Ok(SendStart::Go { sent, last_sms_ms }) => (sent, last_sms_ms),
            Ok(SendStart::Drop(reason)) => {
                // Its batch must hear that it is settled, or the batch never completes.
                if let Err(error) = store.settle_dropped(job).await {
                    return JobResult::Later(Later::Store(error));
                }
                return JobResult::Dropped(reason);
            }
            Ok(SendStart::Busy) => return JobResult::Later(Later::Busy),
            Err(error) => return JobResult::Later(Later::Store(error)),
        };
        let first = part;
        // The last moment an SMS may start, on the clock the slots are kept in.
        let not_after = until.map(|u| {
            let left = u.saturating_duration_since(Instant::now());
            clock.now_us() + left.as_micros() as u64
        });
        if part == 0 {
            match self.opted_out(job, not_after).await {
                Ok(Some(false)) => {}
                Ok(Some(true)) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Dropped("opted out");
                }
                Ok(None) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Later(Later::NoSlotBeforeDeadline { wait: 0 });
                }
                Err(later) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Later(later);
                }
            }
        }
        while part < job.texts.len() {
            if let Some(last) = last {
                let gap_end_ms = last + PER_PHONE_GAP_MS;
                if not_after.is_some_and(|limit| gap_end_ms * 1000 > limit) {
                    // The phone's next SMS may not leave before the deadline: not waited for.
                    self.end_lease(job, &delivery).await;
                    return JobResult::Later(Later::NoSlotBeforeDeadline { wait: 0 });
                }
                let wait = gap_end_ms.saturating_sub(clock.now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            let parts = encoding::measure(&job.texts[part]).parts;
            match self.pacer.wait_turn(store, clock, not_after, parts).await {
                Ok(Turn::At(_)) => {}
                Ok(Turn::Later(slot)) => {
                    self.end_lease(job, &delivery).await;
                    // Back about when the rate has room for it: not spinning meanwhile.
                    let wait_s = slot.saturating_sub(clock.now_us()) / 1_000_000;
                    let wait = u32::try_from(wait_s.saturating_sub(2)).unwrap_or(u32::MAX);
                    return JobResult::Later(Later::NoSlotBeforeDeadline { wait });
                }
                Err(error) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Later(Later::Store(error));
                }
            }
            let allowed = until.map_or(SEND_TIMEOUT, |u| {
                (u + SEND_ALLOWANCE).saturating_duration_since(Instant::now())
            });
            let outgoing = Outgoing::of(job, &job.texts[part]);
            let sent = tokio::time::timeout(allowed, self.provider.send(&outgoing)).await;
            let message_id = match sent {
                Ok(Ok(id)) => id,
                Ok(Err(error)) => return self.refused(job, &delivery, error).await,
                Err(_) => {
                    // The provider may have taken it: the one window in which an SMS can
                    // go twice.
                    warn!(job = %job.id, "no answer from the SMS provider in time: the SMS may have gone");
                    let error = SmsError::new(SmsFailure::Unknown, "Timeout");
                    return self.sms_failed(job, &delivery, error).await;
                }
            };
            let at = clock.now_ms();
            match store
                .record_sent(job, &delivery, part, at, &message_id)
                .await
            {
                Ok(true) => {}
                // Registered, replaced or failed meanwhile, or leased to another delivery
                // after ours ran out: the rest is not ours to send.
                Ok(false) => return JobResult::Sent(part + 1 - first),
                // Sent but not recorded: a retry sends this SMS again (the one window).
                Err(error) => {
                    warn!(job = %job.id, %error, "SMS sent but not recorded");
                    self.end_lease(job, &delivery).await;
                    return JobResult::Later(Later::Store(error));
                }
            }
            last = Some(at);
            part += 1;
        }
        JobResult::Sent(part - first)
    }

    /// The provider did not take an SMS of the job: what its failure means.
    async fn refused(&self, job: &SmsJob, delivery: &str, error: SmsError) -> JobResult {
        match error.failure {
            SmsFailure::OptedOut => {
                let recorded = self.record_opt_out(job).await;
                self.end_lease(job, delivery).await;
                match recorded {
                    Ok(()) => JobResult::Dropped("opted out"),
                    Err(later) => JobResult::Later(later),
                }
            }
            SmsFailure::Suspended => {
                warn!(job = %job.id, code = error.code, "the SMS provider cannot send for now: held");
                self.end_lease(job, delivery).await;
                JobResult::Later(Later::Suspended(error))
            }
            SmsFailure::Unknown => {
                // The one window in which an SMS can go twice.
                warn!(job = %job.id, code = error.code, "no answer from the SMS provider: the SMS may have gone");
                self.sms_failed(job, delivery, error).await
            }
            SmsFailure::Throttled | SmsFailure::Failed | SmsFailure::Refused => {
                self.sms_failed(job, delivery, error).await
            }
        }
    }

    /// An SMS of the job failed: counted on the job's record with the lease's end; at the
    /// last attempt, or at once when the provider refused it for good, the job is given
    /// up.
    async fn sms_failed(&self, job: &SmsJob, delivery: &str, error: SmsError) -> JobResult {
        let failures = match self.service.store.end_send(job, delivery, true).await {
            Ok(failures) => failures,
            Err(store_error) => {
                // Not counted: the lease runs out on its own, and the job comes back.
                warn!(job = %job.id, %store_error, "could not count the failed SMS");
                return JobResult::Later(Later::Store(store_error));
            }
        };
        let refused = error.failure == SmsFailure::Refused;
        if refused || failures >= self.service.config.send_max_attempts {
            let reason = if refused {
                format!("SMS refused by the provider ({})", error.code)
            } else {
                format!("SMS not sent after {failures} attempts ({})", error.code)
            };
            if let Err(store_error) = self.give_up(job, &reason).await {
                warn!(job = %job.id, %store_error, "could not mark the invitation failed");
                return JobResult::Later(Later::Store(store_error));
            }
            return JobResult::GaveUp(error);
        }
        JobResult::Failed { error, failures }
    }

    async fn end_lease(&self, job: &SmsJob, delivery: &str) {
        if let Err(error) = self.service.store.end_send(job, delivery, false).await {
            // The lease runs out on its own.
            warn!(job = %job.id, %error, "could not end the job's lease");
        }
    }

    /// After the job's last attempt (or when it reached the dead-letter queue): the
    /// invitation becomes `failed` (or the sent one it replaced comes back), freeing the
    /// number, and its daily count is given back, at once. Done before, it does nothing.
    pub async fn give_up(&self, job: &SmsJob, reason: &str) -> Result<(), StoreError> {
        self.service
            .store
            .fail_job(job, reason, self.service.clock.now())
            .await
            .map(|_| ())
    }
}
