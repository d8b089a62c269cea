//! Reads for the API: a page of a project's invitations, and a batch's progress. Each is
//! cut off at the request's deadline (less the margin).

use std::time::Instant;

use tracing::warn;

use super::RegistrationService;
use crate::domain::{Project, Token};
use crate::ports::{BatchProgress, InvitationPage, JobQueue, ListQuery, Store, StoreError};

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// A page of the project's invitations, in the listing's order, from an index.
    pub async fn list_invitations(
        &self,
        query: &ListQuery,
        deadline: Option<Instant>,
    ) -> Result<InvitationPage, StoreError> {
        self.read_before(deadline, "listing", self.store.list(query))
            .await
    }

    /// A batch's counts; `None` for a batch of another project, or none at all.
    pub async fn batch_progress(
        &self,
        project: &Project,
        batch_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<BatchProgress>, StoreError> {
        // Batch ids are made like tokens: anything else names no batch.
        if !Token::is_well_formed(batch_id) {
            return Ok(None);
        }
        let progress = self
            .read_before(
                deadline,
                "batch progress",
                self.store.batch_progress(batch_id),
            )
            .await?;
        // Another project's batch is as unknown as one that never was.
        Ok(progress.filter(|p| p.domain == project.name))
    }

    async fn read_before<T>(
        &self,
        deadline: Option<Instant>,
        what: &str,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.bounded(self.work_until(deadline), read).await {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => {
                warn!(%error, what, "read failed");
                Err(error)
            }
            None => {
                warn!(what, "the deadline cut off the read");
                Err(StoreError::Unavailable {
                    code: "DeadlineTooClose".into(),
                })
            }
        }
    }
}
