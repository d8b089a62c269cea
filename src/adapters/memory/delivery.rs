//! In memory: the `DeliveryLog` port.

use crate::domain::RegistrationRecord;
use crate::domain::receipt::DeliveryReport;
use crate::ports::{BatchProgress, DayUsage, DeliveryLog, ReceiptOutcome, StoreError};

use super::*;
use crate::domain::receipt::Counter;

impl DeliveryLog for MemoryStore {
    async fn record_receipt(
        &self,
        receipt: &DeliveryReport,
        now: u64,
    ) -> Result<ReceiptOutcome, StoreError> {
        let mut state = self.reachable()?;
        let Some((sms, recorded)) = state.messages.get_mut(&receipt.message_id) else {
            return Ok(ReceiptOutcome::Unknown);
        };
        if recorded.is_some() {
            return Ok(ReceiptOutcome::Duplicate);
        }
        *recorded = Some(receipt.clone());
        let sms = sms.clone();
        let effects = receipt.effects(sms.part, sms.token.as_deref(), sms.batch_id.as_deref());
        let day = state
            .days
            .entry((
                sms.domain.clone(),
                crate::domain::time::utc_day(sms.sent_at),
            ))
            .or_default();
        match effects.counter {
            Counter::Delivered => day.delivered += 1,
            Counter::DeliveryFailed => day.delivery_failed += 1,
        }
        day.parts_delivered += effects.parts_delivered;
        day.price_usd += receipt.price_usd;
        if let Some(batch) = effects.parts_batch {
            state
                .progress
                .entry(batch.to_owned())
                .or_default()
                .parts_delivered += effects.parts_delivered;
        }
        if let Some(batch) = effects.batch {
            let progress = state.progress.entry(batch.to_owned()).or_default();
            match effects.counter {
                Counter::Delivered => progress.delivered += 1,
                Counter::DeliveryFailed => progress.delivery_failed += 1,
            }
        }
        if let Some(token) = effects.parts_invitation
            && let Some(record) = state.records.get_mut(&sms.phone)
            && record.token.as_str() == token
        {
            // As in DynamoDB: the first SMS's receipt shown once, its parts with it.
            if effects.invitation.is_none() {
                record.parts_delivered += effects.parts_delivered;
            } else if record.delivery.is_none() {
                record.delivery = Some(receipt.on_invitation(now));
                record.parts_delivered += effects.parts_delivered;
            }
        }
        Ok(ReceiptOutcome::Recorded)
    }

    async fn mark_opened(
        &self,
        invitation: &RegistrationRecord,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        let first = match state.records.get_mut(invitation.phone.as_str()) {
            Some(r) if r.token == invitation.token && r.opened_at.is_none() => {
                r.opened_at = Some(now);
                true
            }
            _ => false,
        };
        if first && let Some(batch) = &invitation.batch_id {
            state.progress.entry(batch.clone()).or_default().opened += 1;
        }
        Ok(())
    }

    async fn batch_progress(&self, batch_id: &str) -> Result<Option<BatchProgress>, StoreError> {
        let state = self.reachable()?;
        Ok(state
            .progress
            .get(batch_id)
            .filter(|p| !p.domain.is_empty())
            .map(|p| BatchProgress {
                batch_id: batch_id.to_owned(),
                ..p.clone()
            }))
    }

    async fn day_usage(&self, domain: &str, day: &str) -> Result<DayUsage, StoreError> {
        let state = self.reachable()?;
        let mut usage = state
            .days
            .get(&(domain.to_owned(), day.to_owned()))
            .cloned()
            .unwrap_or_default();
        usage.invitations = u64::from(
            state
                .usage
                .get(&(domain.to_owned(), day.to_owned()))
                .copied()
                .unwrap_or(0),
        );
        Ok(usage)
    }
}
