//! In memory: the `InvitationStore` port.

use crate::adapters::dynamodb::item::{item_to_json, registration_item};
use crate::domain::invitation::RegistrationStatus;
use crate::domain::invitation::{ClaimCheck, ClaimRules};
use crate::domain::{Invitation, PhoneNumber, RegistrationRecord};
use crate::ports::{BatchRecord, Claim, InvitationPage, InvitationStore, ListQuery, StoreError};

use super::*;

impl InvitationStore for MemoryStore {
    type Previous = RegistrationRecord;

    async fn claim(
        &self,
        invitation: &Invitation,
        rules: ClaimRules<'_>,
    ) -> Result<Claim<RegistrationRecord>, StoreError> {
        let mut state = self.state();
        let phone = invitation.phone.as_str();
        if state.down || state.failing_claims.contains(phone) {
            return Err(unavailable());
        }
        if let Some(existing) = state.records.get(phone) {
            let queued = |r: &RegistrationRecord| {
                r.batch_id
                    .as_ref()
                    .and_then(|b| state.batches.get(b))
                    .is_some_and(|tokens| tokens.contains(r.token.as_str()))
            };
            let in_use = match existing.claim_check(rules) {
                ClaimCheck::Claimable => false,
                ClaimCheck::InUse => true,
                ClaimCheck::UnlessQueued => queued(existing),
            };
            if in_use {
                return Ok(Claim::InUse);
            }
        }
        let previous = state.records.insert(phone.to_owned(), invitation.clone());
        Ok(Claim::Taken { previous })
    }

    async fn record_batch(&self, batch: &BatchRecord) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        state
            .batches
            .insert(batch.id.clone(), batch.queued.iter().cloned().collect());
        let progress = state.progress.entry(batch.id.clone()).or_default();
        progress.domain = batch.domain.clone();
        progress.queued += batch.queued.len() as u64;
        progress.scheduled += batch.scheduled;
        // Settled before the record came (the sender is quick): complete now.
        state.complete_batch(&batch.id, batch.queued_at);
        Ok(())
    }

    fn encode_previous(&self, previous: &RegistrationRecord) -> serde_json::Value {
        item_to_json(&registration_item(previous))
    }

    async fn release(
        &self,
        invitation: &Invitation,
        previous: Option<RegistrationRecord>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let phone = invitation.phone.as_str();
        if state.down || state.failing_releases.contains(phone) {
            return Err(unavailable());
        }
        if state
            .records
            .get(phone)
            .is_some_and(|r| r.token == invitation.token && r.status == RegistrationStatus::Queued)
        {
            match previous {
                Some(previous) => state.records.insert(phone.to_owned(), previous),
                None => state.records.remove(phone),
            };
        }
        Ok(())
    }

    async fn find(&self, phone: &PhoneNumber) -> Result<Option<RegistrationRecord>, StoreError> {
        let state = self.reachable()?;
        Ok(state.records.get(phone.as_str()).cloned())
    }

    async fn list(&self, query: &ListQuery) -> Result<InvitationPage, StoreError> {
        drop(self.reachable()?);
        Ok(self.listing(query))
    }
}

impl MemoryStore {
    fn listing(&self, query: &ListQuery) -> InvitationPage {
        let state = self.state();
        let mut records: Vec<&RegistrationRecord> = state
            .records
            .values()
            .filter(|r| r.domain == query.domain)
            .filter(|r| query.status.is_none_or(|s| r.shown_status(query.now) == s))
            .collect();
        // The index's order, descending.
        records.sort_by(|a, b| query.order_of(b).cmp(&query.order_of(a)));
        let start = query.after.as_ref().map_or(0, |after| {
            records
                .iter()
                .position(|r| query.order_of(r) < query.order_of_cursor(after))
                .unwrap_or(records.len())
        });
        let items: Vec<RegistrationRecord> = records[start..]
            .iter()
            .take(query.limit)
            .map(|r| (*r).clone())
            .collect();
        let more = records.len() > start + items.len();
        InvitationPage::of(items, more)
    }
}
