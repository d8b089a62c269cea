//! The deployment's paces, shared by every instance through one record per pace in the
//! store ([`RateSlots`]): SMS at `SMS_RATE_PER_SECOND`, opt-out questions at the
//! provider's rate for them, and each CommCare HQ project's account creations at HQ's
//! rate for a project ([`Pace::commcare_hq`]).

use std::time::Duration;

use crate::ports::{Clock, RateSlots, SlotTake, StoreError};

/// Delay on the way to SNS that the pace allows for: the slots are spaced so that `rate`
/// SMS plus this delay take a second, so that no second ever counts `rate + 1` of them
/// (0.96 of the rate).
pub const JITTER_ALLOWANCE_US: u64 = 40_000;
/// The spacing of a pace of `rate_per_second`: `(1 s + 40 ms) / rate`, in microseconds.
pub fn interval_us(rate_per_second: u32) -> u64 {
    (1_000_000 + JITTER_ALLOWANCE_US).div_ceil(u64::from(rate_per_second.max(1)))
}

/// Tries at taking a slot that other instances keep moving, before the SMS waits for a
/// retry of its job.
const SLOT_TRIES: u32 = 50;
/// How far ahead a slot is taken when the deployment was idle: past the time the write
/// that takes it needs, so that the SMS does not leave late, close to the next one.
const SLOT_LEAD_US: u64 = 250_000;
/// The same for an opt-out check: just past the write that takes it.
const CHECK_LEAD_US: u64 = 30_000;

/// The deployment's paces: one SMS per `(1 s + 40 ms) / rate`, and one opt-out check per
/// `(1 s + 40 ms) / the provider's rate for them`, for every sender instance together,
/// never a burst.
#[derive(Debug)]
pub struct Pacer {
    sms: Pace,
    opt_out_checks: Pace,
}

impl Pacer {
    /// `checks_per_second`: the SMS provider's own rate for opt-out questions.
    pub fn new(sms_per_second: u32, checks_per_second: u32) -> Self {
        Pacer {
            sms: Pace::new("sms", sms_per_second, SLOT_LEAD_US),
            // A check needs no exact moment, only its share of the second.
            opt_out_checks: Pace::new("opt-out-check", checks_per_second, CHECK_LEAD_US),
        }
    }

    /// Takes the deployment's next `parts` SMS slots (an SMS of `parts` parts: carriers
    /// count parts) and waits for the last of them, when the rate has had room for every
    /// part; returns that moment (µs since the epoch). Slots whose last is later than
    /// `not_after` (µs) are not taken: [`Turn::Later`].
    pub async fn wait_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
        not_after: Option<u64>,
        parts: usize,
    ) -> Result<Turn, StoreError> {
        self.sms.wait_turn(slots, clock, not_after, parts).await
    }

    /// Takes the deployment's next slot for asking SNS about an opt-out, and waits for it;
    /// none later than `not_after` (µs).
    pub async fn wait_check_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
        not_after: Option<u64>,
    ) -> Result<Turn, StoreError> {
        self.opt_out_checks
            .wait_turn(slots, clock, not_after, 1)
            .await
    }
}

/// The calls a second CommCare HQ lets a new project make (`../shared/COMMCARE-HQ.md`,
/// "Throttling"), which its account creations are paced at.
pub const HQ_CALLS_PER_SECOND: u32 = 1;

/// One pace: its slots come from one shared record ([`RateSlots`], named `name`); an
/// instance takes them one at a time and remembers where the next stood.
#[derive(Debug)]
pub struct Pace {
    name: String,
    interval_us: u64,
    lead_us: u64,
    known_next: tokio::sync::Mutex<Option<u64>>,
}

impl Pace {
    fn new(name: impl Into<String>, rate_per_second: u32, lead_us: u64) -> Self {
        Pace {
            name: name.into(),
            lead_us,
            interval_us: interval_us(rate_per_second),
            known_next: tokio::sync::Mutex::new(None),
        }
    }

    /// The pace of a CommCare HQ project's account creations, shared by the registration
    /// pages and the accounts function (and by every project of the service that makes its
    /// accounts in the same HQ project).
    pub fn commcare_hq(hq: &crate::domain::account::HqProject) -> Self {
        let server = hq.base_url.trim_end_matches('/');
        Pace::new(
            format!("commcare-hq#{server}#{}", hq.domain),
            HQ_CALLS_PER_SECOND,
            CHECK_LEAD_US,
        )
    }

    /// Holds every slot back until `until_us` (µs since the epoch), for every instance:
    /// the directory asked for a pause. A later hold already there stays.
    pub async fn hold_until<L: RateSlots>(
        &self,
        slots: &L,
        until_us: u64,
    ) -> Result<(), StoreError> {
        let mut known = self.known_next.lock().await;
        for _ in 0..SLOT_TRIES {
            if known.is_some_and(|next| next >= until_us) {
                return Ok(());
            }
            match slots.take_slot(&self.name, *known, until_us).await? {
                SlotTake::Taken => {
                    *known = Some(until_us);
                    return Ok(());
                }
                SlotTake::Moved(current) => *known = current,
            }
        }
        Err(StoreError::Unavailable {
            code: "RateSlotContention".into(),
        })
    }

    /// Takes the next slot and waits for it, when it comes no later than `not_after`
    /// (µs since the epoch); otherwise takes none: [`Turn::Later`].
    pub async fn wait_turn<L: RateSlots>(
        &self,
        slots: &L,
        clock: &dyn Clock,
        not_after: Option<u64>,
        parts: usize,
    ) -> Result<Turn, StoreError> {
        let span = self.interval_us * parts.max(1) as u64;
        // The last slot of the span: when it comes, the rate had room for every part.
        let last = span - self.interval_us;
        let slot = {
            let mut known = self.known_next.lock().await;
            let mut tries = 0;
            loop {
                let slot = known.unwrap_or(0).max(clock.now_us() + self.lead_us);
                if not_after.is_some_and(|limit| slot + last > limit) {
                    // Left for an instance that can use it: taken now, it would pass
                    // unused (the rate lost) or be used past the deadline.
                    return Ok(Turn::Later(slot));
                }
                match slots.take_slot(&self.name, *known, slot + span).await? {
                    SlotTake::Taken => {
                        *known = Some(slot + span);
                        break slot + last;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;

    const CHECKS: u32 = 50;

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
    async fn an_hq_projects_pause_holds_every_taker_back_and_a_shorter_one_changes_nothing() {
        let store = MemoryStore::new();
        let hq = |domain: &str| crate::domain::account::HqProject {
            base_url: "https://www.commcarehq.org/".into(),
            domain: domain.into(),
            key_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:k".into(),
        };
        let (page, function) = (
            Pace::commcare_hq(&hq("demo")),
            Pace::commcare_hq(&hq("demo")),
        );
        let first = turn(page.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(first, NOW_US + CHECK_LEAD_US);
        // A 429: five seconds' pause, seen by the other taker.
        function
            .hold_until(&store, NOW_US + 5_000_000)
            .await
            .unwrap();
        page.hold_until(&store, NOW_US + 2_000_000).await.unwrap();
        let within = function
            .wait_turn(&store, &Frozen, Some(NOW_US + 4_000_000), 1)
            .await
            .unwrap();
        assert_eq!(within, Turn::Later(NOW_US + 5_000_000));
        let after = turn(page.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(after, NOW_US + 5_000_000);
        // One a second (and 40 ms), as HQ lets a new project call.
        let next = turn(function.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(next - after, interval_us(HQ_CALLS_PER_SECOND));
        // Another HQ project has a pace of its own.
        let other = Pace::commcare_hq(&hq("other"));
        assert_eq!(
            turn(other.wait_turn(&store, &Frozen, None, 1).await.unwrap()),
            NOW_US + CHECK_LEAD_US
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_past_the_limit_is_not_taken_and_stays_for_the_next_taker() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1, CHECKS), Pacer::new(1, CHECKS));
        let first = turn(a.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        // The next slot is 1.04 s later: past a limit 1 s after the first.
        let later = a
            .wait_turn(&store, &Frozen, Some(first + 1_000_000), 1)
            .await
            .unwrap();
        assert_eq!(later, Turn::Later(first + 1_040_000));
        // Nothing was taken: another instance gets exactly that slot.
        let second = turn(b.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(second, first + 1_040_000);
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_share_one_rate_one_slot_per_interval_between_them() {
        let store = MemoryStore::new();
        // Two instances of the sender: one shared record of the next slot.
        let (a, b) = (Pacer::new(1_000, CHECKS), Pacer::new(1_000, CHECKS));
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(turn(a.wait_turn(&store, &Frozen, None, 1).await.unwrap()));
            slots.push(turn(b.wait_turn(&store, &Frozen, None, 1).await.unwrap()));
        }
        // (1 s + 40 ms) / 1000 apart, whichever instance took them, from 250 ms ahead.
        let interval = Pacer::new(1_000, CHECKS).sms.interval_us;
        assert_eq!(interval, 1_040);
        let expected: Vec<u64> = (0..20)
            .map(|k| NOW_US + SLOT_LEAD_US + k * interval)
            .collect();
        assert_eq!(slots, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn opt_out_checks_have_their_own_shared_pace_of_50_a_second() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1_000, CHECKS), Pacer::new(1_000, CHECKS));
        assert_eq!(a.opt_out_checks.interval_us, 20_800);
        let first = turn(a.wait_check_turn(&store, &Frozen, None).await.unwrap());
        let second = turn(b.wait_check_turn(&store, &Frozen, None).await.unwrap());
        assert_eq!(first, NOW_US + CHECK_LEAD_US);
        assert_eq!(second, first + 20_800, "shared between instances");
        // The SMS pace is another record: its first slot is not pushed back by checks.
        let sms = turn(a.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(sms, NOW_US + SLOT_LEAD_US);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_the_other_instance_moved_is_taken_after_it() {
        let store = MemoryStore::new();
        let (a, b) = (Pacer::new(1_000, CHECKS), Pacer::new(1_000, CHECKS));
        let first = turn(a.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        // b has never seen the record: its first try is refused, its second follows a's.
        let second = turn(b.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(second, first + a.sms.interval_us);
        assert_eq!(
            *b.sms.known_next.lock().await,
            Some(second + b.sms.interval_us)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_sms_of_three_parts_takes_three_slots_and_goes_at_the_last() {
        let store = MemoryStore::new();
        let pacer = Pacer::new(1, CHECKS);
        let interval = pacer.sms.interval_us;
        let first = turn(pacer.wait_turn(&store, &Frozen, None, 3).await.unwrap());
        assert_eq!(first, NOW_US + SLOT_LEAD_US + 2 * interval);
        // The next SMS's slot follows the three.
        let next = turn(pacer.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(next, NOW_US + SLOT_LEAD_US + 3 * interval);
        // Three parts whose last slot is past the limit are not taken at all.
        let other = Pacer::new(1, CHECKS);
        let later = other
            .wait_turn(&store, &Frozen, Some(next + interval), 3)
            .await
            .unwrap();
        assert_eq!(later, Turn::Later(next + interval));
        let after = turn(other.wait_turn(&store, &Frozen, None, 1).await.unwrap());
        assert_eq!(after, next + interval, "nothing was taken");
    }
}
