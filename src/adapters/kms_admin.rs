//! The KMS key that seals worker passwords while their accounts wait (`adapters::kms`),
//! made by `smsreg-admin create-password-key` where no stack makes it (local runs).

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};

/// What the key is for, as its description in KMS says.
pub const PASSWORD_KEY_DESCRIPTION: &str =
    "smsreg: seals worker passwords while their accounts wait";

/// Makes a symmetric encryption key (`SYMMETRIC_DEFAULT`: what `GenerateDataKey` and
/// `Decrypt` need) and returns its key id, for `PASSWORD_KEY_ID`. The error is KMS's code.
pub async fn create_password_key(client: &Client) -> Result<String, String> {
    let created = client
        .create_key()
        .description(PASSWORD_KEY_DESCRIPTION)
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .map_err(|e| format!("CreateKey failed: {}", super::error_code(&e)))?;
    created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or_else(|| "CreateKey answered without a key id".to_owned())
}
