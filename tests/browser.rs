//! A worker completes an invitation in headless Chromium: the link from the SMS that moto
//! recorded, a mistake, its error, the fix, the success page; then the number is in use.
//! Screenshots of each page go to target/browser-screenshots/.

mod common;

use common::webdriver::Browser;
use common::*;
use serde_json::{Value, json};
use smsreg::config::Config;

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
    let base = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    };
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
        let mut response = ureq::post(format!("{served}/a/demo/api/v0_5/sms_user_registration/"))
            .header("authorization", format!("ApiKey {DEMO_USER}:{DEMO_KEY}"))
            .content_type("application/json")
            .send(body.to_string())
            .unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
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
