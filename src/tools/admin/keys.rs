//! `create-key` and `revoke-key`: a project's API keys.

use super::context::{Admin, Failure, check_domain, failed, require_project, usage};
use crate::domain::ApiKey;
use crate::domain::project::{generate_key, hash_key};

impl Admin {
    /// `smsreg-admin create-key`.
    pub(super) async fn create_key(
        &self,
        domain: String,
        username: String,
        read_only: bool,
        key_from_stdin: bool,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        if username.is_empty()
            || username.len() > crate::functions::api::auth::MAX_USERNAME_BYTES
            || username.contains(':')
            || username.chars().any(char::is_whitespace)
        {
            return Err(usage(
                "the username must be 1 to 254 bytes, without ':' or spaces",
            ));
        }
        require_project(&self.store, &domain).await?;
        let key = if key_from_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| failed(format!("reading the key from stdin: {e}")))?;
            let key = line.trim().to_owned();
            if key.len() < 24 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(usage(
                    "the key must be at least 24 printable characters without spaces",
                ));
            }
            key
        } else {
            generate_key()
        };
        let record = ApiKey {
            username: username.clone(),
            domain,
            key_hash: hash_key(&key),
            can_edit_data: !read_only,
        };
        self.store
            .put_key(&record, self.clock.now())
            .await
            .map_err(failed)?;
        println!("{username}:{key}");
        Ok(())
    }

    /// `smsreg-admin revoke-key`.
    pub(super) async fn revoke_key(&self, domain: String, username: String) -> Result<(), Failure> {
        check_domain(&domain)?;
        if !self
            .store
            .delete_key(&domain, &username)
            .await
            .map_err(failed)?
        {
            return Err(failed(format!("{username} has no key in project {domain}")));
        }
        println!("key of {username} in project {domain} revoked");
        Ok(())
    }
}
