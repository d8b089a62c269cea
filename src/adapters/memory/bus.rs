//! An event bus in memory, with injectable faults (whole puts failed, entries refused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::event::OrgEvent;
use crate::ports::{BusError, EventBus};

#[derive(Default)]
struct BusState {
    published: Vec<OrgEvent>,
    put_sizes: Vec<usize>,
    failing_puts: u32,
    /// Entries refused by event id, with how many more times.
    refusing: HashMap<String, u32>,
}

/// What reached the bus, every put's size, and faults to inject.
#[derive(Clone, Default)]
pub struct MemoryBus {
    state: Arc<Mutex<BusState>>,
}

impl MemoryBus {
    fn state(&self) -> std::sync::MutexGuard<'_, BusState> {
        self.state.lock().expect("bus state")
    }

    /// Every event the bus took, in order, duplicates included.
    pub fn published(&self) -> Vec<OrgEvent> {
        self.state().published.clone()
    }

    /// How many entries each put carried, failed ones included.
    pub fn put_sizes(&self) -> Vec<usize> {
        self.state().put_sizes.clone()
    }

    /// The next `n` puts fail as a whole, after applying (a 500 whose write went through).
    pub fn fail_puts(&self, n: u32) {
        self.state().failing_puts = n;
    }

    /// The entries with these event ids are refused the next `times` times they come.
    pub fn refuse_entries(&self, ids: &[&str], times: u32) {
        let mut state = self.state();
        for id in ids {
            state.refusing.insert((*id).to_owned(), times);
        }
    }
}

impl EventBus for MemoryBus {
    async fn put(&self, events: &[&OrgEvent]) -> Result<Vec<Result<(), BusError>>, BusError> {
        let mut state = self.state();
        state.put_sizes.push(events.len());
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            let refused = match state.refusing.get_mut(&event.event_id) {
                Some(times) if *times > 0 => {
                    *times -= 1;
                    true
                }
                _ => false,
            };
            if refused {
                results.push(Err(BusError {
                    code: "ThrottlingException".into(),
                }));
            } else {
                state.published.push((*event).clone());
                results.push(Ok(()));
            }
        }
        if state.failing_puts > 0 {
            state.failing_puts -= 1;
            return Err(BusError {
                code: "InternalException".into(),
            });
        }
        Ok(results)
    }

    fn entry_size(event: &OrgEvent) -> usize {
        crate::adapters::eventbridge::entry_size(event)
    }
}
