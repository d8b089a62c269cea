//! In memory: the `OptOuts` port.

use std::collections::HashSet;

use crate::domain::PhoneNumber;
use crate::domain::invitation::RegistrationStatus;
use crate::ports::{OptOuts, StoreError};

use super::*;

impl OptOuts for MemoryStore {
    async fn opt_out(&self, phone: &PhoneNumber, now: u64, cause: &str) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if !state.opted_out.contains_key(phone.as_str()) {
            state.opted_out.insert(phone.as_str().to_owned(), now);
            state.write_opt_change(phone, true, cause, now);
        }
        let mut batch = None;
        if let Some(record) = state.records.get_mut(phone.as_str())
            && record.status.is_open()
        {
            let unsent = record.status == RegistrationStatus::Queued;
            record.status = RegistrationStatus::OptedOut;
            batch = record
                .batch_id
                .clone()
                .map(|b| (b, unsent.then(|| record.token.as_str().to_owned())));
        }
        if let Some((batch, unsent)) = batch {
            state.progress.entry(batch.clone()).or_default().opted_out += 1;
            if let Some(token) = unsent {
                state.settle(&batch, &token, now);
            }
        }
        Ok(())
    }

    async fn opt_in(&self, phone: &PhoneNumber, now: u64, cause: &str) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if state.opted_out.remove(phone.as_str()).is_some() {
            state.write_opt_change(phone, false, cause, now);
        }
        Ok(())
    }

    async fn opted_out(&self, phones: &[PhoneNumber]) -> Result<HashSet<String>, StoreError> {
        let state = self.reachable()?;
        Ok(phones
            .iter()
            .filter(|p| state.opted_out.contains_key(p.as_str()))
            .map(|p| p.as_str().to_owned())
            .collect())
    }
}
