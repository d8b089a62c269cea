//! Projects, their apps and API keys: the `Directory` port.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::*;
use super::*;

use crate::domain::project::{DEFAULT_DAILY_INVITATION_LIMIT, SmsSettings};
use crate::domain::{ApiKey, Plan, Project};
use crate::ports::{Directory, StoreError};

impl Directory for DynamoStore {
    async fn api_keys_of(&self, username: &str) -> Result<Vec<ApiKey>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :key)")
            .expression_attribute_values(":pk", s(user_pk(username)))
            .expression_attribute_values(":key", s("KEY#"))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.items().iter().map(key_from_item).collect()
    }

    async fn project(&self, domain: &str) -> Result<Option<Project>, StoreError> {
        let items = self.partition(project_pk(domain)).await?;
        let Some(meta) = items
            .iter()
            .find(|i| opt_s(i, SK).as_deref() == Some(PROJECT_SK))
        else {
            return Ok(None);
        };
        let plan: Plan = get_s(meta, "plan")?
            .parse()
            .map_err(|_| StoreError::Malformed("plan".into()))?;
        let apps = items
            .iter()
            .filter(|i| opt_s(i, SK).is_some_and(|sk| sk.starts_with("APP#")))
            .map(app_from_item)
            .collect::<Result<_, _>>()?;
        let allowed_countries = match meta.get("allowed_countries") {
            Some(AttributeValue::L(codes)) => Some(
                codes
                    .iter()
                    .filter_map(|c| c.as_s().ok().cloned())
                    .collect(),
            ),
            _ => None,
        };
        let daily_invitation_limit = match opt_n(meta, "daily_invitation_limit")? {
            Some(n) => u32::try_from(n)
                .map_err(|_| StoreError::Malformed("daily_invitation_limit".into()))?,
            None => DEFAULT_DAILY_INVITATION_LIMIT,
        };
        let defaults = SmsSettings::default();
        let sms = SmsSettings {
            smart_encoding: opt_bool(meta, "smart_encoding").unwrap_or(defaults.smart_encoding),
            max_parts_per_sms: match opt_n(meta, "max_parts_per_sms")? {
                Some(n) => u32::try_from(n)
                    .map_err(|_| StoreError::Malformed("max_parts_per_sms".into()))?,
                None => defaults.max_parts_per_sms,
            },
            send_window: match opt_s(meta, "send_window") {
                Some(text) => text
                    .parse()
                    .map_err(|_| StoreError::Malformed("send_window".into()))?,
                None => defaults.send_window,
            },
            max_price_per_part: opt_s(meta, "max_price_per_part"),
        };
        Ok(Some(Project {
            name: domain.to_owned(),
            display_name: opt_s(meta, "display_name"),
            plan,
            registration_enabled: get_bool(meta, "registration_enabled"),
            apps,
            allowed_countries,
            daily_invitation_limit,
            sms,
            accounts: accounts_from_item(meta)?,
            languages: super::item::languages_from_item(meta)?,
            texts: super::item::texts_from_item(meta)?,
        }))
    }
}
