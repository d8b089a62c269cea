//! Worker accounts under AWS's and the directories' ordinary faults, at random, for
//! several seeds and both directories (Jepsen's way): a Cognito pool on moto, and the
//! CommCare HQ stand-in throttled to a few calls a second. Through the fault proxy, 20 %
//! of the directory's creations are applied and their answer lost, 20 % refused (throttled
//! or a 500, nothing made), 20 % applied and answered past the page's wait; 5 % of
//! DynamoDB writes are applied and their answer lost, 5 % of updates meet a conflict. The
//! workers post the page once, twice at the same time (two tabs), or have it killed at a
//! random moment (the function's deadline); the accounts function is killed mid-batch at
//! random too. Once the faults stop and the retries settle, whoever has no registration
//! posts the page again (the link must still work). Then, over everything that happened:
//! - every worker is registered, with exactly one account in the directory, made with the
//!   password they chose, and no account exists that is not a worker's;
//! - no worker saw "taken" for their own name; every answer was 201, 202 or a second
//!   tab's 409;
//! - a worker answered 202 got exactly one "Account ready" SMS, one answered 201 none, no
//!   one two;
//! - one `Worker Registered` and one `Worker Account Created` event each, none failed; the
//!   batch counts every account once;
//! - no password in plain text in the table, the queues, the events, the SMS or the logs,
//!   and no sealed password left.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
use common::fault_proxy::{Chaos, Rng};
use common::*;
use serde_json::{Value, json};
use smsreg::adapters::accounts::Directories;
use smsreg::adapters::cognito::CognitoPool;
use smsreg::adapters::commcare_hq::CommCareHq;
use smsreg::adapters::dynamodb::{DynamoStore, ProjectUpdate};
use smsreg::adapters::kms::KmsSealer;
use smsreg::adapters::sns::SnsSms;
use smsreg::adapters::sqs::{SqsAccountQueue, SqsQueue};
use smsreg::config::Config;
use smsreg::domain::account::{Accounts, HqProject};
use smsreg::domain::{PhoneNumber, Plan};
use smsreg::functions::accounts::AccountsFunction;
use smsreg::functions::api::Api;
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{
    AccountBackend, AccountJob, AccountQueue, DeliveryLog, InvitationStore, QueueError,
};
use smsreg::service::RegistrationService;
use smsreg::service::send::Sender;

const WORKERS: usize = 10;
const SEEDS: [u64; 3] = [1, 2, 3];
const HQ_DOMAIN: &str = "demo-hq";
const HQ_KEY: &str = "ops@example.org:5e1f00d2c3b4a5968778695a4b3c2d1e";
/// The page's wait for the directory; the slow answers come later than it.
const PAGE_WAIT: Duration = Duration::from_millis(800);
const READY: &str = "Account ready. Username: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directory {
    Cognito,
    Hq,
}

/// The accounts queue with its delays cut to nothing, so that a run takes seconds: jobs
/// are seen at once, and a job handed back comes back at once.
struct Prompt(SqsAccountQueue);

impl AccountQueue for Prompt {
    async fn put(&self, job: &AccountJob, _delay_seconds: u32) -> Result<(), QueueError> {
        self.0.put(job, 0).await
    }

    async fn retry_later(&self, receipt_handle: &str, _delay: u32) -> Result<(), QueueError> {
        self.0.retry_later(receipt_handle, 0).await
    }
}

/// Every log line the service writes in this test binary, as the functions would print
/// them on AWS (this crate at `trace`, the others at `warn`).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let filter: tracing_subscriber::filter::Targets =
            smsreg::telemetry::filter_directives(Some("trace"))
                .parse()
                .unwrap();
        tracing_subscriber::fmt()
            .json()
            .with_writer(move || LogWriter(writer.clone()))
            .finish()
            .with(filter)
            .init();
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Env {
    moto: Moto,
    table: String,
    directory: Directory,
    store: DynamoStore,
    api: Api<DynamoStore, SqsQueue>,
    accounts: AccountsFunction<DynamoStore, SqsQueue>,
    sender: SenderFunction<DynamoStore, SqsQueue, SnsSms>,
    send_queue: String,
    accounts_queue: String,
    cognito: aws_sdk_cognitoidentityprovider::Client,
    pool: smsreg::adapters::cognito_admin::CreatedPool,
}

async fn env(seed: u64, directory: Directory, hq_per_second: f64) -> Env {
    let moto = Moto::start();
    let table = format!("accounts-chaos-{seed}");
    let store = moto.store(&table).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&aws);
    let pool = smsreg::adapters::cognito_admin::create_user_pool(&cognito, "workers")
        .await
        .unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let kms = aws_sdk_kms::Client::new(&aws);
    let key = kms.create_key().send().await.unwrap();
    let key = key.key_metadata().unwrap().key_id().to_owned();
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // Two seconds hidden: a job whose function was killed comes back soon.
    let accounts_queue = smsreg::adapters::sqs::create_queues(&sqs, "accounts", 1000, 2)
        .await
        .unwrap();
    let accounts = match directory {
        Directory::Cognito => Accounts::Cognito,
        Directory::Hq => {
            let arn = secrets
                .create_secret()
                .name("hq-key")
                .secret_string(HQ_KEY)
                .send()
                .await
                .unwrap()
                .arn
                .unwrap();
            moto.hq().project(HQ_DOMAIN, HQ_KEY);
            moto.hq().throttle(HQ_DOMAIN, hq_per_second);
            Accounts::CommCareHq(HqProject {
                base_url: moto.endpoint.clone(),
                domain: HQ_DOMAIN.into(),
                key_secret_arn: arn,
            })
        }
    };
    let mut update: ProjectUpdate = project(DEMO_DOMAIN, Some("Demo Health"), Plan::Pro);
    update.accounts = Some(&accounts);
    store.put_project(&update).await.unwrap();
    let config = moto
        .queued(Config {
            table_name: table.clone(),
            public_base_url: "https://sms.example.org".into(),
            user_pool_id: Some(pool.pool_id.clone()),
            password_key_id: Some(key.clone()),
            accounts_queue_url: Some(accounts_queue.clone()),
            account_wait: PAGE_WAIT,
            ..Config::default()
        })
        .await;
    let send_queue = config.send_queue_url.clone().unwrap();
    let ports: Arc<dyn smsreg::ports::AccountPorts> = Arc::new(AccountBackend {
        directory: Directories {
            cognito: Some(CognitoPool::new(cognito.clone(), pool.pool_id.clone())),
            hq: CommCareHq::new(secrets),
        },
        sealer: KmsSealer::new(kms, key),
        queue: Prompt(SqsAccountQueue::new(sqs.clone(), &accounts_queue)),
    });
    let service = RegistrationService::new(
        store.clone(),
        SqsQueue::new(sqs, &send_queue),
        Arc::new(smsreg::ports::SystemClock),
        config,
    )
    .with_accounts(ports.clone());
    Env {
        api: Api::new(service.clone()),
        accounts: AccountsFunction::new(service.clone(), ports),
        sender: SenderFunction::new(Sender::new(
            service,
            SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
        )),
        moto,
        table,
        directory,
        store,
        send_queue,
        accounts_queue,
        cognito,
        pool,
    }
}

/// Worker `i`'s form: its name and its own password.
fn form(seed: u64, i: usize) -> (String, String) {
    (format!("worker{i}"), format!("pw-{seed}-{i}-horse"))
}

impl Env {
    /// The account's name in the directory for the form's `name`.
    fn account_name(&self, name: &str) -> String {
        match self.directory {
            Directory::Cognito => format!("{name}@{DEMO_DOMAIN}"),
            Directory::Hq => format!("{name}@{HQ_DOMAIN}.commcarehq.org"),
        }
    }

    /// Invites `numbers` (Android workers) and sends their SMS: each one's token.
    async fn invite(&self, numbers: &[String]) -> (String, Vec<String>) {
        let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
        let body = json!({"app_id": DEMO_APP, "users": users, "android_only": true});
        let request = keyed_request(&api_key_header(DEMO_USER, DEMO_KEY), &body);
        let (status, created) = response_parts(&self.api.handle(request).await);
        assert_eq!(status, 200, "{created}");
        self.moto.deliver(&self.sender, &self.send_queue).await;
        let mut tokens = Vec::new();
        for n in numbers {
            tokens.push(self.record(n).await.token.as_str().to_owned());
        }
        (created["batch_id"].as_str().unwrap().to_owned(), tokens)
    }

    /// The invitation of `phone`.
    async fn record(&self, phone: &str) -> smsreg::domain::RegistrationRecord {
        let phone = PhoneNumber::parse(phone).unwrap();
        self.store
            .find(&phone)
            .await
            .unwrap()
            .expect("an invitation")
    }

    /// The "Account ready" SMS `phone` got.
    fn ready_sms(&self, phone: &str) -> Vec<String> {
        self.moto
            .sms_to(phone)
            .into_iter()
            .filter(|t| t.starts_with(READY))
            .collect()
    }

    async fn post(&self, token: &str, name: &str, password: &str) -> u16 {
        let form = json!({"username": name, "password": password, "password2": password});
        let request = register_request(DEMO_DOMAIN, token, &form);
        let (status, body) = response_parts(&self.api.handle(request).await);
        assert!(
            matches!(status, 201 | 202 | 409),
            "a worker's own name refused, or a failure: {status} {body}"
        );
        status
    }

    /// Hands the accounts function what its queue holds, as the mapping does, killing it
    /// mid-batch now and then (`kill`: the share of invocations cut short): nothing is
    /// deleted then, and the batch comes back after the queue's visibility timeout.
    async fn feed_accounts(&self, rng: &mut Rng, kill: f64) {
        let client = aws_sdk_sqs::Client::new(&self.moto.sdk_config().await);
        let (messages, event) = receive_event(&client, &self.accounts_queue).await;
        if messages.is_empty() {
            return;
        }
        let run = self.accounts.handle_batch(&event, None);
        let response = if rng.next_f64() < kill {
            let cut = Duration::from_millis((rng.next_f64() * 1_500.0) as u64);
            match tokio::time::timeout(cut, run).await {
                Ok(response) => response,
                Err(_) => return,
            }
        } else {
            run.await
        };
        let failed: Vec<String> = response
            .expect("the accounts function answers")
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for m in messages {
            if !m
                .message_id()
                .is_some_and(|id| failed.iter().any(|f| f == id))
            {
                let _ = client
                    .delete_message()
                    .queue_url(&self.accounts_queue)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
            }
        }
    }

    /// The directory's accounts: name and whether `password_of(name)` signs in.
    async fn directory_accounts(&self) -> Vec<String> {
        match self.directory {
            Directory::Cognito => {
                let mut names: Vec<String> = self
                    .cognito
                    .list_users()
                    .user_pool_id(&self.pool.pool_id)
                    .send()
                    .await
                    .unwrap()
                    .users()
                    .iter()
                    .filter_map(|u| u.username().map(str::to_owned))
                    .collect();
                names.sort();
                names
            }
            Directory::Hq => {
                let mut names: Vec<String> = self
                    .moto
                    .hq()
                    .users(HQ_DOMAIN)
                    .into_iter()
                    .map(|u| u.username)
                    .collect();
                names.sort();
                names
            }
        }
    }

    async fn signs_in(&self, account: &str, password: &str) -> bool {
        match self.directory {
            Directory::Cognito => self
                .cognito
                .initiate_auth()
                .client_id(&self.pool.client_id)
                .auth_flow(AuthFlowType::UserPasswordAuth)
                .auth_parameters("USERNAME", account)
                .auth_parameters("PASSWORD", password)
                .send()
                .await
                .is_ok_and(|r| r.authentication_result().is_some()),
            Directory::Hq => {
                let local = account.split('@').next().unwrap();
                self.moto.hq().password_of(HQ_DOMAIN, local).as_deref() == Some(password)
            }
        }
    }
}

async fn run(seed: u64, directory: Directory) {
    // A project throttled a little above the pace the service keeps: its 429s, from the
    // faults' slow answers and retries, are part of the run.
    let e = env(seed, directory, 4.0).await;
    let logs = logs();
    let numbers = us_numbers(WORKERS, 4000 + seed as usize * 100);
    let (batch_id, tokens) = e.invite(&numbers).await;

    let begun = Instant::now();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    e.moto.front.chaos(Chaos {
        seed,
        lost_answers: 0.05,
        update_conflicts: 0.05,
        directory_lost: 0.2,
        directory_refused: 0.2,
        directory_slow: 0.2,
        directory_delay: PAGE_WAIT * 2,
        ..Chaos::default()
    });
    // The pages: once, from two tabs at once, or killed at a random moment.
    let mut answers: Vec<Vec<u16>> = vec![Vec::new(); WORKERS];
    for (i, token) in tokens.iter().enumerate() {
        let (name, password) = form(seed, i);
        let draw = rng.next_f64();
        if draw < 0.25 {
            let (a, b) = tokio::join!(
                e.post(token, &name, &password),
                e.post(token, &name, &password)
            );
            answers[i].extend([a, b]);
        } else if draw < 0.5 {
            let cut = Duration::from_millis((rng.next_f64() * 2_000.0) as u64);
            if let Ok(status) = tokio::time::timeout(cut, e.post(token, &name, &password)).await {
                answers[i].push(status);
            }
        } else {
            answers[i].push(e.post(token, &name, &password).await);
        }
    }
    // The accounts function under the same faults, killed now and then.
    for _ in 0..8 {
        e.feed_accounts(&mut rng, 0.3).await;
        e.moto.deliver(&e.sender, &e.send_queue).await;
    }
    let report = e.moto.front.calm();
    println!(
        "{directory:?} seed {seed}: faults injected {report:?}; the pages answered {answers:?} \
         ({:.1} s)",
        begun.elapsed().as_secs_f64()
    );
    assert!(
        report.directory_lost + report.directory_refused + report.directory_slow > 0,
        "{report:?}"
    );
    // The retries settle.
    let started = Instant::now();
    while e.moto.queue_depth(&e.accounts_queue).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "account jobs still queued after 2 minutes"
        );
        e.feed_accounts(&mut rng, 0.0).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    e.moto.deliver(&e.sender, &e.send_queue).await;
    // Whoever has no registration yet posts again: the link still works.
    for (i, (n, token)) in numbers.iter().zip(&tokens).enumerate() {
        if e.record(n).await.status.as_str() != "registered" {
            let (name, password) = form(seed, i);
            let status = e.post(token, &name, &password).await;
            assert_eq!(status, 201, "{directory:?} seed {seed}: worker {i} again");
            answers[i].push(status);
        }
    }
    while e.moto.queue_depth(&e.accounts_queue).await > 0 {
        e.feed_accounts(&mut rng, 0.0).await;
    }
    e.moto.deliver(&e.sender, &e.send_queue).await;
    println!(
        "{directory:?} seed {seed}: settled, answers {answers:?} ({:.1} s)",
        begun.elapsed().as_secs_f64()
    );

    // The invariants.
    let mut expected_accounts = Vec::new();
    for (i, n) in numbers.iter().enumerate() {
        let (name, password) = form(seed, i);
        let account_name = e.account_name(&name);
        let record = e.record(n).await;
        let context = format!(
            "{directory:?} seed {seed} worker {i} answers {:?}",
            answers[i]
        );
        assert_eq!(record.status.as_str(), "registered", "{context}");
        let account = record.account.clone().expect(&context);
        assert_eq!(account.status.as_str(), "created", "{context}: {account:?}");
        assert_eq!(account.username, account_name, "{context}");
        assert!(e.signs_in(&account_name, &password).await, "{context}");
        expected_accounts.push(account_name.clone());
        let ready = e.ready_sms(n);
        assert!(ready.len() <= 1, "{context}: {ready:?}");
        if answers[i].contains(&201) {
            assert!(ready.is_empty(), "{context}: told by the page, {ready:?}");
        } else if answers[i].contains(&202) {
            assert_eq!(ready.len(), 1, "{context}");
        }
        if let Some(text) = ready.first() {
            let sign_in = match directory {
                Directory::Cognito => account_name.clone(),
                Directory::Hq => name.clone(),
            };
            assert_eq!(*text, format!("{READY}{sign_in}"), "{context}");
        }
    }
    expected_accounts.sort();
    assert_eq!(
        e.directory_accounts().await,
        expected_accounts,
        "{directory:?} seed {seed}: one account per worker, none other"
    );
    let events = e.store.outbox_between(0, u64::MAX).await.unwrap();
    let count = |kind: &str| {
        events
            .iter()
            .filter(|ev| ev.detail_type.as_str() == kind)
            .count()
    };
    assert_eq!(
        count("Worker Registered"),
        WORKERS,
        "{directory:?} seed {seed}"
    );
    assert_eq!(
        count("Worker Account Created"),
        WORKERS,
        "{directory:?} seed {seed}"
    );
    assert_eq!(
        count("Worker Account Failed"),
        0,
        "{directory:?} seed {seed}"
    );
    let progress = e.store.batch_progress(&batch_id).await.unwrap().unwrap();
    assert_eq!(
        (progress.accounts_created, progress.accounts_failed),
        (WORKERS as u64, 0),
        "{directory:?} seed {seed}"
    );
    let everything = e.moto.everything(&e.table).await;
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the logs are captured");
    for i in 0..WORKERS {
        let (_, password) = form(seed, i);
        assert!(
            !everything.contains(&password),
            "worker {i}'s password kept"
        );
        assert!(!logs.contains(&password), "worker {i}'s password logged");
    }
    assert!(
        !everything.contains("sealed_password"),
        "a sealed password left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cognito_accounts_under_faults_are_made_once_each_with_the_chosen_password() {
    for seed in SEEDS {
        run(seed, Directory::Cognito).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hq_accounts_under_faults_are_made_once_each_with_the_chosen_password() {
    for seed in SEEDS {
        run(seed, Directory::Hq).await;
    }
}

/// 200 workers register within a minute in a project HQ lets make one call a second: every
/// page answers at once (201 while the project's turns last, 202 after), the accounts are
/// made at HQ's pace, no 429 comes within the back-off a 429 began, and every worker
/// answered 202 is texted once that the account is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_registrations_in_a_minute_are_made_at_hqs_pace_and_each_worker_told_once() {
    use futures::StreamExt;
    const COUNT: usize = 200;
    let e = env(0, Directory::Hq, 1.0).await;
    let numbers = us_numbers(COUNT, 7000);
    let invited = Instant::now();
    let (_, tokens) = e.invite(&numbers).await;
    println!("invited and texted in {:?}", invited.elapsed());
    let pages_began = Instant::now();
    let e = &e;
    let answers: Vec<(usize, u16, Duration)> = futures::stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| async move {
            let (name, password) = form(0, i);
            let began = Instant::now();
            let status = e.post(token, &name, &password).await;
            (i, status, began.elapsed())
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let pages = pages_began.elapsed();
    assert!(pages < Duration::from_secs(60), "200 pages took {pages:?}");
    for (i, status, took) in &answers {
        assert!(matches!(status, 201 | 202), "worker {i}: {status}");
        assert!(
            *took < Duration::from_secs(10),
            "worker {i}'s page took {took:?}"
        );
    }
    let made_by_pages = answers.iter().filter(|(_, s, _)| *s == 201).count();
    let mut rng = Rng(0);
    let functions_began = Instant::now();
    while e.moto.queue_depth(&e.accounts_queue).await > 0 {
        assert!(
            functions_began.elapsed() < Duration::from_secs(400),
            "account jobs still queued after 400 s"
        );
        e.feed_accounts(&mut rng, 0.0).await;
    }
    e.moto.deliver(&e.sender, &e.send_queue).await;
    println!(
        "pages {pages:?} ({made_by_pages} accounts made by them), then the accounts function \
         {:?}; HQ answered 429 {} times",
        functions_began.elapsed(),
        e.moto.hq().throttled()
    );
    let checks = Instant::now();
    let sms = e.moto.sms();
    let mut status_of = vec![0; COUNT];
    for (i, status, _) in &answers {
        status_of[*i] = *status;
    }
    for (i, n) in numbers.iter().enumerate() {
        let (name, password) = form(0, i);
        let record = e.record(n).await;
        let account = record.account.expect("an account");
        assert_eq!(account.status.as_str(), "created", "worker {i}");
        assert!(
            e.signs_in(&e.account_name(&name), &password).await,
            "worker {i}"
        );
        let ready: Vec<&String> = sms
            .iter()
            .filter(|(to, text)| to == n && text.starts_with(READY))
            .map(|(_, text)| text)
            .collect();
        let expected = usize::from(status_of[i] == 202);
        assert_eq!(
            ready.len(),
            expected,
            "worker {i}, page {}: {ready:?}",
            status_of[i]
        );
    }
    assert_eq!(e.moto.hq().users(HQ_DOMAIN).len(), COUNT);
    println!("checked in {:?}", checks.elapsed());
    // No 429 within the back-off a 429 began (5 s at least, less a scheduling margin).
    let refusals: Vec<Instant> = e
        .moto
        .hq()
        .log()
        .into_iter()
        .filter_map(|(at, _, refused)| refused.then_some(at))
        .collect();
    for pair in refusals.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(4_500),
            "two 429s {gap:?} apart"
        );
    }
}
