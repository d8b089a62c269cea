//! Keeping each use case within its Lambda invocation: when to stop starting calls, and
//! calls cut off at that moment.

use std::time::Instant;

use super::RegistrationService;
use crate::ports::{JobQueue, QueueError, Store};

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
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
    pub(super) fn too_late(&self, until: Option<Instant>) -> bool {
        until.is_some_and(|u| Instant::now() >= u)
    }
}

/// A job not put on the queue: the deadline was too close to start the call.
pub(super) fn deadline_error() -> QueueError {
    QueueError {
        code: "DeadlineTooClose".into(),
    }
}

/// A `SendMessageBatch` the deadline cut off after it was sent: its outcome is unknown.
pub(super) fn cut_off_error() -> QueueError {
    QueueError {
        code: "CutOffByDeadline".into(),
    }
}
