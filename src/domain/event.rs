//! The events an organisation hears of (a worker registered, an invitation failed, a number
//! opted out or back in, a batch completed): what each one says, and its stable id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::time::rfc3339;
use super::worker::Worker;
use super::{PhoneNumber, RegistrationRecord};

/// The `source` of every event the service puts on a bus.
pub const SOURCE: &str = "smsreg";

/// What happened: the event's `detail-type` on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DetailType {
    #[serde(rename = "Worker Registered")]
    WorkerRegistered,
    #[serde(rename = "Invitation Failed")]
    InvitationFailed,
    #[serde(rename = "Worker Opted Out")]
    WorkerOptedOut,
    #[serde(rename = "Worker Opted In")]
    WorkerOptedIn,
    #[serde(rename = "Batch Completed")]
    BatchCompleted,
    #[serde(rename = "Worker Account Created")]
    WorkerAccountCreated,
    #[serde(rename = "Worker Account Failed")]
    WorkerAccountFailed,
}

impl DetailType {
    pub const ALL: [DetailType; 7] = [
        DetailType::WorkerRegistered,
        DetailType::InvitationFailed,
        DetailType::WorkerOptedOut,
        DetailType::WorkerOptedIn,
        DetailType::BatchCompleted,
        DetailType::WorkerAccountCreated,
        DetailType::WorkerAccountFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DetailType::WorkerRegistered => "Worker Registered",
            DetailType::InvitationFailed => "Invitation Failed",
            DetailType::WorkerOptedOut => "Worker Opted Out",
            DetailType::WorkerOptedIn => "Worker Opted In",
            DetailType::BatchCompleted => "Batch Completed",
            DetailType::WorkerAccountCreated => "Worker Account Created",
            DetailType::WorkerAccountFailed => "Worker Account Failed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One event, as the outbox keeps it and the bus carries it. Its `detail` carries the
/// `event_id` too, so that a consumer that dedupes needs only the detail.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgEvent {
    pub event_id: String,
    pub detail_type: DetailType,
    /// Seconds since the epoch.
    pub at: u64,
    pub detail: Value,
}

/// An id that is the same for the same change however often it is computed (a retry after
/// a lost answer writes the same outbox item, never a second one), and says nothing of
/// what it was made from.
pub fn stable_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The invitation's id in events (and the listing): stable, and not its token (a token
/// registers; an id only names).
pub fn invitation_id(token: &str) -> String {
    stable_id(&["invitation", token])
}

/// The invitation an event is about, as a send job or a stored record knows it.
#[derive(Debug, Clone, Copy)]
pub struct InvitationRef<'a> {
    pub project: &'a str,
    pub token: &'a str,
    pub batch_id: Option<&'a str>,
    pub phone: &'a PhoneNumber,
}

impl<'a> From<&'a RegistrationRecord> for InvitationRef<'a> {
    fn from(record: &'a RegistrationRecord) -> Self {
        InvitationRef {
            project: &record.domain,
            token: record.token.as_str(),
            batch_id: record.batch_id.as_deref(),
            phone: &record.phone,
        }
    }
}

/// What every event about one invitation says of it.
fn invitation_detail(event_id: &str, invitation: InvitationRef<'_>, at: u64) -> Map<String, Value> {
    let mut detail = Map::new();
    detail.insert("event_id".into(), json!(event_id));
    detail.insert("project".into(), json!(invitation.project));
    detail.insert(
        "invitation_id".into(),
        json!(invitation_id(invitation.token)),
    );
    detail.insert("batch_id".into(), json!(invitation.batch_id));
    detail.insert("phone_number".into(), json!(invitation.phone.as_str()));
    detail.insert("time".into(), json!(rfc3339(at)));
    detail
}

/// What a registration adds to its event (never the password).
#[derive(Debug, Clone, PartialEq)]
pub struct Registered<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub app_id: Option<&'a str>,
    pub custom_user_data: Option<&'a Map<String, Value>>,
}

impl<'a> From<&'a Worker> for Registered<'a> {
    fn from(worker: &'a Worker) -> Self {
        Registered {
            username: &worker.username,
            email: worker.email.as_deref(),
            app_id: worker.app_id.as_deref(),
            custom_user_data: worker.custom_user_data.as_ref(),
        }
    }
}

impl OrgEvent {
    /// A worker completed `invitation` (by the page or by SMS) at `at`.
    pub fn worker_registered(invitation: InvitationRef<'_>, who: &Registered<'_>, at: u64) -> Self {
        let event_id = stable_id(&["registered", invitation.token]);
        let mut detail = invitation_detail(&event_id, invitation, at);
        detail.insert("username".into(), json!(who.username));
        detail.insert("email".into(), json!(who.email));
        detail.insert("app_id".into(), json!(who.app_id));
        detail.insert("custom_user_data".into(), json!(who.custom_user_data));
        OrgEvent {
            event_id,
            detail_type: DetailType::WorkerRegistered,
            at,
            detail: Value::Object(detail),
        }
    }

    /// The worker's account was made in the project's directory (`kind`: `cognito`,
    /// `commcare-hq`) by `attempt`, with `username`.
    pub fn account_created(
        invitation: InvitationRef<'_>,
        kind: &str,
        username: &str,
        attempt: &str,
        at: u64,
    ) -> Self {
        let event_id = stable_id(&["account-created", attempt]);
        let mut detail = invitation_detail(&event_id, invitation, at);
        detail.insert("directory".into(), json!(kind));
        detail.insert("username".into(), json!(username));
        OrgEvent {
            event_id,
            detail_type: DetailType::WorkerAccountCreated,
            at,
            detail: Value::Object(detail),
        }
    }

    /// The worker's account could not be made, for `reason` (the registration stands).
    pub fn account_failed(
        invitation: InvitationRef<'_>,
        kind: &str,
        username: &str,
        attempt: &str,
        reason: &str,
        at: u64,
    ) -> Self {
        let event_id = stable_id(&["account-failed", attempt]);
        let mut detail = invitation_detail(&event_id, invitation, at);
        detail.insert("directory".into(), json!(kind));
        detail.insert("username".into(), json!(username));
        detail.insert("reason".into(), json!(reason));
        OrgEvent {
            event_id,
            detail_type: DetailType::WorkerAccountFailed,
            at,
            detail: Value::Object(detail),
        }
    }

    /// `invitation`'s SMS could not be sent, for `reason`, after the last attempt.
    pub fn invitation_failed(invitation: InvitationRef<'_>, reason: &str, at: u64) -> Self {
        let event_id = stable_id(&["failed", invitation.token]);
        let mut detail = invitation_detail(&event_id, invitation, at);
        detail.insert("reason".into(), json!(reason));
        OrgEvent {
            event_id,
            detail_type: DetailType::InvitationFailed,
            at,
            detail: Value::Object(detail),
        }
    }

    /// `phone` opted out (`opted_out`) or back in, by the reply `cause` (an inbound
    /// message's id, or the send job that found the number opted out). `project`: the
    /// project of the number's invitation, when it has one.
    pub fn opt_change(
        phone: &PhoneNumber,
        opted_out: bool,
        cause: &str,
        project: Option<&str>,
        at: u64,
    ) -> Self {
        let (kind, detail_type) = if opted_out {
            ("opted-out", DetailType::WorkerOptedOut)
        } else {
            ("opted-in", DetailType::WorkerOptedIn)
        };
        let event_id = stable_id(&[kind, phone.as_str(), cause]);
        OrgEvent {
            detail: json!({
                "event_id": event_id,
                "project": project,
                "phone_number": phone.as_str(),
                "time": rfc3339(at),
            }),
            event_id,
            detail_type,
            at,
        }
    }

    /// Every invitation of `batch_id` was sent, failed or opted out; `counts` are the
    /// batch's counts at that moment.
    pub fn batch_completed(project: &str, batch_id: &str, counts: Value, at: u64) -> Self {
        let event_id = stable_id(&["batch-completed", batch_id]);
        OrgEvent {
            detail: json!({
                "event_id": event_id,
                "project": project,
                "batch_id": batch_id,
                "counts": counts,
                "time": rfc3339(at),
            }),
            event_id,
            detail_type: DetailType::BatchCompleted,
            at,
        }
    }

    /// The project the event is about, if any.
    pub fn project(&self) -> Option<&str> {
        self.detail.get("project").and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RegistrationStatus;

    fn record(domain: &str, phone: &str) -> RegistrationRecord {
        RegistrationRecord {
            batch_id: Some("b1".into()),
            ..RegistrationRecord::new(
                domain,
                PhoneNumber::parse(phone).unwrap(),
                RegistrationStatus::Pending,
                1_000,
                10_000,
            )
        }
    }

    #[test]
    fn stable_ids_are_the_same_for_the_same_parts_and_differ_otherwise() {
        assert_eq!(stable_id(&["a", "b"]), stable_id(&["a", "b"]));
        assert_ne!(stable_id(&["a", "b"]), stable_id(&["ab", ""]));
        assert_ne!(stable_id(&["a", "b"]), stable_id(&["b", "a"]));
        assert_eq!(stable_id(&["a"]).len(), 32);
    }

    #[test]
    fn a_registration_event_carries_what_the_organisation_needs_and_never_the_token() {
        let invitation = record("demo", "+16175551234");
        let data = Map::from_iter([("team".to_owned(), json!("north"))]);
        let who = Registered {
            username: "jane",
            email: Some("jane@example.org"),
            app_id: Some("abcd1234abcd1234"),
            custom_user_data: Some(&data),
        };
        let event = OrgEvent::worker_registered((&invitation).into(), &who, 1_800_000_000);
        assert_eq!(event.detail_type, DetailType::WorkerRegistered);
        assert_eq!(event.detail["event_id"], json!(event.event_id));
        assert_eq!(event.detail["project"], json!("demo"));
        assert_eq!(event.detail["phone_number"], json!("+16175551234"));
        assert_eq!(event.detail["username"], json!("jane"));
        assert_eq!(event.detail["custom_user_data"]["team"], json!("north"));
        let text = event.detail.to_string();
        assert!(!text.contains(invitation.token.as_str()), "{text}");
        // The same change, computed again (a retry): the same id.
        let again = OrgEvent::worker_registered((&invitation).into(), &who, 1_800_000_999);
        assert_eq!(again.event_id, event.event_id);
    }

    #[test]
    fn two_changes_of_one_invitation_have_two_ids() {
        let invitation = record("demo", "+16175551234");
        let failed = OrgEvent::invitation_failed((&invitation).into(), "carrier refused", 1);
        let who = Registered {
            username: "jane",
            email: None,
            app_id: None,
            custom_user_data: None,
        };
        let registered = OrgEvent::worker_registered((&invitation).into(), &who, 1);
        assert_ne!(failed.event_id, registered.event_id);
    }

    #[test]
    fn detail_types_read_back_from_their_names() {
        for t in DetailType::ALL {
            assert_eq!(DetailType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(DetailType::parse("worker registered"), None);
    }
}
