//! In-memory adapters, with injectable faults: the same rules as the real adapters, for
//! fast tests. One file per port; the store's state is here.

mod accounts;
mod bus;
mod delivery;
mod directory;
mod idempotency;
mod inbound;
mod invitations;
mod ledger;
mod optout;
mod quota;
mod sms;
mod workers;

pub use bus::MemoryBus;
pub use sms::MemorySms;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::domain::event::OrgEvent;
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::receipt::DeliveryReport;
use crate::domain::worker::Worker;
use crate::domain::{ApiKey, PhoneNumber, Project, RegistrationRecord};
use crate::ports::{BatchProgress, DayUsage, SentSms, StoreError, StoredResponse};

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
    /// The outbox: each event written with its change, by event id, in order.
    outbox: Vec<OrgEvent>,
    /// Each batch's settled invitations (by token): sent, failed, opted out or dropped.
    settled: HashMap<String, HashSet<String>>,
    /// The sealed password of each waiting account, by number.
    sealed: HashMap<String, String>,
}

impl StoreState {
    /// Settles `token` in `batch`; the batch's completion (every invitation its record
    /// lists settled) is told once, as the events function tells it from the table's
    /// stream.
    fn settle(&mut self, batch: &str, token: &str, now: u64) {
        self.settled
            .entry(batch.to_owned())
            .or_default()
            .insert(token.to_owned());
        self.complete_batch(batch, now);
    }

    fn complete_batch(&mut self, batch: &str, now: u64) {
        let Some(queued) = self.batches.get(batch).filter(|q| !q.is_empty()) else {
            return;
        };
        let settled = self
            .settled
            .get(batch)
            .map_or(0, |s| s.intersection(queued).count());
        if settled < queued.len() {
            return;
        }
        let progress = self.progress.get(batch).cloned().unwrap_or_default();
        let counts = serde_json::json!({
            "queued": progress.queued,
            "sent": progress.sent,
            "send_failed": progress.send_failed,
            "opted_out": progress.opted_out,
        });
        let event = OrgEvent::batch_completed(&progress.domain, batch, counts, now);
        self.write_event(event);
    }

    /// The event of `phone` opting out (`opted_out`) or back in, for its invitation's
    /// project.
    fn write_opt_change(&mut self, phone: &PhoneNumber, opted_out: bool, cause: &str, now: u64) {
        let project = self.records.get(phone.as_str()).map(|r| r.domain.clone());
        let event = OrgEvent::opt_change(phone, opted_out, cause, project.as_deref(), now);
        self.write_event(event);
    }

    /// Writes `event` to the outbox with its change; an event already there (the same
    /// change written again) is not written twice.
    fn write_event(&mut self, event: OrgEvent) {
        if !self.outbox.iter().any(|e| e.event_id == event.event_id) {
            self.outbox.push(event);
        }
    }
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

    /// Every event of the outbox, in the order the changes were made.
    pub fn outbox(&self) -> Vec<OrgEvent> {
        self.state().outbox.clone()
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

impl crate::ports::Store for MemoryStore {}
