//! The use cases: who may call, and inviting a list of numbers.

pub mod registration;
pub mod replies;
pub mod send;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::domain::invitation::{ClaimRules, PhoneType, registration_url};
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::outcome::ReinstallReport;
use crate::domain::request::ReinstallRequest;
use crate::domain::request::ValidationContext;
use crate::domain::sms::InvitationSms;
use crate::domain::sms::{PLAY_STORE_URL, reinstall_texts};
use crate::domain::time::{seconds_to_midnight, utc_day};
use crate::domain::{
    ApiKey, FieldErrors, Invitation, InviteOutcome, Plan, Project, RegistrationReport,
    RegistrationRequest, RegistrationStatus, RequestedNumber, Token, UserEntry,
};
use crate::ports::{
    BatchRecord, Claim, Clock, DailyQuota, Directory, IdempotencyStore, InvitationStore, JobQueue,
    QueueError, StoreError,
};

/// Why a caller may not create invitations in a project.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("unknown user or wrong key")]
    Unauthenticated,
    #[error("the key does not give edit_data in this project")]
    Forbidden,
    #[error("the project's plan is below PRO")]
    PlanTooLow,
    #[error("SMS registration is off in the project")]
    FeatureDisabled,
    #[error("the project's daily invitation limit is reached")]
    DailyLimit { limit: u32, retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A username and key as presented; the key never shows in `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("key", &"***")
            .finish()
    }
}

/// The registration service over its ports.
pub struct RegistrationService<D, I, S> {
    pub directory: D,
    pub store: I,
    pub sms: S,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
}

/// What a request does in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Edit,
}

/// Invitations counted against a project's daily limit, before they are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    day: String,
    count: u32,
}

impl<D, I, S> RegistrationService<D, I, S>
where
    D: Directory + DailyQuota + IdempotencyStore,
    I: InvitationStore,
    S: JobQueue,
{
    pub fn new(directory: D, store: I, sms: S, clock: Arc<dyn Clock>, config: Config) -> Self {
        RegistrationService {
            directory,
            store,
            sms,
            clock,
            config,
        }
    }

    /// Finds the key the credentials present. Which projects exist plays no part.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<ApiKey, AccessError> {
        let keys = self.directory.api_keys_of(&credentials.username).await?;
        // Every candidate is compared, so timing does not tell which one matched.
        let mut found = None;
        for key in keys {
            if key.matches(&credentials.key) && found.is_none() {
                found = Some(key);
            }
        }
        found.ok_or(AccessError::Unauthenticated)
    }

    /// Checks, in the contract's order, that the key may act in `domain`: any key of the
    /// project for reading, one with `edit_data` for sending.
    pub async fn authorize(
        &self,
        key: &ApiKey,
        domain: &str,
        access: Access,
    ) -> Result<Project, AccessError> {
        if key.domain != domain || (access == Access::Edit && !key.can_edit_data) {
            return Err(AccessError::Forbidden);
        }
        let project = self
            .directory
            .project(domain)
            .await?
            .ok_or(AccessError::Forbidden)?;
        if project.plan < Plan::Pro {
            return Err(AccessError::PlanTooLow);
        }
        if !project.registration_enabled {
            return Err(AccessError::FeatureDisabled);
        }
        Ok(project)
    }

    fn validation_context<'a>(&self, project: &'a Project) -> ValidationContext<'a> {
        let sample = registration_url(
            &self.config.public_base_url,
            &project.name,
            &Token::from_stored("x".repeat(crate::domain::invitation::TOKEN_LEN)),
        );
        ValidationContext {
            project,
            max_users: self.config.max_users_per_request,
            registration_url_chars: sample.chars().count(),
        }
    }

    pub fn validate(
        &self,
        project: &Project,
        body: &Map<String, Value>,
    ) -> Result<RegistrationRequest, FieldErrors> {
        RegistrationRequest::validate(body, self.validation_context(project))
    }

    pub fn validate_reinstall(
        &self,
        project: &Project,
        body: &Map<String, Value>,
    ) -> Result<ReinstallRequest, FieldErrors> {
        ReinstallRequest::validate(body, self.validation_context(project), PLAY_STORE_URL)
    }

    /// Queues the install link again for each number of the request (a Google Play
    /// message, then the app's install-link SMS), unless the number is registered in
    /// another project.
    pub async fn reinstall(
        &self,
        project: &Project,
        request: ReinstallRequest,
        deadline: Option<Instant>,
    ) -> ReinstallReport {
        let install_url = project
            .app(&request.app_id)
            .and_then(|app| app.install_url.as_deref());
        let texts = reinstall_texts(
            project.title(),
            request.reinstall_message.as_deref(),
            install_url,
        );
        let until = self.work_until(deadline);
        let opted_out = self.opted_out_among(&request.users, until).await;
        let checked: Vec<Result<InviteOutcome, SmsJob>> = self
            .in_order((0..request.users.len()).map(|i| {
                self.reinstall_check(project, &request.users[i], &texts, &opted_out, until)
            }))
            .await;
        let (mut outcomes, jobs) = split_settled(checked);
        let (places, jobs): (Vec<(usize, String, String)>, Vec<SmsJob>) = jobs
            .into_iter()
            .map(|(i, job)| ((i, job.phone.clone(), job.masked_phone()), job))
            .unzip();
        let mut queued = self.enqueue_all(jobs.clone(), until).await;
        // A `SendMessageBatch` cut off by the deadline may have put its jobs on the queue:
        // they are sent again in the margin left, the same jobs (the sender sends a job's
        // SMS once, by its id, however many copies arrive), so that no number whose job may
        // be on the queue is reported an error unless this second send fails too.
        let cut: Vec<usize> = (0..queued.len())
            .filter(|&k| matches!(&queued[k], Err(e) if *e == cut_off_error()))
            .collect();
        if !cut.is_empty() {
            let finish_by = deadline.map(|d| d - self.config.deadline_margin / 4);
            let again = self
                .enqueue_all(cut.iter().map(|&k| jobs[k].clone()).collect(), finish_by)
                .await;
            for (k, result) in cut.into_iter().zip(again) {
                queued[k] = result;
            }
        }
        for ((i, phone, masked), result) in places.into_iter().zip(queued) {
            outcomes[i] = Some(match result {
                Ok(()) => InviteOutcome::Success(phone),
                Err(error) => {
                    warn!(phone = %masked, %error, "reinstall SMS not queued");
                    InviteOutcome::Error(phone)
                }
            });
        }
        let report: ReinstallReport = outcomes.into_iter().flatten().collect();
        info!(
            users = request.users.len(),
            success = report.success_numbers.len(),
            invalid_format = report.invalid_format_numbers.len(),
            errors = report.error_numbers.len(),
            opted_out = report.opted_out_numbers.len(),
            "reinstall links queued"
        );
        report
    }

    /// Which of the request's numbers opted out: one lookup per 100 numbers, `concurrency`
    /// at a time. A lookup that fails leaves its numbers unknown (each then an error).
    async fn opted_out_among(&self, users: &[UserEntry], until: Option<Instant>) -> OptOutCheck {
        let phones: Vec<crate::domain::PhoneNumber> = users
            .iter()
            .filter_map(|u| match &u.number {
                RequestedNumber::Valid(phone) => Some(phone.clone()),
                RequestedNumber::Invalid(_) => None,
            })
            .collect();
        let chunks: Vec<Vec<crate::domain::PhoneNumber>> =
            phones.chunks(I::MAX_LOOKUP).map(<[_]>::to_vec).collect();
        let results = self
            .in_order(
                chunks
                    .into_iter()
                    .map(|chunk| self.opted_out_chunk(chunk, until)),
            )
            .await;
        let mut check = OptOutCheck::default();
        for (chunk, found) in results {
            match found {
                Some(found) => check.opted_out.extend(found),
                None => check
                    .unknown
                    .extend(chunk.iter().map(|p| p.as_str().to_owned())),
            }
        }
        check
    }

    async fn opted_out_chunk(
        &self,
        chunk: Vec<crate::domain::PhoneNumber>,
        until: Option<Instant>,
    ) -> (
        Vec<crate::domain::PhoneNumber>,
        Option<std::collections::HashSet<String>>,
    ) {
        if self.too_late(until) {
            return (chunk, None);
        }
        match self.bounded(until, self.store.opted_out(&chunk)).await {
            Some(Ok(found)) => (chunk, Some(found)),
            Some(Err(error)) => {
                warn!(%error, numbers = chunk.len(), "opt-out lookup failed");
                (chunk, None)
            }
            None => (chunk, None),
        }
    }

    /// Runs the per-number work at most `concurrency` at a time; results keep request order.
    async fn in_order<T, F: Future<Output = T>>(&self, work: impl Iterator<Item = F>) -> Vec<T> {
        futures::stream::iter(work)
            .buffered(self.config.concurrency)
            .collect()
            .await
    }

    /// When to stop starting and waiting for calls: `DEADLINE_MARGIN_MS` before the
    /// Lambda deadline, leaving that margin to undo what did not finish.
    pub fn work_until(&self, deadline: Option<Instant>) -> Option<Instant> {
        deadline.map(|d| d - self.config.deadline_margin)
    }

    /// `call`, unless `until` passes first (`None`: it was cut off, and may or may not
    /// have taken effect).
    pub async fn bounded<T>(
        &self,
        until: Option<Instant>,
        call: impl Future<Output = T>,
    ) -> Option<T> {
        match until {
            None => Some(call.await),
            Some(until) => tokio::time::timeout_at(until.into(), call).await.ok(),
        }
    }

    /// Whether the Lambda deadline is too close to start another number.
    fn too_late(&self, until: Option<Instant>) -> bool {
        until.is_some_and(|u| Instant::now() >= u)
    }

    /// Puts jobs on the send queue, 10 per call, `concurrency` calls at a time; one
    /// result per job, in order. A call cut off by the deadline fails its jobs.
    async fn enqueue_all(
        &self,
        jobs: Vec<SmsJob>,
        until: Option<Instant>,
    ) -> Vec<Result<(), QueueError>> {
        let mut chunks: Vec<Vec<SmsJob>> = Vec::new();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            chunks.push(
                jobs.by_ref()
                    .take(crate::adapters::sqs::MAX_BATCH)
                    .collect(),
            );
        }
        let results: Vec<Vec<Result<(), QueueError>>> = self
            .in_order(
                chunks
                    .into_iter()
                    .map(|chunk| self.enqueue_chunk(chunk, until)),
            )
            .await;
        results.into_iter().flatten().collect()
    }

    async fn enqueue_chunk(
        &self,
        chunk: Vec<SmsJob>,
        until: Option<Instant>,
    ) -> Vec<Result<(), QueueError>> {
        if self.too_late(until) {
            return vec![Err(deadline_error()); chunk.len()];
        }
        match self.bounded(until, self.sms.enqueue(&chunk)).await {
            Some(results) => results,
            // Sent, perhaps received: its jobs may be on the queue.
            None => vec![Err(cut_off_error()); chunk.len()],
        }
    }

    async fn reinstall_check(
        &self,
        project: &Project,
        user: &UserEntry,
        texts: &[String],
        opted_out: &OptOutCheck,
        until: Option<Instant>,
    ) -> Result<InviteOutcome, SmsJob> {
        let phone = match &user.number {
            RequestedNumber::Invalid(raw) => return Ok(InviteOutcome::InvalidFormat(raw.clone())),
            RequestedNumber::Valid(phone) => phone,
        };
        let number = phone.as_str().to_owned();
        if let Some(settled) = opted_out.outcome(&number) {
            return Ok(settled);
        }
        if self.too_late(until) {
            return Ok(InviteOutcome::Error(number));
        }
        match self.bounded(until, self.store.find(phone)).await {
            Some(Ok(Some(r)))
                if r.status == RegistrationStatus::Registered && r.domain != project.name =>
            {
                debug!(phone = %phone.masked(), "registered in another project");
                return Ok(InviteOutcome::Error(number));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                warn!(phone = %phone.masked(), %error, "lookup failed");
                return Ok(InviteOutcome::Error(number));
            }
            None => return Ok(InviteOutcome::Error(number)),
        }
        Err(SmsJob {
            id: SmsJob::new_id(),
            domain: project.name.clone(),
            phone: number,
            texts: texts.to_vec(),
            kind: JobKind::Message,
        })
    }

    /// Counts the request's valid numbers against the project's daily limit, all or none.
    pub async fn reserve_invitations(
        &self,
        project: &Project,
        users: &[UserEntry],
    ) -> Result<Reservation, AccessError> {
        let count = users
            .iter()
            .filter(|u| matches!(u.number, RequestedNumber::Valid(_)))
            .count();
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let now = self.clock.now();
        let day = utc_day(now);
        let limit = project.daily_invitation_limit;
        if !self
            .directory
            .reserve(&project.name, &day, count, limit)
            .await?
        {
            warn!(requested = count, limit, "daily invitation limit reached");
            return Err(AccessError::DailyLimit {
                limit,
                retry_after: seconds_to_midnight(now),
            });
        }
        Ok(Reservation { day, count })
    }

    /// Gives back the reserved invitations that were not sent.
    pub async fn settle(&self, project: &Project, reservation: Reservation, sent: usize) {
        let sent = u32::try_from(sent).unwrap_or(u32::MAX);
        let unused = reservation.count.saturating_sub(sent);
        if let Err(error) = self
            .directory
            .refund(&project.name, &reservation.day, unused)
            .await
        {
            warn!(%error, unused, "could not give back unused invitations of the daily limit");
        }
    }

    /// Invites every number of the request: claims each number (`concurrency` at a
    /// time), puts one send job per claimed number on the queue (10 per call), and
    /// records the batch. A number whose job did not reach the queue, or that
    /// the deadline cut off, is undone and reported in `error_numbers`.
    pub async fn invite(
        &self,
        project: &Project,
        request: RegistrationRequest,
        deadline: Option<Instant>,
    ) -> RegistrationReport {
        let until = self.work_until(deadline);
        let batch_id = SmsJob::new_id();
        let opted_out = self.opted_out_among(&request.users, until).await;
        let claims: Vec<Result<InviteOutcome, Claimed<I::Previous>>> = self
            .in_order(
                (0..request.users.len())
                    .map(|i| self.claim_one(project, &request, i, &batch_id, &opted_out, until)),
            )
            .await;
        let (mut outcomes, claimed) = split_settled(claims);
        let (claimed, jobs): (Vec<_>, Vec<_>) = claimed
            .into_iter()
            .map(|(i, c)| ((i, c.claim), c.job))
            .unzip();
        let queued = self.enqueue_all(jobs, until).await;
        let mut on_queue = Vec::new();
        let mut undo = Vec::new();
        for ((i, c), result) in claimed.into_iter().zip(queued) {
            match result {
                Ok(()) => {
                    outcomes[i] = Some(InviteOutcome::Success(
                        c.invitation.phone.as_str().to_owned(),
                    ));
                    on_queue.push(c.invitation);
                }
                Err(error) => {
                    warn!(phone = %c.invitation.phone.masked(), %error, "job not queued; undoing the claim");
                    outcomes[i] =
                        Some(InviteOutcome::Error(c.invitation.phone.as_str().to_owned()));
                    undo.push(c);
                }
            }
        }
        // Recorded, and undone, within the margin left before the deadline.
        let undo_until = deadline.map(|d| d - self.config.deadline_margin / 4);
        if !on_queue.is_empty() {
            let now = self.clock.now();
            let batch = BatchRecord {
                id: batch_id.clone(),
                domain: project.name.clone(),
                queued_at: now,
                expires_at: now + self.config.invitation_lifetime.as_secs(),
                queued: on_queue
                    .iter()
                    .map(|i| i.token.as_str().to_owned())
                    .collect(),
            };
            match self
                .bounded(undo_until, self.store.record_batch(&batch))
                .await
            {
                Some(Ok(())) => {}
                // The sender records each job it takes; until then such a claim no longer
                // holds its number once stale, and its job is dropped if the number is
                // taken meanwhile.
                Some(Err(error)) => warn!(%error, "could not record the batch"),
                None => warn!("the deadline cut off recording the batch"),
            }
        }
        self.in_order(
            undo.into_iter()
                .map(|c| self.undo_claim(c.invitation, c.previous, undo_until)),
        )
        .await;
        let mut report: RegistrationReport = outcomes.into_iter().flatten().collect();
        if !report.success_numbers.is_empty() {
            report.batch_id = Some(batch_id);
        }
        info!(
            users = request.users.len(),
            success = report.success_numbers.len(),
            invalid_format = report.invalid_format_numbers.len(),
            in_use = report.numbers_in_use.len(),
            errors = report.error_numbers.len(),
            opted_out = report.opted_out_numbers.len(),
            "invitations recorded and queued"
        );
        crate::metrics::Metrics::new("api")
            .count("InvitationsQueued", report.success_numbers.len())
            .count("InvitationsInUse", report.numbers_in_use.len())
            .count("InvitationsInvalid", report.invalid_format_numbers.len())
            .count("InvitationsOptedOut", report.opted_out_numbers.len())
            .count("InvitationsErrors", report.error_numbers.len())
            .emit();
        report
    }

    /// Puts back what a claim replaced (or removes the claim), if it is still ours.
    async fn undo_claim(
        &self,
        invitation: Invitation,
        previous: Option<I::Previous>,
        until: Option<Instant>,
    ) {
        match self
            .bounded(until, self.store.release(&invitation, previous))
            .await
        {
            Some(Ok(())) => {}
            // Never marked queued, the claim turns stale and claimable.
            Some(Err(error)) => {
                warn!(phone = %invitation.phone.masked(), %error, "undoing the claim failed")
            }
            None => {
                warn!(phone = %invitation.phone.masked(), "the deadline cut off undoing the claim")
            }
        }
    }

    async fn claim_one(
        &self,
        project: &Project,
        request: &RegistrationRequest,
        index: usize,
        batch_id: &str,
        opted_out: &OptOutCheck,
        until: Option<Instant>,
    ) -> Result<InviteOutcome, Claimed<I::Previous>> {
        let user = &request.users[index];
        let phone = match &user.number {
            RequestedNumber::Invalid(raw) => return Ok(InviteOutcome::InvalidFormat(raw.clone())),
            RequestedNumber::Valid(phone) => phone,
        };
        let number = phone.as_str().to_owned();
        if let Some(settled) = opted_out.outcome(&number) {
            return Ok(settled);
        }
        if self.too_late(until) {
            warn!(phone = %phone.masked(), "not started: the Lambda deadline is too close");
            return Ok(InviteOutcome::Error(number));
        }

        let now = self.clock.now();
        let invitation = Invitation {
            domain: project.name.clone(),
            phone: phone.clone(),
            token: Token::generate(),
            app_id: Some(request.app_id.clone()),
            android_only: request.android_only,
            require_email: request.require_email,
            custom_user_data: user.custom_user_data.clone(),
            phone_type: request.android_only.then_some(PhoneType::Android),
            status: RegistrationStatus::Queued,
            created_at: now,
            expires_at: now + self.config.invitation_lifetime.as_secs(),
            sent_at: None,
            registered_at: None,
            enqueued_at: None,
            failure_reason: None,
            delivery: None,
            opened_at: None,
            batch_id: Some(batch_id.to_owned()),
        };
        let rules = ClaimRules {
            domain: &project.name,
            now,
            stale_before: now.saturating_sub(self.config.claim_stale_after.as_secs()),
        };
        let previous = match self
            .bounded(until, self.store.claim(&invitation, rules))
            .await
        {
            Some(Ok(Claim::Taken { previous })) => previous,
            Some(Ok(Claim::InUse)) => {
                debug!(phone = %phone.masked(), "number in use");
                return Ok(InviteOutcome::InUse(number));
            }
            Some(Err(error)) => {
                warn!(phone = %phone.masked(), %error, "claim failed");
                return Ok(InviteOutcome::Error(number));
            }
            None => {
                // It may have been written: undone (what it replaced is not known).
                warn!(phone = %phone.masked(), "the deadline cut off the claim; undoing it");
                self.undo_claim(invitation, None, None).await;
                return Ok(InviteOutcome::Error(number));
            }
        };

        let url = registration_url(
            &self.config.public_base_url,
            &project.name,
            &invitation.token,
        );
        let texts = InvitationSms {
            project_title: project.title(),
            android_only: request.android_only,
            custom_message: request.custom_registration_message.as_deref(),
            registration_url: &url,
            install_url: project
                .app(&request.app_id)
                .and_then(|app| app.install_url.as_deref()),
        }
        .compose();
        let job = SmsJob {
            id: SmsJob::new_id(),
            domain: project.name.clone(),
            phone: number,
            texts,
            kind: JobKind::Invitation {
                token: invitation.token.as_str().to_owned(),
                created_at: now,
                previous: previous.as_ref().map(|p| self.store.encode_previous(p)),
                batch_id: Some(batch_id.to_owned()),
            },
        };
        Err(Claimed {
            claim: Undo {
                invitation,
                previous,
            },
            job,
        })
    }
}

/// The request's numbers that opted out, and those whose lookup failed.
#[derive(Default)]
struct OptOutCheck {
    opted_out: std::collections::HashSet<String>,
    unknown: std::collections::HashSet<String>,
}

impl OptOutCheck {
    /// The outcome already settled for a number, if any.
    fn outcome(&self, number: &str) -> Option<InviteOutcome> {
        if self.opted_out.contains(number) {
            debug!("number opted out");
            Some(InviteOutcome::OptedOut(number.to_owned()))
        } else if self.unknown.contains(number) {
            Some(InviteOutcome::Error(number.to_owned()))
        } else {
            None
        }
    }
}

/// A number claimed, with its job, waiting to be queued.
struct Claimed<P> {
    claim: Undo<P>,
    job: SmsJob,
}

/// What undoing a claim needs: the invitation written and what it replaced.
struct Undo<P> {
    invitation: Invitation,
    previous: Option<P>,
}

/// Per-number steps in request order, split into the outcomes already settled (`None`
/// where the number goes on) and the numbers that go on, with their index.
fn split_settled<T>(
    steps: Vec<Result<InviteOutcome, T>>,
) -> (Vec<Option<InviteOutcome>>, Vec<(usize, T)>) {
    let mut outcomes = Vec::with_capacity(steps.len());
    let mut going_on = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Ok(done) => outcomes.push(Some(done)),
            Err(next) => {
                outcomes.push(None);
                going_on.push((i, next));
            }
        }
    }
    (outcomes, going_on)
}

fn deadline_error() -> QueueError {
    QueueError {
        code: "DeadlineTooClose".into(),
    }
}

/// A `SendMessageBatch` the deadline cut off after it was sent: its outcome is unknown.
fn cut_off_error() -> QueueError {
    QueueError {
        code: "CutOffByDeadline".into(),
    }
}
