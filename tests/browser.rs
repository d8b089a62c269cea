//! A worker completes an invitation in headless Chromium: the link from the SMS that moto
//! recorded, a mistake, its error, the fix, the success page; then the number is in use.
//! A worker of a project whose accounts live in a Cognito pool that is slow to answer sees
//! the "being created" page, then gets the SMS that the account is ready, and signs in.
//! Screenshots of each page go to target/browser-screenshots/.

mod common;

use std::time::Duration;

use common::fault_proxy::{Fault, Rule};
use common::webdriver::Browser;
use common::*;
use serde_json::{Value, json};
use smsreg::config::Config;
use smsreg::ports::InvitationStore;

const TABLE: &str = "sms-registration-browser";

// Multi-threaded: the runtime's tasks (the SDK's connections) keep running while `invite`
// blocks a thread.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_registers_from_the_sms_link_in_a_real_browser() {
    let moto = Moto::start();
    provision_demo(
        &moto.store(TABLE).await,
        Some("https://www.commcarehq.org/a/demo/app/1"),
    )
    .await;
    let aws = moto.sdk_config().await;
    // The function behind a local gateway; its links point at the gateway.
    let base = free_base();
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: base,
            ..Config::default()
        })
        .await;
    let sender = smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap();
    let queue_url = config.send_queue_url.clone().unwrap();
    let served = common::gateway::serve(smsreg::wiring::aws_api_with(&aws, config).unwrap());

    let invite = |phone: &str| -> Value {
        let body = json!({"app_id": DEMO_APP, "android_only": true, "require_email": true,
            "custom_registration_message": "Welcome to Demo Health! Register here: {}",
            "users": [{"phone_number": phone}]});
        invite_over_http(&served, &body)
    };
    assert_eq!(
        invite("+16175551234")["success_numbers"],
        json!(["+16175551234"])
    );

    // The link, as the worker's phone received it from the sender; the gateway stands in
    // for the API's host.
    moto.deliver(&sender, &queue_url).await;
    let sms = moto.sms_to("+16175551234");
    let link = sms[0].rsplit(' ').next().unwrap().to_owned();
    let path = link
        .split_once("/a/")
        .map(|(_, rest)| format!("/a/{rest}"))
        .unwrap();
    let shots = repo_root().join("target/browser-screenshots");

    let browser = Browser::start().await;
    browser.goto(&format!("{served}{path}")).await;
    browser.wait_for_title("Register with Demo Health").await;
    assert_eq!(browser.text("h1").await, "Demo Health");
    browser.screenshot(&shots.join("1-form.png")).await;

    // A mistake: the passwords differ.
    browser.fill("#username", "Jane.Doe").await;
    browser.fill("#password", "correct horse").await;
    browser.fill("#password2", "correct hose").await;
    browser.fill("#email", "jane@example.org").await;
    browser.click("button[type=submit]").await;
    // The answer replaces the page after the click has returned: wait for it.
    browser.wait_for("#password2-error").await;
    assert_eq!(
        browser.text("#password2-error").await,
        "The two passwords do not match"
    );
    assert_eq!(
        browser.value("#username").await,
        "Jane.Doe",
        "what was typed is kept"
    );
    assert_eq!(browser.value("#password").await, "", "passwords are not");
    browser.screenshot(&shots.join("2-error.png")).await;

    browser.fill("#password", "correct horse").await;
    browser.fill("#password2", "correct horse").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_title("Registration complete").await;
    let page = browser.source().await;
    assert!(
        page.contains("jane.doe") && page.contains("play.google.com"),
        "{page}"
    );
    browser.screenshot(&shots.join("3-success.png")).await;

    // The same link now says it was used; the number is in use.
    browser.goto(&format!("{served}{path}")).await;
    browser.wait_for_title("Already registered").await;
    browser
        .screenshot(&shots.join("4-already-registered.png"))
        .await;
    assert_eq!(
        invite("+16175551234")["numbers_in_use"],
        json!(["+16175551234"])
    );
}

/// The demo project (as the tests provision it) in `table`, with `update` applied to it.
async fn demo_store<'a>(
    moto: &Moto,
    table: &str,
    update: impl FnOnce(&mut smsreg::adapters::dynamodb::ProjectUpdate<'a>),
) -> smsreg::adapters::dynamodb::DynamoStore {
    let store = moto.store(table).await;
    provision_demo(&store, Some("https://www.commcarehq.org/a/demo/app/1")).await;
    let mut project = project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro);
    update(&mut project);
    store.put_project(&project).await.unwrap();
    store
}

/// The create request `body`, through the gateway at `served`: its answer.
fn invite_over_http(served: &str, body: &Value) -> Value {
    let mut response = ureq::post(format!("{served}/a/demo/api/v0_5/sms_user_registration/"))
        .header("authorization", format!("ApiKey {DEMO_USER}:{DEMO_KEY}"))
        .content_type("application/json")
        .send(body.to_string())
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// A local gateway's base URL, free to listen on.
fn free_base() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_whose_account_is_slow_to_make_sees_it_being_created_then_is_texted() {
    const ACCOUNTS_TABLE: &str = "sms-registration-browser-accounts";
    const PHONE: &str = "+16175555512";
    let moto = Moto::start();
    let store = demo_store(&moto, ACCOUNTS_TABLE, |p| {
        p.accounts = Some(&smsreg::domain::account::Accounts::Cognito);
    })
    .await;
    let aws = moto.sdk_config().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&aws);
    let pool = smsreg::adapters::cognito_admin::create_user_pool(&cognito, "workers")
        .await
        .unwrap();
    let key = aws_sdk_kms::Client::new(&aws)
        .create_key()
        .send()
        .await
        .unwrap();
    let accounts_queue =
        smsreg::adapters::sqs::create_queues(&aws_sdk_sqs::Client::new(&aws), "accounts", 300, 30)
            .await
            .unwrap();
    let config = moto
        .queued(Config {
            table_name: ACCOUNTS_TABLE.into(),
            public_base_url: free_base(),
            user_pool_id: Some(pool.pool_id.clone()),
            password_key_id: Some(key.key_metadata().unwrap().key_id().to_owned()),
            accounts_queue_url: Some(accounts_queue),
            account_wait: Duration::from_millis(1_000),
            ..Config::default()
        })
        .await;
    let sender = smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap();
    let accounts = smsreg::wiring::aws_accounts_with(&aws, config.clone()).unwrap();
    let queue_url = config.send_queue_url.clone().unwrap();
    let served = common::gateway::serve(smsreg::wiring::aws_api_with(&aws, config).unwrap());
    let body =
        json!({"app_id": DEMO_APP, "android_only": true, "users": [{"phone_number": PHONE}]});
    let created = invite_over_http(&served, &body);
    assert_eq!(created["success_numbers"], json!([PHONE]));
    moto.deliver(&sender, &queue_url).await;
    let link = moto.sms_to(PHONE)[0].rsplit(' ').next().unwrap().to_owned();
    let path = link
        .split_once("/a/")
        .map(|(_, rest)| format!("/a/{rest}"))
        .unwrap();
    let shots = repo_root().join("target/browser-screenshots");

    // The pool answers nothing within the page's wait: the account is left to the
    // accounts function.
    moto.front
        .add(Rule::always("AdminCreateUser", None, Fault::Hang(Duration::from_secs(3))).times(1));
    let browser = Browser::start().await;
    browser.goto(&format!("{served}{path}")).await;
    browser.wait_for_title("Register with Demo Health").await;
    browser.fill("#username", "amina").await;
    browser.fill("#password", "correct horse").await;
    browser.fill("#password2", "correct horse").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_title("Account being created").await;
    let page = browser.source().await;
    assert!(page.contains("Your account is being created"), "{page}");
    assert!(
        page.contains("amina@demo"),
        "the name to sign in with: {page}"
    );
    assert!(page.contains("SMS"), "{page}");
    browser
        .screenshot(&shots.join("5-account-being-created.png"))
        .await;

    // The accounts function takes the job (here at once, not a minute later) and the
    // worker is texted the name to sign in with.
    let record = store
        .find(&smsreg::domain::PhoneNumber::parse(PHONE).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.account.as_ref().unwrap().status.as_str(), "pending");
    let job = smsreg::ports::AccountJob {
        domain: DEMO_DOMAIN.into(),
        phone: PHONE.into(),
        attempt: record.account.unwrap().attempt,
    };
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some("job-1".into());
    message.body = Some(serde_json::to_string(&job).unwrap());
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![message];
    let done = accounts.handle_batch(&event, None).await.unwrap();
    assert!(done.batch_item_failures.is_empty());
    moto.deliver(&sender, &queue_url).await;
    assert_eq!(
        moto.sms_to(PHONE).last().unwrap(),
        "Account ready. Username: amina@demo"
    );
    let signed_in = cognito
        .initiate_auth()
        .client_id(&pool.client_id)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", "amina@demo")
        .auth_parameters("PASSWORD", "correct horse")
        .send()
        .await;
    assert!(signed_in.is_ok_and(|r| r.authentication_result().is_some()));
    // The link again: already used.
    browser.goto(&format!("{served}{path}")).await;
    browser.wait_for_title("Already registered").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_reads_the_page_in_arabic_switches_to_swahili_and_registers() {
    use smsreg::domain::language::{Language, fill};
    const LANGUAGES_TABLE: &str = "sms-registration-browser-languages";
    const PHONE: &str = "+16175555513";
    let moto = Moto::start();
    let languages = [Language::Ar, Language::Sw, Language::En];
    let store = demo_store(&moto, LANGUAGES_TABLE, |p| p.languages = Some(&languages)).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: LANGUAGES_TABLE.into(),
            public_base_url: free_base(),
            ..Config::default()
        })
        .await;
    let served = common::gateway::serve(smsreg::wiring::aws_api_with(&aws, config).unwrap());
    let body = json!({"app_id": DEMO_APP, "android_only": true, "language": "ar",
        "users": [{"phone_number": PHONE}]});
    let created = invite_over_http(&served, &body);
    assert_eq!(created["success_numbers"], json!([PHONE]));
    let record = store
        .find(&smsreg::domain::PhoneNumber::parse(PHONE).unwrap())
        .await
        .unwrap()
        .unwrap();
    let shots = repo_root().join("target/browser-screenshots");
    let title = |language: Language, id: &str| {
        fill(language.builtin(id).unwrap(), &[("title", "Demo Health")])
    };

    let browser = Browser::start().await;
    browser
        .goto(&format!(
            "{served}/a/demo/register/{}",
            record.token.as_str()
        ))
        .await;
    browser
        .wait_for_title(&title(Language::Ar, "page.register_title"))
        .await;
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("ar")
    );
    assert_eq!(
        browser.attribute("html", "dir").await.as_deref(),
        Some("rtl")
    );
    browser.screenshot(&shots.join("6-arabic.png")).await;

    // The link to Swahili: the same invitation, in Swahili.
    browser.click("a[hreflang=sw]").await;
    browser
        .wait_for_title(&title(Language::Sw, "page.register_title"))
        .await;
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("sw")
    );
    assert_eq!(
        browser.attribute("html", "dir").await.as_deref(),
        Some("ltr")
    );
    browser.fill("#username", "amina").await;
    browser.fill("#password", "correct horse").await;
    browser.fill("#password2", "correct hose").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#password2-error").await;
    assert_eq!(
        browser.text("#password2-error").await,
        Language::Sw.builtin("form.passwords_differ").unwrap()
    );
    browser.screenshot(&shots.join("7-swahili-error.png")).await;
    browser.fill("#password", "correct horse").await;
    browser.fill("#password2", "correct horse").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_title(Language::Sw.builtin("page.complete_title").unwrap())
        .await;
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("sw")
    );
}
