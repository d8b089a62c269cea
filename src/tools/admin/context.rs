//! What every subcommand works with (the AWS configuration, the table, the clock) and how
//! it fails: a message on stderr and an exit code.

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoStore;
use crate::config::Config;
use crate::domain::project::is_valid_project_name;
use crate::ports::{Clock, Directory};

/// What every subcommand works with: the AWS configuration, the table and the clock.
pub(super) struct Admin {
    pub(super) aws: aws_config::SdkConfig,
    pub(super) config: Config,
    pub(super) store: DynamoStore,
    pub(super) clock: Arc<dyn Clock>,
}

/// A failure to report on stderr, with the exit code to leave with. An empty message
/// prints nothing: the command has already said why on stdout (`check-accounts`).
pub(super) struct Failure(pub(super) String, pub(super) u8);

/// Bad arguments: exit 2.
pub(super) fn usage(message: impl Into<String>) -> Failure {
    Failure(message.into(), 2)
}

/// A failed operation: exit 1.
pub(super) fn failed(message: impl std::fmt::Display) -> Failure {
    Failure(message.to_string(), 1)
}

pub(super) fn check_domain(domain: &str) -> Result<(), Failure> {
    if is_valid_project_name(domain) {
        Ok(())
    } else {
        Err(usage(format!(
            "invalid project name {domain:?}: use 1 to 63 lowercase letters, digits and hyphens"
        )))
    }
}

/// The error of a command that needs an existing project.
pub(super) fn no_project(domain: &str) -> Failure {
    failed(format!(
        "project {domain:?} does not exist: create it with put-domain first"
    ))
}

pub(super) async fn require_project(store: &DynamoStore, domain: &str) -> Result<(), Failure> {
    match store.project(domain).await.map_err(failed)? {
        Some(_) => Ok(()),
        None => Err(no_project(domain)),
    }
}
