//! In memory: the `Directory` port.

use crate::domain::{ApiKey, Project};
use crate::ports::{Directory, StoreError};

use super::*;

impl Directory for MemoryStore {
    async fn api_keys_of(&self, username: &str) -> Result<Vec<ApiKey>, StoreError> {
        let state = self.reachable()?;
        Ok(state
            .keys
            .iter()
            .filter(|k| k.username == username)
            .cloned()
            .collect())
    }

    async fn project(&self, domain: &str) -> Result<Option<Project>, StoreError> {
        let state = self.reachable()?;
        Ok(state.projects.get(domain).cloned())
    }
}
