//! Worker accounts in the deployment's Cognito user pool (`USER_POOL_ID`).
//!
//! An account is made in two calls, neither idempotent: `AdminCreateUser` (nothing sent
//! to the worker, the phone number verified: the worker opened a link sent only to it)
//! then `AdminSetUserPassword` (permanent: the worker signs in with the password chosen
//! on the page). A retry that meets `UsernameExistsException` reads the account: one that
//! carries this attempt's reference (`custom:smsreg_ref`) is the service's own, finished
//! by setting its password again; any other is someone else's.

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::AttributeType;

use crate::domain::account::NewAccount;
use crate::ports::AccountError;

/// The custom attributes the service writes (docs/accounts.md): the pool must define them
/// (`smsreg-admin create-user-pool` does; `check-accounts` says when one is missing).
pub const REFERENCE_ATTRIBUTE: &str = "custom:smsreg_ref";
pub const PROJECT_ATTRIBUTE: &str = "custom:project";
pub const APP_ATTRIBUTE: &str = "custom:app_id";
pub const USER_DATA_ATTRIBUTE: &str = "custom:user_data";
/// Every custom attribute, without its `custom:` prefix, as a pool's schema names them.
pub const CUSTOM_ATTRIBUTES: [&str; 4] = ["smsreg_ref", "project", "app_id", "user_data"];
/// The longest value of a custom attribute.
pub const MAX_ATTRIBUTE_CHARS: usize = 2048;

#[derive(Clone, Debug)]
pub struct CognitoPool {
    client: Client,
    pool_id: String,
}

fn attribute(name: &str, value: &str) -> AttributeType {
    AttributeType::builder()
        .name(name)
        .value(value)
        .build()
        .expect("attribute has its name")
}

/// The attributes of a new account: what the pool has room for.
fn attributes(account: &NewAccount) -> Vec<AttributeType> {
    let mut list = vec![
        attribute("phone_number", account.phone.as_str()),
        attribute("phone_number_verified", "true"),
        attribute(REFERENCE_ATTRIBUTE, &account.reference),
        attribute(PROJECT_ATTRIBUTE, &account.project),
    ];
    if let Some(email) = &account.email {
        list.push(attribute("email", email));
    }
    if let Some(app) = &account.app_id {
        list.push(attribute(APP_ATTRIBUTE, app));
    }
    if let Some(data) = &account.custom_user_data {
        let json = serde_json::to_string(data).unwrap_or_default();
        // Kept only when it fits; the invitation keeps it all the same (docs/accounts.md).
        if json.chars().count() <= MAX_ATTRIBUTE_CHARS {
            list.push(attribute(USER_DATA_ATTRIBUTE, &json));
        }
    }
    list
}

/// What a Cognito error means for the account.
fn classify<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> AccountError {
    let code = error.code().unwrap_or_default();
    let message = error.message().unwrap_or_default();
    match code {
        "UsernameExistsException" => AccountError::Taken,
        "TooManyRequestsException" | "ThrottlingException" | "LimitExceededException" => {
            AccountError::Throttled(None)
        }
        "InvalidPasswordException" => {
            AccountError::Invalid("The password does not meet the pool's rules".into())
        }
        "InvalidParameterException" => AccountError::Invalid(format!(
            "Cognito refused the account: {}",
            message.chars().take(200).collect::<String>()
        )),
        "ResourceNotFoundException" => AccountError::Denied("the user pool does not exist".into()),
        "NotAuthorizedException" | "AccessDeniedException" | "AccessDenied" => {
            AccountError::Denied(format!("not allowed to make users in the pool ({code})"))
        }
        "" => AccountError::Unavailable(match error {
            SdkError::TimeoutError(_) => "timed out".into(),
            SdkError::DispatchFailure(_) => "no connection".into(),
            _ => "no answer".into(),
        }),
        other => AccountError::Unavailable(other.to_owned()),
    }
}

impl CognitoPool {
    pub fn new(client: Client, pool_id: String) -> Self {
        CognitoPool { client, pool_id }
    }

    pub fn pool_id(&self) -> &str {
        &self.pool_id
    }

    pub async fn create(&self, account: &NewAccount) -> Result<(), AccountError> {
        let created = self
            .client
            .admin_create_user()
            .user_pool_id(&self.pool_id)
            .username(&account.username)
            .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
            .set_user_attributes(Some(attributes(account)))
            .send()
            .await;
        match created.as_ref().map_err(classify) {
            Ok(_) => {}
            Err(AccountError::Taken) => self.recognise(account).await?,
            Err(other) => return Err(other),
        }
        self.client
            .admin_set_user_password()
            .user_pool_id(&self.pool_id)
            .username(&account.username)
            .password(account.password.expose())
            .permanent(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    /// `Ok` when the account named `account.username` is this attempt's own.
    async fn recognise(&self, account: &NewAccount) -> Result<(), AccountError> {
        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&self.pool_id)
            .username(&account.username)
            .send()
            .await
            .map_err(|e| match classify(&e) {
                // Gone between the two calls: taken by nobody, but not ours either.
                AccountError::Denied(_) if e.code() == Some("UserNotFoundException") => {
                    AccountError::Unavailable("the account vanished".into())
                }
                other => other,
            })?;
        let ours = user.user_attributes().iter().any(|a| {
            a.name() == REFERENCE_ATTRIBUTE && a.value() == Some(account.reference.as_str())
        });
        if ours {
            Ok(())
        } else {
            Err(AccountError::Taken)
        }
    }

    /// Whether the pool can take the service's accounts: `Ok`, or what is missing.
    pub async fn check(&self) -> Result<(), String> {
        let pool = self
            .client
            .describe_user_pool()
            .user_pool_id(&self.pool_id)
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("ResourceNotFoundException") => {
                    format!("the user pool {} does not exist", self.pool_id)
                }
                Some(code) => format!("the user pool {} cannot be read ({code})", self.pool_id),
                None => format!("the user pool {} cannot be reached", self.pool_id),
            })?;
        let Some(pool) = pool.user_pool() else {
            return Err(format!("the user pool {} does not exist", self.pool_id));
        };
        let defined: Vec<&str> = pool
            .schema_attributes()
            .iter()
            .filter_map(|a| a.name())
            .collect();
        let missing: Vec<&str> = CUSTOM_ATTRIBUTES
            .into_iter()
            .filter(|name| {
                !defined
                    .iter()
                    .any(|d| *d == *name || d.strip_prefix("custom:") == Some(name))
            })
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the user pool {} lacks the custom attributes {} (docs/accounts.md)",
                self.pool_id,
                missing.join(", ")
            ));
        }
        Ok(())
    }
}
