//! The pure domain: phone numbers, requests, invitations, projects and SMS texts.

pub mod account;
pub mod encoding;
pub mod event;
pub mod idempotency;
pub mod invitation;
pub mod job;
pub mod json;
pub mod keyword;
pub mod language;
pub mod outcome;
pub mod phone;
pub mod project;
pub mod receipt;
pub mod request;
pub mod sms;
pub mod time;
pub mod window;
pub mod worker;

pub use invitation::{Invitation, RegistrationRecord, RegistrationStatus, Token};
pub use outcome::{InviteOutcome, RegistrationReport};
pub use phone::{PhoneError, PhoneNumber};
pub use project::{ApiKey, App, Plan, Project};
pub use request::{
    FieldErrors, RegistrationRequest, RequestedNumber, UserEntry, ValidationContext,
};
