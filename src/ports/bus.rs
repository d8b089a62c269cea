//! Where the organisation's events go (an EventBridge bus on AWS), in batches as the bus
//! takes them.

use std::future::Future;

use crate::domain::event::OrgEvent;

/// A put, or one entry of it, that the bus refused. It carries an error code, never the
/// event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the bus refused the event ({code})")]
pub struct BusError {
    pub code: String,
}

pub trait EventBus: Send + Sync {
    /// Most entries in one [`EventBus::put`] (EventBridge's `PutEvents`: 10).
    const MAX_ENTRIES: usize = 10;
    /// Most bytes of entries in one put, as the bus counts them (`PutEvents`: 256 KB).
    const MAX_BYTES: usize = 256 * 1024;

    /// Puts `events` (at most [`EventBus::MAX_ENTRIES`]): one result per event, in order;
    /// an entry refused alone (throttled, say) is to be put again. `Err`: the call as a
    /// whole failed, and any of its entries may or may not be on the bus.
    fn put(
        &self,
        events: &[&OrgEvent],
    ) -> impl Future<Output = Result<Vec<Result<(), BusError>>, BusError>> + Send;

    /// The size of an entry as the bus counts it towards [`EventBus::MAX_BYTES`].
    fn entry_size(event: &OrgEvent) -> usize;
}
