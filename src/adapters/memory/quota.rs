//! In memory: the `DailyQuota` port.

use crate::ports::{DailyQuota, StoreError};

use super::*;

impl DailyQuota for MemoryStore {
    async fn reserve(
        &self,
        domain: &str,
        day: &str,
        n: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        let used = state
            .usage
            .entry((domain.to_owned(), day.to_owned()))
            .or_insert(0);
        if u64::from(*used) + u64::from(n) > u64::from(limit) {
            return Ok(false);
        }
        *used += n;
        Ok(true)
    }

    async fn refund(&self, domain: &str, day: &str, n: u32) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        let used = state
            .usage
            .entry((domain.to_owned(), day.to_owned()))
            .or_insert(0);
        *used = used.saturating_sub(n);
        Ok(())
    }
}
