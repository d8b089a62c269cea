//! Where `worker_registered` events go, for the organisation's own systems (an SNS topic
//! on AWS): a port of its own, apart from the SMS provider.

use std::future::Future;

/// An event that was not published. It carries an error code, never the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event was not published ({code})")]
pub struct PublishError {
    pub code: String,
}

pub trait RegistrationEvents: Send + Sync {
    /// Publishes the event; `Ok` also when publishing is not configured.
    fn worker_registered(
        &self,
        event: &serde_json::Value,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// No events published: for the functions that register nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl RegistrationEvents for NoEvents {
    async fn worker_registered(&self, _event: &serde_json::Value) -> Result<(), PublishError> {
        Ok(())
    }
}
