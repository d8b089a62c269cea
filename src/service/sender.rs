//! Sending: the sender takes each job off the queue and texts its SMS through SNS, paced
//! to the deployment's SMS rate (shared by every instance), one SMS per second to a phone,
//! each SMS recorded so that a job delivered twice sends it once.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::RegistrationService;
use crate::domain::PhoneNumber;
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::time::utc_day;
use crate::ports::{
    Clock, DailyQuota, DeliveryLog, OptOuts, RateSlots, SendLedger, SendStart, SentSms, SlotTake,
    SmsSender, StoreError,
};

/// Delay on the way to SNS that the pace allows for: the slots are spaced so that `rate`
/// SMS plus this delay take a second, so that no second ever counts `rate + 1` of them
/// (0.96 of the rate).
pub const JITTER_ALLOWANCE_US: u64 = 40_000;
/// The gap between two SMS to one phone (AWS refuses a second within a second), with a
/// margin for the clocks of two sender instances.
const PER_PHONE_GAP_MS: u64 = 1_050;
/// How long a delivery of a job holds it against another delivery: past the sender's
/// timeout, so that a crashed delivery's lease runs out before SQS hands the job out again.
pub const LEASE_MS: u64 = 150_000;
/// Tries at taking a slot that other instances keep moving, before the SMS waits for a
/// retry of its job.
const SLOT_TRIES: u32 = 50;
/// How far ahead a slot is taken when the deployment was idle: past the time the write
/// that takes it needs, so that the SMS does not leave late, close to the next one.
const SLOT_LEAD_US: u64 = 250_000;
/// The same for an opt-out check: just past the write that takes it.
const CHECK_LEAD_US: u64 = 30_000;

/// SNS answers `CheckIfPhoneNumberIsOptedOut` at most 50 times a second per account.
pub const OPT_OUT_CHECKS_PER_SECOND: u32 = 50;

/// The deployment's paces: one SMS per `(1 s + 40 ms) / rate`, and one opt-out check per
/// `(1 s + 40 ms) / 50`, for every sender instance together, never a burst.
#[derive(Debug)]
pub struct Pacer {
    sms: Pace,
    opt_out_checks: Pace,
}

impl Pacer {
    pub fn new(sms_per_second: u32) -> Self {
        Pacer {
            sms: Pace::new("sms", sms_per_second, SLOT_LEAD_US),
            // A check needs no exact moment, only its share of the second.
            opt_out_checks: Pace::new("opt-out-check", OPT_OUT_CHECKS_PER_SECOND, CHECK_LEAD_US),
        }
    }

    /// Takes the deployment's next SMS slot and waits for it; returns it (µs since the
    /// epoch).
    pub async fn wait_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
    ) -> Result<u64, StoreError> {
        self.sms.wait_turn(slots, clock).await
    }

    /// Takes the deployment's next slot for asking SNS about an opt-out, and waits for it.
    pub async fn wait_check_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
    ) -> Result<u64, StoreError> {
        self.opt_out_checks.wait_turn(slots, clock).await
    }
}

/// One pace: its slots come from one shared record ([`RateSlots`], named `name`); an
/// instance takes them one at a time and remembers where the next stood.
#[derive(Debug)]
struct Pace {
    name: &'static str,
    interval_us: u64,
    lead_us: u64,
    known_next: tokio::sync::Mutex<Option<u64>>,
}

impl Pace {
    fn new(name: &'static str, rate_per_second: u32, lead_us: u64) -> Self {
        Pace {
            name,
            lead_us,
            interval_us: (1_000_000 + JITTER_ALLOWANCE_US)
                .div_ceil(u64::from(rate_per_second.max(1))),
            known_next: tokio::sync::Mutex::new(None),
        }
    }

    async fn wait_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
    ) -> Result<u64, StoreError> {
        let slot = {
            let mut known = self.known_next.lock().await;
            let mut tries = 0;
            loop {
                let slot = known.unwrap_or(0).max(clock.now_us() + self.lead_us);
                match slots
                    .take_slot(self.name, *known, slot + self.interval_us)
                    .await?
                {
                    SlotTake::Taken => {
                        *known = Some(slot + self.interval_us);
                        break slot;
                    }
                    SlotTake::Moved(current) => *known = current,
                }
                tries += 1;
                if tries >= SLOT_TRIES {
                    return Err(StoreError::Unavailable {
                        code: "RateSlotContention".into(),
                    });
                }
            }
        };
        let wait = slot.saturating_sub(clock.now_us());
        tokio::time::sleep(Duration::from_micros(wait)).await;
        Ok(slot)
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
    I: SendLedger + RateSlots + OptOuts + DeliveryLog,
    S: SmsSender,
{
    /// Whether the number opted out, by our record (a STOP reply) or SNS's list; then its
    /// invitation is marked `opted_out`. Asked before a job's first SMS.
    async fn opted_out(&self, phone: &PhoneNumber, pacer: &Pacer) -> Result<bool, String> {
        let ours = self
            .store
            .opted_out(std::slice::from_ref(phone))
            .await
            .map_err(|e| e.to_string())?;
        if ours.is_empty() {
            pacer
                .wait_check_turn(&self.store, self.clock.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            if !self.sms.is_opted_out(phone).await.map_err(|e| e.code)? {
                return Ok(false);
            }
        }
        // Recorded here too, so that the create call answers it in `opted_out_numbers`.
        self.store
            .opt_out(phone, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        info!(phone = %phone.masked(), "opted out: not texted");
        Ok(true)
    }

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
        if part == 0 {
            match self.opted_out(&phone, pacer).await {
                Ok(false) => {}
                Ok(true) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Dropped("opted out");
                }
                Err(code) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Retry(code);
                }
            }
        }
        while part < job.texts.len() {
            if let Some(last) = last {
                let wait = (last + PER_PHONE_GAP_MS).saturating_sub(self.clock.now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            if let Err(error) = pacer.wait_turn(&self.store, self.clock.as_ref()).await {
                self.end_lease(job, &delivery).await;
                return JobResult::Retry(error.to_string());
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                self.end_lease(job, &delivery).await;
                return JobResult::Retry("DeadlineTooClose".into());
            }
            let message_id = match self.sms.send(&phone, &job.texts[part]).await {
                Ok(id) => id,
                Err(error) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Retry(error.code);
                }
            };
            let at = self.clock.now_ms();
            match self.store.record_sent(job, &delivery, part, at).await {
                Ok(true) => self.keep_message_id(job, part, message_id, at).await,
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

    /// Keeps the SMS under its message id, for its delivery receipt. A failure is only
    /// logged: the SMS went out, and its receipt will be counted as unknown.
    async fn keep_message_id(&self, job: &SmsJob, part: usize, message_id: String, at_ms: u64) {
        let (token, batch_id) = match &job.kind {
            JobKind::Invitation {
                token, batch_id, ..
            } => (Some(token.clone()), batch_id.clone()),
            JobKind::Message => (None, None),
        };
        let sms = SentSms {
            message_id,
            domain: job.domain.clone(),
            phone: job.phone.clone(),
            token,
            batch_id,
            part,
            sent_at: at_ms / 1000,
        };
        if let Err(error) = self.store.record_sms(&sms).await {
            warn!(job = %job.id, %error, "SMS sent but its message id not kept");
        }
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
    use crate::adapters::memory::MemoryStore;

    /// A clock that stands still, so that slots are known to the microsecond.
    struct Frozen;

    impl Clock for Frozen {
        fn now(&self) -> u64 {
            1_800_000_000
        }
    }

    const NOW_US: u64 = 1_800_000_000_000_000;

    #[tokio::test(start_paused = true)]
    async fn two_instances_share_one_rate_one_slot_per_interval_between_them() {
        let store = MemoryStore::new();
        // Two instances of the sender: one shared record of the next slot.
        let (a, b) = (Pacer::new(1_000), Pacer::new(1_000));
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(a.wait_turn(&store, &Frozen).await.unwrap());
            slots.push(b.wait_turn(&store, &Frozen).await.unwrap());
        }
        // (1 s + 40 ms) / 1000 apart, whichever instance took them, from 250 ms ahead.
        let interval = Pacer::new(1_000).sms.interval_us;
        assert_eq!(interval, 1_040);
        let expected: Vec<u64> = (0..20)
            .map(|k| NOW_US + SLOT_LEAD_US + k * interval)
            .collect();
        assert_eq!(slots, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn opt_out_checks_have_their_own_shared_pace_of_50_a_second() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1_000), Pacer::new(1_000));
        assert_eq!(a.opt_out_checks.interval_us, 20_800);
        let first = a.wait_check_turn(&store, &Frozen).await.unwrap();
        let second = b.wait_check_turn(&store, &Frozen).await.unwrap();
        assert_eq!(first, NOW_US + CHECK_LEAD_US);
        assert_eq!(second, first + 20_800, "shared between instances");
        // The SMS pace is another record: its first slot is not pushed back by checks.
        let sms = a.wait_turn(&store, &Frozen).await.unwrap();
        assert_eq!(sms, NOW_US + SLOT_LEAD_US);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_the_other_instance_moved_is_taken_after_it() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1_000), Pacer::new(1_000));
        let first = a.wait_turn(&store, &Frozen).await.unwrap();
        // b has never seen the record: its first try is refused, its second follows a's.
        let second = b.wait_turn(&store, &Frozen).await.unwrap();
        assert_eq!(second, first + a.sms.interval_us);
        assert_eq!(
            *b.sms.known_next.lock().await,
            Some(second + b.sms.interval_us)
        );
    }
}
