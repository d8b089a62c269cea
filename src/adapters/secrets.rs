//! Secrets kept in AWS Secrets Manager (a CommCare HQ project's API key), read by ARN.

use std::fmt;

use aws_sdk_secretsmanager::Client;

/// A secret's text. Its Debug prints nothing of it: it must never reach a log or an error.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(..)")
    }
}

#[derive(Clone, Debug)]
pub struct Secrets {
    client: Client,
}

impl Secrets {
    pub fn new(client: Client) -> Self {
        Secrets { client }
    }

    /// The `SecretString` of the secret `arn` (its current version). The error is the code
    /// of the failure (`ResourceNotFoundException`, `AccessDeniedException`, ...), never
    /// the service's message; a secret with only a binary value is `NoSecretString`.
    pub async fn read(&self, arn: &str) -> Result<SecretText, String> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| super::error_code(&e))?;
        output
            .secret_string
            .map(SecretText)
            .ok_or_else(|| "NoSecretString".to_owned())
    }
}
