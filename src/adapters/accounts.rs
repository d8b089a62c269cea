//! The directories of every kind a project may choose, behind one [`AccountDirectory`]:
//! the deployment's Cognito pool (when it has one) and CommCare HQ servers.

use crate::domain::account::{Accounts, NewAccount};
use crate::ports::{AccountDirectory, AccountError};

use super::cognito::CognitoPool;
use super::commcare_hq::CommCareHq;

#[derive(Clone, Debug)]
pub struct Directories {
    /// `None`: the deployment has no pool (`USER_POOL_ID` unset).
    pub cognito: Option<CognitoPool>,
    pub hq: CommCareHq,
}

impl Directories {
    /// Whether the directory of `accounts` can take the service's accounts: `Ok`, or one
    /// line naming what is missing (`smsreg-admin check-accounts`).
    pub async fn check(&self, accounts: &Accounts) -> Result<(), String> {
        match accounts {
            Accounts::Service => Ok(()),
            Accounts::Cognito => match &self.cognito {
                Some(pool) => pool.check().await,
                None => Err("no user pool: USER_POOL_ID is not set".into()),
            },
            Accounts::CommCareHq(project) => self.hq.check(project).await,
        }
    }
}

impl AccountDirectory for Directories {
    async fn create(&self, accounts: &Accounts, account: &NewAccount) -> Result<(), AccountError> {
        match accounts {
            Accounts::Service => Err(AccountError::Denied(
                "the project keeps its accounts in the service's table".into(),
            )),
            Accounts::Cognito => match &self.cognito {
                Some(pool) => pool.create(account).await,
                None => Err(AccountError::Denied(
                    "the deployment has no user pool (USER_POOL_ID)".into(),
                )),
            },
            Accounts::CommCareHq(project) => self.hq.create(project, account).await,
        }
    }
}
