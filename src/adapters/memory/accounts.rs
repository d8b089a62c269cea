//! In memory: the `AccountStore` port, as the DynamoDB one behaves.

use crate::domain::RegistrationRecord;
use crate::domain::account::{AccountState, AccountStatus};
use crate::domain::event::OrgEvent;
use crate::domain::invitation::RegistrationStatus;
use crate::domain::worker::Worker;
use crate::ports::{AccountOutcome, AccountStore, ClaimOutcome, StoreError};

use super::*;

impl StoreState {
    /// The invitation of `invitation`'s number, when `attempt` holds it with `status`.
    fn attempt_of(
        &mut self,
        invitation: &RegistrationRecord,
        attempt: &str,
        status: AccountStatus,
    ) -> Option<&mut RegistrationRecord> {
        self.records.get_mut(invitation.phone.as_str()).filter(|r| {
            r.account
                .as_ref()
                .is_some_and(|a| a.attempt == attempt && a.status == status)
        })
    }

    /// Writes `outcome` on the account of `phone`; for a settled one, its count and event.
    fn settle_account(&mut self, phone: &str, outcome: AccountOutcome<'_>, now: u64) {
        let Some(record) = self.records.get_mut(phone) else {
            return;
        };
        let Some(account) = record.account.as_mut() else {
            return;
        };
        let (status, reason) = match outcome {
            AccountOutcome::Created => (AccountStatus::Created, None),
            AccountOutcome::Pending(why) => (AccountStatus::Pending, Some(why.to_owned())),
            AccountOutcome::Failed(why) => (AccountStatus::Failed, Some(why.to_owned())),
        };
        account.status = status;
        account.reason = reason;
        let account = account.clone();
        let record = record.clone();
        if !status.is_settled() {
            return;
        }
        self.sealed.remove(phone);
        let event = match outcome {
            AccountOutcome::Failed(why) => OrgEvent::account_failed(
                (&record).into(),
                &account.directory,
                &account.username,
                &account.attempt,
                why,
                now,
            ),
            _ => OrgEvent::account_created(
                (&record).into(),
                &account.directory,
                &account.username,
                &account.attempt,
                now,
            ),
        };
        self.write_event(event);
        if let Some(batch) = &record.batch_id {
            let progress = self.progress.entry(batch.clone()).or_default();
            if status == AccountStatus::Created {
                progress.accounts_created += 1;
            } else {
                progress.accounts_failed += 1;
            }
        }
    }
}

impl AccountStore for MemoryStore {
    async fn claim_account(
        &self,
        invitation: &RegistrationRecord,
        account: &AccountState,
        sealed_password: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.reachable()?;
        let phone = invitation.phone.as_str();
        let Some(record) = state
            .records
            .get_mut(phone)
            .filter(|r| r.token == invitation.token)
        else {
            return Ok(ClaimOutcome::InvitationChanged);
        };
        match &record.account {
            Some(held) if held.attempt == account.attempt => return Ok(ClaimOutcome::Claimed),
            Some(_) => return Ok(ClaimOutcome::InFlight),
            None => {}
        }
        if !record.is_live(account.since) {
            return Ok(ClaimOutcome::InvitationChanged);
        }
        record.account = Some(account.clone());
        state
            .sealed
            .insert(phone.to_owned(), sealed_password.to_owned());
        Ok(ClaimOutcome::Claimed)
    }

    async fn release_claim(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if let Some(record) = state.attempt_of(invitation, attempt, AccountStatus::Claimed) {
            record.account = None;
            state.sealed.remove(invitation.phone.as_str());
        }
        Ok(())
    }

    async fn register_claimed(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
        attempt: &str,
        outcome: AccountOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        let Some(record) = state.attempt_of(invitation, attempt, AccountStatus::Claimed) else {
            return Ok(false);
        };
        record.status = RegistrationStatus::Registered;
        record.registered_at = Some(worker.registered_at);
        let record = record.clone();
        if let Some(batch) = &record.batch_id {
            state.progress.entry(batch.clone()).or_default().registered += 1;
        }
        state.write_event(OrgEvent::worker_registered(
            (&record).into(),
            &worker.into(),
            worker.registered_at,
        ));
        state.settle_account(invitation.phone.as_str(), outcome, worker.registered_at);
        Ok(true)
    }

    async fn settle_account(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
        outcome: AccountOutcome<'_>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        if state
            .attempt_of(invitation, attempt, AccountStatus::Pending)
            .is_none()
        {
            return Ok(false);
        }
        state.settle_account(invitation.phone.as_str(), outcome, now);
        Ok(true)
    }

    async fn mark_account_notified(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if let Some(account) = state
            .records
            .get_mut(invitation.phone.as_str())
            .and_then(|r| r.account.as_mut())
            .filter(|a| a.attempt == attempt)
        {
            account.notified = true;
        }
        Ok(())
    }

    async fn sealed_password(
        &self,
        invitation: &RegistrationRecord,
        attempt: &str,
    ) -> Result<Option<String>, StoreError> {
        let state = self.reachable()?;
        let phone = invitation.phone.as_str();
        let ours = state
            .records
            .get(phone)
            .and_then(|r| r.account.as_ref())
            .is_some_and(|a| a.attempt == attempt);
        Ok(ours.then(|| state.sealed.get(phone).cloned()).flatten())
    }
}
