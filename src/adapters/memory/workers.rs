//! In memory: the `WorkerStore` port.

use crate::domain::RegistrationRecord;
use crate::domain::invitation::{PhoneType, RegistrationStatus};
use crate::domain::worker::Worker;
use crate::ports::{RegisterOutcome, StoreError, WorkerStore};

use super::*;
use crate::domain::event::OrgEvent;

impl WorkerStore for MemoryStore {
    async fn invitation_by_token(
        &self,
        token: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let state = self.reachable()?;
        Ok(state
            .records
            .values()
            .find(|r| r.token.as_str() == token)
            .cloned())
    }

    async fn register(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
    ) -> Result<RegisterOutcome, StoreError> {
        let mut state = self.reachable()?;
        let phone = invitation.phone.as_str();
        let still_pending = state
            .records
            .get(phone)
            .is_some_and(|r| r.token == invitation.token && r.is_live(worker.registered_at));
        if !still_pending {
            return Ok(RegisterOutcome::InvitationChanged);
        }
        let key = (worker.domain.clone(), worker.username.clone());
        if state.workers.contains_key(&key) {
            return Ok(RegisterOutcome::UsernameTaken);
        }
        state.workers.insert(key, worker.clone());
        if let Some(record) = state.records.get_mut(phone) {
            record.status = RegistrationStatus::Registered;
            record.registered_at = Some(worker.registered_at);
        }
        if let Some(batch) = &invitation.batch_id {
            state.progress.entry(batch.clone()).or_default().registered += 1;
        }
        state.write_event(OrgEvent::worker_registered(
            invitation.into(),
            &worker.into(),
            worker.registered_at,
        ));
        Ok(RegisterOutcome::Registered)
    }

    async fn set_phone_type(
        &self,
        invitation: &RegistrationRecord,
        phone_type: PhoneType,
    ) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if let Some(record) = state.records.get_mut(invitation.phone.as_str())
            && record.token == invitation.token
        {
            record.phone_type = Some(phone_type);
        }
        Ok(())
    }
}
