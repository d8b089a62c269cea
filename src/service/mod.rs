//! The use cases: who may call, and inviting a list of numbers.

pub mod inbound;
pub mod registration;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::domain::invitation::{ClaimRules, PhoneType, registration_url};
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
    Claim, Clock, DailyQuota, Directory, IdempotencyStore, InvitationStore, SmsSender, StoreError,
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
    S: SmsSender,
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

    /// Sends the install link again to each number of the request (a Google Play message,
    /// then the app's install-link SMS), unless the number is registered in another project.
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
        let report: ReinstallReport = self
            .in_order(
                (0..request.users.len())
                    .map(|i| self.reinstall_one(project, &request.users[i], &texts, deadline)),
            )
            .await
            .into_iter()
            .collect();
        info!(
            users = request.users.len(),
            success = report.success_numbers.len(),
            invalid_format = report.invalid_format_numbers.len(),
            errors = report.error_numbers.len(),
            "reinstall links processed"
        );
        report
    }

    /// Runs the per-number work at most `concurrency` at a time; results keep request order.
    async fn in_order<F: Future<Output = InviteOutcome>>(
        &self,
        work: impl Iterator<Item = F>,
    ) -> Vec<InviteOutcome> {
        futures::stream::iter(work)
            .buffered(self.config.concurrency)
            .collect()
            .await
    }

    /// Whether the Lambda deadline is too close to start another number.
    fn too_late(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() + self.config.deadline_margin >= d)
    }

    async fn reinstall_one(
        &self,
        project: &Project,
        user: &UserEntry,
        texts: &[String],
        deadline: Option<Instant>,
    ) -> InviteOutcome {
        let phone = match &user.number {
            RequestedNumber::Invalid(raw) => return InviteOutcome::InvalidFormat(raw.clone()),
            RequestedNumber::Valid(phone) => phone,
        };
        let number = phone.as_str().to_owned();
        if self.too_late(deadline) {
            return InviteOutcome::Error(number);
        }
        match self.store.find(phone).await {
            Ok(Some(r))
                if r.status == RegistrationStatus::Registered && r.domain != project.name =>
            {
                debug!(phone = %phone.masked(), "registered in another project");
                return InviteOutcome::Error(number);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(phone = %phone.masked(), %error, "lookup failed");
                return InviteOutcome::Error(number);
            }
        }
        for text in texts {
            if let Err(error) = self.sms.send(phone, text).await {
                warn!(phone = %phone.masked(), %error, "reinstall SMS failed");
                return InviteOutcome::Error(number);
            }
        }
        InviteOutcome::Success(number)
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

    /// Invites every number of the request, at most `concurrency` at a time, and
    /// reports each in request order. No number is started once `deadline` is near.
    pub async fn invite(
        &self,
        project: &Project,
        request: RegistrationRequest,
        deadline: Option<Instant>,
    ) -> RegistrationReport {
        let report: RegistrationReport = self
            .in_order(
                (0..request.users.len()).map(|i| self.invite_one(project, &request, i, deadline)),
            )
            .await
            .into_iter()
            .collect();
        info!(
            users = request.users.len(),
            success = report.success_numbers.len(),
            invalid_format = report.invalid_format_numbers.len(),
            in_use = report.numbers_in_use.len(),
            errors = report.error_numbers.len(),
            "invitations processed"
        );
        report
    }

    async fn invite_one(
        &self,
        project: &Project,
        request: &RegistrationRequest,
        index: usize,
        deadline: Option<Instant>,
    ) -> InviteOutcome {
        let user = &request.users[index];
        let phone = match &user.number {
            RequestedNumber::Invalid(raw) => return InviteOutcome::InvalidFormat(raw.clone()),
            RequestedNumber::Valid(phone) => phone,
        };
        let number = phone.as_str().to_owned();
        if self.too_late(deadline) {
            warn!(phone = %phone.masked(), "not started: the Lambda deadline is too close");
            return InviteOutcome::Error(number);
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
            status: RegistrationStatus::Pending,
            created_at: now,
            expires_at: now + self.config.invitation_lifetime.as_secs(),
            sent_at: None,
            registered_at: None,
        };
        let rules = ClaimRules {
            domain: &project.name,
            now,
            stale_before: now.saturating_sub(self.config.claim_stale_after.as_secs()),
        };
        let previous = match self.store.claim(&invitation, rules).await {
            Ok(Claim::Taken { previous }) => previous,
            Ok(Claim::InUse) => {
                debug!(phone = %phone.masked(), "number in use");
                return InviteOutcome::InUse(number);
            }
            Err(error) => {
                warn!(phone = %phone.masked(), %error, "claim failed");
                return InviteOutcome::Error(number);
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
        for text in &texts {
            if let Err(error) = self.sms.send(phone, text).await {
                warn!(phone = %phone.masked(), %error, "SMS failed; undoing the claim");
                if let Err(error) = self.store.release(&invitation, previous).await {
                    // The claim was never marked sent, so it turns stale and claimable.
                    warn!(phone = %phone.masked(), %error, "undoing the claim failed");
                }
                return InviteOutcome::Error(number);
            }
        }
        if let Err(error) = self.store.mark_sent(&invitation, self.clock.now()).await {
            warn!(phone = %phone.masked(), %error, "SMS sent but not marked sent");
        }
        debug!(phone = %phone.masked(), sms = texts.len(), "invited");
        InviteOutcome::Success(number)
    }
}
