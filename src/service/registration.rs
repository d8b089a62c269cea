//! Completing an invitation: the registration page's use cases.

use tracing::{info, warn};

use super::RegistrationService;
use crate::domain::invitation::{ShownStatus, Token};
use crate::domain::worker::{FormErrors, RegistrationForm, Worker, hash_password};
use crate::domain::{Plan, Project, RegistrationRecord};
use crate::ports::{JobQueue, RegisterOutcome, Store, StoreError};

/// What a registration link leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Invitation {
    /// Unknown token, another project's token, or an invitation replaced by a newer one.
    NotFound,
    Expired(Project),
    /// The project may not register workers now (feature off, or a plan below PRO): the
    /// link registers nobody and is not marked opened, whatever its invitation's state.
    Closed(Project),
    Registered(Project, RegistrationRecord),
    Pending(Project, RegistrationRecord),
    /// A registration with this link is making its account (the form posted twice, or
    /// the page ended before it knew): it finishes by itself.
    Creating(Project, RegistrationRecord),
}

/// Why a registration did not complete.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterError {
    /// The link no longer leads to a pending invitation (see [`Invitation`]).
    Unavailable(Invitation),
    /// The form has errors; the invitation is still pending.
    Form(Project, RegistrationRecord, FormErrors),
    /// Another registration with this link was in flight: nothing stored, try again.
    TryAgain,
    /// The project's directory cannot be used now (the deployment makes no accounts there,
    /// or its password key is unavailable): nothing stored, the link still works.
    AccountsUnavailable,
    Store(StoreError),
}

impl From<StoreError> for RegisterError {
    fn from(error: StoreError) -> Self {
        RegisterError::Store(error)
    }
}

/// A completed registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub project: Project,
    pub invitation: RegistrationRecord,
    /// What the worker signs in with.
    pub username: String,
    /// The account in the project's directory (`None`: the service's own table).
    pub account: Option<crate::domain::account::AccountState>,
}

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// Finds the invitation behind a registration link: of `domain` when the link names
    /// one (`/a/{domain}/register/{token}`), of the token's own project when it does not
    /// (`/r/{token}`).
    pub async fn open_invitation(
        &self,
        domain: Option<&str>,
        token: &str,
    ) -> Result<Invitation, StoreError> {
        if !Token::is_well_formed(token) {
            return Ok(Invitation::NotFound);
        }
        let Some(record) = self.store.invitation_by_token(token).await? else {
            return Ok(Invitation::NotFound);
        };
        if domain.is_some_and(|domain| record.domain != domain) {
            return Ok(Invitation::NotFound);
        }
        let Some(project) = self.store.project(&record.domain).await? else {
            return Ok(Invitation::NotFound);
        };
        // The same gates as the API's create endpoint: turning the feature off (or the plan
        // down) stops the links already sent, not only new invitations.
        if project.plan < Plan::Pro || !project.registration_enabled {
            return Ok(Invitation::Closed(project));
        }
        Ok(match record.shown_status(self.clock.now()) {
            ShownStatus::Registered => Invitation::Registered(project, record),
            // A failed invitation's SMS never all went out: like an expired one, it asks
            // for a new invitation.
            // An opted-out one likewise: it asked for no more of this invitation.
            ShownStatus::Expired | ShownStatus::Failed | ShownStatus::OptedOut => {
                Invitation::Expired(project)
            }
            // Queued: the first SMS is going out (or went out, not yet recorded).
            ShownStatus::Pending | ShownStatus::Queued if record.account.is_some() => {
                Invitation::Creating(project, record)
            }
            ShownStatus::Pending | ShownStatus::Queued => Invitation::Pending(project, record),
        })
    }

    /// The registration page was opened: its first opening is recorded (`opened_at`, and
    /// its batch's `opened`). A failure is only logged: the page is shown all the same.
    pub async fn note_opened(&self, record: &RegistrationRecord) {
        if record.opened_at.is_some() {
            return;
        }
        if let Err(error) = self.store.mark_opened(record, self.clock.now()).await {
            warn!(%error, "could not record that the link was opened");
        }
    }

    /// Creates the worker's account and marks the invitation registered, both or neither,
    /// with the event that tells the organisation.
    pub async fn complete_registration(
        &self,
        domain: Option<&str>,
        token: &str,
        form: &RegistrationForm,
    ) -> Result<Registered, RegisterError> {
        let (project, invitation) = match self.open_invitation(domain, token).await? {
            Invitation::Pending(project, record) => (project, record),
            other => return Err(RegisterError::Unavailable(other)),
        };
        let valid = match form.validate(invitation.require_email) {
            Ok(valid) => valid,
            Err(errors) => return Err(RegisterError::Form(project, invitation, errors)),
        };
        if project.accounts.is_external() {
            return self.register_external(project, invitation, valid).await;
        }
        let password = valid.password.clone();
        // argon2 takes tens of milliseconds of CPU: off the async workers.
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .expect("password hashing does not panic");
        let worker = Worker {
            domain: project.name.clone(),
            username: valid.username.clone(),
            password_hash: Some(password_hash),
            phone: invitation.phone.clone(),
            email: valid.email.clone(),
            custom_user_data: invitation.custom_user_data.clone(),
            app_id: invitation.app_id.clone(),
            registered_at: self.clock.now(),
        };
        match self.store.register(&invitation, &worker).await? {
            RegisterOutcome::Registered => {}
            RegisterOutcome::UsernameTaken => {
                let errors = FormErrors::single("username", "This username is already taken");
                return Err(RegisterError::Form(project, invitation, errors));
            }
            RegisterOutcome::TryAgain => return Err(RegisterError::TryAgain),
            RegisterOutcome::InvitationChanged => {
                let now = self.open_invitation(domain, token).await?;
                return Err(RegisterError::Unavailable(match now {
                    // Still pending means it was replaced and came back; say it changed.
                    Invitation::Pending(..) => Invitation::NotFound,
                    other => other,
                }));
            }
        }
        // Its `Worker Registered` event was written with it (the outbox).
        info!(phone = %worker.phone.masked(), "worker registered");
        Ok(Registered {
            project,
            invitation,
            username: worker.username,
            account: None,
        })
    }
}
