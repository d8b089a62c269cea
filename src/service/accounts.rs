//! Worker accounts in a project's directory (Cognito, CommCare HQ), exactly once
//! (docs/accounts.md).
//!
//! Neither directory takes an idempotency token, so the service writes its own: each
//! attempt has an id, written into the account it makes, and claims the invitation before
//! any call. The page then makes the account within its budget and registers the worker
//! with it; or, when the directory is slow, throttled or down, registers the worker with
//! the account pending, and answers so. An account job, queued before the claim and seen
//! a minute later, finishes whatever the page left: the account made by a page that ended
//! (its answer lost, the function stopped), or still to make, with backoff, until it
//! exists (the worker is then texted the name to sign in with) or fails for good.

use std::time::Instant;

use tracing::{info, warn};

use super::RegistrationService;
use super::pace::{Pace, Turn};
use super::registration::{Invitation, RegisterError, Registered};
use crate::domain::account::{
    AccountState, AccountStatus, Accounts, NewAccount, Password, account_ready_text,
};
use crate::domain::job::{Schedule, SmsJob};
use crate::domain::worker::{FormErrors, ValidForm, Worker};
use crate::domain::{PhoneNumber, Project, RegistrationRecord, Token};
use crate::ports::accounts::ACCOUNT_JOB_DELAY_SECONDS;
use crate::ports::{
    AccountError, AccountJob, AccountOutcome, ClaimOutcome, JobQueue, Store, StoreError,
};

/// An account still not made this long after its attempt began fails for good: an
/// operator has had a day of alarms (docs/operations.md) to fix the directory.
pub const ACCOUNT_GIVE_UP_SECONDS: u64 = 86_400;
/// How long a CommCare HQ project is left alone after a 429 that named no wait: its
/// per-second limit is past by then; a longer limit (per minute, hour or day) meets each
/// job's own growing retry delay.
pub const HQ_PAUSE_SECONDS: u64 = 5;
/// A pending account older than this is reported as waiting long (metric and alarm).
pub const ACCOUNT_LONG_WAIT_SECONDS: u64 = 3_600;

/// What became of one account job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountJobResult {
    /// Nothing more to do: made, failed, released, or not this job's any more.
    Done(AccountJobDone),
    /// Try again after this many seconds (the directory throttled, failed or did not
    /// answer); `waited_long`: pending past [`ACCOUNT_LONG_WAIT_SECONDS`].
    RetryIn { seconds: u32, waited_long: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountJobDone {
    Created,
    Failed,
    /// Nothing to do (settled before, or the claim was dropped).
    Nothing,
}

/// The wait before retrying an account after `receive_count` receives: the directory's
/// own when it gave one, else 5 s doubling to 15 minutes.
pub fn account_retry_seconds(error: &AccountError, receive_count: u32) -> u32 {
    if let AccountError::Throttled(Some(wait)) = error {
        return u32::try_from(wait.as_secs().clamp(1, 900)).unwrap_or(900);
    }
    crate::domain::job::retry_delay_seconds(receive_count)
}

/// Why an account waits when the page left it for its turn at the directory's pace.
const PACED: &str = "waiting its turn: the directory takes one account a second";

/// Why an account waits, in the words the listing shows.
fn waiting_for(error: &AccountError) -> String {
    match error {
        AccountError::Throttled(_) => "the directory is throttling; retrying".into(),
        AccountError::Unavailable(why) => format!("the directory did not answer ({why}); retrying"),
        AccountError::Denied(why) => format!("{why}; retrying until an operator fixes it"),
        AccountError::Taken | AccountError::Invalid(_) => error.to_string(),
    }
}

/// The form field a directory's refusal belongs to.
fn refused_field(message: &str) -> &'static str {
    if message.to_ascii_lowercase().contains("password") {
        "password"
    } else {
        "username"
    }
}

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// The account of `record`'s worker as `valid` asks for it, for `attempt`.
    fn new_account(
        project: &Project,
        record: &RegistrationRecord,
        account: &AccountState,
        password: Password,
    ) -> NewAccount {
        NewAccount {
            project: project.name.clone(),
            username: account.username.clone(),
            password,
            phone: record.phone.clone(),
            email: account.email.clone(),
            app_id: record.app_id.clone(),
            custom_user_data: record.custom_user_data.clone(),
            language: record.language,
            reference: account.attempt.clone(),
        }
    }

    /// The registration as the event and the listing tell it; no password hash: the
    /// directory holds the password.
    fn registered_worker(record: &RegistrationRecord, account: &AccountState, now: u64) -> Worker {
        Worker {
            domain: record.domain.clone(),
            username: account.username.clone(),
            password_hash: None,
            phone: record.phone.clone(),
            email: account.email.clone(),
            custom_user_data: record.custom_user_data.clone(),
            app_id: record.app_id.clone(),
            registered_at: now,
        }
    }

    /// Waits for the project's turn at its directory's pace, when it comes by `not_after`
    /// (µs since the epoch): CommCare HQ's projects take one account a second, shared by
    /// every page and every accounts function; Cognito's turn is always now.
    async fn directory_turn(
        &self,
        accounts: &Accounts,
        not_after: Option<u64>,
    ) -> Result<Turn, StoreError> {
        match accounts {
            Accounts::CommCareHq(hq) => {
                Pace::commcare_hq(hq)
                    .wait_turn(&self.store, self.clock.as_ref(), not_after, 1)
                    .await
            }
            _ => Ok(Turn::At(self.clock.now_us())),
        }
    }

    /// After HQ's 429 (`throttled`): no page and no function calls the project again for
    /// the wait HQ asked for, or [`HQ_PAUSE_SECONDS`], so that only the first call of the
    /// pause meets the throttle. (The job itself waits its own, growing, retry delay.)
    async fn back_off(&self, accounts: &Accounts, throttled: &AccountError) {
        let Accounts::CommCareHq(hq) = accounts else {
            return;
        };
        let seconds = match throttled {
            AccountError::Throttled(Some(wait)) => wait.as_secs().clamp(1, 900),
            _ => HQ_PAUSE_SECONDS,
        };
        let until = self.clock.now_us() + seconds * 1_000_000;
        if let Err(error) = Pace::commcare_hq(hq).hold_until(&self.store, until).await {
            warn!(%error, "could not hold the directory's pace back");
        }
    }

    /// The registration page's part for a project whose accounts live in a directory:
    /// claim, make the account within the page's budget, register.
    pub(super) async fn register_external(
        &self,
        project: Project,
        invitation: RegistrationRecord,
        valid: ValidForm,
    ) -> Result<Registered, RegisterError> {
        let started = Instant::now();
        let ports = self
            .accounts
            .as_deref()
            .ok_or(RegisterError::AccountsUnavailable)?;
        if let Some(message) = project
            .accounts
            .username_error(&project.name, &valid.username)
        {
            let errors = FormErrors::single("username", &message);
            return Err(RegisterError::Form(project, invitation, errors));
        }
        let now = self.clock.now();
        let account = AccountState {
            status: AccountStatus::Claimed,
            directory: project.accounts.kind().to_owned(),
            username: project
                .accounts
                .account_username(&project.name, &valid.username),
            attempt: Token::generate().as_str().to_owned(),
            reason: None,
            since: now,
            notified: false,
            email: valid.email.clone(),
        };
        let password = Password::new(valid.password.clone());
        let sealed = ports
            .seal(&account.attempt, &password)
            .await
            .map_err(|error| {
                warn!(%error, "could not seal the form's secret with the key: no account begun");
                RegisterError::AccountsUnavailable
            })?;
        // Queued before the claim: whatever happens to this invocation from here on, the
        // job finds the claim and finishes it.
        let job = AccountJob {
            domain: project.name.clone(),
            phone: invitation.phone.as_str().to_owned(),
            attempt: account.attempt.clone(),
        };
        ports
            .put_job(&job, ACCOUNT_JOB_DELAY_SECONDS)
            .await
            .map_err(|error| {
                warn!(%error, "could not queue an account job");
                RegisterError::AccountsUnavailable
            })?;
        match self
            .store
            .claim_account(&invitation, &account, &sealed)
            .await?
        {
            ClaimOutcome::Claimed => {}
            ClaimOutcome::InFlight => {
                return Err(RegisterError::Unavailable(Invitation::Creating(
                    project, invitation,
                )));
            }
            ClaimOutcome::InvitationChanged => {
                let token = invitation.token.as_str().to_owned();
                let now = self.open_invitation(Some(&project.name), &token).await?;
                return Err(RegisterError::Unavailable(match now {
                    Invitation::Pending(..) => Invitation::NotFound,
                    other => other,
                }));
            }
        }
        let mut record = invitation;
        record.account = Some(account.clone());
        let new = Self::new_account(&project, &record, &account, password);
        let budget = self.config.account_wait.saturating_sub(started.elapsed());
        // A turn at the directory's pace that leaves half the budget for the call;
        // otherwise the account waits for the accounts function.
        let latest = self.clock.now_us() + budget.as_micros() as u64 / 2;
        let made = match self.directory_turn(&project.accounts, Some(latest)).await? {
            Turn::Later(_) => Err(None),
            Turn::At(_) => {
                let budget = self.config.account_wait.saturating_sub(started.elapsed());
                match tokio::time::timeout(budget, ports.create(&project.accounts, &new)).await {
                    Ok(result) => result.map_err(Some),
                    Err(_) => Err(Some(AccountError::Unavailable(format!(
                        "no answer within {} ms",
                        budget.as_millis()
                    )))),
                }
            }
        };
        if let Err(Some(error @ AccountError::Throttled(_))) = &made {
            self.back_off(&project.accounts, error).await;
        }
        let waiting = match &made {
            Ok(()) => None,
            Err(None) => Some(PACED.to_owned()),
            Err(Some(error @ (AccountError::Taken | AccountError::Invalid(_)))) => {
                // Nothing was made: the link works again, the form says why.
                self.store.release_claim(&record, &account.attempt).await?;
                let (field, message) = match error {
                    AccountError::Invalid(message) => (refused_field(message), message.clone()),
                    _ => ("username", "This username is already taken".to_owned()),
                };
                record.account = None;
                let errors = FormErrors::single(field, &message);
                return Err(RegisterError::Form(project, record, errors));
            }
            Err(Some(error)) => Some(waiting_for(error)),
        };
        let outcome = match &waiting {
            None => AccountOutcome::Created,
            Some(why) => AccountOutcome::Pending(why),
        };
        let worker = Self::registered_worker(&record, &account, self.clock.now());
        if !self
            .store
            .register_claimed(&record, &worker, &account.attempt, outcome)
            .await?
        {
            // Applied by this very call before its answer was lost, or taken over: what
            // the table says now is the answer.
            let now = self.store.find(&record.phone).await?;
            let Some(now) = now.filter(|r| {
                r.account.as_ref().map(|a| &a.attempt) == Some(&account.attempt)
                    && r.status == crate::domain::RegistrationStatus::Registered
            }) else {
                return Err(RegisterError::TryAgain);
            };
            record = now;
        }
        let mut shown = account;
        match outcome {
            AccountOutcome::Created => {
                shown.status = AccountStatus::Created;
                // The page tells the worker: no SMS needed.
                if let Err(error) = self
                    .store
                    .mark_account_notified(&record, &shown.attempt)
                    .await
                {
                    warn!(%error, "could not record that the worker saw the account");
                }
            }
            AccountOutcome::Pending(why) => {
                shown.status = AccountStatus::Pending;
                shown.reason = Some(why.to_owned());
            }
            AccountOutcome::Failed(_) => {}
        }
        info!(phone = %record.phone.masked(), account = shown.status.as_str(),
            "worker registered");
        let username = project.accounts.sign_in_name(&shown.username).to_owned();
        Ok(Registered {
            project,
            invitation: record,
            username,
            account: Some(shown),
        })
    }

    /// Finishes the account of one account job (the accounts function), `receive_count`
    /// its receives so far; a call to the directory is started within `room`, or the job
    /// is handed back.
    pub async fn finish_account(
        &self,
        job: &AccountJob,
        receive_count: u32,
        room: std::time::Duration,
    ) -> Result<AccountJobResult, StoreError> {
        let nothing = Ok(AccountJobResult::Done(AccountJobDone::Nothing));
        let Ok(phone) = PhoneNumber::parse(&job.phone) else {
            warn!(attempt = %job.attempt, "an account job with no valid number: dropped");
            return nothing;
        };
        let Some(record) = self.store.find(&phone).await? else {
            return nothing;
        };
        let Some(account) = record.account.clone().filter(|a| a.attempt == job.attempt) else {
            return nothing;
        };
        let Some(project) = self.store.project(&record.domain).await? else {
            return nothing;
        };
        match account.status {
            AccountStatus::Failed => return nothing,
            AccountStatus::Created => {
                if !account.notified {
                    self.tell_ready(&project, &record, &account).await?;
                }
                return nothing;
            }
            AccountStatus::Claimed | AccountStatus::Pending => {}
        }
        let now = self.clock.now();
        let claimed = account.status == AccountStatus::Claimed;
        let age = now.saturating_sub(account.since);
        if age >= ACCOUNT_GIVE_UP_SECONDS {
            let reason = format!(
                "not made within a day: {}",
                account
                    .reason
                    .as_deref()
                    .unwrap_or("the directory never answered")
            );
            return self
                .settle_attempt(&record, &account, claimed, AccountOutcome::Failed(&reason))
                .await;
        }
        let Some(ports) = self.accounts.as_deref() else {
            warn!("an account job, but this deployment makes no accounts: retried");
            return Ok(AccountJobResult::RetryIn {
                seconds: 900,
                waited_long: age >= ACCOUNT_LONG_WAIT_SECONDS,
            });
        };
        let Some(sealed) = self
            .store
            .sealed_password(&record, &account.attempt)
            .await?
        else {
            let reason = "its password was lost before the account was made";
            return self
                .settle_attempt(&record, &account, claimed, AccountOutcome::Failed(reason))
                .await;
        };
        let password = match ports.open(&account.attempt, &sealed).await {
            Ok(password) => password,
            Err(crate::ports::SealError::Corrupt(why)) => {
                let reason = format!("its sealed password cannot be opened ({why})");
                return self
                    .settle_attempt(&record, &account, claimed, AccountOutcome::Failed(&reason))
                    .await;
            }
            Err(error) => {
                warn!(%error, "could not open the sealed secret: retried");
                return Ok(AccountJobResult::RetryIn {
                    seconds: crate::domain::job::retry_delay_seconds(receive_count),
                    waited_long: age >= ACCOUNT_LONG_WAIT_SECONDS,
                });
            }
        };
        let new = Self::new_account(&project, &record, &account, password);
        let latest = self.clock.now_us() + room.as_micros() as u64;
        if let Turn::Later(slot) = self.directory_turn(&project.accounts, Some(latest)).await? {
            let wait = slot.saturating_sub(self.clock.now_us()).div_ceil(1_000_000);
            return Ok(AccountJobResult::RetryIn {
                seconds: u32::try_from(wait.max(1)).unwrap_or(900),
                waited_long: age >= ACCOUNT_LONG_WAIT_SECONDS,
            });
        }
        match ports.create(&project.accounts, &new).await {
            Ok(()) => {
                let done = self
                    .settle_attempt(&record, &account, claimed, AccountOutcome::Created)
                    .await?;
                if let Some(now) = self.store.find(&phone).await?
                    && let Some(made) = now.account.as_ref().filter(|a| {
                        a.attempt == account.attempt && a.status == AccountStatus::Created
                    })
                    && !made.notified
                {
                    self.tell_ready(&project, &now, made).await?;
                }
                Ok(done)
            }
            Err(AccountError::Taken | AccountError::Invalid(_)) if claimed => {
                // A page that ended before it knew: nothing was made, the link works again.
                self.store.release_claim(&record, &account.attempt).await?;
                nothing
            }
            Err(error @ (AccountError::Taken | AccountError::Invalid(_))) => {
                let reason = error.to_string();
                self.settle_attempt(&record, &account, false, AccountOutcome::Failed(&reason))
                    .await
            }
            Err(error) => {
                let why = waiting_for(&error);
                self.settle_attempt(&record, &account, claimed, AccountOutcome::Pending(&why))
                    .await?;
                if matches!(error, AccountError::Throttled(_)) {
                    self.back_off(&project.accounts, &error).await;
                }
                Ok(AccountJobResult::RetryIn {
                    seconds: account_retry_seconds(&error, receive_count),
                    waited_long: age >= ACCOUNT_LONG_WAIT_SECONDS,
                })
            }
        }
    }

    /// Writes `outcome` on a claimed (then registered with it) or pending account.
    async fn settle_attempt(
        &self,
        record: &RegistrationRecord,
        account: &AccountState,
        claimed: bool,
        outcome: AccountOutcome<'_>,
    ) -> Result<AccountJobResult, StoreError> {
        let now = self.clock.now();
        if claimed {
            let worker = Self::registered_worker(record, account, now);
            self.store
                .register_claimed(record, &worker, &account.attempt, outcome)
                .await?;
        } else {
            self.store
                .settle_account(record, &account.attempt, outcome, now)
                .await?;
        }
        Ok(AccountJobResult::Done(match outcome {
            AccountOutcome::Created => AccountJobDone::Created,
            AccountOutcome::Failed(_) => AccountJobDone::Failed,
            AccountOutcome::Pending(_) => AccountJobDone::Nothing,
        }))
    }

    /// Texts the worker the name to sign in with, once: the job's id is the attempt's, so
    /// the sender sends it once however often it is queued.
    async fn tell_ready(
        &self,
        project: &Project,
        record: &RegistrationRecord,
        account: &AccountState,
    ) -> Result<(), StoreError> {
        let sign_in = project.accounts.sign_in_name(&account.username);
        let job = SmsJob {
            id: format!("account-ready-{}", account.attempt),
            domain: record.domain.clone(),
            phone: record.phone.clone(),
            texts: vec![crate::domain::sms::sent(
                account_ready_text(&project.texts(record.language), sign_in),
                project.sms.smart_encoding,
            )],
            kind: crate::domain::job::JobKind::Message,
            schedule: Schedule::default(),
            max_price_per_part: project.sms.max_price_per_part.clone(),
        };
        if let Some(Err(error)) = self.queue.enqueue(std::slice::from_ref(&job)).await.pop() {
            warn!(%error, "could not queue the account's SMS: retried");
            return Err(StoreError::Unavailable { code: error.code });
        }
        self.store
            .mark_account_notified(record, &account.attempt)
            .await
    }
}
