//! In-memory directory, invitation store and SMS sender, with injectable faults:
//! the same rules as the real adapters, for fast tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::adapters::dynamodb::item::{
    item_from_json, item_to_json, registration_from_item, registration_item,
};
use crate::domain::Token;
use crate::domain::invitation::{ClaimCheck, ClaimRules};
use crate::domain::invitation::{PhoneType, RegistrationStatus};
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::receipt::DeliveryReport;
use crate::domain::worker::Worker;
use crate::domain::{ApiKey, Invitation, PhoneNumber, Project, RegistrationRecord};
use crate::ports::{
    BatchProgress, BatchRecord, Claim, DailyQuota, DayUsage, DeliveryLog, Directory,
    IdempotencyBegin, IdempotencyStore, InboundLog, InvitationPage, InvitationStore, JobQueue,
    ListQuery, OptOuts, PublishError, QueueError, RateSlots, ReceiptOutcome, RegisterOutcome,
    RegistrationEvents, SendLedger, SendStart, SentSms, SlotTake, SmsError, SmsFailure,
    SmsProvider, StoreError, StoredResponse, WorkerStore,
};

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        code: "InjectedFault".into(),
    }
}

#[derive(Debug, Clone)]
struct IdempotencyRecord {
    request_hash: String,
    expires_at: u64,
    /// `Err((lease, lease_until))` while running.
    answer: Result<StoredResponse, (String, u64)>,
}

#[derive(Default)]
struct StoreState {
    inbound: HashSet<String>,
    /// Replies answered, per invitation token and day.
    answers: HashMap<(String, String), HashSet<String>>,
    workers: HashMap<(String, String), Worker>,
    usage: HashMap<(String, String), u32>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    projects: HashMap<String, Project>,
    keys: Vec<ApiKey>,
    records: HashMap<String, RegistrationRecord>,
    down: bool,
    failing_claims: HashSet<String>,
    failing_releases: HashSet<String>,
    /// The deployment's next slot (µs) of each pace.
    next_slots: HashMap<String, u64>,
    /// Numbers that opted out, with when.
    opted_out: HashMap<String, u64>,
    /// Each SMS sent, by message id, with its receipt once it came.
    messages: HashMap<String, (SentSms, Option<DeliveryReport>)>,
    /// Each batch's counts.
    progress: HashMap<String, BatchProgress>,
    /// Each project's day: SMS, receipts and cost.
    days: HashMap<(String, String), DayUsage>,
    /// Each batch's tokens whose job reached the queue.
    batches: HashMap<String, HashSet<String>>,
    /// The sender's progress per job.
    ledger: HashMap<String, Progress>,
}

/// What the sender recorded of a job.
#[derive(Default)]
struct Progress {
    sent: usize,
    last_sms_ms: Option<u64>,
    lease_until: u64,
    lease_owner: Option<String>,
    /// SMS of the job that failed.
    failures: u32,
}

/// Where a job's progress is kept: on its invitation (by number and token) or its own.
fn ledger_key(job: &SmsJob) -> String {
    match &job.kind {
        JobKind::Invitation { token, .. } => format!("{}#{token}", job.phone),
        JobKind::Message => job.id.clone(),
    }
}

/// Directory and invitation store in one map, guarded by a mutex: a cheap handle
/// (`Clone`), every clone the same store, as a DynamoDB client is the same table.
#[derive(Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<StoreState>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, unless the store was set down (then every call fails as unavailable).
    fn reachable(&self) -> Result<std::sync::MutexGuard<'_, StoreState>, StoreError> {
        let state = self.state();
        if state.down {
            return Err(unavailable());
        }
        Ok(state)
    }

    pub fn put_project(&self, project: Project) {
        self.state().projects.insert(project.name.clone(), project);
    }

    pub fn put_key(&self, key: ApiKey) {
        let mut state = self.state();
        state
            .keys
            .retain(|k| !(k.username == key.username && k.domain == key.domain));
        state.keys.push(key);
    }

    pub fn put_record(&self, record: RegistrationRecord) {
        self.state()
            .records
            .insert(record.phone.as_str().to_owned(), record);
    }

    pub fn record(&self, phone: &str) -> Option<RegistrationRecord> {
        self.state().records.get(phone).cloned()
    }

    pub fn worker(&self, domain: &str, username: &str) -> Option<Worker> {
        let key = (domain.to_owned(), username.to_owned());
        self.state().workers.get(&key).cloned()
    }

    /// The tokens a batch's record lists as queued, if the batch was recorded.
    pub fn batch(&self, id: &str) -> Option<HashSet<String>> {
        self.state().batches.get(id).cloned()
    }

    /// Invitations counted for a project on a day.
    pub fn usage(&self, domain: &str, day: &str) -> u32 {
        let key = (domain.to_owned(), day.to_owned());
        self.state().usage.get(&key).copied().unwrap_or(0)
    }

    /// Every call fails, as when the store cannot be reached.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    pub fn fail_claims_for(&self, phone: &str) {
        self.state().failing_claims.insert(phone.to_owned());
    }

    pub fn fail_releases_for(&self, phone: &str) {
        self.state().failing_releases.insert(phone.to_owned());
    }

    /// Clears every injected fault.
    pub fn recover(&self) {
        let mut state = self.state();
        state.down = false;
        state.failing_claims.clear();
        state.failing_releases.clear();
    }
}

impl Directory for MemoryStore {
    async fn api_keys_of(&self, username: &str) -> Result<Vec<ApiKey>, StoreError> {
        let state = self.reachable()?;
        Ok(state
            .keys
            .iter()
            .filter(|k| k.username == username)
            .cloned()
            .collect())
    }

    async fn project(&self, domain: &str) -> Result<Option<Project>, StoreError> {
        let state = self.reachable()?;
        Ok(state.projects.get(domain).cloned())
    }
}

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

impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        now: u64,
        lease_for: u64,
        expires_after: u64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let mut state = self.reachable()?;
        let id = (domain.to_owned(), key.to_owned());
        if let Some(existing) = state.idempotency.get(&id)
            && existing.expires_at > now
        {
            match &existing.answer {
                _ if existing.request_hash != request_hash => {
                    return Ok(IdempotencyBegin::Mismatch);
                }
                Ok(response) => return Ok(IdempotencyBegin::Replay(response.clone())),
                Err((_, lease_until)) if *lease_until > now => {
                    return Ok(IdempotencyBegin::InProgress);
                }
                Err(_) => return Ok(IdempotencyBegin::Unknown),
            }
        }
        let lease = Token::generate().as_str().to_owned();
        state.idempotency.insert(
            id,
            IdempotencyRecord {
                request_hash: request_hash.to_owned(),
                expires_at: now + expires_after,
                answer: Err((lease.clone(), now + lease_for)),
            },
        );
        Ok(IdempotencyBegin::Proceed { lease })
    }

    async fn complete(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if let Some(record) = state
            .idempotency
            .get_mut(&(domain.to_owned(), key.to_owned()))
            && matches!(&record.answer, Err((l, _)) if l == lease)
        {
            record.answer = Ok(response.clone());
        }
        Ok(())
    }

    async fn abandon(&self, domain: &str, key: &str, lease: &str) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        let id = (domain.to_owned(), key.to_owned());
        if matches!(state.idempotency.get(&id), Some(r) if matches!(&r.answer, Err((l, _)) if l == lease))
        {
            state.idempotency.remove(&id);
        }
        Ok(())
    }
}

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
        if let Some(r) = state.records.get_mut(job.phone.as_str())
            && matches!(job.kind, JobKind::Invitation { .. })
        {
            r.status = RegistrationStatus::Pending;
            r.sent_at.get_or_insert(now_ms / 1000);
        }
        let sms = SentSms::of(job, part, now_ms, message_id);
        let day = crate::domain::time::utc_day(sms.sent_at);
        state
            .days
            .entry((sms.domain.clone(), day))
            .or_default()
            .sms_sent += 1;
        if sms.part == 0
            && sms.token.is_some()
            && let Some(batch) = &sms.batch_id
        {
            state.progress.entry(batch.clone()).or_default().sent += 1;
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
            .filter(|p| p.status == RegistrationStatus::Pending && p.expires_at > now);
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
        let day = state
            .days
            .entry((
                sms.domain.clone(),
                crate::domain::time::utc_day(sms.sent_at),
            ))
            .or_default();
        if receipt.delivered {
            day.delivered += 1;
        } else {
            day.delivery_failed += 1;
        }
        day.price_usd += receipt.price_usd;
        if sms.part == 0
            && let Some(token) = &sms.token
        {
            if let Some(batch) = &sms.batch_id {
                let progress = state.progress.entry(batch.clone()).or_default();
                if receipt.delivered {
                    progress.delivered += 1;
                } else {
                    progress.delivery_failed += 1;
                }
            }
            if let Some(record) = state.records.get_mut(&sms.phone)
                && record.token.as_str() == token
                && record.delivery.is_none()
            {
                record.delivery = Some(crate::domain::invitation::DeliveryReport {
                    delivered: receipt.delivered,
                    detail: receipt.provider_response.clone(),
                    price_usd: receipt.price_usd,
                    at: now,
                });
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

impl OptOuts for MemoryStore {
    async fn opt_out(&self, phone: &PhoneNumber, now: u64) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        state.opted_out.insert(phone.as_str().to_owned(), now);
        let mut batch = None;
        if let Some(record) = state.records.get_mut(phone.as_str())
            && record.status.is_open()
        {
            record.status = RegistrationStatus::OptedOut;
            batch = record.batch_id.clone();
        }
        if let Some(batch) = batch {
            state.progress.entry(batch).or_default().opted_out += 1;
        }
        Ok(())
    }

    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        self.reachable()?.opted_out.remove(phone.as_str());
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
        token: &str,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> Result<bool, StoreError> {
        let mut state = self.reachable()?;
        let answered = state
            .answers
            .entry((token.to_owned(), day.to_owned()))
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

#[derive(Default)]
struct SmsState {
    /// Jobs on the in-memory send queue, oldest first.
    queue: Vec<SmsJob>,
    failing_enqueue: HashSet<String>,
    /// The next enqueue takes its jobs, then answers this late.
    late_enqueue: Option<std::time::Duration>,
    events: Vec<serde_json::Value>,
    events_failing: bool,
    sent: Vec<(String, String)>,
    failing: HashSet<String>,
    fail_nth: HashMap<String, usize>,
    /// Numbers the provider (SNS) has opted out.
    provider_opted_out: HashSet<String>,
    opt_out_checks: std::sync::atomic::AtomicUsize,
}

/// Records every SMS instead of sending it, and stands in for the send queue and the
/// events topic too: a cheap handle (`Clone`), every clone the same.
#[derive(Default, Clone)]
pub struct MemorySms {
    state: Arc<Mutex<SmsState>>,
}

impl MemorySms {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SmsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every SMS accepted so far, as (E.164 number, text).
    pub fn sent(&self) -> Vec<(String, String)> {
        self.state().sent.clone()
    }

    pub fn sent_to(&self, phone: &str) -> Vec<String> {
        self.state()
            .sent
            .iter()
            .filter(|(to, _)| to == phone)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// Every SMS to `phone` fails.
    pub fn fail_for(&self, phone: &str) {
        self.state().failing.insert(phone.to_owned());
    }

    /// Takes every job off the in-memory send queue, oldest first.
    pub fn take_jobs(&self) -> Vec<SmsJob> {
        std::mem::take(&mut self.state().queue)
    }

    /// Jobs waiting on the in-memory send queue.
    pub fn queued_jobs(&self) -> Vec<SmsJob> {
        self.state().queue.clone()
    }

    /// Jobs for `phone` cannot be queued.
    /// The next enqueue puts its jobs on the queue, then answers `late` later (an answer
    /// that the deadline may cut off).
    pub fn answer_next_enqueue_late(&self, late: std::time::Duration) {
        self.state().late_enqueue = Some(late);
    }

    pub fn fail_enqueue_for(&self, phone: &str) {
        self.state().failing_enqueue.insert(phone.to_owned());
    }

    /// `worker_registered` events published so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.state().events.clone()
    }

    pub fn fail_events(&self) {
        self.state().events_failing = true;
    }

    /// Clears every injected fault.
    pub fn recover(&self) {
        let mut state = self.state();
        state.events_failing = false;
        state.failing.clear();
        state.failing_enqueue.clear();
        state.fail_nth.clear();
    }

    /// The provider answers that `phone` is opted out.
    pub fn provider_opts_out(&self, phone: &str) {
        self.state().provider_opted_out.insert(phone.to_owned());
    }

    /// How many times the provider was asked whether a number is opted out.
    pub fn opt_out_checks(&self) -> usize {
        self.state()
            .opt_out_checks
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The `n`th SMS (counting from 1) to `phone` fails; earlier ones go through.
    pub fn fail_nth_for(&self, phone: &str, n: usize) {
        self.state().fail_nth.insert(phone.to_owned(), n);
    }
}

impl SmsProvider for MemorySms {
    /// As SNS's.
    const OPT_OUT_CHECKS_PER_SECOND: u32 = 50;

    async fn send(&self, to: &PhoneNumber, text: &str) -> Result<String, SmsError> {
        let mut state = self.state();
        let phone = to.as_str();
        let attempt = state.sent.iter().filter(|(p, _)| p == phone).count() + 1;
        if state.failing.contains(phone) || state.fail_nth.get(phone) == Some(&attempt) {
            return Err(SmsError::new(SmsFailure::Failed, "InjectedFault"));
        }
        state.sent.push((phone.to_owned(), text.to_owned()));
        Ok(format!("mem-{}", state.sent.len()))
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        let state = self.state();
        state
            .opt_out_checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(state.provider_opted_out.contains(to.as_str()))
    }

    /// The stand-in for SNS reads SNS's delivery status log.
    fn read_report(line: &str) -> Option<DeliveryReport> {
        crate::adapters::sns::read_delivery_status(line)
    }
}

impl JobQueue for MemorySms {
    async fn enqueue(&self, jobs: &[SmsJob]) -> Vec<Result<(), QueueError>> {
        let (results, late) = {
            let mut state = self.state();
            let results = jobs
                .iter()
                .map(|job| {
                    if state.failing_enqueue.contains(job.phone.as_str()) {
                        return Err(QueueError {
                            code: "InjectedFault".into(),
                        });
                    }
                    state.queue.push(job.clone());
                    Ok(())
                })
                .collect();
            (results, state.late_enqueue.take())
        };
        if let Some(late) = late {
            tokio::time::sleep(late).await;
        }
        results
    }

    async fn retry_later(
        &self,
        _receipt_handle: &str,
        _delay_seconds: u32,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

impl RegistrationEvents for MemorySms {
    async fn worker_registered(&self, event: &serde_json::Value) -> Result<(), PublishError> {
        let mut state = self.state();
        if state.events_failing {
            return Err(PublishError {
                code: "InjectedFault".into(),
            });
        }
        state.events.push(event.clone());
        Ok(())
    }
}
