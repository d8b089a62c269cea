//! The use cases, one file each, over the ports: who may call ([`access`]), inviting
//! ([`invite`]) and reinstalling ([`reinstall`]) a list of numbers, the `Idempotency-Key`
//! protocol ([`idempotency`]), reads ([`listing`]), sending ([`send`], paced by [`pace`]),
//! replies by SMS ([`replies`]), the registration page ([`registration`]) and delivery
//! receipts ([`receipts`]); [`deadline`] keeps each within its Lambda invocation.

pub mod access;
pub mod accounts;
pub mod deadline;
pub mod idempotency;
pub mod invite;
pub mod listing;
pub mod pace;
pub mod publish;
pub mod receipts;
pub mod registration;
pub mod reinstall;
pub mod replies;
pub mod send;

use std::sync::Arc;

use futures::StreamExt;

use crate::config::Config;
use crate::domain::InviteOutcome;
use crate::domain::invitation::short_registration_url;
use crate::domain::request::ValidationContext;
use crate::domain::{Project, Token};
use crate::ports::{AccountPorts, Clock, JobQueue, Store};

pub use access::{Access, AccessError, Credentials, Reservation};

/// The registration service over its ports: the store, and the send queue every SMS goes
/// through. A cheap handle (`Clone`): its adapters are handles, its configuration shared.
pub struct RegistrationService<St, Q> {
    store: St,
    queue: Q,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    /// Where accounts outside the table are made: `None` when the deployment makes none
    /// (no `PASSWORD_KEY_ID`, no `ACCOUNTS_QUEUE_URL`).
    accounts: Option<Arc<dyn AccountPorts>>,
}

impl<St: Clone, Q: Clone> Clone for RegistrationService<St, Q> {
    fn clone(&self) -> Self {
        RegistrationService {
            store: self.store.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            accounts: self.accounts.clone(),
        }
    }
}

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    pub fn new(store: St, queue: Q, clock: Arc<dyn Clock>, config: Config) -> Self {
        RegistrationService {
            store,
            queue,
            clock,
            config: Arc::new(config),
            accounts: None,
        }
    }

    /// The service that makes accounts in directories too (docs/accounts.md).
    pub fn with_accounts(mut self, accounts: Arc<dyn AccountPorts>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Seconds since the epoch, by the service's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// What validating a request of the project needs.
    fn validation_context<'a>(&self, project: &'a Project) -> ValidationContext<'a> {
        // The short link: a message is never more parts than it makes (see
        // `InvitationSms::compose`).
        let sample = short_registration_url(
            &self.config.public_base_url,
            &Token::from_stored("x".repeat(crate::domain::invitation::TOKEN_LEN)),
        );
        ValidationContext {
            project,
            max_users: self.config.max_users_per_request,
            registration_url_chars: sample.chars().count(),
            now: self.clock.now(),
        }
    }

    /// Runs the per-number work at most `concurrency` at a time; results keep request order.
    pub(super) async fn in_order<T, F: Future<Output = T>>(
        &self,
        work: impl Iterator<Item = F>,
    ) -> Vec<T> {
        futures::stream::iter(work)
            .buffered(self.config.concurrency)
            .collect()
            .await
    }
}

/// A per-number step: settled (its outcome known), or going on with what the next step
/// needs.
enum Step<T> {
    Settled(InviteOutcome),
    GoOn(T),
}

/// Per-number steps in request order, split into the outcomes already settled (`None`
/// where the number goes on) and the numbers that go on, with their index.
fn split_settled<T>(steps: Vec<Step<T>>) -> (Vec<Option<InviteOutcome>>, Vec<(usize, T)>) {
    let mut outcomes = Vec::with_capacity(steps.len());
    let mut going_on = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Settled(done) => outcomes.push(Some(done)),
            Step::GoOn(next) => {
                outcomes.push(None);
                going_on.push((i, next));
            }
        }
    }
    (outcomes, going_on)
}
