//! In memory: the `InboundLog` port.

use crate::domain::PhoneNumber;
use crate::ports::{InboundLog, StoreError};

use super::*;

impl InboundLog for MemoryStore {
    async fn first_time(&self, message_id: &str, _now: u64) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        Ok(state.inbound.insert(message_id.to_owned()))
    }

    async fn forget(&self, message_id: &str) -> Result<(), StoreError> {
        self.state().inbound.remove(message_id);
        Ok(())
    }

    async fn may_answer(
        &self,
        phone: &PhoneNumber,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        let answered = state
            .answers
            .entry((phone.as_str().to_owned(), day.to_owned()))
            .or_default();
        if answered.contains(message_id) {
            return Ok(true);
        }
        if answered.len() >= cap {
            return Ok(false);
        }
        answered.insert(message_id.to_owned());
        Ok(true)
    }
}
