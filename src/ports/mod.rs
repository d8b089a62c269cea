//! The traits the service needs from the outside world, by concern: the store
//! ([`store`], with the sender's records in [`ledger`]), the send queue, the SMS provider,
//! the bus the organisation's events go to, and the clock. Adapters in `adapters` implement them.

pub mod accounts;
pub mod bus;
pub mod clock;
pub mod ledger;
pub mod queue;
pub mod sms;
pub mod store;

pub use accounts::{
    AccountBackend, AccountDirectory, AccountError, AccountJob, AccountPorts, AccountQueue,
    PasswordSealer, SealError,
};
pub use bus::{BusError, EventBus};
pub use clock::{Clock, SystemClock};
pub use queue::{JobQueue, QueueError};
pub use sms::{Outgoing, SmsContext, SmsError, SmsFailure, SmsProvider};
pub use store::*;
