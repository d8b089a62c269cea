//! Worker accounts in a project of a CommCare HQ server, through HQ's User API, with the
//! API key read from AWS Secrets Manager.

use crate::domain::account::{HqProject, NewAccount};
use crate::ports::AccountError;

/// The HQ client. (To be written: the User API, the key from Secrets Manager.)
#[derive(Clone, Debug, Default)]
pub struct CommCareHq {}

impl CommCareHq {
    pub async fn create(&self, _hq: &HqProject, _account: &NewAccount) -> Result<(), AccountError> {
        Err(AccountError::Denied(
            "CommCare HQ accounts are not built yet".into(),
        ))
    }

    pub async fn check(&self, _hq: &HqProject) -> Result<(), String> {
        Err("CommCare HQ accounts are not built yet".into())
    }
}
