//! The service over in-memory adapters: faults injected where the real services cannot.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use smsreg::adapters::memory::{MemorySms, MemoryStore};
use smsreg::config::Config;
use smsreg::domain::invitation::RegistrationStatus;
use smsreg::domain::job::{JobKind, SmsJob};
use smsreg::domain::project::hash_key;
use smsreg::domain::{ApiKey, App, PhoneNumber, Plan, Project, RegistrationRecord};
use smsreg::functions::api::Api;
use smsreg::ports::{Clock, DeliveryLog, JobQueue, QueueError, SmsError, SmsFailure};
use smsreg::service::RegistrationService;
use smsreg::service::send::{JobResult, Later, Sender};

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: u64 = 1_800_000_000;

/// A clock that runs, from T0: the sender's pace and gaps in real time.
struct Running(Instant);

impl Clock for Running {
    fn now(&self) -> u64 {
        self.now_us() / 1_000_000
    }

    fn now_ms(&self) -> u64 {
        self.now_us() / 1_000
    }

    fn now_us(&self) -> u64 {
        T0 * 1_000_000 + self.0.elapsed().as_micros() as u64
    }
}

struct World<S> {
    store: MemoryStore,
    /// The send queue (and the events topic).
    sms: S,
    clock: Arc<TestClock>,
    config: Config,
    api: Api<MemoryStore, S>,
}

fn demo_project(install_url: Option<&str>) -> Project {
    Project {
        accounts: Default::default(),
        languages: vec![smsreg::domain::language::Language::En],
        texts: Default::default(),
        name: DEMO_DOMAIN.into(),
        display_name: Some("Demo Health".into()),
        plan: Plan::Pro,
        registration_enabled: true,
        apps: vec![App {
            id: DEMO_APP.into(),
            name: "Demo app".into(),
            install_url: install_url.map(str::to_owned),
        }],
        allowed_countries: None,
        daily_invitation_limit: 1000,
        sms: Default::default(),
    }
}

fn world_with<S: JobQueue + Clone>(sms: S, config: Config) -> World<S> {
    let store = MemoryStore::new();
    store.put_project(demo_project(None));
    store.put_project(Project {
        accounts: Default::default(),
        languages: vec![smsreg::domain::language::Language::En],
        texts: Default::default(),
        name: "other".into(),
        display_name: None,
        plan: Plan::Pro,
        registration_enabled: true,
        apps: demo_project(None).apps,
        allowed_countries: None,
        daily_invitation_limit: 1000,
        sms: Default::default(),
    });
    for (user, key, domain, edit) in [
        (DEMO_USER, DEMO_KEY, DEMO_DOMAIN, true),
        (VIEWER_USER, VIEWER_KEY, DEMO_DOMAIN, false),
        ("admin@other.example", "other-key", "other", true),
    ] {
        store.put_key(ApiKey {
            username: user.into(),
            domain: domain.into(),
            key_hash: hash_key(key),
            can_edit_data: edit,
        });
    }
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let service =
        RegistrationService::new(store.clone(), sms.clone(), clock.clone(), config.clone());
    World {
        store,
        sms: sms.clone(),
        clock,
        config,
        api: Api::new(service),
    }
}

fn world() -> World<MemorySms> {
    world_with(MemorySms::new(), Config::default())
}

impl<S: JobQueue + Clone> World<S> {
    /// The service the API runs, over the same store, queue and clock.
    fn service(&self) -> RegistrationService<MemoryStore, S> {
        RegistrationService::new(
            self.store.clone(),
            self.sms.clone(),
            self.clock.clone(),
            self.config.clone(),
        )
    }

    async fn post_as(&self, domain: &str, auth: &str, body: &Value) -> (u16, Value) {
        let request = lambda_http::request::from_str(&post_event(domain, body, auth)).unwrap();
        let (status, body) = response_parts(&self.api.handle(request).await);
        (status, without_batch_id(body))
    }

    /// Posts with an `Idempotency-Key`; returns the whole response.
    async fn post_with_key(
        &self,
        key: &str,
        body: &Value,
    ) -> lambda_http::Response<lambda_http::Body> {
        self.api.handle(keyed_request(key, body)).await
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_as(DEMO_DOMAIN, &api_key_header(DEMO_USER, DEMO_KEY), body)
            .await
    }

    /// The answer as it is, batch id and SMS summary included.
    async fn post_raw(&self, body: &Value) -> (u16, Value) {
        let auth = api_key_header(DEMO_USER, DEMO_KEY);
        let request =
            lambda_http::request::from_str(&post_event(DEMO_DOMAIN, body, &auth)).unwrap();
        response_parts(&self.api.handle(request).await)
    }
}

/// The sender, as the event source mapping runs it on the jobs of the send queue. Its pace
/// is high enough to cost nothing; the gap between two SMS to one phone remains.
impl World<MemorySms> {
    /// The sender, over the same store, queue and clock, with its own share of the pace.
    fn sender(&self) -> Sender<MemoryStore, MemorySms, MemorySms> {
        self.sender_with(self.clock.clone(), 10_000)
    }

    fn sender_with(
        &self,
        clock: Arc<dyn Clock>,
        sms_per_second: u32,
    ) -> Sender<MemoryStore, MemorySms, MemorySms> {
        let config = Config {
            sms_rate_per_second: sms_per_second,
            ..self.config.clone()
        };
        let service = RegistrationService::new(self.store.clone(), self.sms.clone(), clock, config);
        Sender::new(service, self.sms.clone())
    }

    /// One delivery of `job`.
    async fn send(&self, job: &SmsJob) -> JobResult {
        self.sender().send_job(job, None).await
    }

    /// Takes every job off the queue and delivers each once, concurrently, sharing one
    /// instance's pace; one result per job, oldest job first.
    async fn deliver(&self) -> Vec<JobResult> {
        let jobs = self.sms.take_jobs();
        let sender = self.sender();
        futures::future::join_all(jobs.iter().map(|job| sender.send_job(job, None))).await
    }

    /// Takes the one job on the queue off it.
    fn take_one(&self) -> SmsJob {
        let mut jobs = self.sms.take_jobs();
        assert_eq!(jobs.len(), 1, "one job queued: {jobs:?}");
        jobs.remove(0)
    }

    /// Delivers `job` until it is done or every attempt failed; the last result.
    async fn attempt_all(&self, job: &SmsJob) -> JobResult {
        loop {
            let result = self.send(job).await;
            if !matches!(result, JobResult::Failed { .. }) {
                return result;
            }
        }
    }

    /// Failed SMS attempts of a job before it is given up (`SEND_MAX_ATTEMPTS`).
    fn max_attempts(&self) -> u32 {
        self.config.send_max_attempts
    }
}

/// An SMS failed at the sender's `attempt`-th attempt (not its last).
fn failed(attempt: u32) -> JobResult {
    JobResult::Failed {
        error: injected(),
        failures: attempt,
    }
}

/// The in-memory provider's failure.
fn injected() -> SmsError {
    SmsError::new(SmsFailure::Failed, "InjectedFault")
}

fn invite(numbers: &[&str]) -> Value {
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    json!({"app_id": DEMO_APP, "users": users})
}

fn record_of(domain: &str, phone: &str) -> RegistrationRecord {
    RegistrationRecord {
        app_id: Some(DEMO_APP.into()),
        sent_at: Some(T0 - 99),
        enqueued_at: Some(T0 - 100),
        ..RegistrationRecord::new(
            domain,
            PhoneNumber::parse(phone).unwrap(),
            RegistrationStatus::Pending,
            T0 - 100,
            T0 + 1_000,
        )
    }
}

const A: &str = "+16175551234";
const B: &str = "+16175555512";
const C: &str = "+16175550123";
const D: &str = "+16175550124";

fn report(success: &[&str], invalid: &[&str], in_use: &[&str], errors: &[&str]) -> Value {
    json!({
        "success_numbers": success,
        "invalid_format_numbers": invalid,
        "numbers_in_use": in_use,
        "error_numbers": errors,
        "opted_out_numbers": [],
    })
}

/// The phones of the jobs on the queue, oldest first.
fn queued_phones(w: &World<MemorySms>) -> Vec<String> {
    w.sms
        .queued_jobs()
        .into_iter()
        .map(|j| j.phone.as_str().to_owned())
        .collect()
}

fn android_invite(phone: &str) -> Value {
    json!({"app_id": DEMO_APP, "android_only": true, "users": [{"phone_number": phone}]})
}

const INSTALL_URL: &str = "https://example.org/install/1";

#[tokio::test]
async fn when_a_job_cannot_be_queued_its_claim_is_undone_and_the_number_is_an_error() {
    let w = world();
    w.sms.fail_enqueue_for(B);
    let (status, body) = w.post(&invite(&[A, B, C])).await;
    assert_eq!(status, 200);
    assert_eq!(body, report(&[A, C], &[], &[], &[B]));
    assert!(
        w.store.record(B).is_none(),
        "no half-made invitation is left"
    );
    assert_eq!(queued_phones(&w), [A, C]);
    let a = w.store.record(A).unwrap();
    assert_eq!(a.status, RegistrationStatus::Queued);
    let batch = w.store.batch(a.batch_id.as_deref().unwrap()).unwrap();
    assert!(batch.contains(a.token.as_str()), "recorded as on the queue");
    assert_eq!(batch.len(), 2, "A and C, not B: {batch:?}");
    assert_eq!(a.sent_at, None, "the API sends nothing");
    assert!(w.sms.sent().is_empty());
}

#[tokio::test]
async fn when_the_job_of_a_reinvite_cannot_be_queued_the_previous_invitation_is_restored() {
    let w = world();
    let before = record_of(DEMO_DOMAIN, A);
    w.store.put_record(before.clone());
    w.sms.fail_enqueue_for(A);
    let (_, body) = w.post(&invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[], &[A]));
    assert_eq!(w.store.record(A), Some(before));
    assert!(w.sms.queued_jobs().is_empty());
}

#[tokio::test]
async fn when_a_job_cannot_be_queued_over_another_projects_expired_invitation_it_is_restored() {
    let w = world();
    let mut before = record_of("other", A);
    before.expires_at = T0 - 1;
    w.store.put_record(before.clone());
    w.sms.fail_enqueue_for(A);
    let (_, body) = w.post(&invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[], &[A]));
    assert_eq!(w.store.record(A), Some(before));
}

#[tokio::test]
async fn when_the_install_link_sms_fails_the_job_is_retried_from_where_it_stopped() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    w.sms.fail_nth_for(A, 2);
    let (_, body) = w.post(&android_invite(A)).await;
    assert_eq!(body, report(&[A], &[], &[], &[]));
    let job = w.take_one();
    assert_eq!(job.texts.len(), 2);
    assert_eq!(w.send(&job).await, failed(1));
    // The worker has the link: the invitation is pending, its number held.
    let record = w.store.record(A).unwrap();
    assert_eq!(record.status, RegistrationStatus::Pending);
    assert!(record.sent_at.is_some());
    assert_eq!(w.sms.sent_to(A).len(), 1);

    w.sms.recover();
    assert_eq!(w.send(&job).await, JobResult::Sent(1), "only what is left");
    assert_eq!(w.sms.sent_to(A), job.texts, "each SMS once, in order");
}

#[tokio::test]
async fn an_sms_failing_at_the_sender_is_retried_and_the_number_stays_held_meanwhile() {
    let w = world();
    w.sms.fail_for(A);
    assert_eq!(w.post(&invite(&[A])).await.1, report(&[A], &[], &[], &[]));
    let job = w.take_one();
    assert_eq!(w.send(&job).await, failed(1));
    let record = w.store.record(A).unwrap();
    assert_eq!(record.status, RegistrationStatus::Queued);
    assert_eq!(record.sent_at, None);
    assert!(record.enqueued_at.is_some());

    // Its job is on the queue: another project finds the number in use, however long
    // the retries take.
    let other = api_key_header("admin@other.example", "other-key");
    w.clock.0.store(T0 + 3_600, Ordering::SeqCst);
    let (_, body) = w.post_as("other", &other, &invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[A], &[]));

    w.sms.recover();
    assert_eq!(w.send(&job).await, JobResult::Sent(1));
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn after_the_last_attempt_the_invitation_fails_its_count_is_refunded_and_the_number_freed() {
    let w = world();
    let day = "2027-01-15"; // T0 = 2027-01-15T08:00:00Z
    w.sms.fail_for(A);
    assert_eq!(
        w.post(&invite(&[A, B])).await.1,
        report(&[A, B], &[], &[], &[])
    );
    assert_eq!(w.store.usage(DEMO_DOMAIN, day), 2);
    let mut jobs = w.sms.take_jobs();
    let job_b = jobs.pop().unwrap();
    let job_a = jobs.pop().unwrap();
    assert_eq!(w.send(&job_b).await, JobResult::Sent(1));
    let token = w.store.record(A).unwrap().token.as_str().to_owned();

    // Every attempt but the last leaves it queued; after the last one it is failed.
    let attempts = w.max_attempts();
    assert!(attempts > 1);
    for attempt in 1..attempts {
        assert_eq!(w.send(&job_a).await, failed(attempt));
    }
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Queued
    );
    assert_eq!(w.store.usage(DEMO_DOMAIN, day), 2);
    assert_eq!(w.send(&job_a).await, JobResult::GaveUp(injected()));
    assert_eq!(w.store.usage(DEMO_DOMAIN, day), 1);
    let record = w.store.record(A).unwrap();
    assert_eq!(record.status, RegistrationStatus::Failed);
    let progress = w
        .store
        .batch_progress(record.batch_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (progress.queued, progress.sent, progress.send_failed),
        (2, 1, 1),
        "the batch counts the send that failed"
    );
    let reason = record.failure_reason.unwrap();
    assert!(
        reason.contains(&format!("after {attempts} attempts")) && reason.contains("InjectedFault"),
        "{reason}"
    );
    assert!(w.sms.sent_to(A).is_empty());
    // Given back once, however often the sender gives up on it.
    w.sender().give_up(&job_a, "again").await.unwrap();
    assert_eq!(w.store.usage(DEMO_DOMAIN, day), 1);
    // Its link asks for a new invitation.
    assert_eq!(w.get_page(&token).await.0, 410);

    // Any project may claim the number now; a late delivery of the failed job sends nothing.
    w.sms.recover();
    let other = api_key_header("admin@other.example", "other-key");
    let (_, body) = w.post_as("other", &other, &invite(&[A])).await;
    assert_eq!(body, report(&[A], &[], &[], &[]));
    assert_eq!(w.store.record(A).unwrap().domain, "other");
    assert_eq!(w.send(&job_a).await, JobResult::Dropped("replaced"));
    assert!(w.sms.sent_to(A).is_empty());
}

#[tokio::test]
async fn giving_up_on_a_reinvite_puts_back_the_live_invitation_it_replaced() {
    let w = world();
    let before = record_of(DEMO_DOMAIN, A);
    w.store.put_record(before.clone());
    w.sms.fail_for(A);
    assert_eq!(w.post(&invite(&[A])).await.1, report(&[A], &[], &[], &[]));
    assert_ne!(w.store.record(A).unwrap().token, before.token);
    let job = w.take_one();
    assert!(matches!(
        &job.kind,
        JobKind::Invitation {
            previous: Some(_),
            ..
        }
    ));
    assert_eq!(w.attempt_all(&job).await, JobResult::GaveUp(injected()));
    assert_eq!(
        w.store.record(A),
        Some(before),
        "the link the worker has works again"
    );
}

#[tokio::test]
async fn a_store_error_on_one_number_does_not_affect_the_others() {
    let w = world();
    w.store.fail_claims_for(B);
    let (status, body) = w.post(&invite(&[A, B, C])).await;
    assert_eq!(status, 200);
    assert_eq!(body, report(&[A, C], &[], &[], &[B]));
    assert_eq!(queued_phones(&w), [A, C]);
    assert_eq!(w.deliver().await, [JobResult::Sent(1), JobResult::Sent(1)]);
    assert_eq!(w.sms.sent_to(B), Vec::<String>::new());
    assert_eq!(w.sms.sent_to(C).len(), 1);
}

#[tokio::test]
async fn a_failed_rollback_leaves_a_claim_that_any_project_can_take_once_stale() {
    let w = world();
    w.sms.fail_enqueue_for(A);
    w.store.fail_releases_for(A);
    let (_, body) = w.post(&invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[], &[A]));
    let left = w.store.record(A).expect("the claim is left behind");
    assert_eq!(left.status, RegistrationStatus::Queued);
    assert_eq!(left.enqueued_at, None, "never taken by the sender");
    assert!(
        w.store.batch(left.batch_id.as_deref().unwrap()).is_none(),
        "no job of its batch reached the queue"
    );
    assert!(w.sms.queued_jobs().is_empty());

    // Once the faults are gone: another project finds it in use until it is stale.
    w.sms.recover();
    w.store.recover();
    let other = api_key_header("admin@other.example", "other-key");
    w.clock.0.store(T0 + 10, Ordering::SeqCst);
    let (_, body) = w.post_as("other", &other, &invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[A], &[]));
    w.clock.0.store(T0 + 300, Ordering::SeqCst);
    let (_, body) = w.post_as("other", &other, &invite(&[A])).await;
    assert_eq!(body, report(&[A], &[], &[], &[]));
    assert_eq!(w.store.record(A).unwrap().domain, "other");
    assert_eq!(queued_phones(&w), [A]);
}

#[tokio::test]
async fn a_claim_whose_job_waits_on_the_queue_holds_its_number_past_the_stale_time() {
    let w = world();
    assert_eq!(w.post(&invite(&[A])).await.1, report(&[A], &[], &[], &[]));
    // The sender has not taken the job yet (a long backlog): its batch's record says the
    // job is on the queue, so the claim is not a crash's left-over however old.
    let other = api_key_header("admin@other.example", "other-key");
    w.clock.0.store(T0 + 3_600, Ordering::SeqCst);
    let (_, body) = w.post_as("other", &other, &invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[A], &[]));
    assert_eq!(w.store.record(A).unwrap().domain, DEMO_DOMAIN);
}

#[tokio::test]
async fn another_projects_live_invitation_is_in_use_and_left_untouched() {
    let w = world();
    let theirs = record_of("other", A);
    w.store.put_record(theirs.clone());
    let (_, body) = w.post(&invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[A], &[]));
    assert_eq!(w.store.record(A), Some(theirs));
    assert!(w.sms.queued_jobs().is_empty());
}

#[tokio::test]
async fn a_reinvite_in_the_same_project_replaces_the_token() {
    let w = world();
    let old = record_of(DEMO_DOMAIN, A);
    w.store.put_record(old.clone());
    let (_, body) = w.post(&invite(&[A])).await;
    assert_eq!(body, report(&[A], &[], &[], &[]));
    let new = w.store.record(A).unwrap();
    assert_ne!(new.token, old.token);
    assert_eq!(new.created_at, T0);
    assert_eq!(new.expires_at, T0 + 30 * 86_400);
    assert_eq!(new.status, RegistrationStatus::Queued);
    assert_eq!(new.sent_at, None);
}

#[tokio::test]
async fn a_reinvite_while_the_first_job_is_queued_sends_only_the_new_link() {
    let w = world();
    assert_eq!(w.post(&android_invite(A)).await.0, 200);
    let old = w.store.record(A).unwrap().token;
    assert_eq!(w.post(&android_invite(A)).await.0, 200);
    let new = w.store.record(A).unwrap().token;
    assert_ne!(old, new);
    assert_eq!(
        w.deliver().await,
        [JobResult::Dropped("replaced"), JobResult::Sent(1)]
    );
    let texts = w.sms.sent_to(A);
    assert_eq!(texts.len(), 1);
    assert!(texts[0].ends_with(&format!("/register/{}", new.as_str())));
    assert!(!texts[0].contains(old.as_str()));
}

#[tokio::test]
async fn a_registered_number_is_in_use_even_for_its_own_project() {
    let w = world();
    let mut registered = record_of(DEMO_DOMAIN, A);
    registered.status = RegistrationStatus::Registered;
    w.store.put_record(registered);
    let (_, body) = w.post(&invite(&[A])).await;
    assert_eq!(body, report(&[], &[], &[A], &[]));
}

#[tokio::test]
async fn no_number_is_started_when_the_deadline_is_too_close() {
    let w = world();
    let project = demo_project(None);
    let body = invite(&[A, B, "+1617JKL1234"]);
    let service = w.service();
    let request = service
        .validate(&project, body.as_object().unwrap())
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(500); // below the 2 s margin
    let report_ = service
        .invite(&project, request, Some(deadline))
        .await
        .unwrap();
    assert_eq!(report_.error_numbers, [A, B]);
    assert_eq!(report_.invalid_format_numbers, ["+1617JKL1234"]);
    assert!(w.store.record(A).is_none() && w.store.record(B).is_none());
    assert!(w.sms.queued_jobs().is_empty());
}

/// A send queue that takes its time, and counts how many enqueue calls overlap and the
/// largest batch.
#[derive(Default, Clone)]
struct SlowQueue(Arc<SlowQueueState>);

#[derive(Default)]
struct SlowQueueState {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    largest_batch: AtomicUsize,
    jobs: Mutex<Vec<SmsJob>>,
}

impl std::ops::Deref for SlowQueue {
    type Target = SlowQueueState;

    fn deref(&self) -> &SlowQueueState {
        &self.0
    }
}

impl JobQueue for SlowQueue {
    async fn enqueue(&self, jobs: &[SmsJob]) -> Vec<Result<(), QueueError>> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.largest_batch.fetch_max(jobs.len(), Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.jobs.lock().unwrap().extend_from_slice(jobs);
        vec![Ok(()); jobs.len()]
    }

    async fn retry_later(
        &self,
        _receipt_handle: &str,
        _from: Option<&str>,
        _delay_seconds: u32,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

fn us_numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1617555{:04}", 1000 + i)).collect()
}

#[tokio::test]
async fn queue_calls_run_concurrently_up_to_the_bound_ten_jobs_each_and_results_keep_request_order()
{
    let config = Config {
        concurrency: 4,
        ..Config::default()
    };
    let w = world_with(SlowQueue::default(), config);
    let numbers = us_numbers(100);
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let (_, body) = w.post(&invite(&refs)).await;
    assert_eq!(body["success_numbers"], json!(numbers));
    let most = w.sms.most.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "at most 4 in flight, and more than 1: {most}"
    );
    assert_eq!(w.sms.largest_batch.load(Ordering::SeqCst), 10);
    let mut queued: Vec<String> = w
        .sms
        .jobs
        .lock()
        .unwrap()
        .iter()
        .map(|j| j.phone.as_str().to_owned())
        .collect();
    queued.sort();
    assert_eq!(queued, numbers, "one job per number");
    assert!(numbers.iter().all(|n| {
        let record = w.store.record(n).unwrap();
        w.store
            .batch(record.batch_id.as_deref().unwrap())
            .is_some_and(|batch| batch.contains(record.token.as_str()))
    }));
}

#[tokio::test]
async fn the_store_unreachable_gives_503_with_retry_after_and_no_detail() {
    let w = world();
    w.store.set_down(true);
    let request = lambda_http::request::from_str(&post_event(
        DEMO_DOMAIN,
        &invite(&[A]),
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let response = w.api.handle(request).await;
    assert_eq!(response.headers()["retry-after"], "2");
    let (status, body) = response_parts(&response);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": "The service is temporarily unavailable. Please retry."})
    );
}

#[tokio::test]
async fn plan_and_feature_gates_answer_with_the_contracts_bodies() {
    let w = world();
    let mut p = demo_project(None);
    p.plan = Plan::Standard;
    w.store.put_project(p.clone());
    let (status, body) = w.post(&invite(&[A])).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"error": "Your current plan does not have access to this feature"})
        )
    );
    p.plan = Plan::Enterprise;
    p.registration_enabled = false;
    w.store.put_project(p);
    let (status, body) = w.post(&invite(&[A])).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"error": "Please first enable SMS mobile worker registration for your project."})
        )
    );
    assert!(w.sms.queued_jobs().is_empty() && w.store.record(A).is_none());
}

#[tokio::test]
async fn gates_come_before_the_body_is_read() {
    let w = world();
    let mut p = demo_project(None);
    p.plan = Plan::Community;
    w.store.put_project(p);
    let (status, _) = w.post(&json!({"users": "not even a list"})).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_body_over_one_mib_is_refused_with_413() {
    let w = world();
    let padding = "x".repeat(1024 * 1024);
    let (status, body) = w
        .post(&json!({"app_id": DEMO_APP, "users": [], "padding": padding}))
        .await;
    assert_eq!(status, 413);
    assert!(body["error"].is_string());
}

/// The demo admin's POST of a raw `body` to `path` (create or reinstall), with `content_type`
/// (no Content-Type header at all when `None`) and `authorization`.
fn raw_post(
    path: &str,
    content_type: Option<&str>,
    authorization: &str,
    body: &str,
) -> lambda_http::Request {
    let mut event: Value =
        serde_json::from_str(&post_event(DEMO_DOMAIN, &json!({}), authorization)).unwrap();
    let path = format!("/a/{DEMO_DOMAIN}/api/v0_5/{path}/");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("content-type");
    if let Some(content_type) = content_type {
        headers.insert("content-type".into(), content_type.into());
    }
    event["body"] = body.into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

const SENDING_PATHS: [&str; 2] = ["sms_user_registration", "sms_user_registration_reinstall"];

#[tokio::test]
async fn a_body_not_declared_as_json_is_refused_with_415_before_authentication_and_nothing_is_done()
{
    let w = world();
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]}).to_string();
    let good = api_key_header(DEMO_USER, DEMO_KEY);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{DEMO_USER}:{DEMO_KEY}")
        )
    );
    // What a page of another site can make a browser send, and other types that are not JSON.
    let refused = [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("application/json-patch+json"),
        Some("text/json"),
        Some(""),
        None,
    ];
    for path in SENDING_PATHS {
        for content_type in refused {
            // Valid credentials, Basic ones (a browser's cache), wrong ones and none: the
            // answer is the same 415, whatever the credentials.
            for auth in [
                good.as_str(),
                basic.as_str(),
                "ApiKey admin@demo.example:wrong",
                "",
            ] {
                let response = w
                    .api
                    .handle(raw_post(path, content_type, auth, &body))
                    .await;
                assert_eq!(
                    response.headers()["content-type"],
                    "application/json",
                    "{path} {content_type:?}"
                );
                let (status, answer) = response_parts(&response);
                assert_eq!(status, 415, "{path} {content_type:?} {auth:?}: {answer}");
                assert!(
                    answer["error"]
                        .as_str()
                        .unwrap()
                        .contains("application/json")
                );
            }
        }
    }
    assert!(w.sms.queued_jobs().is_empty(), "nothing queued");
    assert!(w.store.record(A).is_none(), "nothing recorded");

    // JSON in any case, with parameters, is JSON.
    for (path, content_type) in [
        ("sms_user_registration", "Application/JSON; charset=utf-8"),
        ("sms_user_registration_reinstall", "APPLICATION/JSON"),
    ] {
        let response = w
            .api
            .handle(raw_post(path, Some(content_type), &good, &body))
            .await;
        let (status, answer) = response_parts(&response);
        assert_eq!(status, 200, "{path} {content_type}: {answer}");
        assert_eq!(answer["success_numbers"], json!([A]));
    }
}

#[tokio::test]
async fn the_401_challenge_names_the_apikey_scheme_alone_while_basic_credentials_still_work() {
    let w = world();
    let body = invite(&[A]).to_string();
    for auth in ["", "ApiKey admin@demo.example:wrong", "Basic !!!"] {
        let response = w
            .api
            .handle(raw_post(
                SENDING_PATHS[0],
                Some("application/json"),
                auth,
                &body,
            ))
            .await;
        assert_eq!(response.status(), 401);
        let challenges: Vec<_> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .collect();
        assert_eq!(
            challenges,
            ["ApiKey realm=\"sms-registration\""],
            "{auth:?}"
        );
    }
    // Basic credentials sent unasked still authenticate.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{DEMO_USER}:{DEMO_KEY}")
        )
    );
    let response = w
        .api
        .handle(raw_post(
            SENDING_PATHS[0],
            Some("application/json"),
            &basic,
            &body,
        ))
        .await;
    assert_eq!(response_parts(&response).0, 200);
}

#[tokio::test]
async fn a_duplicate_key_at_any_depth_makes_a_sending_body_invalid_json() {
    let w = world();
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let bodies = [
        // The last app_id would be the valid one: no reading of the body may pick it.
        format!(
            r#"{{"app_id": "nope", "app_id": "{DEMO_APP}", "users": [{{"phone_number": "{A}"}}]}}"#
        ),
        format!(
            r#"{{"app_id": "{DEMO_APP}", "users": [{{"phone_number": "{B}", "phone_number": "{A}"}}]}}"#
        ),
        format!(
            r#"{{"app_id": "{DEMO_APP}", "users": [{{"phone_number": "{A}", "custom_user_data": {{"k": 1, "k": 2}}}}]}}"#
        ),
        // The same key however it is escaped.
        format!(r#"{{"app_id": "{DEMO_APP}", "\u0061pp_id": "{DEMO_APP}", "users": []}}"#),
    ];
    for path in SENDING_PATHS {
        for body in &bodies {
            let response = w
                .api
                .handle(raw_post(path, Some("application/json"), &auth, body))
                .await;
            assert_eq!(
                response_parts(&response),
                (400, json!({"error": "Request is not valid JSON."})),
                "{path} {body}"
            );
        }
    }
    assert!(w.sms.queued_jobs().is_empty() && w.store.record(A).is_none());
}

#[tokio::test]
async fn authentication_does_not_depend_on_the_domain_but_authorisation_does() {
    let w = world();
    // A valid key of another project authenticates, then is forbidden here.
    let other = api_key_header("admin@other.example", "other-key");
    let (status, _) = w.post_as(DEMO_DOMAIN, &other, &invite(&[A])).await;
    assert_eq!(status, 403);
    // An unknown project looks the same as a forbidden one.
    let mine = api_key_header(DEMO_USER, DEMO_KEY);
    let (status, body) = w.post_as("nowhere", &mine, &invite(&[A])).await;
    assert_eq!(status, 403);
    let (_, forbidden_body) = w.post_as(DEMO_DOMAIN, &other, &invite(&[A])).await;
    assert_eq!(body, forbidden_body);
    // Wrong key for an unknown project: 401, revealing nothing.
    let (status, _) = w
        .post_as(
            "nowhere",
            &api_key_header(DEMO_USER, "wrong"),
            &invite(&[A]),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_sms_name_the_project_and_carry_a_registration_link_with_a_token() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    let body = json!({"app_id": DEMO_APP, "android_only": true, "require_email": true,
        "users": [{"phone_number": A, "custom_user_data": {"k": "v"}}]});
    let (_, response) = w.post(&body).await;
    assert_eq!(response, report(&[A], &[], &[], &[]));
    assert!(w.sms.sent().is_empty(), "the request only queues them");
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Queued
    );
    assert_eq!(w.deliver().await, [JobResult::Sent(2)]);
    let record = w.store.record(A).unwrap();
    assert_eq!(record.status, RegistrationStatus::Pending);
    assert!(record.sent_at.is_some());
    let texts = w.sms.sent_to(A);
    assert_eq!(texts.len(), 2);
    assert!(texts[0].starts_with("Demo Health: register on your Android phone: "));
    assert!(texts[0].ends_with(&format!(
        "http://127.0.0.1:9000/a/demo/register/{}",
        record.token.as_str()
    )));
    assert!(texts[1].starts_with("[commcare app - do not delete] "));
    assert!(record.android_only && record.require_email);
    assert_eq!(record.custom_user_data.unwrap()["k"], "v");
    assert_eq!(record.phone_type.map(|t| t.as_str()), Some("android"));
}

#[tokio::test]
async fn a_job_delivered_twice_sends_each_sms_once() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    assert_eq!(w.post(&android_invite(A)).await.0, 200);
    let job = w.take_one();
    assert_eq!(job.texts.len(), 2);
    assert_eq!(w.send(&job).await, JobResult::Sent(2));
    assert_eq!(w.send(&job).await, JobResult::Dropped("already sent"));
    assert_eq!(w.sms.sent_to(A), job.texts);
}

#[tokio::test]
async fn a_job_delivered_twice_at_once_is_sent_by_one_delivery_while_the_other_retries() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    assert_eq!(w.post(&android_invite(A)).await.0, 200);
    let job = w.take_one();
    let (first, second) = tokio::join!(w.send(&job), w.send(&job));
    let mut results = [first, second];
    results.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(results, [JobResult::Later(Later::Busy), JobResult::Sent(2)]);
    assert_eq!(w.sms.sent_to(A), job.texts);
}

#[tokio::test]
async fn the_second_sms_to_a_phone_goes_out_at_least_a_second_after_the_first() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    assert_eq!(w.post(&android_invite(A)).await.0, 200);
    assert_eq!(w.post(&invite(&[B])).await.0, 200);
    let mut jobs = w.sms.take_jobs();
    let (job_b, job_a) = (jobs.pop().unwrap(), jobs.pop().unwrap());
    // One SMS to a phone: no wait at this pace.
    let start = Instant::now();
    assert_eq!(w.send(&job_b).await, JobResult::Sent(1));
    assert!(start.elapsed() < Duration::from_millis(500));
    // Two to one phone: a second apart at least.
    let start = Instant::now();
    assert_eq!(w.send(&job_a).await, JobResult::Sent(2));
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
}

/// The demo admin's POST of `body` to the reinstall endpoint.
fn reinstall_request(body: &Value) -> lambda_http::Request {
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let mut event: Value = serde_json::from_str(&post_event(DEMO_DOMAIN, body, &auth)).unwrap();
    let path = "/a/demo/api/v0_5/sms_user_registration_reinstall/";
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[tokio::test]
async fn a_reinstall_queues_one_message_job_per_number_and_stores_no_invitation() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    let mut theirs = record_of("other", B);
    theirs.status = RegistrationStatus::Registered;
    w.store.put_record(theirs);
    let body = json!({"app_id": DEMO_APP,
        "users": [{"phone_number": A}, {"phone_number": B}, {"phone_number": "+1617JKL1234"}]});
    let (status, body) = response_parts(&w.api.handle(reinstall_request(&body)).await);
    assert_eq!(status, 200);
    // The Google Play message (136 characters) and the install link (71): one part each.
    assert_eq!(
        body["sms"],
        json!({"messages": 2, "parts": 2, "encoding": "GSM-7",
            "first_at": rfc(T0), "last_at": rfc(T0)})
    );
    assert_eq!(
        without_sms(body),
        json!({"success_numbers": [A], "invalid_format_numbers": ["+1617JKL1234"],
            "error_numbers": [B], "opted_out_numbers": []})
    );
    assert!(w.sms.sent().is_empty(), "the request only queues them");
    let jobs = w.sms.queued_jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].phone.as_str(), A);
    assert!(matches!(jobs[0].kind, JobKind::Message));
    assert_eq!(w.deliver().await, [JobResult::Sent(2)]);
    let texts = w.sms.sent_to(A);
    assert!(texts[0].contains("play.google.com"));
    assert!(texts[1].starts_with("[commcare app - do not delete] "));
    assert!(w.store.record(A).is_none());
}

#[tokio::test]
async fn look_alikes_are_replaced_unless_asked_not_to_and_the_answer_counts_parts() {
    let w = world();
    // A pasted message: curly quotes and an en dash, 150 characters in all.
    let pasted = format!("“Don’t wait” – {}", "x".repeat(135));
    assert_eq!(pasted.chars().count(), 150);
    let body = json!({"app_id": DEMO_APP, "custom_registration_message": pasted,
        "users": [{"phone_number": A}, {"phone_number": B}]});
    let (status, report) = w.post(&body).await;
    assert_eq!(status, 200, "{report}");
    let (_, raw) = w.post_raw(&json!({"app_id": DEMO_APP, "custom_registration_message": pasted, "users": [{"phone_number": C}]})).await;
    // Smart encoding (the default): GSM-7, one part each.
    assert_eq!(
        raw["sms"],
        json!({"messages": 1, "parts": 1, "encoding": "GSM-7",
            "first_at": rfc(T0), "last_at": rfc(T0)})
    );
    let jobs = w.sms.take_jobs();
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs[0].texts[0].starts_with("\"Don't wait\" - xxx"),
        "{:?}",
        jobs[0].texts
    );
    // Asked not to: the text goes as written, UCS-2, 150 units in 3 parts.
    let mut verbatim = body.clone();
    verbatim["smart_encoding"] = json!(false);
    verbatim["users"] = json!([{"phone_number": D}]);
    let (_, raw) = w.post_raw(&verbatim).await;
    assert_eq!(
        raw["sms"],
        json!({"messages": 1, "parts": 3, "encoding": "UCS-2",
            "first_at": rfc(T0), "last_at": rfc(T0)})
    );
    assert_eq!(w.sms.take_jobs()[0].texts[0], pasted);
}

#[tokio::test]
async fn a_reinstall_whose_job_cannot_be_queued_is_an_error_for_that_number() {
    let w = world();
    w.sms.fail_enqueue_for(B);
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}, {"phone_number": B}]});
    let (status, body) = response_parts(&w.api.handle(reinstall_request(&body)).await);
    assert_eq!(status, 200);
    assert_eq!(body["success_numbers"], json!([A]));
    assert_eq!(body["error_numbers"], json!([B]));
    assert_eq!(queued_phones(&w), [A]);
}

#[tokio::test]
async fn json_responses_listing_phone_numbers_are_never_stored_by_a_cache() {
    let w = world();
    let created = w.post_with_key("no-store", &invite(&[A])).await;
    let replayed = w.post_with_key("no-store", &invite(&[A])).await;
    let mut event: Value = serde_json::from_str(&post_event(
        DEMO_DOMAIN,
        &json!({}),
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    event["requestContext"]["http"]["method"] = "GET".into();
    let listed = w
        .api
        .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
        .await;
    assert!(String::from_utf8_lossy(listed.body().as_ref()).contains(A));
    let refused = w
        .post_as(DEMO_DOMAIN, "ApiKey nobody:nothing-at-all", &invite(&[A]))
        .await;
    assert_eq!(refused.0, 401);
    for (what, response) in [
        ("created", &created),
        ("replayed", &replayed),
        ("listed", &listed),
    ] {
        assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
    }
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_answer_without_sending_again() {
    let w = world();
    let body = invite(&[A, B]);
    let first = w.post_with_key("batch-2026-11-24", &body).await;
    let (status, first_body) = response_parts(&first);
    assert_eq!(status, 200);
    let token = w.store.record(A).unwrap().token;

    let again = w.post_with_key("batch-2026-11-24", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(response_parts(&again), (200, first_body));
    assert_eq!(queued_phones(&w), [A, B], "no job queued by the replay");
    assert_eq!(
        w.store.record(A).unwrap().token,
        token,
        "no invitation written by the replay"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_refused_with_422() {
    let w = world();
    w.post_with_key("k1", &invite(&[A])).await;
    let (status, body) = response_parts(&w.post_with_key("k1", &invite(&[B])).await);
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("different request body")
    );
    assert!(w.store.record(B).is_none());
}

#[tokio::test]
async fn an_idempotency_key_in_use_by_a_running_request_gets_409_with_retry_after() {
    let w = world();
    let key_body = invite(&[A]);
    // A first request that started and has not finished: its lease is live.
    let hash = {
        use sha2::Digest;
        let event: Value = serde_json::from_str(&post_event(DEMO_DOMAIN, &key_body, "x")).unwrap();
        sha2::Sha256::digest(
            format!("sms_user_registration\n{}", event["body"].as_str().unwrap()).as_bytes(),
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
    };
    use smsreg::ports::IdempotencyStore;
    w.store
        .begin(DEMO_DOMAIN, "k2", &hash, T0, 120, 86_400)
        .await
        .unwrap();
    let response = w.post_with_key("k2", &key_body).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response_parts(&response).0, 409);
    // Once the lease has run out, the first run is known to have died without an answer:
    // its outcome is unknown, and it is never run again (every SMS would go twice).
    w.clock.0.store(T0 + 121, Ordering::SeqCst);
    let (status, body) = response_parts(&w.post_with_key("k2", &key_body).await);
    assert_eq!(status, 409);
    assert!(
        body["error"].as_str().unwrap().contains("not run again"),
        "{body}"
    );
    assert!(w.sms.queued_jobs().is_empty(), "nothing queued");
    assert!(w.store.record(A).is_none(), "nothing recorded");
    // A new key runs.
    assert_eq!(
        response_parts(&w.post_with_key("k2-new", &key_body).await).0,
        200
    );
}

#[tokio::test]
async fn a_request_that_failed_as_a_whole_keeps_no_key_and_expired_keys_run_afresh() {
    let w = world();
    w.store.set_down(true);
    // The store is down from the start: nothing recorded, 503.
    assert_eq!(
        response_parts(&w.post_with_key("k3", &invite(&[A])).await).0,
        503
    );
    w.store.recover();
    assert_eq!(
        without_batch_id(response_parts(&w.post_with_key("k3", &invite(&[A])).await).1),
        report(&[A], &[], &[], &[])
    );
    // 24 hours later the key starts over: the SMS is queued again.
    w.clock.0.store(T0 + 86_400, Ordering::SeqCst);
    w.post_with_key("k3", &invite(&[A])).await;
    assert_eq!(queued_phones(&w), [A, A]);
}

#[tokio::test]
async fn a_429_keeps_no_key_so_a_retry_after_midnight_runs() {
    let config = Config::default();
    let w = world_with(MemorySms::new(), config);
    let mut p = demo_project(None);
    p.daily_invitation_limit = 1;
    w.store.put_project(p);
    let response = w.post_with_key("k4", &invite(&[A, B])).await;
    assert_eq!(response_parts(&response).0, 429);
    w.clock.0.store(T0 + 86_400, Ordering::SeqCst);
    assert_eq!(
        response_parts(&w.post_with_key("k4", &invite(&[A])).await).0,
        200
    );
}

#[tokio::test]
async fn bad_idempotency_keys_are_refused_with_400() {
    let w = world();
    for key in ["", &"k".repeat(256), "tab\there", "é"] {
        let (status, body) = response_parts(&w.post_with_key(key, &invite(&[A])).await);
        assert_eq!(status, 400, "{key:?}");
        assert!(body["error"].as_str().unwrap().contains("Idempotency-Key"));
    }
    assert!(w.sms.queued_jobs().is_empty());
    assert_eq!(
        response_parts(&w.post_with_key(&"k".repeat(255), &invite(&[A])).await).0,
        200
    );
}

#[tokio::test]
async fn numbers_outside_the_allowed_countries_reject_the_request_and_nothing_is_sent() {
    let w = world();
    let mut p = demo_project(None);
    p.allowed_countries = Some(vec!["US".into(), "CA".into(), "KE".into()]);
    w.store.put_project(p);
    let (status, body) = w
        .post(&invite(&[
            A,
            "+442079460958",
            "+919876543210",
            "+254712345678",
        ]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["sms_user_registration"]["users"],
        "These numbers are outside the countries this project may text (US, CA, KE): +442079460958, +919876543210"
    );
    assert!(w.sms.queued_jobs().is_empty() && w.store.record(A).is_none());
}

#[tokio::test]
async fn the_daily_limit_refuses_a_request_that_would_pass_it_and_gives_back_unsent_ones() {
    let w = world();
    let mut p = demo_project(None);
    p.daily_invitation_limit = 3;
    w.store.put_project(p);
    let day = "2027-01-15"; // T0 = 2027-01-15T08:00:00Z
    // A in use elsewhere: reserved, not sent, given back.
    w.store.put_record(record_of("other", A));
    let (_, body) = w.post(&invite(&[A, B, "+1617JKL1234"])).await;
    assert_eq!(body, report(&[B], &["+1617JKL1234"], &[A], &[]));
    assert_eq!(w.store.usage(DEMO_DOMAIN, day), 1);

    let response = {
        let request = lambda_http::request::from_str(&post_event(
            DEMO_DOMAIN,
            &invite(&[C, "+16175552001", "+16175552002"]),
            &api_key_header(DEMO_USER, DEMO_KEY),
        ))
        .unwrap();
        w.api.handle(request).await
    };
    assert_eq!(
        response.headers()["retry-after"],
        (86_400 - T0 % 86_400).to_string().as_str()
    );
    let (status, body) = response_parts(&response);
    assert_eq!(status, 429);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("limit of 3 invitations per day")
    );
    assert_eq!(queued_phones(&w), [B], "nothing queued for C");
    assert_eq!(
        w.store.usage(DEMO_DOMAIN, day),
        1,
        "a refused request counts nothing"
    );

    assert_eq!(w.post(&invite(&[C, "+16175552001"])).await.0, 200);
    assert_eq!(w.store.usage(DEMO_DOMAIN, day), 3);
}

#[tokio::test]
async fn bad_input_never_produces_a_server_error() {
    let w = world();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!(r#"{{"app_id": "{}", "users": []}}"#, "x".repeat(900_000));
    let digits = format!(
        r#"{{"app_id": "{DEMO_APP}", "users": [{{"phone_number": "{}"}}]}}"#,
        "1".repeat(10_000)
    );
    let big_data = format!(
        r#"{{"app_id": "{DEMO_APP}", "users": [{{"phone_number": "{A}", "custom_user_data": {{"k": "{}"}}}}]}}"#,
        "v".repeat(5_000)
    );
    let mut bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"\xef\xbb\xbf{}".to_vec(),
        deep.into_bytes(),
        huge.into_bytes(),
        digits.into_bytes(),
        big_data.into_bytes(),
        b"".to_vec(),
        b"null".to_vec(),
        b"{\"users\": [".to_vec(),
    ];
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5e300),
        json!("s"),
        json!([]),
        json!({}),
        json!([null]),
        json!([{}]),
        json!([1, "x"]),
    ];
    for field in [
        "app_id",
        "users",
        "android_only",
        "require_email",
        "custom_registration_message",
    ] {
        for value in &values {
            let mut body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]});
            body[field] = value.clone();
            bodies.push(body.to_string().into_bytes());
        }
    }
    for field in ["phone_number", "custom_user_data"] {
        for value in &values {
            let mut user = json!({"phone_number": B});
            user[field] = value.clone();
            bodies.push(
                json!({"app_id": DEMO_APP, "users": [user]})
                    .to_string()
                    .into_bytes(),
            );
        }
    }
    let count = bodies.len();
    for body in bodies {
        let mut event: Value = serde_json::from_str(&post_event(
            DEMO_DOMAIN,
            &json!({}),
            &api_key_header(DEMO_USER, DEMO_KEY),
        ))
        .unwrap();
        use base64::Engine;
        event["body"] = base64::engine::general_purpose::STANDARD
            .encode(&body)
            .into();
        event["isBase64Encoded"] = true.into();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = w.api.handle(request).await;
        let (status, _) = response_parts(&response);
        assert!(
            status < 500,
            "{status} for {:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    assert_eq!(count, 79, "every kind of bad input was tried");
}

// ---- The registration page -------------------------------------------------------------

/// An event for a registration link: `/a/{domain}/register/{token}`, or the short link
/// `/r/{token}` when `domain` is empty.
fn page_event(method: &str, domain: &str, token: &str, content_type: &str, body: &str) -> String {
    let mut event: Value = serde_json::from_str(&post_event(domain, &json!({}), "none")).unwrap();
    let path = if domain.is_empty() {
        format!("/r/{token}")
    } else {
        format!("/a/{domain}/register/{token}")
    };
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["headers"] = json!({"content-type": content_type, "host": "sms.example.org"});
    event["body"] = body.into();
    event.to_string()
}

impl<S: JobQueue + Clone> World<S> {
    async fn page(
        &self,
        method: &str,
        domain: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, String, lambda_http::http::HeaderMap) {
        let request =
            lambda_http::request::from_str(&page_event(method, domain, token, content_type, body))
                .unwrap();
        let response = self.api.handle(request).await;
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        (response.status().as_u16(), text, response.headers().clone())
    }

    async fn get_page(&self, token: &str) -> (u16, String) {
        let (status, body, headers) = self.page("GET", DEMO_DOMAIN, token, "", "").await;
        for (name, value) in [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("content-type", "text/html; charset=utf-8"),
        ] {
            assert_eq!(headers[name], value, "{name} on every page");
        }
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'")
        );
        (status, body)
    }

    async fn post_form(&self, token: &str, form: &str) -> (u16, String) {
        let (status, body, _) = self
            .page(
                "POST",
                DEMO_DOMAIN,
                token,
                "application/x-www-form-urlencoded",
                form,
            )
            .await;
        (status, body)
    }

    async fn post_json(&self, token: &str, body: &Value) -> (u16, Value) {
        let (status, text, _) = self
            .page(
                "POST",
                DEMO_DOMAIN,
                token,
                "application/json",
                &body.to_string(),
            )
            .await;
        (status, serde_json::from_str(&text).unwrap())
    }
}

/// Invites A (optionally requiring an email), its job still queued; returns its
/// registration token.
async fn queued_invitation(w: &World<MemorySms>, require_email: bool) -> String {
    let body = json!({"app_id": DEMO_APP, "require_email": require_email,
        "users": [{"phone_number": A, "custom_user_data": {"team": "north"}}]});
    assert_eq!(w.post(&body).await.0, 200);
    w.store.record(A).unwrap().token.as_str().to_owned()
}

/// Invites A and delivers its SMS; returns its registration token.
async fn invited(w: &World<MemorySms>, require_email: bool) -> String {
    let token = queued_invitation(w, require_email).await;
    assert_eq!(w.deliver().await, [JobResult::Sent(1)]);
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending
    );
    token
}

const GOOD_FORM: &str =
    "username=Jane.Doe&password=correct+horse&password2=correct+horse&email=jane%40example.org";

#[tokio::test]
async fn a_pending_invitation_shows_the_form_with_the_project_name_and_no_phone_number() {
    let w = world();
    let token = invited(&w, true).await;
    let (status, page) = w.get_page(&token).await;
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Demo Health</h1>"));
    for field in ["username", "password", "password2", "email"] {
        assert!(
            page.contains(&format!(r#"<label for="{field}">"#)),
            "label for {field}"
        );
        assert!(
            page.contains(&format!(r#"name="{field}""#)),
            "input {field}"
        );
    }
    assert!(
        page.contains(r#"name="email" type="email" value="" autocomplete="email" required"#),
        "email required"
    );
    assert!(!page.contains("6175551234") && !page.contains("<script"));
}

#[tokio::test]
async fn email_is_optional_unless_the_invitation_requires_it() {
    let w = world();
    let token = invited(&w, false).await;
    let (_, page) = w.get_page(&token).await;
    assert!(page.contains("Email (optional)"));
    let (status, body) = w
        .post_json(
            &token,
            &json!({"username": "jane", "password": "12345678", "password2": "12345678"}),
        )
        .await;
    assert_eq!((status, body), (201, json!({"username": "jane"})));
}

#[tokio::test]
async fn the_short_link_leads_to_the_same_page_and_registers() {
    let w = world();
    let token = invited(&w, false).await;
    assert_eq!(token.len(), 22, "128 bits");
    let (status, page, _) = w.page("GET", "", &token, "", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Demo Health</h1>"));
    assert!(w.store.record(A).unwrap().opened_at.is_some());
    let form = json!({"username": "jane", "password": "12345678", "password2": "12345678"});
    let (status, body, _) = w
        .page("POST", "", &token, "application/json", &form.to_string())
        .await;
    assert_eq!((status, body), (201, r#"{"username":"jane"}"#.to_owned()));
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Registered
    );
    // Used, the link says so through either path.
    assert_eq!(w.page("GET", "", &token, "", "").await.0, 409);
    assert_eq!(w.get_page(&token).await.0, 409);
    assert_eq!(w.page("GET", "", "no-such-token", "", "").await.0, 404);
}

#[tokio::test]
async fn unknown_tokens_and_tokens_of_another_project_get_404() {
    let w = world();
    let token = invited(&w, false).await;
    assert_eq!(w.get_page("no-such-token").await.0, 404);
    let (status, page, _) = w.page("GET", "other", &token, "", "").await;
    assert_eq!(status, 404);
    assert!(page.contains("not valid") && !page.contains("Demo Health"));
    let (status, body) = w.post_json("no-such-token", &json!({})).await;
    assert_eq!(status, 404);
    assert!(body["errors"]["token"].is_string());
}

#[tokio::test]
async fn an_expired_invitation_says_so_and_cannot_be_completed() {
    let w = world();
    let token = invited(&w, false).await;
    w.clock.0.store(T0 + 30 * 86_400, Ordering::SeqCst);
    let (status, page) = w.get_page(&token).await;
    assert_eq!(status, 410);
    assert!(page.contains("has expired") && page.contains("administrator of Demo Health"));
    let (status, _) = w.post_form(&token, GOOD_FORM).await;
    assert_eq!(status, 410);
    assert!(w.store.worker(DEMO_DOMAIN, "jane.doe").is_none());
}

#[tokio::test]
async fn form_errors_are_shown_next_to_their_fields_keeping_what_was_typed_but_passwords() {
    let w = world();
    let token = invited(&w, true).await;
    let (status, page) = w
        .post_form(
            &token,
            "username=ab&password=short1&password2=short2&email=bad",
        )
        .await;
    assert_eq!(status, 400);
    for message in [
        "Usernames are 3 to 80 characters long",
        "Passwords have at least 8 characters",
        "The two passwords do not match",
        "Enter a valid email address",
    ] {
        assert!(page.contains(message), "{message}");
    }
    assert!(page.contains(r#"value="ab""#) && page.contains(r#"value="bad""#));
    assert!(!page.contains("short1") && !page.contains("short2"));
    assert!(w.store.worker(DEMO_DOMAIN, "ab").is_none());
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending,
        "nothing stored"
    );
}

#[tokio::test]
async fn a_json_submission_gets_json_errors_by_field() {
    let w = world();
    let token = invited(&w, true).await;
    let (status, body) = w
        .post_json(
            &token,
            &json!({"username": "admin", "password": "12345678", "password2": "12345678"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errors": {
            "username": "This username is reserved; choose another",
            "email": "This field is required"
        }})
    );
}

#[tokio::test]
async fn a_successful_registration_creates_the_account_and_marks_the_number_registered() {
    let w = world();
    w.store
        .put_project(demo_project(Some("https://example.org/install/1")));
    let token = invited(&w, true).await;
    let (status, page) = w.post_form(&token, GOOD_FORM).await;
    assert_eq!(status, 200);
    assert!(page.contains("Thank you") && page.contains("jane.doe"));
    assert!(page.contains("play.google.com") && page.contains("https://example.org/install/1"));

    let worker = w.store.worker(DEMO_DOMAIN, "jane.doe").unwrap();
    assert!(smsreg::domain::worker::verify_password(
        "correct horse",
        worker.password_hash.as_deref().unwrap()
    ));
    assert_eq!(worker.email.as_deref(), Some("jane@example.org"));
    assert_eq!(worker.phone.as_str(), A);
    assert_eq!(worker.custom_user_data.unwrap()["team"], "north");
    assert_eq!(worker.app_id.as_deref(), Some(DEMO_APP));
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Registered
    );

    // The event for the organisation's systems, written with it: never the password.
    let events: Vec<_> = w
        .store
        .outbox()
        .into_iter()
        .filter(|e| e.detail_type.as_str() == "Worker Registered")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail["username"], "jane.doe");
    assert_eq!(events[0].detail["phone_number"], A);
    assert!(
        !events[0].detail.to_string().contains("correct horse")
            && !events[0].detail.to_string().contains("argon2")
    );

    // The link now shows the registered page; new invitations find the number in use.
    let (status, page) = w.get_page(&token).await;
    assert_eq!(status, 409);
    assert!(page.contains("already used") && page.contains("play.google.com"));
    assert_eq!(w.post(&invite(&[A])).await.1, report(&[], &[], &[A], &[]));
}

#[tokio::test]
async fn a_registration_body_over_one_mib_is_refused_with_413_and_registers_nobody() {
    let w = world();
    let token = invited(&w, false).await;
    // A 3 MiB form whose username alone is 900 KB.
    let huge_name = "a".repeat(900 * 1024);
    let form = format!(
        "{GOOD_FORM}&username={huge_name}&padding={}",
        "p".repeat(3 * 1024 * 1024)
    )
    .replacen("username=Jane.Doe&", "", 1);
    let (status, page) = w.post_form(&token, &form).await;
    assert_eq!(status, 413);
    assert!(!page.contains(&huge_name[..1000]), "nothing echoed");
    assert!(
        page.contains("too large"),
        "{}",
        &page[..page.len().min(2000)]
    );
    let json = json!({"username": "jane", "password": "12345678", "password2": "12345678",
        "padding": "p".repeat(1024 * 1024)});
    let (status, body) = w.post_json(&token, &json).await;
    assert_eq!(
        (status, body),
        (
            413,
            json!({"errors": {"body": "Request body is larger than 1 MiB."}})
        )
    );
    assert!(w.store.worker(DEMO_DOMAIN, "jane").is_none());
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn the_form_never_echoes_a_value_longer_than_its_field_allows() {
    let w = world();
    let token = invited(&w, false).await;
    // Under the body limit, far over the fields' own.
    let long_name = "b".repeat(900 * 1024);
    let long_email = format!("{}@example.org", "e".repeat(300));
    let form = format!(
        "username={long_name}&password=correct+horse&password2=correct+horse&email={long_email}"
    );
    let (status, page) = w.post_form(&token, &form).await;
    assert_eq!(status, 400);
    assert!(page.len() < 20_000, "the page is {} bytes", page.len());
    assert!(!page.contains(
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    ));
    assert!(!page.contains(&long_email));
    assert!(page.contains(r#"name="username" type="text" value="""#));
    assert!(page.contains(r#"name="email" type="email" value="""#));
    assert!(page.contains("Usernames are 3 to 80 characters long"));
    assert!(page.contains("Enter a valid email address"));
    // At their limits, values are shown back as typed.
    let name_80 = format!("Jane{}", "x".repeat(76));
    let email_254 = format!(
        "{}@{}.{}.{}.org",
        "e".repeat(64),
        "d".repeat(63),
        "c".repeat(63),
        "b".repeat(57)
    );
    assert_eq!(email_254.len(), 254);
    let form = format!(
        "username={name_80}&password=short&password2=short&email={}",
        email_254.replace('@', "%40")
    );
    let (status, page) = w.post_form(&token, &form).await;
    assert_eq!(status, 400);
    assert!(page.contains("Passwords have at least 8 characters"));
    assert!(
        page.contains(&format!(r#"value="{name_80}""#)),
        "the username kept"
    );
    assert!(
        page.contains(&format!(r#"value="{email_254}""#)),
        "the email kept"
    );
    assert!(
        w.store
            .worker(DEMO_DOMAIN, &name_80.to_lowercase())
            .is_none()
    );
}

#[tokio::test]
async fn a_registration_body_that_is_not_one_json_object_is_400_invalid_json() {
    let w = world();
    let token = invited(&w, false).await;
    let invalid = json!({"errors": {"body": "Request is not valid JSON."}});
    for body in [
        "{",
        "[]",
        "\"jane\"",
        "",
        r#"{"username": "jane", "password": "12345678", "password2": "12345678", "username": "john"}"#,
        r#"{"username": "jane", "password": "12345678", "password2": "12345678", "extra": {"a": 1, "a": 2}}"#,
    ] {
        let (status, text, headers) = w
            .page("POST", DEMO_DOMAIN, &token, "application/json", body)
            .await;
        assert_eq!(headers["content-type"], "application/json", "{body}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((status, answer), (400, invalid.clone()), "{body}");
    }
    // A field of another type than text says so on its field.
    let (status, body) = w
        .post_json(
            &token,
            &json!({"username": 12, "password": "12345678", "password2": "12345678"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"errors": {"username": "Expected type: str"}}))
    );
    assert!(w.store.worker(DEMO_DOMAIN, "jane").is_none());
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn media_types_on_the_registration_page_match_in_any_case_and_others_get_415() {
    let w = world();
    let token = invited(&w, false).await;
    let form = json!({"username": "jane", "password": "12345678", "password2": "12345678"});
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
    ] {
        let (status, text, headers) = w
            .page("POST", DEMO_DOMAIN, &token, content_type, &form.to_string())
            .await;
        assert_eq!(status, 415, "{content_type:?}");
        assert_eq!(headers["content-type"], "application/json");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert!(answer["errors"]["body"].is_string(), "{answer}");
    }
    assert!(w.store.worker(DEMO_DOMAIN, "jane").is_none());
    // The form's type in any case, with parameters.
    let (status, page, _) = w
        .page(
            "POST",
            DEMO_DOMAIN,
            &token,
            "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
            "username=ab&password=12345678&password2=12345678",
        )
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("Usernames are 3 to 80 characters long"));
    // JSON in capitals is JSON, answered in JSON.
    let (status, text, _) = w
        .page(
            "POST",
            DEMO_DOMAIN,
            &token,
            "APPLICATION/JSON",
            &form.to_string(),
        )
        .await;
    assert_eq!((status, text), (201, r#"{"username":"jane"}"#.to_owned()));
}

#[tokio::test]
async fn a_form_with_a_repeated_field_is_refused_and_registers_nobody() {
    let w = world();
    let token = invited(&w, false).await;
    let (status, page) = w
        .post_form(&token, &format!("{GOOD_FORM}&username=john"))
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("could not be read"), "{page}");
    assert!(w.store.worker(DEMO_DOMAIN, "jane.doe").is_none());
    assert!(w.store.worker(DEMO_DOMAIN, "john").is_none());
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn a_taken_username_is_refused_on_its_field() {
    let w = world();
    let token = invited(&w, false).await;
    w.post_form(&token, GOOD_FORM).await;
    // A second worker, invited on B, tries the same username.
    assert_eq!(w.post(&invite(&[B])).await.0, 200);
    assert_eq!(w.deliver().await, [JobResult::Sent(1)]);
    let token_b = w.store.record(B).unwrap().token.as_str().to_owned();
    let (status, page) = w
        .post_form(
            &token_b,
            "username=JANE.DOE&password=12345678&password2=12345678",
        )
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("This username is already taken"));
    assert_eq!(
        w.store.record(B).unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn a_number_registered_before_its_job_runs_gets_no_sms() {
    let w = world();
    let token = queued_invitation(&w, false).await;
    // The link works while the job is queued (its SMS may be out, not yet recorded).
    assert_eq!(w.get_page(&token).await.0, 200);
    assert_eq!(w.post_form(&token, GOOD_FORM).await.0, 200);
    assert_eq!(w.deliver().await, [JobResult::Dropped("registered")]);
    assert!(w.sms.sent().is_empty());
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Registered
    );
}

#[tokio::test]
async fn a_replaced_invitation_link_no_longer_works() {
    let w = world();
    let old = invited(&w, false).await;
    invited(&w, false).await; // re-invite: new token
    assert_eq!(w.get_page(&old).await.0, 404);
    assert_eq!(w.post_form(&old, GOOD_FORM).await.0, 404);
}

#[tokio::test]
async fn other_methods_on_a_registration_link_get_405() {
    let w = world();
    let (status, _, headers) = w.page("DELETE", DEMO_DOMAIN, "t", "", "").await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, POST");
}

#[tokio::test]
async fn one_idempotency_key_never_serves_both_sending_endpoints() {
    let w = world();
    let body = invite(&[A]);
    assert_eq!(
        response_parts(&w.post_with_key("shared", &body).await).0,
        200
    );
    let mut event: Value = serde_json::from_str(&post_event(
        DEMO_DOMAIN,
        &body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let path = "/a/demo/api/v0_5/sms_user_registration_reinstall/";
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["headers"]["idempotency-key"] = "shared".into();
    let response = w
        .api
        .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
        .await;
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(
        response_parts(&response).0,
        422,
        "same key, another request"
    );
}

#[tokio::test]
async fn at_one_sms_a_second_jobs_past_the_deadline_go_back_unstarted_and_spend_no_attempt() {
    let w = world();
    w.store.put_project(demo_project(Some(INSTALL_URL)));
    // 200 Android invitations: 400 SMS of one part each, far more than an invocation can
    // send at 1 a second.
    let numbers = us_numbers(200);
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    let body = json!({"app_id": DEMO_APP, "android_only": true, "users": users,
        "custom_registration_message": "Register: {}"});
    let (status, report) = w.post(&body).await;
    assert_eq!(status, 200, "{report}");
    let jobs = w.sms.take_jobs();
    assert_eq!(jobs.len(), 200);
    // One invocation with 2.5 s before it must stop starting SMS: the slots of the rate are
    // 1.04 s apart from 0.25 s ahead, so three fit; every other job goes back unstarted.
    let clock: Arc<dyn Clock> = Arc::new(Running(Instant::now()));
    let sender = w.sender_with(clock.clone(), 1);
    let until = Instant::now() + Duration::from_millis(2_500);
    let results =
        futures::future::join_all(jobs.iter().map(|job| sender.send_job(job, Some(until)))).await;
    let stopped_in_time = Instant::now() < until + Duration::from_millis(500);
    // (A job whose first SMS went out and whose second found no slot is handed back too.)
    assert_eq!(w.sms.sent().len(), 3, "three slots fit before the deadline");
    assert!(stopped_in_time, "no SMS waited for past the deadline");
    for result in &results {
        match result {
            JobResult::Sent(_) => {}
            JobResult::Later(later) => {
                assert!(
                    matches!(later, Later::NoSlotBeforeDeadline { .. }),
                    "{later:?}"
                )
            }
            other => panic!("only sent or handed back unstarted: {other:?}"),
        }
    }
    // Handed back, they spend nothing: delivered again (faster now), every worker gets
    // each SMS once and no invitation fails.
    let sender = w.sender_with(clock, 10_000);
    let results =
        futures::future::join_all(jobs.iter().map(|job| sender.send_job(job, None))).await;
    assert!(
        results.iter().all(|r| matches!(r, JobResult::Sent(_))),
        "{results:?}"
    );
    assert_eq!(w.sms.sent().len(), 400);
    for n in &numbers {
        assert_eq!(w.sms.sent_to(n).len(), 2, "{n}");
        assert_eq!(
            w.store.record(n).unwrap().status,
            RegistrationStatus::Pending
        );
    }
}

#[tokio::test]
async fn at_one_part_a_second_an_sms_of_two_parts_takes_two_slots() {
    let w = world();
    // 140 characters and the link: 2 parts.
    let numbers = us_numbers(3);
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    let message = format!("{}{{}}", "a".repeat(140));
    let body = json!({"app_id": DEMO_APP, "android_only": true, "users": users,
        "custom_registration_message": message});
    let (_, raw) = w.post_raw(&body).await;
    assert_eq!(
        raw["sms"],
        json!({"messages": 3, "parts": 6, "encoding": "GSM-7",
            "first_at": rfc(T0), "last_at": rfc(T0)})
    );
    let jobs = w.sms.take_jobs();
    let clock: Arc<dyn Clock> = Arc::new(Running(Instant::now()));
    let sender = w.sender_with(clock, 1);
    // 4.5 s: the slots are 1.04 s apart from 0.25 s ahead; two SMS of two parts each go at
    // their second slot (1.29 s, 3.37 s), the third's would be at 5.45 s.
    let until = Instant::now() + Duration::from_millis(4_500);
    let started = Instant::now();
    let results =
        futures::future::join_all(jobs.iter().map(|job| sender.send_job(job, Some(until)))).await;
    assert_eq!(w.sms.sent().len(), 2, "two SMS of two parts: four slots");
    let sent: usize = results
        .iter()
        .filter(|r| matches!(r, JobResult::Sent(1)))
        .count();
    assert_eq!(sent, 2, "{results:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(3_300),
        "the second waited for its slots"
    );
}

#[tokio::test]
async fn a_reinstall_cut_off_by_the_deadline_after_sending_is_sent_again_and_goes_out_once() {
    let w = world();
    let project = demo_project(Some(INSTALL_URL));
    w.store.put_project(project.clone());
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]});
    let request = w
        .service()
        .validate_reinstall(&project, body.as_object().unwrap())
        .unwrap();
    // SQS takes the job, and its answer comes after the deadline cut the call off: the job
    // may be on the queue, so the number is no error. (Work stops 2 s before the deadline,
    // the margin; the second send may use all but a quarter of it.)
    w.sms.answer_next_enqueue_late(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_millis(3_000);
    let report = w
        .service()
        .reinstall(&project, request, Some(deadline))
        .await
        .unwrap();
    assert!(Instant::now() < deadline, "answered before the deadline");
    assert_eq!(report.success_numbers, [A]);
    assert!(report.error_numbers.is_empty(), "{report:?}");
    // The job is on the queue twice, as one job: the worker gets each SMS once.
    let jobs = w.sms.take_jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].id, jobs[1].id);
    assert_eq!(w.send(&jobs[0]).await, JobResult::Sent(2));
    assert_eq!(w.send(&jobs[1]).await, JobResult::Dropped("already sent"));
    assert_eq!(w.sms.sent_to(A).len(), 2);
}

// ---- Send windows and send_at ------------------------------------------------------------

/// The demo project with a send window.
fn with_window(w: &World<MemorySms>, window: &str) {
    let mut project = demo_project(None);
    project.sms.send_window = window.parse().unwrap();
    w.store.put_project(project);
}

/// RFC 3339 of seconds since the epoch.
fn rfc(at: u64) -> String {
    smsreg::domain::time::rfc3339(at)
}

/// Seconds since the epoch of an RFC 3339 instant.
fn secs(text: &str) -> u64 {
    text.parse::<jiff::Timestamp>().unwrap().as_second() as u64
}

const NAIROBI: &str = "+254711123456";
const DELHI: &str = "+919812345678";
const KATHMANDU: &str = "+9779812345678";

#[tokio::test]
async fn a_worker_outside_the_window_is_held_until_it_opens_without_spending_an_attempt() {
    let w = world();
    with_window(&w, "08:00-21:00");
    // T0 is 08:00 UTC: 03:00 in Boston (closed), 11:00 in Nairobi (open).
    assert_eq!(rfc(T0), "2027-01-15T08:00:00Z");
    let body =
        json!({"app_id": DEMO_APP, "users": [{"phone_number": A}, {"phone_number": NAIROBI}]});
    let (status, raw) = w.post_raw(&body).await;
    assert_eq!(status, 200);
    let boston_opens = secs("2027-01-15T13:00:00Z");
    // The answer says when the first and the last SMS are expected: now, and at 13:00.
    assert_eq!(
        raw["sms"],
        json!({"messages": 2, "parts": 2, "encoding": "GSM-7",
            "first_at": rfc(T0), "last_at": "2027-01-15T13:00:00Z"})
    );
    let progress = w
        .store
        .batch_progress(raw["batch_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((progress.queued, progress.scheduled), (2, 1));
    let held = w.store.record(A).unwrap();
    assert_eq!(held.scheduled_for, Some(boston_opens));
    assert_eq!(
        held.expires_at,
        boston_opens + 30 * 86_400,
        "the lifetime counts from the send"
    );
    assert_eq!(w.store.record(NAIROBI).unwrap().scheduled_for, None);
    let listed = held.listed(T0);
    assert_eq!(listed["scheduled_for"], "2027-01-15T13:00:00Z");

    let jobs = w.sms.take_jobs();
    let sender = w.sender();
    let mut results = Vec::new();
    for job in &jobs {
        results.push(sender.send_job(job, None).await);
    }
    assert_eq!(results[1], JobResult::Sent(1), "Nairobi's goes now");
    let JobResult::Later(later) = &results[0] else {
        panic!("Boston's is held: {results:?}")
    };
    assert_eq!(later, &Later::Held { wait: 5 * 3600 });
    assert_eq!(later.delay(1), 5 * 3600, "back when the window opens");
    assert_eq!(w.sms.sent_to(A).len(), 0);
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Queued
    );

    // Delivered again before the window opens: held again, still nothing spent.
    w.clock.0.store(boston_opens - 60, Ordering::SeqCst);
    assert_eq!(
        sender.send_job(&jobs[0], None).await,
        JobResult::Later(Later::Held { wait: 60 })
    );
    w.clock.0.store(boston_opens, Ordering::SeqCst);
    assert_eq!(sender.send_job(&jobs[0], None).await, JobResult::Sent(1));
    assert_eq!(w.sms.sent_to(A).len(), 1);
}

#[tokio::test]
async fn at_20_59_local_it_goes_and_at_21_14_local_it_waits_for_the_morning() {
    let w = world();
    with_window(&w, "08:00-21:00");
    // 15:29 UTC: 20:59 in Delhi (+05:30), 21:14 in Kathmandu (+05:45).
    let at = secs("2027-01-15T15:29:00Z");
    w.clock.0.store(at, Ordering::SeqCst);
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": DELHI}, {"phone_number": KATHMANDU}]});
    assert_eq!(w.post(&body).await.0, 200);
    assert_eq!(w.store.record(DELHI).unwrap().scheduled_for, None);
    assert_eq!(
        w.store.record(KATHMANDU).unwrap().scheduled_for,
        Some(secs("2027-01-16T02:15:00Z")),
        "08:00 the next morning in Kathmandu"
    );
    let results = w.deliver().await;
    assert!(results.contains(&JobResult::Sent(1)), "{results:?}");
    assert!(
        results.contains(&JobResult::Later(Later::Held {
            wait: secs("2027-01-16T02:15:00Z") - at
        })),
        "{results:?}"
    );
}

#[tokio::test]
async fn send_at_holds_every_sms_of_the_request_until_then() {
    let w = world();
    let send_at = T0 + 2 * 3600;
    let body = json!({"app_id": DEMO_APP, "send_at": rfc(send_at),
        "users": [{"phone_number": A}, {"phone_number": NAIROBI}]});
    assert_eq!(w.post(&body).await.0, 200);
    for number in [A, NAIROBI] {
        let record = w.store.record(number).unwrap();
        assert_eq!(record.scheduled_for, Some(send_at), "{number}");
        assert_eq!(record.expires_at, send_at + 30 * 86_400);
    }
    let results = w.deliver().await;
    assert_eq!(
        results,
        vec![JobResult::Later(Later::Held { wait: 7200 }); 2],
        "no SMS before send_at"
    );
    assert!(w.sms.sent().is_empty());
    // The time zone (RFC 3339 offset) is the client's: the same instant.
    let body = json!({"app_id": DEMO_APP, "send_at": "2027-01-15T13:00:00+03:00",
        "users": [{"phone_number": B}]});
    assert_eq!(w.post(&body).await.0, 200);
    assert_eq!(
        w.store.record(B).unwrap().scheduled_for,
        Some(T0 + 2 * 3600)
    );
}

#[tokio::test]
async fn a_bad_send_at_is_a_field_error_and_stores_nothing() {
    let w = world();
    for (send_at, message) in [
        (json!(rfc(T0 - 3600)), "send_at is in the past"),
        (
            json!(rfc(T0 + 8 * 86_400)),
            "send_at is at most 7 days ahead",
        ),
        (
            json!("tomorrow"),
            "Enter a date and time in RFC 3339 form, such as 2026-12-03T08:00:00+03:00",
        ),
        (json!(5), "Expected type: str"),
    ] {
        let body = json!({"app_id": DEMO_APP, "send_at": send_at, "users": [{"phone_number": A}]});
        let (status, answer) = w.post(&body).await;
        assert_eq!(status, 400, "{send_at}");
        assert_eq!(
            answer,
            json!({"sms_user_registration": {"send_at": message}}),
            "{send_at}"
        );
    }
    assert!(w.store.record(A).is_none());
    // A minute late is "now" (clocks differ); null is no send_at.
    for send_at in [json!(rfc(T0 - 30)), Value::Null] {
        let body = json!({"app_id": DEMO_APP, "send_at": send_at, "users": [{"phone_number": A}]});
        assert_eq!(w.post(&body).await.0, 200);
        assert_eq!(w.store.record(A).unwrap().scheduled_for, None);
    }
}

#[tokio::test]
async fn answers_to_replies_and_projects_without_a_window_go_at_once() {
    let w = world();
    // The demo project was stored before windows: no window.
    w.clock
        .0
        .store(secs("2027-01-15T07:00:00Z"), Ordering::SeqCst);
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]});
    assert_eq!(w.post(&body).await.0, 200);
    assert_eq!(w.deliver().await, [JobResult::Sent(1)], "02:00 in Boston");
}

#[tokio::test]
async fn a_reinstall_keeps_the_window_and_its_send_at() {
    let w = world();
    with_window(&w, "08:00-21:00");
    // 03:00 in Boston: held until 08:00 (13:00 UTC), and a send_at later than that wins.
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]});
    let (status, answer) = response_parts(&w.api.handle(reinstall_request(&body)).await);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sms"]["last_at"], "2027-01-15T13:00:00Z");
    let body = json!({"app_id": DEMO_APP, "send_at": "2027-01-15T15:00:00Z",
        "users": [{"phone_number": NAIROBI}]});
    let (status, answer) = response_parts(&w.api.handle(reinstall_request(&body)).await);
    assert_eq!(status, 200, "{answer}");
    let results = w.deliver().await;
    assert_eq!(
        results,
        [
            JobResult::Later(Later::Held { wait: 5 * 3600 }),
            JobResult::Later(Later::Held { wait: 7 * 3600 }),
        ]
    );
    let body = json!({"app_id": DEMO_APP, "send_at": "soon", "users": [{"phone_number": A}]});
    let (status, answer) = response_parts(&w.api.handle(reinstall_request(&body)).await);
    assert_eq!(status, 400);
    assert!(answer.to_string().contains("RFC 3339"), "{answer}");
}

#[tokio::test]
async fn a_held_job_whose_invitation_was_replaced_or_opted_out_meanwhile_is_dropped_unsent() {
    let w = world();
    let send_at = T0 + 2 * 3600;
    let body = json!({"app_id": DEMO_APP, "send_at": rfc(send_at),
        "users": [{"phone_number": A}, {"phone_number": B}]});
    assert_eq!(w.post(&body).await.0, 200);
    let held = w.sms.take_jobs();
    // While they wait: A is invited again (a new invitation, sent at once), B replies STOP.
    let again = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]});
    assert_eq!(w.post(&again).await.0, 200);
    assert_eq!(w.deliver().await, [JobResult::Sent(1)]);
    smsreg::ports::OptOuts::opt_out(
        &w.store,
        &PhoneNumber::parse(B).unwrap(),
        T0 + 60,
        "reply-1",
    )
    .await
    .unwrap();
    // Their moment comes: both dropped, nothing more sent.
    w.clock.0.store(send_at, Ordering::SeqCst);
    let sender = w.sender();
    let mut results = Vec::new();
    for job in &held {
        results.push(sender.send_job(job, None).await);
    }
    assert_eq!(
        results,
        [
            JobResult::Dropped("replaced"),
            JobResult::Dropped("opted out")
        ]
    );
    assert_eq!(w.sms.sent_to(A).len(), 1, "only the new invitation's SMS");
    assert!(w.sms.sent_to(B).is_empty());
}

/// A provider that refuses an opted-out number at the send (End User Messaging): no
/// question asked before; the refusal records the STOP and drops the job; the number is
/// answered opted out from then on.
#[tokio::test]
async fn a_provider_that_refuses_opted_out_numbers_at_the_send_is_not_asked_first() {
    let w = world();
    w.sms.refuse_opted_out_on_send();
    w.sms.provider_opts_out(B);
    w.post(&invite(&[A, B])).await;
    let results = w.deliver().await;
    assert_eq!(
        results,
        [JobResult::Sent(1), JobResult::Dropped("opted out")]
    );
    assert_eq!(w.sms.opt_out_checks(), 0, "not asked before sending");
    assert_eq!(
        w.store.record(B).unwrap().status,
        RegistrationStatus::OptedOut
    );
    let (_, again) = w.post(&invite(&[B])).await;
    assert_eq!(again["opted_out_numbers"], json!([B]), "{again}");
}

/// Refused for good (a blocked country, a price over the cap): given up at the first
/// attempt, the number freed, the reason kept.
#[tokio::test]
async fn a_refusal_for_good_gives_the_job_up_at_its_first_attempt() {
    let w = world();
    w.sms
        .refuse_for(A, SmsFailure::Refused, "PRICE_OVER_THRESHOLD");
    w.post(&invite(&[A])).await;
    let job = w.take_one();
    let result = w.send(&job).await;
    assert_eq!(
        result,
        JobResult::GaveUp(SmsError::new(SmsFailure::Refused, "PRICE_OVER_THRESHOLD"))
    );
    let record = w.store.record(A).unwrap();
    assert_eq!(record.status, RegistrationStatus::Failed);
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("SMS refused by the provider (PRICE_OVER_THRESHOLD)")
    );
    let other = api_key_header("admin@other.example", "other-key");
    let (_, taken) = w.post_as("other", &other, &invite(&[A])).await;
    assert_eq!(taken["success_numbers"], json!([A]), "freed: {taken}");
}

/// The account's spend limit: held with no attempt spent, however often it comes back,
/// then sent once the provider takes it again.
#[tokio::test]
async fn the_spend_limit_holds_a_job_without_spending_its_attempts() {
    let w = world();
    w.sms.refuse_for(
        A,
        SmsFailure::Suspended,
        "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
    );
    w.post(&invite(&[A])).await;
    let job = w.take_one();
    for _ in 0..(w.max_attempts() + 2) {
        match w.send(&job).await {
            JobResult::Later(later @ Later::Suspended(_)) => assert_eq!(later.delay(1), 900),
            other => panic!("held, not {other:?}"),
        }
    }
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Queued
    );
    w.sms.recover();
    assert_eq!(w.send(&job).await, JobResult::Sent(1));
    // Its price cap and context went with it, never the number.
    let sent = w.sms.outgoing();
    assert_eq!(sent.len(), 1);
    let keys: Vec<&str> = sent[0].context.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["project", "batch", "job"]);
    assert!(
        sent[0]
            .context
            .iter()
            .all(|(_, v)| !v.contains("6175551234"))
    );
}

#[tokio::test]
async fn markup_with_an_at_sign_is_not_taken_as_an_email() {
    let w = world();
    let token = invited(&w, true).await;
    let form = json!({"username": "jane", "password": "12345678", "password2": "12345678",
        "email": "<img/src=x/onerror=alert(1)>@-b.co"});
    let (status, body) = w.post_json(&token, &form).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"errors": {"email": "Enter a valid email address"}})
        )
    );
    assert!(w.store.worker(DEMO_DOMAIN, "jane").is_none());
    assert_eq!(
        w.store.record(A).unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn a_link_of_a_project_whose_plan_fell_below_pro_says_registration_is_closed() {
    let w = world();
    let token = queued_invitation(&w, false).await;
    let mut project = demo_project(None);
    project.plan = Plan::Standard;
    w.store.put_project(project);

    let (status, page) = w.get_page(&token).await;
    assert_eq!(status, 403);
    assert!(page.contains("Registration is closed"), "{page}");
    let (status, page) = w
        .post_form(&token, "username=jane&password=12345678&password2=12345678")
        .await;
    assert_eq!(status, 403);
    assert!(page.contains("Registration is closed"), "{page}");
    let form = json!({"username": "jane", "password": "12345678", "password2": "12345678"});
    let (status, body) = w.post_json(&token, &form).await;
    assert_eq!(status, 403);
    assert!(
        body["errors"]["token"]
            .as_str()
            .unwrap()
            .contains("Registration is closed"),
        "{body}"
    );

    assert!(w.store.worker(DEMO_DOMAIN, "jane").is_none());
    let record = w.store.record(A).unwrap();
    assert_eq!(record.status, RegistrationStatus::Queued);
    assert_eq!(record.opened_at, None, "not marked opened");
}

#[tokio::test]
async fn the_form_states_each_fields_limits_and_the_browser_keeps_to_them() {
    use smsreg::domain::worker::{
        MAX_EMAIL_OCTETS, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, MIN_PASSWORD_CHARS,
    };
    let w = world();
    let token = invited(&w, false).await;
    let (status, page) = w.get_page(&token).await;
    assert_eq!(status, 200);
    for (field, max) in [
        ("username", MAX_USERNAME_CHARS),
        ("password", MAX_PASSWORD_CHARS),
        ("password2", MAX_PASSWORD_CHARS),
        ("email", MAX_EMAIL_OCTETS),
    ] {
        let input = &page[page.find(&format!(r#"name="{field}""#)).unwrap()..];
        let input = &input[..input.find('>').unwrap()];
        assert!(input.contains(&format!(r#"maxlength="{max}""#)), "{input}");
    }
    assert!(
        page.contains(&format!(
            "{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )),
        "the password's hint says its rule"
    );
}
