//! Who may call: authentication by API key, authorisation in a project, and the
//! project's daily invitation limit.

use tracing::warn;

use super::RegistrationService;
use crate::domain::project::find_key;
use crate::domain::time::{seconds_to_midnight, utc_day};
use crate::domain::{ApiKey, Plan, Project, RequestedNumber, UserEntry};
use crate::ports::{JobQueue, Store, StoreError};

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

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// Admits the caller to `domain`: authenticates the credentials, then checks, in the
    /// contract's order, that the key may act there (any key of the project for reading,
    /// one with `edit_data` for sending) and that the project may send.
    ///
    /// The key and the project are looked up at the same time (two reads, one round trip):
    /// the project is read even for a caller who then fails, but nothing of it is answered
    /// before the caller is authenticated and authorised, so the errors come as they would
    /// one after the other.
    pub async fn admit(
        &self,
        credentials: &Credentials,
        domain: &str,
        access: Access,
    ) -> Result<Project, AccessError> {
        let (key, project) =
            tokio::join!(self.authenticate(credentials), self.store.project(domain));
        let key = key?;
        if key.domain != domain || (access == Access::Edit && !key.can_edit_data) {
            return Err(AccessError::Forbidden);
        }
        let project = project?.ok_or(AccessError::Forbidden)?;
        if project.plan < Plan::Pro {
            return Err(AccessError::PlanTooLow);
        }
        if !project.registration_enabled {
            return Err(AccessError::FeatureDisabled);
        }
        Ok(project)
    }

    /// Finds the key the credentials present. Which projects exist plays no part.
    async fn authenticate(&self, credentials: &Credentials) -> Result<ApiKey, AccessError> {
        let keys = self.store.api_keys_of(&credentials.username).await?;
        find_key(keys, &credentials.key).ok_or(AccessError::Unauthenticated)
    }

    /// Counts the request's valid numbers against the project's daily limit, all or none.
    pub(super) async fn reserve_invitations(
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
            .store
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
    pub(super) async fn settle(&self, project: &Project, reservation: Reservation, sent: usize) {
        let sent = u32::try_from(sent).unwrap_or(u32::MAX);
        let unused = reservation.count.saturating_sub(sent);
        if let Err(error) = self
            .store
            .refund(&project.name, &reservation.day, unused)
            .await
        {
            warn!(%error, unused, "could not give back unused invitations of the daily limit");
        }
    }
}
