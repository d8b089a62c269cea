//! In memory: the sender's records, the `SendLedger` and `RateSlots` ports.

use crate::adapters::dynamodb::item::{item_from_json, registration_from_item};
use crate::domain::invitation::RegistrationStatus;
use crate::domain::job::{JobKind, SmsJob};
use crate::ports::{RateSlots, SendLedger, SendStart, SentSms, SlotTake, StoreError};

use super::*;
use crate::domain::event::{InvitationRef, OrgEvent};

impl SendLedger for MemoryStore {
    async fn begin_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<SendStart, StoreError> {
        let mut state = self.reachable()?;
        let key = ledger_key(job);
        if let JobKind::Invitation { token, .. } = &job.kind {
            let why = match state.records.get_mut(job.phone.as_str()) {
                None => Some("released"),
                Some(r) => {
                    let why = r.refuses_job(token, now_ms / 1000);
                    if why.is_none() {
                        r.enqueued_at.get_or_insert(now_ms / 1000);
                    }
                    why
                }
            };
            if let Some(why) = why {
                return Ok(SendStart::Drop(why));
            }
        }
        let entry = state.ledger.entry(key).or_default();
        if entry.sent >= job.texts.len() {
            return Ok(SendStart::Drop("already sent"));
        }
        if entry.lease_until > now_ms && entry.lease_owner.as_deref() != Some(delivery) {
            return Ok(SendStart::Busy);
        }
        entry.lease_until = now_ms + lease_ms;
        entry.lease_owner = Some(delivery.to_owned());
        Ok(SendStart::Go {
            sent: entry.sent,
            last_sms_ms: entry.last_sms_ms,
        })
    }

    async fn record_sent(
        &self,
        job: &SmsJob,
        delivery: &str,
        part: usize,
        now_ms: u64,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        if let JobKind::Invitation { token, .. } = &job.kind
            && !state
                .records
                .get(job.phone.as_str())
                .is_some_and(|r| r.token.as_str() == token && r.status.is_open())
        {
            return Ok(false);
        }
        let entry = state.ledger.entry(ledger_key(job)).or_default();
        if entry.lease_owner.as_deref() != Some(delivery) || entry.sent != part {
            return Ok(false);
        }
        entry.sent = part + 1;
        entry.last_sms_ms = Some(now_ms);
        if entry.sent >= job.texts.len() {
            entry.lease_until = 0;
            entry.lease_owner = None;
        }
        let sms = SentSms::of(job, part, now_ms, message_id);
        if let Some(r) = state.records.get_mut(job.phone.as_str())
            && matches!(job.kind, JobKind::Invitation { .. })
        {
            r.status = RegistrationStatus::Pending;
            r.sent_at.get_or_insert(now_ms / 1000);
            r.parts_sent += sms.sms_parts as u64;
        }
        let day = crate::domain::time::utc_day(sms.sent_at);
        let usage = state.days.entry((sms.domain.clone(), day)).or_default();
        usage.sms_sent += 1;
        usage.parts_sent += sms.sms_parts as u64;
        if sms.token.is_some()
            && let Some(batch) = &sms.batch_id
        {
            let progress = state.progress.entry(batch.clone()).or_default();
            progress.parts_sent += sms.sms_parts as u64;
            if sms.part == 0 {
                progress.sent += 1;
                if let Some(token) = &sms.token {
                    state.settle(batch, token, sms.sent_at);
                }
            }
        }
        state.messages.insert(sms.message_id.clone(), (sms, None));
        Ok(true)
    }

    async fn end_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        failed: bool,
    ) -> Result<u32, StoreError> {
        let mut state = self.reachable()?;
        match state.ledger.get_mut(&ledger_key(job)) {
            Some(entry) if entry.lease_owner.as_deref() == Some(delivery) => {
                entry.lease_until = 0;
                entry.lease_owner = None;
                entry.failures += u32::from(failed);
                Ok(entry.failures)
            }
            _ => Ok(0),
        }
    }

    async fn settle_dropped(&self, job: &SmsJob) -> Result<(), StoreError> {
        if let JobKind::Invitation {
            token,
            batch_id: Some(batch),
            ..
        } = &job.kind
        {
            // The port takes no time; the event's time is only informative.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.reachable()?.settle(batch, token, now);
        }
        Ok(())
    }

    async fn fail_job(&self, job: &SmsJob, reason: &str, now: u64) -> Result<bool, StoreError> {
        let JobKind::Invitation {
            token,
            previous,
            batch_id,
            created_at,
        } = &job.kind
        else {
            return Ok(false);
        };
        let mut state = self.reachable()?;
        if let Some(batch) = batch_id
            && state.records.get(job.phone.as_str()).is_some_and(|r| {
                r.token.as_str() == token && r.status == RegistrationStatus::Queued
            })
        {
            state.progress.entry(batch.clone()).or_default().send_failed += 1;
            state.settle(batch, token, now);
        }
        let Some(record) = state.records.get_mut(job.phone.as_str()) else {
            return Ok(false);
        };
        if record.token.as_str() != token || record.status != RegistrationStatus::Queued {
            return Ok(false);
        }
        let restore = previous
            .as_ref()
            .and_then(item_from_json)
            .and_then(|item| registration_from_item(&item).ok())
            .filter(|p| crate::domain::invitation::restorable(Some(p.status), p.expires_at, now));
        match restore {
            Some(previous) => *record = previous,
            None => {
                record.status = RegistrationStatus::Failed;
                record.failure_reason = Some(reason.to_owned());
            }
        }
        // The day's invitation is given back with the failure.
        let day = crate::domain::time::utc_day(*created_at);
        let used = state.usage.entry((job.domain.clone(), day)).or_insert(0);
        *used = used.saturating_sub(1);
        let invitation = InvitationRef {
            project: &job.domain,
            token,
            batch_id: batch_id.as_deref(),
            phone: &job.phone,
        };
        state.write_event(OrgEvent::invitation_failed(invitation, reason, now));
        Ok(true)
    }
}

impl RateSlots for MemoryStore {
    async fn take_slot(
        &self,
        name: &str,
        expected: Option<u64>,
        next: u64,
    ) -> Result<SlotTake, StoreError> {
        let mut state = self.reachable()?;
        let current = state.next_slots.get(name).copied();
        if current != expected {
            return Ok(SlotTake::Moved(current));
        }
        state.next_slots.insert(name.to_owned(), next);
        Ok(SlotTake::Taken)
    }
}
