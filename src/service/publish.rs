//! Putting the outbox's events on the bus: in batches the bus takes (entries and bytes),
//! the entries it refuses put again a few times, with growing pauses.

use std::time::Duration;

use tracing::warn;

use crate::domain::event::OrgEvent;
use crate::ports::EventBus;

/// How often an event is offered to the bus within one invocation before it is reported
/// failed (and its batch retried by the event source mapping).
pub const PUT_TRIES: u32 = 4;
/// The pause before the second try; it doubles before each further one.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Puts events on a bus.
pub struct Publisher<B> {
    bus: B,
    tries: u32,
    first_pause: Duration,
}

impl<B: EventBus> Publisher<B> {
    pub fn new(bus: B) -> Self {
        Publisher {
            bus,
            tries: PUT_TRIES,
            first_pause: FIRST_PAUSE,
        }
    }

    /// With other tries and pauses (tests).
    pub fn with_tries(mut self, tries: u32, first_pause: Duration) -> Self {
        self.tries = tries.max(1);
        self.first_pause = first_pause;
        self
    }

    pub fn bus(&self) -> &B {
        &self.bus
    }

    /// Puts every event; for each, whether the bus took it. An event the bus took may
    /// still be put again (a call that failed as a whole after it applied): consumers
    /// dedupe on `event_id`.
    pub async fn publish(&self, events: &[OrgEvent]) -> Vec<bool> {
        let mut taken = vec![false; events.len()];
        let mut pending: Vec<usize> = (0..events.len()).collect();
        let mut pause = self.first_pause;
        for attempt in 0..self.tries {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
            let mut refused = Vec::new();
            for batch in batches::<B>(events, &pending) {
                let entries: Vec<&OrgEvent> = batch.iter().map(|&i| &events[i]).collect();
                match self.bus.put(&entries).await {
                    Ok(results) => {
                        for (n, &i) in batch.iter().enumerate() {
                            match results.get(n) {
                                Some(Ok(())) => taken[i] = true,
                                Some(Err(error)) => {
                                    warn!(%error, event_id = events[i].event_id, "entry refused");
                                    refused.push(i);
                                }
                                None => refused.push(i),
                            }
                        }
                    }
                    Err(error) => {
                        warn!(%error, entries = batch.len(), "put failed");
                        refused.extend(batch);
                    }
                }
            }
            // An entry larger than a whole put can never be taken: not offered again.
            refused.retain(|&i| B::entry_size(&events[i]) <= B::MAX_BYTES);
            pending = refused;
            if pending.is_empty() {
                break;
            }
        }
        taken
    }
}

/// `pending` (indexes into `events`, in order) cut into puts of at most `MAX_ENTRIES`
/// entries and `MAX_BYTES` bytes; an entry too large for any put is left out.
fn batches<B: EventBus>(events: &[OrgEvent], pending: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let size = B::entry_size(&events[i]);
        if size > B::MAX_BYTES {
            warn!(
                event_id = events[i].event_id,
                size, "event too large for the bus"
            );
            continue;
        }
        if current.len() == B::MAX_ENTRIES || bytes + size > B::MAX_BYTES {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryBus;
    use crate::domain::event::DetailType;
    use serde_json::json;

    fn event(n: usize, pad: usize) -> OrgEvent {
        OrgEvent {
            event_id: format!("e{n}"),
            detail_type: DetailType::WorkerOptedIn,
            at: 1,
            detail: json!({ "event_id": format!("e{n}"), "pad": "x".repeat(pad) }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn events_go_in_puts_of_at_most_ten_entries() {
        let bus = MemoryBus::default();
        let events: Vec<_> = (0..23).map(|n| event(n, 0)).collect();
        let taken = Publisher::new(bus.clone()).publish(&events).await;
        assert!(taken.iter().all(|&t| t));
        assert_eq!(bus.put_sizes(), vec![10, 10, 3]);
        assert_eq!(bus.published().len(), 23);
    }

    #[tokio::test(start_paused = true)]
    async fn a_put_never_holds_more_than_256_kb() {
        let bus = MemoryBus::default();
        let events: Vec<_> = (0..5).map(|n| event(n, 100 * 1024)).collect();
        let taken = Publisher::new(bus.clone()).publish(&events).await;
        assert!(taken.iter().all(|&t| t));
        assert_eq!(bus.put_sizes(), vec![2, 2, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_the_bus_refuses_are_put_again() {
        let bus = MemoryBus::default();
        // Every other entry of the first put refused, as PutEvents answers when throttled.
        bus.refuse_entries(&["e1", "e3"], 1);
        let events: Vec<_> = (0..5).map(|n| event(n, 0)).collect();
        let taken = Publisher::new(bus.clone()).publish(&events).await;
        assert!(taken.iter().all(|&t| t));
        assert_eq!(bus.put_sizes(), vec![5, 2]);
        let mut ids: Vec<_> = bus.published().into_iter().map(|e| e.event_id).collect();
        ids.sort();
        assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_refused_at_every_try_is_reported_not_taken() {
        let bus = MemoryBus::default();
        bus.refuse_entries(&["e2"], u32::MAX);
        let events: Vec<_> = (0..3).map(|n| event(n, 0)).collect();
        let taken = Publisher::new(bus.clone()).publish(&events).await;
        assert_eq!(taken, [true, true, false]);
        assert_eq!(bus.put_sizes(), vec![3, 1, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_put_is_made_again_whole() {
        let bus = MemoryBus::default();
        // Each failed put applied before its answer was lost: the events are on the bus
        // three times, once under each id (consumers dedupe on it).
        bus.fail_puts(2);
        let events: Vec<_> = (0..3).map(|n| event(n, 0)).collect();
        let taken = Publisher::new(bus.clone()).publish(&events).await;
        assert!(taken.iter().all(|&t| t));
        assert_eq!(bus.put_sizes(), vec![3, 3, 3]);
        let ids: std::collections::BTreeSet<_> =
            bus.published().into_iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_too_large_for_any_put_is_reported_not_taken_without_a_put() {
        let bus = MemoryBus::default();
        let events = vec![event(0, 300 * 1024), event(1, 0)];
        let taken = Publisher::new(bus.clone()).publish(&events).await;
        assert_eq!(taken, [false, true]);
        assert_eq!(bus.put_sizes(), vec![1]);
    }
}
