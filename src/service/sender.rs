//! Sending: the sender takes each job off the queue and texts its SMS through SNS, paced
//! to the deployment's share of the account's SMS rate, one SMS per second to a phone,
//! each SMS recorded so that a job delivered twice sends it once.

use std::time::{Duration, Instant};

use tracing::warn;

use super::RegistrationService;
use crate::domain::PhoneNumber;
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::time::utc_day;
use crate::ports::{DailyQuota, SendLedger, SendStart, SmsSender};

/// Each instance paces itself a little under its share, so that delays on the way to
/// SNS do not bunch its SMS above the rate.
pub const PACING_HEADROOM: f64 = 0.97;
/// The gap between two SMS to one phone (AWS refuses a second within a second), with a
/// margin for the clocks of two sender instances.
const PER_PHONE_GAP_MS: u64 = 1_050;
/// How long a delivery of a job holds it against another delivery: past the sender's
/// timeout, so that a crashed delivery's lease runs out before SQS hands the job out again.
pub const LEASE_MS: u64 = 150_000;

/// One sender instance's pace: `rate / instances` SMS per second, with no burst. Shared by
/// every job of the instance, across invocations.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    /// An instance's share of `rate_per_second` among at most `instances` running at once.
    pub fn new(rate_per_second: u32, instances: u32) -> Self {
        let per_instance =
            f64::from(rate_per_second.max(1)) * PACING_HEADROOM / f64::from(instances.max(1));
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_instance),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for this instance's next turn to send one SMS.
    pub async fn wait_turn(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// What became of one delivery of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// This many SMS went out now (0 when a duplicate delivery found them all sent).
    Sent(usize),
    /// Not sent: not wanted any more.
    Dropped(&'static str),
    /// To be tried again later (a throttle, an error, a busy lease, the deadline).
    Retry(String),
}

impl<D, I, S> RegistrationService<D, I, S>
where
    D: DailyQuota,
    I: SendLedger,
    S: SmsSender,
{
    /// Sends what is left of a job, unless it is not wanted any more. Stops, to be tried
    /// again, at the first failure or when `until` comes.
    pub async fn send_job(&self, job: &SmsJob, pacer: &Pacer, until: Option<Instant>) -> JobResult {
        // This delivery of the job: a write of ours that the SDK retries (after a timeout,
        // say) then finds the lease, or the SMS it recorded, its own.
        let delivery = SmsJob::new_id();
        let (mut part, mut last) = match self
            .store
            .begin_send(job, &delivery, self.clock.now_ms(), LEASE_MS)
            .await
        {
            Ok(SendStart::Go { sent, last_sms_ms }) => (sent, last_sms_ms),
            Ok(SendStart::Drop(reason)) => return JobResult::Dropped(reason),
            Ok(SendStart::Busy) => return JobResult::Retry("Busy".into()),
            Err(error) => return JobResult::Retry(error.to_string()),
        };
        let Ok(phone) = PhoneNumber::parse(&job.phone) else {
            self.end_lease(job, &delivery).await;
            return JobResult::Dropped("unreadable number");
        };
        let first = part;
        while part < job.texts.len() {
            if let Some(last) = last {
                let wait = (last + PER_PHONE_GAP_MS).saturating_sub(self.clock.now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            pacer.wait_turn().await;
            if until.is_some_and(|u| Instant::now() >= u) {
                self.end_lease(job, &delivery).await;
                return JobResult::Retry("DeadlineTooClose".into());
            }
            if let Err(error) = self.sms.send(&phone, &job.texts[part]).await {
                self.end_lease(job, &delivery).await;
                return JobResult::Retry(error.code);
            }
            let at = self.clock.now_ms();
            match self.store.record_sent(job, &delivery, part, at).await {
                Ok(true) => {}
                // Registered, replaced or failed meanwhile, or leased to another delivery
                // after ours ran out: the rest is not ours to send.
                Ok(false) => return JobResult::Sent(part + 1 - first),
                // Sent but not recorded: a retry sends this SMS again (the one window).
                Err(error) => {
                    warn!(job = %job.id, %error, "SMS sent but not recorded");
                    self.end_lease(job, &delivery).await;
                    return JobResult::Retry(error.to_string());
                }
            }
            last = Some(at);
            part += 1;
        }
        JobResult::Sent(part - first)
    }

    async fn end_lease(&self, job: &SmsJob, delivery: &str) {
        if let Err(error) = self.store.end_send(job, delivery).await {
            // The lease runs out on its own.
            warn!(job = %job.id, %error, "could not end the job's lease");
        }
    }

    /// After the job's last attempt: the invitation becomes `failed` (or the sent one it
    /// replaced comes back), freeing the number, and its daily count is given back.
    pub async fn give_up(&self, job: &SmsJob, reason: &str) {
        let now = self.clock.now();
        match self.store.fail_job(job, reason, now).await {
            Ok(true) => {
                if let JobKind::Invitation { created_at, .. } = job.kind
                    && let Err(error) = self
                        .directory
                        .refund(&job.domain, &utc_day(created_at), 1)
                        .await
                {
                    warn!(job = %job.id, %error, "could not give back the daily count");
                }
            }
            Ok(false) => {}
            Err(error) => warn!(job = %job.id, %error, "could not mark the invitation failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_instance_paces_itself_at_its_share_of_the_rate() {
        let pacer = Pacer::new(20, 2);
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            pacer.wait_turn().await;
        }
        // Ten intervals after the first turn, each 1 / (20 * 0.97 / 2) s.
        let took = start.elapsed().as_secs_f64();
        assert!((took - 10.0 / 9.7).abs() < 0.01, "{took}");
    }
}
