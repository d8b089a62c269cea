//! The `smsreg-admin` binary against moto: every command, its output and exit codes.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use smsreg::domain::PhoneNumber;
use smsreg::domain::RegistrationRecord;
use smsreg::domain::invitation::{ClaimRules, RegistrationStatus};
use smsreg::ports::Directory;
use smsreg::ports::InvitationStore;

const TABLE: &str = "sms-registration-admin";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Longer than any valid one: refused before DynamoDB sees it.
const LONG_APP_ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const LONG_USERNAME: &str = "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu";

fn admin(moto: &Moto, args: &[&str]) -> Run {
    admin_with(moto, &[], args)
}

fn ok(moto: &Moto, args: &[&str]) -> String {
    let run = admin(moto, args);
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.stdout
}

fn setup(moto: &Moto) {
    ok(moto, &["create-table"]);
    ok(
        moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--display-name",
            "Demo Health",
        ],
    );
    ok(
        moto,
        &[
            "put-app",
            "demo",
            DEMO_APP,
            "--name",
            "Demo app",
            "--install-url",
            "https://example.org/install",
        ],
    );
}

#[tokio::test]
async fn create_table_is_idempotent() {
    let moto = Moto::start();
    assert!(ok(&moto, &["create-table"]).contains("created"));
    assert!(ok(&moto, &["create-table"]).contains("already exists"));
}

#[tokio::test]
async fn put_domain_and_put_app_store_what_the_function_reads() {
    let moto = Moto::start();
    setup(&moto);
    let project = moto
        .store(TABLE)
        .await
        .project("demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(project.plan, smsreg::domain::Plan::Pro);
    assert!(project.registration_enabled);
    assert_eq!(project.title(), "Demo Health");
    assert_eq!(
        project.sms.send_window.to_string(),
        "08:00-21:00",
        "a new project's send window"
    );
    let app = project.app(DEMO_APP).unwrap();
    assert_eq!(
        app.install_url.as_deref(),
        Some("https://example.org/install")
    );

    ok(
        &moto,
        &["put-domain", "demo", "--plan", "standard", "--disable"],
    );
    let project = moto
        .store(TABLE)
        .await
        .project("demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(project.plan, smsreg::domain::Plan::Standard);
    assert!(!project.registration_enabled);
    assert_eq!(project.apps.len(), 1, "apps survive a project update");
    assert_eq!(project.title(), "Demo Health", "unset settings are kept");

    ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--allowed-countries",
            "us, KE",
            "--daily-invitation-limit",
            "50",
        ],
    );
    let project = moto
        .store(TABLE)
        .await
        .project("demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        project.allowed_countries,
        Some(vec!["US".to_owned(), "KE".to_owned()])
    );
    assert_eq!(project.daily_invitation_limit, 50);
    ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--allowed-countries",
            "",
        ],
    );
    let project = moto
        .store(TABLE)
        .await
        .project("demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(project.allowed_countries, None);
    assert_eq!(project.daily_invitation_limit, 50);
    assert_eq!(project.sms.send_window.to_string(), "08:00-21:00", "kept");
    for window in ["07:30-19:00", "any"] {
        ok(
            &moto,
            &[
                "put-domain",
                "demo",
                "--plan",
                "PRO",
                "--enable",
                "--send-window",
                window,
            ],
        );
        let project = moto
            .store(TABLE)
            .await
            .project("demo")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(project.sms.send_window.to_string(), window);
    }
}

#[tokio::test]
async fn create_key_prints_only_the_header_value_and_stores_only_a_hash() {
    let moto = Moto::start();
    setup(&moto);
    let out = ok(&moto, &["create-key", "demo", "ops@demo.example"]);
    assert_eq!(out.lines().count(), 1);
    let (user, key) = out.trim().split_once(':').unwrap();
    assert_eq!(user, "ops@demo.example");
    assert!(key.len() >= 43);

    let keys = moto
        .store(TABLE)
        .await
        .api_keys_of("ops@demo.example")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].matches(key) && keys[0].can_edit_data);
    let raw = ureq::get(format!("{}/moto-api/data.json", moto.endpoint))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(!raw.contains(key), "the key is never stored in clear");

    let out = ok(
        &moto,
        &["create-key", "demo", "viewer@demo.example", "--read-only"],
    );
    let viewer = moto
        .store(TABLE)
        .await
        .api_keys_of("viewer@demo.example")
        .await
        .unwrap();
    assert!(viewer[0].matches(out.trim().split_once(':').unwrap().1));
    assert!(!viewer[0].can_edit_data);
}

#[tokio::test]
async fn revoke_key_removes_it_and_says_when_there_was_none() {
    let moto = Moto::start();
    setup(&moto);
    ok(&moto, &["create-key", "demo", "ops@demo.example"]);
    ok(&moto, &["revoke-key", "demo", "ops@demo.example"]);
    assert!(
        moto.store(TABLE)
            .await
            .api_keys_of("ops@demo.example")
            .await
            .unwrap()
            .is_empty()
    );
    let again = admin(&moto, &["revoke-key", "demo", "ops@demo.example"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("has no key"), "{}", again.stderr);
}

#[tokio::test]
async fn mark_registered_and_list_invitations_work_together() {
    let moto = Moto::start();
    setup(&moto);
    ok(
        &moto,
        &["put-domain", "other", "--plan", "ENTERPRISE", "--enable"],
    );
    ok(&moto, &["mark-registered", "demo", "1 (617) 555-1234"]);
    let record = moto
        .store(TABLE)
        .await
        .find(&PhoneNumber::parse("+16175551234").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, RegistrationStatus::Registered);

    let refused = admin(&moto, &["mark-registered", "other", "+16175551234"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("in use by another project"));

    let listed: Vec<Value> = ok(&moto, &["list-invitations", "demo"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["phone_number"], "+16175551234");
    assert_eq!(listed[0]["status"], "registered");
    assert!(listed[0]["registered_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        ok(&moto, &["list-invitations", "demo", "--status", "pending"]),
        ""
    );
    assert_eq!(ok(&moto, &["list-invitations", "other"]), "");

    // A queued invitation held for its send_at says so (no window, whatever the hour).
    ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--send-window",
            "any",
        ],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let held_until = now + 86_400;
    let held = RegistrationRecord {
        scheduled_for: Some(held_until),
        ..RegistrationRecord::new(
            "demo",
            PhoneNumber::parse("+16175550123").unwrap(),
            RegistrationStatus::Queued,
            now,
            held_until + 30 * 86_400,
        )
    };
    let rules = ClaimRules {
        domain: "demo",
        now,
        stale_before: 0,
    };
    moto.store(TABLE).await.claim(&held, rules).await.unwrap();
    let listed: Value =
        serde_json::from_str(ok(&moto, &["list-invitations", "demo", "--status", "queued"]).trim())
            .unwrap();
    let until = smsreg::domain::time::rfc3339(held_until);
    assert_eq!(listed["scheduled_for"], until.as_str());
    assert_eq!(listed["waiting"], format!("send_at: held until {until}"));
}

#[tokio::test]
async fn bad_arguments_get_a_clear_message_and_a_non_zero_exit() {
    let moto = Moto::start();
    setup(&moto);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["put-domain", "demo", "--plan", "GOLD", "--enable"],
            2,
            "unknown plan",
        ),
        (&["put-domain", "demo", "--plan", "PRO"], 2, "--enable"),
        (
            &[
                "put-domain",
                "demo",
                "--plan",
                "PRO",
                "--enable",
                "--disable",
            ],
            2,
            "cannot be used with",
        ),
        (
            &["put-domain", "Bad Name", "--plan", "PRO", "--enable"],
            2,
            "invalid project name",
        ),
        (
            &[
                "put-domain",
                "demo",
                "--plan",
                "PRO",
                "--enable",
                "--send-window",
                "8am-9pm",
            ],
            2,
            "is not a send window",
        ),
        (
            &[
                "put-domain",
                "demo",
                "--plan",
                "PRO",
                "--enable",
                "--display-name",
                "A display name far too long for one SMS part",
            ],
            2,
            "the display name must be 1 to 30 characters",
        ),
        (
            &["put-app", "nowhere", "app", "--name", "x"],
            1,
            "does not exist",
        ),
        (
            &[
                "put-app",
                "demo",
                "app",
                "--name",
                "x",
                "--install-url",
                "ftp://x",
            ],
            2,
            "--install-url",
        ),
        (&["create-key", "nowhere", "ops"], 1, "does not exist"),
        (&["create-key", "demo", "a:b"], 2, "username"),
        (&["create-key", "demo", LONG_USERNAME], 2, "username"),
        (
            &["put-app", "demo", LONG_APP_ID, "--name", "x"],
            2,
            "app id",
        ),
        (
            &["list-invitations", "demo", "--status", "lost"],
            2,
            "invalid value",
        ),
        (
            &["mark-registered", "demo", "+1617JKL1234"],
            2,
            "invalid phone number",
        ),
        (&["no-such-command"], 2, "unrecognized subcommand"),
    ];
    for (args, code, message) in cases {
        let run = admin(&moto, args);
        assert_eq!(run.code, *code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn every_command_has_help() {
    for command in [
        "create-table",
        "put-domain",
        "put-app",
        "create-key",
        "revoke-key",
        "list-invitations",
        "mark-registered",
        "check-sms",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: smsreg-admin"),
            "{command}"
        );
    }
}

#[tokio::test]
async fn sms_settings_turns_on_the_accounts_delivery_status_logging_and_says_so() {
    let moto = Moto::start();
    let role = "arn:aws:iam::123456789012:role/smsreg-SmsDeliveryStatusRole-1";
    let out = ok(
        &moto,
        &[
            "sms-settings",
            "--delivery-status-role",
            role,
            "--success-sampling",
            "100",
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("DeliveryStatusIAMRole={role}"),
            "DeliveryStatusSuccessSamplingRate=100".to_owned()
        ]
    );
    let sns = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    let attributes = sns.get_sms_attributes().send().await.unwrap();
    let attributes = attributes.attributes().unwrap();
    assert_eq!(attributes["DeliveryStatusIAMRole"], role);
    assert_eq!(attributes["DeliveryStatusSuccessSamplingRate"], "100");
    for bad in [
        vec!["sms-settings", "--delivery-status-role", "not-an-arn"],
        vec![
            "sms-settings",
            "--delivery-status-role",
            role,
            "--success-sampling",
            "101",
        ],
    ] {
        assert_eq!(admin(&moto, &bad).code, 2, "{bad:?}");
    }
}

fn admin_with(moto: &Moto, extra: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
        .args(args)
        .envs(moto.env(TABLE))
        .envs(extra.iter().copied())
        .output()
        .expect("smsreg-admin runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `check-sms` asks End User Messaging for a dry run (the stand-in in the fault proxy):
/// nothing sent, what it would do printed, the project's price cap applied.
#[tokio::test]
async fn check_sms_prints_what_end_user_messaging_would_do_and_sends_nothing() {
    let moto = Moto::start();
    setup(&moto);
    ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--max-price-per-part",
            "0.05",
        ],
    );
    let eum = moto.front.eum();
    eum.block_prefix("+44");
    eum.price_prefix("+254", 1.25);
    let env = [
        ("SMS_PROVIDER", "end-user-messaging"),
        ("SMS_ORIGINATION_IDENTITY", "pool-0123456789abcdef"),
    ];
    let check = |args: &[&str]| admin_with(&moto, &env, args);

    let run = check(&["check-sms", "+16175551234", "--domain", "demo"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(line["would_send"], true, "{line}");
    assert_eq!(line["max_price_per_part"], "0.05");
    assert_eq!(line["phone"], "+1617***1234", "masked");

    for (phone, reason, outcome) in [
        (
            "+447911123456",
            "DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION",
            "failed",
        ),
        ("+254712345678", "PRICE_OVER_THRESHOLD", "failed"),
        (
            "+16175550199",
            "DESTINATION_PHONE_NUMBER_OPTED_OUT",
            "opted_out",
        ),
    ] {
        let run = check(&["check-sms", phone, "--domain", "demo"]);
        assert_eq!(run.code, 1, "{phone}: {}", run.stderr);
        let line: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(
            (
                line["would_send"].as_bool(),
                line["reason"].as_str(),
                line["invitation_would_be"].as_str()
            ),
            (Some(false), Some(reason), Some(outcome)),
            "{phone}: {line}"
        );
    }
    // Without the project's cap, the premium number would go.
    let run = check(&["check-sms", "+254712345678"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    eum.spend_limit_reached(true);
    let run = check(&["check-sms", "+16175551234"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(r#""invitation_would_be":"held""#),
        "{}",
        run.stdout
    );

    assert_eq!(eum.dry_runs(), 2);
    assert!(eum.sent().is_empty(), "a dry run sends nothing");
    // Not the provider configured, or a bad number: a usage error, nothing asked.
    let run = admin(&moto, &["check-sms", "+16175551234"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("SMS_PROVIDER=end-user-messaging"),
        "{}",
        run.stderr
    );
    let run = check(&["check-sms", "12"]);
    assert_eq!(run.code, 2);
    assert_eq!(eum.calls("SendTextMessage"), 6);
    // And the cap can be taken off.
    eum.spend_limit_reached(false);
    ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--max-price-per-part",
            "off",
        ],
    );
    let run = check(&["check-sms", "+254712345678", "--domain", "demo"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = admin(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--max-price-per-part",
            "5",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// The project's stored choice of accounts, as the functions read it.
async fn stored_accounts(moto: &Moto, domain: &str) -> smsreg::domain::account::Accounts {
    moto.store(TABLE)
        .await
        .project(domain)
        .await
        .unwrap()
        .expect("the project")
        .accounts
}

const HQ_SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hq/demo-AbCdEf";

/// `put-domain --accounts` stores where the project's accounts live; unset keeps it; the
/// HQ options come all three with commcare-hq and never otherwise.
#[tokio::test]
async fn put_domain_chooses_where_the_accounts_live() {
    use smsreg::domain::account::{Accounts, HqProject};
    let moto = Moto::start();
    setup(&moto);
    assert_eq!(stored_accounts(&moto, "demo").await, Accounts::Service);
    let put = |extra: &[&str]| {
        let mut args = vec!["put-domain", "demo", "--plan", "PRO", "--enable"];
        args.extend_from_slice(extra);
        admin(&moto, &args)
    };

    let run = put(&["--accounts", "cognito"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "project demo: plan PRO, registration enabled\naccounts: cognito\n"
    );
    assert!(run.stderr.contains("check-accounts demo"), "{}", run.stderr);
    assert_eq!(stored_accounts(&moto, "demo").await, Accounts::Cognito);

    let hq = [
        "--accounts",
        "commcare-hq",
        "--commcare-hq-url",
        "https://www.commcarehq.org/",
        "--commcare-hq-domain",
        "demo-hq",
        "--commcare-hq-key-secret",
        HQ_SECRET,
    ];
    let run = put(&hq);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.ends_with("accounts: commcare-hq\n"),
        "{}",
        run.stdout
    );
    let expected = Accounts::CommCareHq(HqProject {
        base_url: "https://www.commcarehq.org".into(),
        domain: "demo-hq".into(),
        key_secret_arn: HQ_SECRET.into(),
    });
    assert_eq!(
        stored_accounts(&moto, "demo").await,
        expected,
        "no trailing slash"
    );

    // Unset keeps the choice, and prints what it printed before.
    let run = put(&["--daily-invitation-limit", "20"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "project demo: plan PRO, registration enabled\n");
    assert_eq!(stored_accounts(&moto, "demo").await, expected, "kept");

    // Refused, with the reason, and nothing stored.
    let without = |flag: &str| {
        let at = hq.iter().position(|a| *a == flag).unwrap();
        let mut args = hq.to_vec();
        args.drain(at..at + 2);
        args
    };
    let bad_url = {
        let mut args = hq.to_vec();
        args[3] = "http://www.commcarehq.org";
        args
    };
    let bad_arn = {
        let mut args = hq.to_vec();
        args[7] = "ops@example.org:0123456789abcdef0123456789abcdef";
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (without("--commcare-hq-url"), "missing --commcare-hq-url"),
        (
            without("--commcare-hq-domain"),
            "missing --commcare-hq-domain",
        ),
        (
            without("--commcare-hq-key-secret"),
            "missing --commcare-hq-key-secret",
        ),
        (bad_url, "https"),
        (bad_arn, "ARN of a Secrets Manager secret"),
        (
            vec!["--commcare-hq-domain", "demo-hq"],
            "--commcare-hq-domain goes only with --accounts commcare-hq",
        ),
        (
            vec![
                "--accounts",
                "cognito",
                "--commcare-hq-url",
                "https://x.org",
            ],
            "--commcare-hq-url goes only with --accounts commcare-hq",
        ),
        (
            vec![
                "--accounts",
                "service",
                "--commcare-hq-key-secret",
                HQ_SECRET,
            ],
            "--commcare-hq-key-secret goes only with --accounts commcare-hq",
        ),
        (vec!["--accounts", "ldap"], "invalid value"),
    ];
    for (args, message) in &cases {
        let run = put(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    let run = put(&cases[4].0);
    assert!(
        !run.stderr.contains("0123456789abcdef"),
        "what was given instead of an ARN is never printed: {}",
        run.stderr
    );
    assert_eq!(stored_accounts(&moto, "demo").await, expected, "unchanged");

    // A stand-in on this machine may be plain http.
    let mut local = hq.to_vec();
    local[3] = "http://127.0.0.1:8000/";
    let run = put(&local);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let Accounts::CommCareHq(stored) = stored_accounts(&moto, "demo").await else {
        panic!("commcare-hq");
    };
    assert_eq!(stored.base_url, "http://127.0.0.1:8000");

    let run = put(&["--accounts", "service"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(stored_accounts(&moto, "demo").await, Accounts::Service);
}

/// `create-user-pool` makes the pool the service needs; `check-accounts` says so, and
/// names what is missing when it is not.
#[tokio::test]
async fn create_user_pool_then_check_accounts_says_ready() {
    use aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType;
    let moto = Moto::start();
    setup(&moto);
    ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--accounts",
            "cognito",
        ],
    );
    let out = ok(&moto, &["create-user-pool", "--name", "smsreg-test"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let pool_id = lines[0];
    let client_id = lines[1].strip_prefix("client_id=").expect("client_id=");
    assert!(pool_id.starts_with("us-east-1_"), "{pool_id}");

    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&moto.sdk_config().await);
    let described = cognito
        .describe_user_pool()
        .user_pool_id(pool_id)
        .send()
        .await
        .unwrap();
    let pool = described.user_pool().unwrap();
    assert_eq!(pool.name(), Some("smsreg-test"));
    assert_eq!(
        pool.username_configuration().map(|u| u.case_sensitive()),
        Some(false)
    );
    let policy = pool
        .policies()
        .and_then(|p| p.password_policy())
        .expect("a password policy");
    assert_eq!(policy.minimum_length(), Some(8));
    assert_eq!(
        (
            policy.require_uppercase(),
            policy.require_lowercase(),
            policy.require_numbers(),
            policy.require_symbols()
        ),
        (false, false, false, false)
    );
    assert_eq!(
        pool.admin_create_user_config()
            .map(|c| c.allow_admin_create_user_only()),
        Some(true)
    );
    for name in smsreg::adapters::cognito::CUSTOM_ATTRIBUTES {
        let attribute = pool
            .schema_attributes()
            .iter()
            .find(|a| a.name() == Some(&format!("custom:{name}")))
            .unwrap_or_else(|| panic!("custom:{name}"));
        assert_eq!(attribute.mutable(), Some(true), "{name}");
        assert_eq!(
            attribute
                .string_attribute_constraints()
                .and_then(|c| c.max_length()),
            Some("2048"),
            "{name}"
        );
    }
    let app = cognito
        .describe_user_pool_client()
        .user_pool_id(pool_id)
        .client_id(client_id)
        .send()
        .await
        .unwrap();
    let app = app.user_pool_client().unwrap();
    assert_eq!(app.client_secret(), None, "no secret");
    let mut flows = app.explicit_auth_flows().to_vec();
    flows.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(
        flows,
        [
            ExplicitAuthFlowsType::AllowRefreshTokenAuth,
            ExplicitAuthFlowsType::AllowUserPasswordAuth,
            ExplicitAuthFlowsType::AllowUserSrpAuth,
        ]
    );

    // The form's password rule, and no other: 8 lower-case letters pass, 7 do not.
    cognito
        .admin_create_user()
        .user_pool_id(pool_id)
        .username("jane@demo")
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let set_password = |password: &'static str| {
        cognito
            .admin_set_user_password()
            .user_pool_id(pool_id)
            .username("jane@demo")
            .password(password)
            .permanent(true)
            .send()
    };
    set_password("abcdefgh")
        .await
        .expect("8 lower-case letters");
    let refused = set_password("abcdefg").await.expect_err("7 characters");
    assert_eq!(
        refused
            .as_service_error()
            .map(|e| e.is_invalid_password_exception()),
        Some(true),
        "{refused:?}"
    );

    // Ready with the pool; not without one, nor with a pool that lacks the attributes.
    let check = |env: &[(&str, &str)]| admin_with(&moto, env, &["check-accounts", "demo"]);
    let run = check(&[("USER_POOL_ID", pool_id)]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "ready\n"),
        "{}",
        run.stderr
    );
    let run = check(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("USER_POOL_ID"), "{}", run.stdout);
    let bare = cognito
        .create_user_pool()
        .pool_name("bare")
        .send()
        .await
        .unwrap();
    let bare = bare.user_pool().and_then(|p| p.id()).unwrap();
    let run = check(&[("USER_POOL_ID", bare)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    for name in smsreg::adapters::cognito::CUSTOM_ATTRIBUTES {
        assert!(run.stdout.contains(name), "{name}: {}", run.stdout);
    }

    // A project in the service's table is always ready; an unknown one is an error.
    ok(&moto, &["put-domain", "other", "--plan", "PRO", "--enable"]);
    let run = admin(&moto, &["check-accounts", "other"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "ready\n"),
        "{}",
        run.stderr
    );
    let run = admin(&moto, &["check-accounts", "nowhere"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// `create-password-key` makes a symmetric KMS key and prints its id.
#[tokio::test]
async fn create_password_key_prints_a_key_kms_knows() {
    let moto = Moto::start();
    let out = ok(&moto, &["create-password-key"]);
    let key_id = out.trim();
    assert_eq!(out.lines().count(), 1, "{out}");
    let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
    let described = kms.describe_key().key_id(key_id).send().await.unwrap();
    let key = described.key_metadata().unwrap();
    assert_eq!(key.key_id(), key_id);
    assert_eq!(
        key.description(),
        Some("smsreg: seals worker passwords while their accounts wait")
    );
    assert_eq!(
        key.key_spec(),
        Some(&aws_sdk_kms::types::KeySpec::SymmetricDefault)
    );
    assert!(key.enabled());
}

#[test]
fn the_account_commands_say_what_they_print() {
    let help = |command: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pool = help("create-user-pool");
    assert!(pool.contains("first line"), "{pool}");
    assert!(pool.contains("client_id="), "{pool}");
    assert!(help("create-password-key").contains("key id"));
    assert!(help("check-accounts").contains("ready"));
    let put_domain = help("put-domain");
    for flag in [
        "--accounts",
        "--commcare-hq-url",
        "--commcare-hq-domain",
        "--commcare-hq-key-secret",
    ] {
        assert!(put_domain.contains(flag), "{flag}");
    }
}

#[tokio::test]
async fn languages_and_a_projects_own_texts_are_set_checked_and_printed() {
    let moto = Moto::start();
    setup(&moto);
    // Languages: known codes only, each once; the first is the default.
    for bad in ["xx", "sw,sw", ""] {
        let run = admin(
            &moto,
            &[
                "put-domain",
                "demo",
                "--plan",
                "PRO",
                "--enable",
                "--languages",
                bad,
            ],
        );
        assert_ne!(run.code, 0, "{bad}");
    }
    let out = ok(
        &moto,
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--languages",
            "sw,en",
        ],
    );
    assert!(out.contains("languages: sw,en (default sw)"), "{out}");
    let texts: serde_json::Value = serde_json::from_str(&ok(&moto, &["texts", "demo"])).unwrap();
    assert_eq!(
        texts["sw"]["page.submit"]["text"],
        smsreg::domain::language::Language::Sw
            .builtin("page.submit")
            .unwrap()
    );
    assert_eq!(texts["en"]["sms.android_link"]["parts"], 1);
    assert_eq!(texts["en"]["sms.android_link"]["own"], false);
    assert!(texts.get("fr").is_none(), "only the project's languages");

    let file = std::env::temp_dir().join(format!("smsreg-texts-{}.json", std::process::id()));
    // A bad file (a link text without its {}, an unknown id) changes nothing.
    std::fs::write(
        &file,
        r#"{"sms.android_link": "{title}: jisajili hapa", "page.nope": "x", "page.submit": "Tuma"}"#,
    )
    .unwrap();
    let run = admin(
        &moto,
        &[
            "put-texts",
            "demo",
            "--language",
            "sw",
            file.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("sms.android_link") && run.stderr.contains("page.nope"),
        "{}",
        run.stderr
    );
    let unchanged: serde_json::Value =
        serde_json::from_str(&ok(&moto, &["texts", "demo"])).unwrap();
    assert_eq!(unchanged["sw"]["page.submit"]["own"], false);
    // A language the project lacks.
    let run = admin(
        &moto,
        &[
            "put-texts",
            "demo",
            "--language",
            "fr",
            file.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--languages"), "{}", run.stderr);
    // A good one: stored, its SMS parts printed, and used.
    std::fs::write(
        &file,
        r#"{"sms.android_link": "{title}: jisajili hapa: {}", "page.submit": "Tuma"}"#,
    )
    .unwrap();
    let out = ok(
        &moto,
        &[
            "put-texts",
            "demo",
            "--language",
            "sw",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.contains("sms.android_link: 1 part(s), GSM-7"), "{out}");
    let texts: serde_json::Value = serde_json::from_str(&ok(&moto, &["texts", "demo"])).unwrap();
    assert_eq!(texts["sw"]["page.submit"]["text"], "Tuma");
    assert_eq!(texts["sw"]["page.submit"]["own"], true);
    // HQ's order: the project's own text in its default language comes before the
    // built-in one in the worker's.
    assert_eq!(texts["en"]["page.submit"]["text"], "Tuma");
    assert_eq!(texts["en"]["page.email"]["text"], "Email");
    let _ = std::fs::remove_file(&file);
}
