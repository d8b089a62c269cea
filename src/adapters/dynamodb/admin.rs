//! Operations of the admin CLI: table creation, projects, apps, keys, invitations.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use super::item::*;
use super::{DynamoStore, store_error};
use crate::domain::invitation::{ClaimCheck, ClaimRules, RegistrationStatus};
use crate::domain::worker::Worker;
use crate::domain::{ApiKey, App, PhoneNumber, Plan, RegistrationRecord};
use crate::ports::{InvitationStore, StoreError};

/// A project's settings as the admin CLI sets them.
#[derive(Debug, Clone, Copy)]
pub struct ProjectUpdate<'a> {
    pub domain: &'a str,
    pub plan: Plan,
    pub enabled: bool,
    pub display_name: Option<&'a str>,
    /// `Some(&[])` removes the allow-list (every country allowed).
    pub allowed_countries: Option<&'a [String]>,
    pub daily_invitation_limit: Option<u32>,
    /// Unset keeps the current setting (new projects: on).
    pub smart_encoding: Option<bool>,
    /// Unset keeps the current setting (new projects: 3).
    pub max_parts_per_sms: Option<u32>,
    /// Unset keeps the current window (new projects: `SendWindow::default()`).
    pub send_window: Option<crate::domain::window::SendWindow>,
    /// `Some(None)` removes the cap; unset keeps it (new projects: none).
    pub max_price_per_part: Option<Option<&'a str>>,
    /// Where its workers' accounts are made; unset keeps the current setting (new
    /// projects: the service's table).
    pub accounts: Option<&'a crate::domain::account::Accounts>,
    /// Its languages, the first its default; unset keeps them (new projects: English).
    pub languages: Option<&'a [crate::domain::language::Language]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkRegistered {
    Registered,
    /// Registered, or held by a live invitation, in another project.
    InUseElsewhere,
}

fn key_schema(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema has its required fields")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition has its required fields")
}

fn stream_specification() -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .expect("stream specification has its required fields")
}

impl DynamoStore {
    /// Creates the table with its indexes, TTL and stream (new and old images: the events
    /// function reads outbox items and batches' completion from it, as the template has it); an existing table only
    /// gets its stream if it has none. Returns whether it created the table.
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let index = |name: &str, hash: &str, range: Option<&str>| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(
                    std::iter::once(key_schema(hash, KeyType::Hash))
                        .chain(range.map(|r| key_schema(r, KeyType::Range)))
                        .collect(),
                ))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("index has its required fields")
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key_schema(PK, KeyType::Hash))
            .key_schema(key_schema(SK, KeyType::Range))
            .attribute_definitions(string_attribute(PK))
            .attribute_definitions(string_attribute(SK))
            .attribute_definitions(string_attribute(GSI1_PK))
            .attribute_definitions(string_attribute(GSI1_SK))
            .attribute_definitions(string_attribute(TOKEN))
            .attribute_definitions(string_attribute(GSI3_PK))
            .attribute_definitions(string_attribute(GSI3_SK))
            .global_secondary_indexes(index(INVITES_INDEX, GSI1_PK, Some(GSI1_SK)))
            .global_secondary_indexes(index(TOKEN_INDEX, TOKEN, None))
            .global_secondary_indexes(index(STATUS_INDEX, GSI3_PK, Some(GSI3_SK)))
            .stream_specification(stream_specification())
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                self.enable_stream().await?;
                return Ok(false);
            }
            Err(e) => return Err(store_error(&e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL)
                    .enabled(true)
                    .build()
                    .expect("TTL specification has its required fields"),
            )
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(true)
    }

    /// The table's stream ARN, if it has a stream.
    pub async fn stream_arn(&self) -> Result<Option<String>, StoreError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let table = described.table();
        let enabled = table
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        Ok(table
            .and_then(|t| t.latest_stream_arn())
            .filter(|_| enabled)
            .map(str::to_owned))
    }

    /// Gives a table made before the outbox its stream.
    async fn enable_stream(&self) -> Result<(), StoreError> {
        if self.stream_arn().await?.is_some() {
            return Ok(());
        }
        self.client
            .update_table()
            .table_name(&self.table)
            .stream_specification(stream_specification())
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    /// Creates or updates a project. Settings left `None` keep their stored value.
    /// Sets a project's own texts (all its languages'), if the project exists.
    pub async fn put_project_texts(
        &self,
        domain: &str,
        texts: &crate::domain::project::ProjectTexts,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(texts).expect("texts serialise");
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(project_pk(domain)))
            .key(SK, s(PROJECT_SK))
            .update_expression("SET texts = :texts")
            .condition_expression("attribute_exists(registration_enabled)")
            .expression_attribute_values(":texts", s(json))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    pub async fn put_project(&self, update: &ProjectUpdate<'_>) -> Result<(), StoreError> {
        let mut set = vec![
            "kind = :kind",
            "#domain = :domain",
            "#plan = :plan",
            "registration_enabled = :enabled",
        ];
        let mut remove = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(project_pk(update.domain)))
            .key(SK, s(PROJECT_SK))
            .expression_attribute_names("#domain", "domain")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(":kind", s("project"))
            .expression_attribute_values(":domain", s(update.domain))
            .expression_attribute_values(":plan", s(update.plan.as_str()))
            .expression_attribute_values(":enabled", AttributeValue::Bool(update.enabled));
        if let Some(name) = update.display_name {
            set.push("display_name = :display_name");
            request = request.expression_attribute_values(":display_name", s(name));
        }
        match update.allowed_countries {
            Some([]) => remove.push("allowed_countries"),
            Some(codes) => {
                set.push("allowed_countries = :countries");
                let list = codes.iter().map(|c| s(c.as_str())).collect();
                request =
                    request.expression_attribute_values(":countries", AttributeValue::L(list));
            }
            None => {}
        }
        if let Some(limit) = update.daily_invitation_limit {
            set.push("daily_invitation_limit = :limit");
            request = request.expression_attribute_values(":limit", n(u64::from(limit)));
        }
        if let Some(smart) = update.smart_encoding {
            set.push("smart_encoding = :smart");
            request = request.expression_attribute_values(":smart", AttributeValue::Bool(smart));
        }
        if let Some(parts) = update.max_parts_per_sms {
            set.push("max_parts_per_sms = :parts");
            request = request.expression_attribute_values(":parts", n(u64::from(parts)));
        }
        match update.max_price_per_part {
            Some(Some(price)) => {
                set.push("max_price_per_part = :price");
                request = request.expression_attribute_values(":price", s(price));
            }
            Some(None) => remove.push("max_price_per_part"),
            None => {}
        }
        match update.send_window {
            Some(window) => {
                set.push("send_window = :window");
                request = request.expression_attribute_values(":window", s(window.to_string()));
            }
            None => {
                set.push("send_window = if_not_exists(send_window, :window)");
                let window = crate::domain::window::SendWindow::default();
                request = request.expression_attribute_values(":window", s(window.to_string()));
            }
        }
        if let Some(accounts) = update.accounts {
            set.push("accounts = :accounts");
            request = request.expression_attribute_values(":accounts", s(accounts.kind()));
            match accounts {
                crate::domain::account::Accounts::CommCareHq(hq) => {
                    set.extend([
                        "hq_base_url = :hq_url",
                        "hq_domain = :hq_domain",
                        "hq_key_secret_arn = :hq_secret",
                    ]);
                    request = request
                        .expression_attribute_values(":hq_url", s(&hq.base_url))
                        .expression_attribute_values(":hq_domain", s(&hq.domain))
                        .expression_attribute_values(":hq_secret", s(&hq.key_secret_arn));
                }
                _ => remove.extend(["hq_base_url", "hq_domain", "hq_key_secret_arn"]),
            }
        }
        if let Some(languages) = update.languages {
            set.push("languages = :languages");
            request =
                request.expression_attribute_values(":languages", s(language_list(languages)));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    /// Adds or replaces an app; `Ok(false)` when the project does not exist.
    pub async fn put_app(&self, domain: &str, app: &App) -> Result<bool, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .condition_check(
                        aws_sdk_dynamodb::types::ConditionCheck::builder()
                            .table_name(&self.table)
                            .key(PK, s(project_pk(domain)))
                            .key(SK, s(PROJECT_SK))
                            .condition_expression("attribute_exists(pk)")
                            .build()
                            .expect("condition check has its required fields"),
                    )
                    .build(),
            )
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(
                        aws_sdk_dynamodb::types::Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(app_item(domain, app)))
                            .build()
                            .expect("put has its required fields"),
                    )
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    pub async fn put_key(&self, key: &ApiKey, created_at: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key_item(key, created_at)))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    /// Deletes a key; returns whether there was one.
    pub async fn delete_key(&self, domain: &str, username: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(username)))
            .key(SK, s(key_sk(domain)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// A project's worker accounts, by username.
    pub async fn list_workers(&self, domain: &str) -> Result<Vec<Worker>, StoreError> {
        self.partition(worker_pk(domain))
            .await?
            .iter()
            .map(worker_from_item)
            .collect()
    }

    /// The invitations counted against a project's daily limit on `day` (`YYYY-MM-DD`).
    pub async fn usage_of(&self, domain: &str, day: &str) -> Result<u64, StoreError> {
        Ok(match self.item(usage_pk(domain), &day_sk(day)).await? {
            Some(item) => opt_n(&item, "invitations")?.unwrap_or(0),
            None => 0,
        })
    }

    /// Records that the worker behind `phone` registered in `domain`. Allowed where a
    /// claim would be: no record, this project's invitation, or an expired or stale one.
    pub async fn mark_registered(
        &self,
        domain: &str,
        phone: &PhoneNumber,
        rules: ClaimRules<'_>,
    ) -> Result<MarkRegistered, StoreError> {
        let existing = self.find(phone).await?;
        let record = match existing.clone() {
            Some(mut r) if r.domain == domain => {
                r.status = RegistrationStatus::Registered;
                r.registered_at.get_or_insert(rules.now);
                r
            }
            Some(r)
                if match r.claim_check(rules) {
                    ClaimCheck::Claimable => false,
                    ClaimCheck::InUse => true,
                    ClaimCheck::UnlessQueued => self.batch_queued(&r).await?,
                } =>
            {
                return Ok(MarkRegistered::InUseElsewhere);
            }
            _ => RegistrationRecord {
                registered_at: Some(rules.now),
                ..RegistrationRecord::new(
                    domain,
                    phone.clone(),
                    RegistrationStatus::Registered,
                    rules.now,
                    rules.now,
                )
            },
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registration_item(&record)));
        put = match &existing {
            // Written only over what was read, so a concurrent claim is not overwritten.
            Some(r) => put
                .condition_expression("#token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", s(r.token.as_str())),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match put.send().await {
            Ok(_) => Ok(MarkRegistered::Registered),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Unavailable {
                    code: "ConcurrentChange: try again".into(),
                })
            }
            Err(e) => Err(store_error(&e)),
        }
    }
}

/// A project's languages as stored: their codes, comma-separated, the default first.
pub fn language_list(languages: &[crate::domain::language::Language]) -> String {
    languages
        .iter()
        .map(|l| l.code())
        .collect::<Vec<_>>()
        .join(",")
}
