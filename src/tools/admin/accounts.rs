//! `create-user-pool`, `create-password-key` and `check-accounts`: where workers' accounts
//! are made outside the service's table, and whether that place is ready.

use super::context::{Admin, Failure, check_domain, failed, no_project};
use crate::adapters::accounts::Directories;
use crate::adapters::cognito::CognitoPool;
use crate::adapters::commcare_hq::CommCareHq;
use crate::ports::Directory;

/// The variable naming the deployment's user pool, as the functions read it.
const USER_POOL_ID: &str = "USER_POOL_ID";

impl Admin {
    /// `smsreg-admin create-user-pool`: the pool id, then `client_id=...`.
    pub(super) async fn create_user_pool(&self, name: String) -> Result<(), Failure> {
        let client = aws_sdk_cognitoidentityprovider::Client::new(&self.aws);
        let made = crate::adapters::cognito_admin::create_user_pool(&client, &name)
            .await
            .map_err(failed)?;
        println!("{}", made.pool_id);
        println!("client_id={}", made.client_id);
        Ok(())
    }

    /// `smsreg-admin create-password-key`: the key id.
    pub(super) async fn create_password_key(&self) -> Result<(), Failure> {
        let client = aws_sdk_kms::Client::new(&self.aws);
        let key_id = crate::adapters::kms_admin::create_password_key(&client)
            .await
            .map_err(failed)?;
        println!("{key_id}");
        Ok(())
    }

    /// `smsreg-admin check-accounts`: one line, `ready` or why not (then exit 1, nothing
    /// on stderr: the line is the answer).
    pub(super) async fn check_accounts(&self, domain: String) -> Result<(), Failure> {
        check_domain(&domain)?;
        let project = self
            .store
            .project(&domain)
            .await
            .map_err(failed)?
            .ok_or_else(|| no_project(&domain))?;
        let cognito = std::env::var(USER_POOL_ID)
            .ok()
            .filter(|id| !id.is_empty())
            .map(|id| {
                CognitoPool::new(aws_sdk_cognitoidentityprovider::Client::new(&self.aws), id)
            });
        let directories = Directories {
            cognito,
            hq: CommCareHq::new(aws_sdk_secretsmanager::Client::new(&self.aws)),
        };
        match directories.check(&project.accounts).await {
            Ok(()) => {
                println!("ready");
                Ok(())
            }
            Err(reason) => {
                println!("{reason}");
                Err(Failure(String::new(), 1))
            }
        }
    }
}
