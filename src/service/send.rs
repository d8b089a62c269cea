//! Sending: the sender takes each job off the queue and texts its SMS through SNS, paced
//! to the deployment's SMS rate (shared by every instance), one SMS per second to a phone,
//! each SMS recorded so that a job delivered twice sends it once.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::RegistrationService;
use crate::domain::PhoneNumber;
use crate::domain::job::SmsJob;
use crate::ports::{
    Clock, DailyQuota, DeliveryLog, OptOuts, RateSlots, SendLedger, SendStart, SlotTake, SmsSender,
    StoreError,
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
    /// epoch). A slot later than `not_after` (µs) is not taken: [`Turn::Later`].
    pub async fn wait_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
        not_after: Option<u64>,
    ) -> Result<Turn, StoreError> {
        self.sms.wait_turn(slots, clock, not_after).await
    }

    /// Takes the deployment's next slot for asking SNS about an opt-out, and waits for it;
    /// none later than `not_after` (µs).
    pub async fn wait_check_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
        not_after: Option<u64>,
    ) -> Result<Turn, StoreError> {
        self.opt_out_checks.wait_turn(slots, clock, not_after).await
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
        not_after: Option<u64>,
    ) -> Result<Turn, StoreError> {
        let slot = {
            let mut known = self.known_next.lock().await;
            let mut tries = 0;
            loop {
                let slot = known.unwrap_or(0).max(clock.now_us() + self.lead_us);
                if not_after.is_some_and(|limit| slot > limit) {
                    // Left for an instance that can use it: taken now, it would pass
                    // unused (the rate lost) or be used past the deadline.
                    return Ok(Turn::Later(slot));
                }
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
        Ok(Turn::At(slot))
    }
}

/// A turn at the deployment's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// This slot (µs since the epoch) is ours, and has come.
    At(u64),
    /// The next free slot is past the limit asked for: none was taken.
    Later(u64),
}

/// What became of one delivery of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// This many SMS went out now (0 when a duplicate delivery found them all sent).
    Sent(usize),
    /// Not sent: not wanted any more.
    Dropped(&'static str),
    /// An SMS of the job failed (`code`); `failures` of them so far, counted on the job's
    /// record. Tried again after a growing delay.
    Failed { code: String, failures: u32 },
    /// An SMS failed for the last time: the invitation is `failed` (or the earlier one it
    /// replaced is back), its number free, its count given back.
    GaveUp { code: String },
    /// Handed back without an SMS failing (another delivery holds it, the store did not
    /// answer, no slot of the rate before the deadline): no attempt spent. Back after
    /// `delay` seconds.
    Later { reason: String, delay: u32 },
}

impl JobResult {
    fn later(reason: impl Into<String>, delay: u32) -> Self {
        JobResult::Later {
            reason: reason.into(),
            delay,
        }
    }
}

/// When a job that did not get through for the store comes back.
const STORE_RETRY_SECONDS: u32 = 5;
/// When a job another delivery holds is looked at again: once that one should be done.
const BUSY_RETRY_SECONDS: u32 = 30;
/// How long an SMS may take to be accepted, past the last moment one may start (`until`):
/// SNS answers within seconds even when slow. What is left of the invocation after it is
/// for recording the SMS.
pub const SEND_ALLOWANCE: Duration = Duration::from_secs(5);
/// The most an SMS is waited for without a deadline (replayed events, local runs).
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

impl<D, I, S> RegistrationService<D, I, S>
where
    D: DailyQuota,
    I: SendLedger + RateSlots + OptOuts + DeliveryLog,
    S: SmsSender,
{
    /// Whether the number opted out, by our record (a STOP reply) or SNS's list; then its
    /// invitation is marked `opted_out`. Asked before a job's first SMS. `None`: SNS could
    /// not be asked before `not_after` (µs), so the job waits for another invocation.
    async fn opted_out(
        &self,
        phone: &PhoneNumber,
        pacer: &Pacer,
        not_after: Option<u64>,
    ) -> Result<Option<bool>, String> {
        let ours = self
            .store
            .opted_out(std::slice::from_ref(phone))
            .await
            .map_err(|e| e.to_string())?;
        if ours.is_empty() {
            let turn = pacer
                .wait_check_turn(&self.store, self.clock.as_ref(), not_after)
                .await
                .map_err(|e| e.to_string())?;
            if let Turn::Later(_) = turn {
                return Ok(None);
            }
            if !self.sms.is_opted_out(phone).await.map_err(|e| e.code)? {
                return Ok(Some(false));
            }
        }
        // Recorded here too, so that the create call answers it in `opted_out_numbers`.
        self.store
            .opt_out(phone, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        info!(phone = %phone.masked(), "opted out: not texted");
        Ok(Some(true))
    }

    /// Sends what is left of a job, unless it is not wanted any more. Stops, to be tried
    /// again, at the first failure, or at the first SMS whose slot of the rate comes after
    /// `until` (no SMS is started after it).
    pub async fn send_job(&self, job: &SmsJob, pacer: &Pacer, until: Option<Instant>) -> JobResult {
        if until.is_some_and(|u| Instant::now() >= u) {
            return JobResult::later("DeadlineTooClose", 0);
        }
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
            Ok(SendStart::Busy) => return JobResult::later("Busy", BUSY_RETRY_SECONDS),
            Err(error) => return JobResult::later(error.to_string(), STORE_RETRY_SECONDS),
        };
        let Ok(phone) = PhoneNumber::parse(&job.phone) else {
            self.end_lease(job, &delivery).await;
            return JobResult::Dropped("unreadable number");
        };
        let first = part;
        // The last moment an SMS may start, on the clock the slots are kept in.
        let not_after = until.map(|u| {
            let left = u.saturating_duration_since(Instant::now());
            self.clock.now_us() + left.as_micros() as u64
        });
        if part == 0 {
            match self.opted_out(&phone, pacer, not_after).await {
                Ok(Some(false)) => {}
                Ok(Some(true)) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::Dropped("opted out");
                }
                Ok(None) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::later("NoSlotBeforeDeadline", 0);
                }
                Err(code) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::later(code, STORE_RETRY_SECONDS);
                }
            }
        }
        while part < job.texts.len() {
            if let Some(last) = last {
                let gap_end_ms = last + PER_PHONE_GAP_MS;
                if not_after.is_some_and(|limit| gap_end_ms * 1000 > limit) {
                    // The phone's next SMS may not leave before the deadline: not waited for.
                    self.end_lease(job, &delivery).await;
                    return JobResult::later("NoSlotBeforeDeadline", 0);
                }
                let wait = gap_end_ms.saturating_sub(self.clock.now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            match pacer
                .wait_turn(&self.store, self.clock.as_ref(), not_after)
                .await
            {
                Ok(Turn::At(_)) => {}
                Ok(Turn::Later(slot)) => {
                    self.end_lease(job, &delivery).await;
                    // Back about when the rate has room for it: not spinning meanwhile.
                    let wait_s = slot.saturating_sub(self.clock.now_us()) / 1_000_000;
                    let delay = u32::try_from(wait_s.saturating_sub(2))
                        .unwrap_or(u32::MAX)
                        .min(MAX_HAND_BACK_SECONDS);
                    return JobResult::later("NoSlotBeforeDeadline", delay);
                }
                Err(error) => {
                    self.end_lease(job, &delivery).await;
                    return JobResult::later(error.to_string(), STORE_RETRY_SECONDS);
                }
            }
            let allowed = until.map_or(SEND_TIMEOUT, |u| {
                (u + SEND_ALLOWANCE).saturating_duration_since(Instant::now())
            });
            let sent = tokio::time::timeout(allowed, self.sms.send(&phone, &job.texts[part])).await;
            let message_id = match sent {
                Ok(Ok(id)) => id,
                Ok(Err(error)) => return self.sms_failed(job, &delivery, error.code).await,
                Err(_) => {
                    // SNS may have taken it: the one window in which an SMS can go twice.
                    warn!(job = %job.id, "no answer from SNS in time: the SMS may have gone");
                    return self.sms_failed(job, &delivery, "Timeout".into()).await;
                }
            };
            let at = self.clock.now_ms();
            match self
                .store
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
                    return JobResult::later(error.to_string(), STORE_RETRY_SECONDS);
                }
            }
            last = Some(at);
            part += 1;
        }
        JobResult::Sent(part - first)
    }

    /// An SMS of the job failed: counted on the job's record with the lease's end; at the
    /// last attempt, the job is given up.
    async fn sms_failed(&self, job: &SmsJob, delivery: &str, code: String) -> JobResult {
        let failures = match self.store.end_send(job, delivery, true).await {
            Ok(failures) => failures,
            Err(error) => {
                // Not counted: the lease runs out on its own, and the job comes back.
                warn!(job = %job.id, %error, "could not count the failed SMS");
                return JobResult::later(code, STORE_RETRY_SECONDS);
            }
        };
        if failures >= self.config.send_max_attempts {
            let reason = format!("SMS not sent after {failures} attempts ({code})");
            if let Err(error) = self.give_up(job, &reason).await {
                warn!(job = %job.id, %error, "could not mark the invitation failed");
                return JobResult::later(code, STORE_RETRY_SECONDS);
            }
            return JobResult::GaveUp { code };
        }
        JobResult::Failed { code, failures }
    }

    async fn end_lease(&self, job: &SmsJob, delivery: &str) {
        if let Err(error) = self.store.end_send(job, delivery, false).await {
            // The lease runs out on its own.
            warn!(job = %job.id, %error, "could not end the job's lease");
        }
    }

    /// After the job's last attempt (or when it reached the dead-letter queue): the
    /// invitation becomes `failed` (or the sent one it replaced comes back), freeing the
    /// number, and its daily count is given back, at once. Done before, it does nothing.
    pub async fn give_up(&self, job: &SmsJob, reason: &str) -> Result<(), StoreError> {
        self.store
            .fail_job(job, reason, self.clock.now())
            .await
            .map(|_| ())
    }
}

/// The longest a job waiting for the rate is handed back for (SQS's visibility can be set
/// up to 12 hours; a quarter of an hour keeps the queue's order roughly kept).
const MAX_HAND_BACK_SECONDS: u32 = 900;

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

    fn turn(turn: Turn) -> u64 {
        match turn {
            Turn::At(slot) => slot,
            Turn::Later(slot) => panic!("no slot taken: the next is at {slot}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_past_the_limit_is_not_taken_and_stays_for_the_next_taker() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1), Pacer::new(1));
        let first = turn(a.wait_turn(&store, &Frozen, None).await.unwrap());
        // The next slot is 1.04 s later: past a limit 1 s after the first.
        let later = a
            .wait_turn(&store, &Frozen, Some(first + 1_000_000))
            .await
            .unwrap();
        assert_eq!(later, Turn::Later(first + 1_040_000));
        // Nothing was taken: another instance gets exactly that slot.
        let second = turn(b.wait_turn(&store, &Frozen, None).await.unwrap());
        assert_eq!(second, first + 1_040_000);
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_share_one_rate_one_slot_per_interval_between_them() {
        let store = MemoryStore::new();
        // Two instances of the sender: one shared record of the next slot.
        let (a, b) = (Pacer::new(1_000), Pacer::new(1_000));
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(turn(a.wait_turn(&store, &Frozen, None).await.unwrap()));
            slots.push(turn(b.wait_turn(&store, &Frozen, None).await.unwrap()));
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
        let first = turn(a.wait_check_turn(&store, &Frozen, None).await.unwrap());
        let second = turn(b.wait_check_turn(&store, &Frozen, None).await.unwrap());
        assert_eq!(first, NOW_US + CHECK_LEAD_US);
        assert_eq!(second, first + 20_800, "shared between instances");
        // The SMS pace is another record: its first slot is not pushed back by checks.
        let sms = turn(a.wait_turn(&store, &Frozen, None).await.unwrap());
        assert_eq!(sms, NOW_US + SLOT_LEAD_US);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_the_other_instance_moved_is_taken_after_it() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1_000), Pacer::new(1_000));
        let first = turn(a.wait_turn(&store, &Frozen, None).await.unwrap());
        // b has never seen the record: its first try is refused, its second follows a's.
        let second = turn(b.wait_turn(&store, &Frozen, None).await.unwrap());
        assert_eq!(second, first + a.sms.interval_us);
        assert_eq!(
            *b.sms.known_next.lock().await,
            Some(second + b.sms.interval_us)
        );
    }
}
