//! The password seal: envelope encryption under the deployment's KMS key
//! (`PASSWORD_KEY_ID`). Each password gets a data key of its own (`GenerateDataKey`,
//! AES-256) with the attempt's id as encryption context, is sealed with AES-256-GCM (the
//! context again as associated data), and only the data key's KMS-encrypted form is kept
//! beside it: opening needs `kms:Decrypt` on the key, which only the functions that make
//! accounts have.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use crate::domain::account::Password;
use crate::ports::{PasswordSealer, SealError};

/// The encryption context's key: the attempt's id is its value.
const CONTEXT_KEY: &str = "smsreg-account-attempt";
/// The sealed form's version, first of its dot-separated parts.
const VERSION: &str = "v1";

#[derive(Clone, Debug)]
pub struct KmsSealer {
    client: Client,
    key_id: String,
}

impl KmsSealer {
    pub fn new(client: Client, key_id: String) -> Self {
        KmsSealer { client, key_id }
    }
}

fn unavailable<E: ProvideErrorMetadata>(error: &E) -> SealError {
    SealError::Unavailable(error.code().unwrap_or("no answer").to_owned())
}

fn aead(key: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Corrupt("data key".into()))
}

impl PasswordSealer for KmsSealer {
    async fn seal(&self, context: &str, password: &Password) -> Result<String, SealError> {
        let data_key = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let (Some(plain_key), Some(wrapped)) = (data_key.plaintext(), data_key.ciphertext_blob())
        else {
            return Err(SealError::Unavailable("no data key".into()));
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Unavailable("randomness".into()))?;
        let mut sealed = password.expose().as_bytes().to_vec();
        aead(plain_key.as_ref())?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Corrupt("seal".into()))?;
        let b64 = |bytes: &[u8]| STANDARD_NO_PAD.encode(bytes);
        Ok(format!(
            "{VERSION}.{}.{}.{}",
            b64(wrapped.as_ref()),
            b64(&nonce),
            b64(&sealed)
        ))
    }

    async fn open(&self, context: &str, sealed: &str) -> Result<Password, SealError> {
        let parts: Vec<&str> = sealed.split('.').collect();
        let [VERSION, wrapped, nonce, body] = parts[..] else {
            return Err(SealError::Corrupt("form".into()));
        };
        let decode = |text: &str| {
            STANDARD_NO_PAD
                .decode(text)
                .map_err(|_| SealError::Corrupt("encoding".into()))
        };
        let (wrapped, nonce, mut body) = (decode(wrapped)?, decode(nonce)?, decode(body)?);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SealError::Corrupt("nonce".into()))?;
        let plain_key = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("InvalidCiphertextException") => SealError::Corrupt("data key".into()),
                _ => unavailable(&e),
            })?;
        let plain_key = plain_key
            .plaintext()
            .ok_or_else(|| SealError::Unavailable("no data key".into()))?;
        let opened = aead(plain_key.as_ref())?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .map_err(|_| SealError::Corrupt("tag".into()))?;
        let text =
            String::from_utf8(opened.to_vec()).map_err(|_| SealError::Corrupt("utf-8".into()))?;
        Ok(Password::new(text))
    }
}
