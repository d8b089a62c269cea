//! Worker accounts in a CommCare HQ project: the adapter (`CommCareHq`) against the fault
//! proxy's stand-in of HQ's User API, with the project's API key in Secrets Manager (moto):
//! what a user is made with, a lost answer and its retry, each of HQ's refusals mapped to
//! its reason, the faults of a server under load, `check`, and the key kept out of every
//! error.

mod common;

use std::time::{Duration, Instant};

use common::Moto;
use common::fault_proxy::{Chaos, Fault, Rule};
use serde_json::{Value, json};
use smsreg::adapters::commcare_hq::CommCareHq;
use smsreg::domain::PhoneNumber;
use smsreg::domain::account::{HqProject, NewAccount, Password};
use smsreg::ports::AccountError;

const DOMAIN: &str = "demo-hq";
const KEY_PART: &str = "f3a9c1d2e4b5a6978877665544332211";

fn secret_text() -> String {
    format!("ops@example.org:{KEY_PART}")
}

struct Env {
    moto: Moto,
    secrets: aws_sdk_secretsmanager::Client,
    hq: CommCareHq,
    project: HqProject,
}

async fn env() -> Env {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let arn = put_secret(&secrets, "hq/demo-hq", &secret_text()).await;
    moto.hq().project(DOMAIN, &secret_text());
    Env {
        hq: CommCareHq::new(secrets.clone()),
        project: HqProject {
            base_url: moto.endpoint.clone(),
            domain: DOMAIN.into(),
            key_secret_arn: arn,
        },
        secrets,
        moto,
    }
}

async fn put_secret(secrets: &aws_sdk_secretsmanager::Client, name: &str, text: &str) -> String {
    secrets
        .create_secret()
        .name(name)
        .secret_string(text)
        .send()
        .await
        .expect("moto keeps the secret")
        .arn
        .expect("a secret's ARN")
}

fn account(local: &str, reference: &str) -> NewAccount {
    NewAccount {
        project: "demo".into(),
        username: format!("{local}@{DOMAIN}.commcarehq.org"),
        password: Password::new("correct horse battery".into()),
        phone: PhoneNumber::parse("+16175551234").unwrap(),
        email: Some("jane@example.org".into()),
        app_id: Some("abcd1234abcd1234".into()),
        custom_user_data: Some(
            json!({"district": "north", "level": 2})
                .as_object()
                .unwrap()
                .clone(),
        ),
        language: None,
        reference: reference.into(),
    }
}

/// The key shows in no form of the error.
fn keyless<T: std::fmt::Debug>(result: &Result<T, AccountError>) {
    if let Err(error) = result {
        assert!(!error.to_string().contains(KEY_PART), "{error}");
        assert!(!format!("{error:?}").contains(KEY_PART), "{error:?}");
    }
}

fn keyless_text(result: &Result<(), String>) {
    if let Err(text) = result {
        assert!(!text.contains(KEY_PART), "{text}");
    }
}

#[tokio::test]
async fn a_user_is_made_with_the_workers_fields_and_password() {
    let e = env().await;
    let made =
        e.hq.create(&e.project, &account("jane.doe", "attempt-1"))
            .await;
    assert_eq!(made, Ok(()));
    let hq = e.moto.hq();
    let user = hq.user(DOMAIN, "jane.doe").expect("the user");
    assert_eq!(user.username, "jane.doe@demo-hq.commcarehq.org");
    assert_eq!(user.phone_numbers, vec!["16175551234".to_owned()]);
    assert_eq!(user.email.as_deref(), Some("jane@example.org"));
    assert_eq!(
        Value::Object(user.user_data),
        json!({"district": "north", "level": 2, "smsreg_ref": "attempt-1",
               "smsreg_project": "demo", "smsreg_app_id": "abcd1234abcd1234"})
    );
    assert_eq!(
        hq.password_of(DOMAIN, "jane.doe").as_deref(),
        Some("correct horse battery")
    );
    assert_eq!(hq.calls("POST user"), 1);
    assert!(!format!("{:?}", e.hq).contains(KEY_PART));
}

#[tokio::test]
async fn a_lost_answer_then_a_retry_finds_the_attempts_own_user() {
    let e = env().await;
    e.moto
        .front
        .add(Rule::always("HQ POST user", None, Fault::Lost).times(1));
    let first = e.hq.create(&e.project, &account("jane", "attempt-7")).await;
    assert!(
        matches!(first, Err(AccountError::Unavailable(_))),
        "{first:?}"
    );
    keyless(&first);
    let hq = e.moto.hq();
    assert!(hq.user(DOMAIN, "jane").is_some(), "applied all the same");

    // The retry carries the same reference; its password is set again.
    let mut retry = account("jane", "attempt-7");
    retry.password = Password::new("the password of the retry".into());
    assert_eq!(e.hq.create(&e.project, &retry).await, Ok(()));
    assert_eq!(hq.users(DOMAIN).len(), 1);
    assert_eq!(
        hq.password_of(DOMAIN, "jane").as_deref(),
        Some("the password of the retry")
    );
    assert_eq!(hq.calls("POST user"), 2);
    assert_eq!(hq.calls("GET domain_usernames"), 1);
    assert_eq!(hq.calls("PUT user"), 1);
}

/// HQ lists a project's usernames a page at a time: the user is found past the first page.
#[tokio::test]
async fn a_lost_answer_is_recognised_past_the_first_page_of_usernames() {
    let e = env().await;
    let hq = e.moto.hq();
    for i in 0..1000 {
        hq.add_user(DOMAIN, &format!("worker{i}"), "theirs", json!({}));
    }
    e.moto
        .front
        .add(Rule::always("HQ POST user", None, Fault::Lost).times(1));
    let first = e.hq.create(&e.project, &account("zoe", "attempt-9")).await;
    assert!(
        matches!(first, Err(AccountError::Unavailable(_))),
        "{first:?}"
    );
    assert_eq!(
        e.hq.create(&e.project, &account("zoe", "attempt-9")).await,
        Ok(())
    );
    assert_eq!(hq.calls("GET domain_usernames"), 2);
    assert_eq!(hq.users(DOMAIN).len(), 1001);
}

#[tokio::test]
async fn a_user_made_by_someone_else_or_a_reserved_name_is_taken() {
    let e = env().await;
    let hq = e.moto.hq();
    for i in 0..30 {
        hq.add_user(DOMAIN, &format!("worker{i}"), "theirs", json!({}));
    }
    hq.add_user(
        DOMAIN,
        "jane",
        "their password",
        json!({"smsreg_ref": "another-attempt"}),
    );
    let taken = e.hq.create(&e.project, &account("jane", "attempt-1")).await;
    assert_eq!(taken, Err(AccountError::Taken));
    assert_eq!(
        hq.password_of(DOMAIN, "jane").as_deref(),
        Some("their password")
    );
    assert_eq!(hq.calls("PUT user"), 0);

    // A retired user (HQ's DELETE) keeps its name taken, and is listed no more.
    let id = hq.add_user(DOMAIN, "joe", "theirs", json!({}));
    let url = format!("{}/a/{DOMAIN}/api/v0.5/user/{id}/", e.moto.endpoint);
    let auth = format!("ApiKey {}", secret_text());
    let retired = ureq::delete(&url)
        .header("authorization", &auth)
        .call()
        .unwrap();
    assert_eq!(retired.status().as_u16(), 202);
    assert!(!hq.user(DOMAIN, "joe").unwrap().active);
    let gone = ureq::get(&url).header("authorization", &auth).call();
    assert!(
        matches!(gone, Err(ureq::Error::StatusCode(404))),
        "{gone:?}"
    );
    assert_eq!(
        e.hq.create(&e.project, &account("joe", "attempt-3")).await,
        Err(AccountError::Taken)
    );
    let reserved =
        e.hq.create(&e.project, &account("admin", "attempt-2"))
            .await;
    assert_eq!(reserved, Err(AccountError::Taken));
}

#[tokio::test]
async fn what_hq_refuses_is_invalid_with_its_message() {
    let e = env().await;
    let bad =
        e.hq.create(&e.project, &account("jane/doe", "attempt-1"))
            .await;
    assert!(
        matches!(&bad, Err(AccountError::Invalid(m)) if m.contains("jane/doe") && m.chars().count() <= 200),
        "{bad:?}"
    );
    let not_email =
        e.hq.create(&e.project, &account("jane..doe", "attempt-2"))
            .await;
    assert!(
        matches!(&not_email, Err(AccountError::Invalid(m)) if m.contains("valid email")),
        "{not_email:?}"
    );
    let mut no_password = account("jane", "attempt-3");
    no_password.password = Password::new(String::new());
    assert_eq!(
        e.hq.create(&e.project, &no_password).await,
        Err(AccountError::Invalid("Password is required.".into()))
    );
    assert!(e.moto.hq().users(DOMAIN).is_empty());
}

#[tokio::test]
async fn a_plan_without_api_access_and_a_user_without_permission_are_denied() {
    let e = env().await;
    let hq = e.moto.hq();
    hq.api_access(DOMAIN, false);
    let no_plan = e.hq.create(&e.project, &account("jane", "attempt-1")).await;
    assert_eq!(
        no_plan,
        Err(AccountError::Denied(
            "the project's plan has no API access".into()
        ))
    );
    let check = e.hq.check(&e.project).await;
    assert!(
        matches!(&check, Err(m) if m.contains("plan has no API access")),
        "{check:?}"
    );

    hq.api_access(DOMAIN, true);
    hq.permission(DOMAIN, false);
    let no_permission = e.hq.create(&e.project, &account("jane", "attempt-1")).await;
    assert!(
        matches!(&no_permission, Err(AccountError::Denied(m)) if m.contains("Edit Mobile Workers")),
        "{no_permission:?}"
    );
    let check = e.hq.check(&e.project).await;
    assert!(
        matches!(&check, Err(m) if m.contains("Edit Access APIs")),
        "{check:?}"
    );
    for result in [&no_plan, &no_permission] {
        keyless(result);
    }
    keyless_text(&check);
}

#[tokio::test]
async fn a_throttled_project_is_told_to_wait() {
    let e = env().await;
    let hq = e.moto.hq();
    hq.throttle(DOMAIN, 1.0);
    assert_eq!(
        e.hq.create(&e.project, &account("jane", "attempt-1")).await,
        Ok(())
    );
    let second = e.hq.create(&e.project, &account("joe", "attempt-2")).await;
    assert_eq!(second, Err(AccountError::Throttled(None)));
    assert_eq!(hq.throttled(), 1);
    assert_eq!(hq.calls("POST user"), 2, "a throttled call is counted");
    assert!(hq.user(DOMAIN, "joe").is_none());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        e.hq.create(&e.project, &account("joe", "attempt-2")).await,
        Ok(())
    );

    // Throttled by a rule of the proxy, as HQ is under load.
    e.moto
        .front
        .add(Rule::always("HQ POST user", None, Fault::Throttle).times(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        e.hq.create(&e.project, &account("ann", "attempt-3")).await,
        Err(AccountError::Throttled(None))
    );
}

#[tokio::test]
async fn a_failing_or_silent_server_is_unavailable() {
    let e = env().await;
    e.moto
        .front
        .add(Rule::always("HQ POST user", None, Fault::ServerError).times(1));
    let failed = e.hq.create(&e.project, &account("jane", "attempt-1")).await;
    assert!(
        matches!(failed, Err(AccountError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(e.moto.hq().user(DOMAIN, "jane").is_none());

    e.moto
        .front
        .add(Rule::always("HQ POST user", None, Fault::Hang(Duration::from_secs(4))).times(1));
    let quick = e.hq.clone().with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let silent = quick
        .create(&e.project, &account("jane", "attempt-1"))
        .await;
    assert!(
        matches!(silent, Err(AccountError::Unavailable(_))),
        "{silent:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    keyless(&silent);

    // Nothing was made: the next try makes the user.
    assert_eq!(
        e.hq.create(&e.project, &account("jane", "attempt-1")).await,
        Ok(())
    );
}

#[tokio::test]
async fn chaos_loses_answers_and_every_retry_ends_with_one_user_each() {
    let e = env().await;
    e.moto.front.chaos(Chaos {
        seed: 7,
        directory_lost: 0.5,
        ..Chaos::default()
    });
    for i in 0..6 {
        let worker = account(&format!("worker{i}"), &format!("attempt-{i}"));
        let mut tries = 0;
        loop {
            tries += 1;
            match e.hq.create(&e.project, &worker).await {
                Ok(()) => break,
                Err(AccountError::Unavailable(_)) if tries < 10 => continue,
                other => panic!("{other:?}"),
            }
        }
    }
    let report = e.moto.front.calm();
    assert!(report.directory_lost > 0, "{report:?}");
    let hq = e.moto.hq();
    assert_eq!(hq.users(DOMAIN).len(), 6);
    for i in 0..6 {
        assert_eq!(
            hq.password_of(DOMAIN, &format!("worker{i}")).as_deref(),
            Some("correct horse battery")
        );
    }
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_or_is_not_email_key_is_denied() {
    let e = env().await;
    let missing_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hq/missing-AbCdEf";
    let missing = HqProject {
        key_secret_arn: missing_arn.into(),
        ..e.project.clone()
    };
    let denied = e.hq.create(&missing, &account("jane", "attempt-1")).await;
    assert!(
        matches!(&denied, Err(AccountError::Denied(m))
            if m.contains(missing_arn) && m.contains("ResourceNotFoundException")),
        "{denied:?}"
    );
    keyless(&denied);
    let check = e.hq.check(&missing).await;
    assert!(
        matches!(&check, Err(m) if m.contains(missing_arn)),
        "{check:?}"
    );

    let arn = put_secret(&e.secrets, "hq/no-colon", KEY_PART).await;
    let malformed = HqProject {
        key_secret_arn: arn,
        ..e.project.clone()
    };
    let denied = e.hq.create(&malformed, &account("jane", "attempt-1")).await;
    assert_eq!(
        denied,
        Err(AccountError::Denied("the secret is not email:key".into()))
    );
    keyless(&denied);

    let arn = put_secret(
        &e.secrets,
        "hq/other-key",
        &format!("ops@example.org:x{KEY_PART}"),
    )
    .await;
    let wrong = HqProject {
        key_secret_arn: arn,
        ..e.project.clone()
    };
    let denied = e.hq.create(&wrong, &account("jane", "attempt-1")).await;
    assert_eq!(
        denied,
        Err(AccountError::Denied("the API key is not accepted".into()))
    );
    keyless(&denied);
    let check = e.hq.check(&wrong).await;
    assert!(
        matches!(&check, Err(m) if m.contains("the API key is not accepted")),
        "{check:?}"
    );
    keyless_text(&check);
    assert!(e.moto.hq().users(DOMAIN).is_empty());
}

#[tokio::test]
async fn the_key_is_read_once_for_five_minutes() {
    let e = env().await;
    assert_eq!(e.hq.check(&e.project).await, Ok(()));
    e.secrets
        .put_secret_value()
        .secret_id(&e.project.key_secret_arn)
        .secret_string("no longer a key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.hq.create(&e.project, &account("jane", "attempt-1")).await,
        Ok(())
    );
    // A client of its own reads the secret again.
    let fresh = CommCareHq::new(e.secrets.clone());
    assert_eq!(
        fresh.check(&e.project).await,
        Err("HQ project demo-hq at ".to_owned()
            + &e.project.base_url
            + ": the secret is not email:key")
    );
}

#[tokio::test]
async fn check_names_what_is_missing() {
    let e = env().await;
    assert_eq!(e.hq.check(&e.project).await, Ok(()));
    assert_eq!(e.moto.hq().calls("GET user"), 1);

    let elsewhere = HqProject {
        domain: "no-such-project".into(),
        ..e.project.clone()
    };
    let check = e.hq.check(&elsewhere).await;
    assert!(
        matches!(&check, Err(m) if m.contains("no such HQ project")),
        "{check:?}"
    );

    let down = HqProject {
        base_url: "http://127.0.0.1:9".into(),
        ..e.project.clone()
    };
    let check = e.hq.check(&down).await;
    assert!(
        matches!(&check, Err(m) if m.contains("cannot be reached")),
        "{check:?}"
    );
    let created = e.hq.create(&down, &account("jane", "attempt-1")).await;
    assert!(
        matches!(created, Err(AccountError::Unavailable(_))),
        "{created:?}"
    );
    keyless_text(&check);
}
