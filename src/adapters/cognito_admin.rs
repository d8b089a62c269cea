//! A Cognito user pool made for the service's worker accounts (`smsreg-admin
//! create-user-pool`), as the stack's template makes it: usernames that ignore case, the
//! registration form's password rule and no other, the custom attributes the service
//! writes, and no way for anyone but an administrator (the service) to add users.

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, AttributeDataType, ExplicitAuthFlowsType, PasswordPolicyType,
    SchemaAttributeType, StringAttributeConstraintsType, UserPoolPolicyType,
    UsernameConfigurationType,
};

use super::cognito::{CUSTOM_ATTRIBUTES, MAX_ATTRIBUTE_CHARS};
use crate::domain::worker::MIN_PASSWORD_CHARS;

/// The pool and its app client, as made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPool {
    pub pool_id: String,
    /// The app client that apps sign workers in with (no secret).
    pub client_id: String,
}

/// A string attribute of the pool's schema: the custom ones with room for
/// `MAX_ATTRIBUTE_CHARS`, the standard ones (`custom: false`) with their own limits.
fn string_attribute(name: &str, custom: bool) -> SchemaAttributeType {
    let attribute = SchemaAttributeType::builder()
        .name(name)
        .attribute_data_type(AttributeDataType::String)
        .mutable(true)
        .required(false);
    if custom {
        attribute
            .string_attribute_constraints(
                StringAttributeConstraintsType::builder()
                    .min_length("0")
                    .max_length(MAX_ATTRIBUTE_CHARS.to_string())
                    .build(),
            )
            .build()
    } else {
        attribute.build()
    }
}

/// The form's password rule (`domain::worker`): a length, no classes of characters. A
/// pool that asked for more would refuse passwords the page had accepted. (The form's
/// longest, 128, is below Cognito's own 256.)
fn password_policy() -> PasswordPolicyType {
    PasswordPolicyType::builder()
        .minimum_length(MIN_PASSWORD_CHARS as i32)
        .require_uppercase(false)
        .require_lowercase(false)
        .require_numbers(false)
        .require_symbols(false)
        .build()
}

/// Makes the pool named `name` and its app client. Each call makes a new pool: Cognito
/// has no name it keeps unique. The error is Cognito's code, with the step it failed at.
pub async fn create_user_pool(client: &Client, name: &str) -> Result<CreatedPool, String> {
    let mut schema: Vec<SchemaAttributeType> = CUSTOM_ATTRIBUTES
        .iter()
        .map(|attribute| string_attribute(attribute, true))
        .collect();
    schema.push(string_attribute("phone_number", false));
    schema.push(string_attribute("email", false));
    let pool = client
        .create_user_pool()
        .pool_name(name)
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(false)
                .build()
                .expect("a username configuration has its one field"),
        )
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(password_policy())
                .build(),
        )
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(true)
                .build(),
        )
        .set_schema(Some(schema))
        .send()
        .await
        .map_err(|e| format!("CreateUserPool failed: {}", super::error_code(&e)))?;
    let pool_id = pool
        .user_pool()
        .and_then(|p| p.id())
        .ok_or("CreateUserPool answered without a pool id")?
        .to_owned();
    let app = client
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name(format!("{name}-app"))
        .generate_secret(false)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateUserPoolClient failed (pool {pool_id} made): {}",
                super::error_code(&e)
            )
        })?;
    let client_id = app
        .user_pool_client()
        .and_then(|c| c.client_id())
        .ok_or_else(|| {
            format!("CreateUserPoolClient answered without a client id (pool {pool_id})")
        })?
        .to_owned();
    Ok(CreatedPool { pool_id, client_id })
}
