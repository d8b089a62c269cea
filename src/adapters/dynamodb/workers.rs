//! Worker accounts, and the invitations they complete: the `WorkerStore` port.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::item::*;
use super::*;
use crate::domain::event::OrgEvent;

use crate::domain::worker::Worker;
use crate::domain::{RegistrationRecord, RegistrationStatus};
use crate::ports::{RegisterOutcome, StoreError, WorkerStore};

impl WorkerStore for DynamoStore {
    async fn set_phone_type(
        &self,
        invitation: &RegistrationRecord,
        phone_type: crate::domain::invitation::PhoneType,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression("SET phone_type = :type")
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":type", s(phone_type.as_str()))
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .send()
            .await;
        ok_unless_lost(result)
    }

    async fn invitation_by_token(
        &self,
        token: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TOKEN_INDEX)
            .key_condition_expression("#token = :token")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.items()
            .iter()
            .find(|item| opt_s(item, SK).as_deref() == Some(REGISTRATION_SK))
            .map(registration_from_item)
            .transpose()
    }

    async fn register(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
    ) -> Result<RegisterOutcome, StoreError> {
        let create_account = Put::builder()
            .table_name(&self.table)
            .set_item(Some(worker_item(worker)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put has its required fields");
        let complete_invitation = Update::builder()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression(
                "SET #status = :registered, gsi3pk = :in_registered, registered_at = :now, \
                 username = :username REMOVE #ttl",
            )
            .condition_expression(
                "#token = :token AND (#status = :queued OR #status = :pending) AND expires_at > :now",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":registered", s("registered"))
            .expression_attribute_values(
                ":in_registered",
                s(status_pk(&invitation.domain, RegistrationStatus::Registered)),
            )
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":now", n(worker.registered_at))
            .expression_attribute_values(":username", s(&worker.username))
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .build()
            .expect("update has its required fields");
        let mut items = vec![
            TransactWriteItem::builder().put(create_account).build(),
            TransactWriteItem::builder()
                .update(complete_invitation)
                .build(),
        ];
        // Counted in its batch in the same transaction: once, exactly.
        if let Some(batch) = &invitation.batch_id {
            items.push(self.count_in_batch_item(batch, "registered"));
        }
        // And the organisation hears of it, by the outbox: the event exists if and only if
        // the registration does.
        let event =
            OrgEvent::worker_registered(invitation.into(), &worker.into(), worker.registered_at);
        items.push(self.outbox_put(&event));
        // Only a failed condition says something about the data: on the account, the
        // username is taken; otherwise the invitation changed (registered already, by this
        // very registration too). Cancelled at every try by transactions in flight on the
        // same items: nothing was stored, try again.
        Ok(match self.transact(items).await? {
            write::Transacted::Written => RegisterOutcome::Registered,
            refused if refused.refused_at(1) => RegisterOutcome::InvitationChanged,
            refused if refused.refused_at(0) => RegisterOutcome::UsernameTaken,
            write::Transacted::Refused(_) => RegisterOutcome::InvitationChanged,
            write::Transacted::Busy => RegisterOutcome::TryAgain,
        })
    }
}
