//! Worker accounts in a Cognito user pool, on moto (Cognito, KMS, DynamoDB, SQS, SNS):
//! the page makes the account and the worker signs in with the password chosen on it; a
//! slow pool gives a 202 and the accounts function finishes the account once and texts
//! the worker once; a name the pool holds for someone else shows on the form and leaves
//! the link working; no password anywhere in plain text.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_cognitoidentityprovider::Client as Cognito;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType};
use common::fault_proxy::{Fault, Rule};
use common::*;
use serde_json::{Value, json};
use smsreg::adapters::dynamodb::{DynamoStore, ProjectUpdate};
use smsreg::adapters::sqs::SqsQueue;
use smsreg::config::Config;
use smsreg::domain::account::Accounts;
use smsreg::domain::{PhoneNumber, Plan, RegistrationRecord};
use smsreg::functions::accounts::AccountsFunction;
use smsreg::functions::api::Api;
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{AccountJob, InvitationStore, SystemClock};
use smsreg::service::RegistrationService;
use smsreg::service::send::Sender;

const TABLE: &str = "accounts-test";
const A: &str = "+16175551234";
const B: &str = "+16175555512";
const PASSWORD: &str = "correct horse";
const EMAIL: &str = "jane@example.org";

struct Env {
    moto: Moto,
    store: DynamoStore,
    api: Api<DynamoStore, SqsQueue>,
    accounts: AccountsFunction<DynamoStore, SqsQueue>,
    sender: SenderFunction<DynamoStore, SqsQueue, FailingFor>,
    queue_url: String,
    cognito: Cognito,
    pool_id: String,
    client_id: String,
}

async fn env(wait: Duration) -> Env {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let cognito = Cognito::new(&aws);
    // The pool as `smsreg-admin create-user-pool` makes it.
    let made = smsreg::adapters::cognito_admin::create_user_pool(&cognito, "workers")
        .await
        .unwrap();
    let (pool_id, client_id) = (made.pool_id, made.client_id);
    let key = aws_sdk_kms::Client::new(&aws)
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let accounts_queue = aws_sdk_sqs::Client::new(&aws)
        .create_queue()
        .queue_name("accounts")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let mut update: ProjectUpdate = project(DEMO_DOMAIN, Some("Demo Health"), Plan::Pro);
    update.accounts = Some(&Accounts::Cognito);
    store.put_project(&update).await.unwrap();
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            user_pool_id: Some(pool_id.clone()),
            password_key_id: Some(key),
            accounts_queue_url: Some(accounts_queue),
            account_wait: wait,
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let ports = smsreg::wiring::account_ports(&aws, &config).expect("accounts configured");
    let service = RegistrationService::new(
        store.clone(),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &queue_url),
        Arc::new(SystemClock),
        config,
    )
    .with_accounts(ports.clone());
    let sms = FailingFor::throttling(
        smsreg::adapters::sns::SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
        &[],
    );
    Env {
        api: Api::new(service.clone()),
        accounts: AccountsFunction::new(service.clone(), ports),
        sender: SenderFunction::new(Sender::new(service, sms)),
        moto,
        store,
        queue_url,
        cognito,
        pool_id,
        client_id,
    }
}

impl Env {
    async fn invite(&self, phone: &str) -> String {
        let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": phone}]});
        let request = keyed_request(&api_key_header(DEMO_USER, DEMO_KEY), &body);
        let (status, answer) = response_parts(&self.api.handle(request).await);
        assert_eq!(status, 200, "{answer}");
        self.moto.deliver(&self.sender, &self.queue_url).await;
        self.record(phone).await.token.as_str().to_owned()
    }

    async fn record(&self, phone: &str) -> RegistrationRecord {
        self.store
            .find(&PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
            .expect("an invitation")
    }

    async fn register(&self, token: &str, username: &str) -> (u16, Value) {
        let form = json!({"username": username, "password": PASSWORD, "password2": PASSWORD,
            "email": EMAIL});
        response_parts(
            &self
                .api
                .handle(register_request(DEMO_DOMAIN, token, &form))
                .await,
        )
    }

    /// Runs the accounts function on `phone`'s account job, as the mapping hands it over.
    async fn run_account_job(&self, phone: &str) -> usize {
        let record = self.record(phone).await;
        let attempt = record.account.expect("an account attempt").attempt;
        let job = AccountJob {
            domain: DEMO_DOMAIN.into(),
            phone: phone.into(),
            attempt,
        };
        let mut message = SqsMessage::default();
        message.message_id = Some("m-1".into());
        message.body = Some(serde_json::to_string(&job).unwrap());
        let mut event = SqsEvent::default();
        event.records = vec![message];
        let response = self.accounts.handle_batch(&event, None).await.unwrap();
        self.moto.deliver(&self.sender, &self.queue_url).await;
        response.batch_item_failures.len()
    }

    /// Signs in as `username` with `password` (USER_PASSWORD_AUTH): whether it worked.
    async fn signs_in(&self, username: &str, password: &str) -> bool {
        self.cognito
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", username)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .is_ok_and(|r| r.authentication_result().is_some())
    }

    async fn users(&self) -> Vec<String> {
        self.cognito
            .list_users()
            .user_pool_id(&self.pool_id)
            .send()
            .await
            .unwrap()
            .users()
            .iter()
            .filter_map(|u| u.username().map(str::to_owned))
            .collect()
    }

    async fn everything(&self) -> String {
        self.moto.everything(TABLE).await
    }
}

#[tokio::test]
async fn the_page_makes_the_account_and_the_worker_signs_in_with_the_chosen_password() {
    let e = env(Duration::from_secs(6)).await;
    let token = e.invite(A).await;
    let (status, body) = e.register(&token, "Jane").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["username"], "jane@demo");
    assert_eq!(body["account"]["status"], "created");
    assert!(e.signs_in("jane@demo", PASSWORD).await);
    assert!(!e.signs_in("jane@demo", "wrong horse").await);
    // The pool has it as the service made it: the phone verified, the reference written.
    let user = e
        .cognito
        .admin_get_user()
        .user_pool_id(&e.pool_id)
        .username("jane@demo")
        .send()
        .await
        .unwrap();
    let attribute = |name: &str| {
        user.user_attributes()
            .iter()
            .find(|a: &&AttributeType| a.name() == name)
            .and_then(|a| a.value().map(str::to_owned))
    };
    assert_eq!(attribute("phone_number").as_deref(), Some(A));
    assert_eq!(attribute("phone_number_verified").as_deref(), Some("true"));
    assert_eq!(attribute("custom:project").as_deref(), Some(DEMO_DOMAIN));
    let record = e.record(A).await;
    let account = record.account.clone().unwrap();
    assert_eq!(
        attribute("custom:smsreg_ref").as_deref(),
        Some(account.attempt.as_str())
    );
    assert!(account.notified, "the page told the worker");
    // The listing gives the account.
    assert_eq!(record.listed(0)["account"]["status"], "created");
    assert_eq!(record.listed(0)["account"]["username"], "jane@demo");
    // The accounts job a minute later finds nothing to do: no SMS, one user.
    let sms_before = e.moto.sms_to(A).len();
    assert_eq!(e.run_account_job(A).await, 0);
    assert_eq!(e.moto.sms_to(A).len(), sms_before);
    assert_eq!(e.users().await, ["jane@demo"]);
    // The password is nowhere in plain text, and no sealed copy outlives the account.
    let everything = e.everything().await;
    if let Some(at) = everything.find(PASSWORD) {
        panic!("{}", &everything[at.saturating_sub(300)..at + 50]);
    }
    assert!(!everything.contains("sealed_password"), "erased once made");
    // A second post is refused: one registration, one account.
    let (status, _) = e.register(&token, "jane2").await;
    assert_eq!(status, 409);
    assert_eq!(e.users().await, ["jane@demo"]);
}

#[tokio::test]
async fn a_slow_pool_gives_a_202_and_the_account_is_made_once_and_the_worker_texted_once() {
    let e = env(Duration::from_millis(800)).await;
    let token = e.invite(A).await;
    // The pool does not answer in the page's time (nothing made).
    e.moto
        .front
        .add(Rule::always("AdminCreateUser", None, Fault::Hang(Duration::from_secs(3))).times(1));
    let (status, body) = e.register(&token, "jane").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["account"]["status"], "pending");
    let record = e.record(A).await;
    assert_eq!(record.status.as_str(), "registered");
    // The password waits sealed, never in plain text.
    let everything = e.everything().await;
    assert!(everything.contains("sealed_password"));
    assert!(!everything.contains(PASSWORD));
    let sms_before = e.moto.sms_to(A).len();
    assert_eq!(e.run_account_job(A).await, 0, "done, not retried");
    let record = e.record(A).await;
    assert_eq!(record.account.as_ref().unwrap().status.as_str(), "created");
    assert!(e.signs_in("jane@demo", PASSWORD).await);
    // Made by the function, with the email the worker gave on the page.
    let user = e
        .cognito
        .admin_get_user()
        .user_pool_id(&e.pool_id)
        .username("jane@demo")
        .send()
        .await
        .unwrap();
    let email = user
        .user_attributes()
        .iter()
        .find(|a| a.name() == "email")
        .and_then(|a| a.value());
    assert_eq!(email, Some(EMAIL));
    let texts = e.moto.sms_to(A);
    assert_eq!(texts.len(), sms_before + 1, "{texts:?}");
    assert_eq!(texts.last().unwrap(), "Account ready. Username: jane@demo");
    // The job delivered again (SQS at least once): nothing more.
    assert_eq!(e.run_account_job(A).await, 0);
    assert_eq!(e.moto.sms_to(A).len(), sms_before + 1);
    assert_eq!(e.users().await, ["jane@demo"]);
    assert!(!e.everything().await.contains("sealed_password"));
    // Its events: registered, then the account created, once each.
    let events = e.store.outbox_between(0, u64::MAX).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|ev| ev.detail_type.as_str()).collect();
    let delivered: Vec<Value> = events
        .iter()
        .map(|ev| json!({"source": "smsreg", "detail-type": ev.detail_type.as_str(), "detail": ev.detail}))
        .collect();
    assert_valid_events(&delivered);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "Worker Account Created")
            .count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_name_the_pool_holds_for_someone_else_shows_on_the_form_and_the_link_still_works() {
    let e = env(Duration::from_secs(6)).await;
    e.cognito
        .admin_create_user()
        .user_pool_id(&e.pool_id)
        .username("jane@demo")
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let token = e.invite(B).await;
    let (status, body) = e.register(&token, "jane").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"]["username"], "This username is already taken");
    let record = e.record(B).await;
    assert_eq!(record.status.as_str(), "pending");
    assert!(record.account.is_none(), "the claim is dropped");
    let (status, body) = e.register(&token, "jane.b").await;
    assert_eq!(status, 201, "{body}");
    assert!(e.signs_in("jane.b@demo", PASSWORD).await);
}

#[tokio::test]
async fn a_pending_account_whose_name_is_taken_meanwhile_fails_with_its_reason() {
    let e = env(Duration::from_millis(800)).await;
    let token = e.invite(A).await;
    e.moto
        .front
        .add(Rule::always("AdminCreateUser", None, Fault::Hang(Duration::from_secs(3))).times(1));
    assert_eq!(e.register(&token, "jane").await.0, 202);
    // Someone else takes the name before the accounts function comes.
    e.cognito
        .admin_create_user()
        .user_pool_id(&e.pool_id)
        .username("jane@demo")
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let sms_before = e.moto.sms_to(A).len();
    assert_eq!(
        e.run_account_job(A).await,
        0,
        "failed for good: not retried"
    );
    let record = e.record(A).await;
    assert_eq!(
        record.status.as_str(),
        "registered",
        "the registration stands"
    );
    let listed = record.listed(0);
    assert_eq!(listed["account"]["status"], "failed");
    assert_eq!(
        listed["account"]["reason"],
        "the username is taken in the directory"
    );
    assert_eq!(e.moto.sms_to(A).len(), sms_before, "no ready SMS");
    assert!(!e.everything().await.contains("sealed_password"), "erased");
    let events = e.store.outbox_between(0, u64::MAX).await.unwrap();
    let failed: Vec<Value> = events
        .iter()
        .filter(|ev| ev.detail_type.as_str() == "Worker Account Failed")
        .map(|ev| json!({"source": "smsreg", "detail-type": ev.detail_type.as_str(), "detail": ev.detail}))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["username"], "jane@demo");
    assert_valid_events(&failed);
}
