//! In memory: the SMS provider and the send queue in one stand-in, `MemorySms`, which
//! records every SMS and job instead of sending it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::domain::PhoneNumber;
use crate::domain::job::SmsJob;
use crate::domain::receipt::DeliveryReport;
use crate::ports::{JobQueue, Outgoing, QueueError, SmsError, SmsFailure, SmsProvider};

#[derive(Default)]
struct SmsState {
    /// Jobs on the in-memory send queue, oldest first.
    queue: Vec<SmsJob>,
    failing_enqueue: HashSet<String>,
    /// The next enqueue takes its jobs, then answers this late.
    late_enqueue: Option<std::time::Duration>,
    sent: Vec<(String, String)>,
    failing: HashSet<String>,
    fail_nth: HashMap<String, usize>,
    /// Numbers the provider (SNS) has opted out.
    provider_opted_out: HashSet<String>,
    /// The provider refuses sends to these numbers with this failure (and code).
    refusing: HashMap<String, SmsError>,
    /// Whether the provider is asked before a first SMS (SNS) or refuses opted-out
    /// numbers when sent to (End User Messaging).
    refuses_opted_out_on_send: bool,
    /// Each SMS sent, with its price cap and context as the provider received them.
    outgoing: Vec<SentSms>,
    /// Opt-outs (`true`) and opt-ins the service told the provider of, in order.
    told: Vec<(String, bool)>,
    opt_out_checks: std::sync::atomic::AtomicUsize,
}

/// An SMS the in-memory provider accepted, with what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub to: String,
    pub max_price_per_part: Option<String>,
    /// `project`, `batch` (if any), `job`.
    pub context: Vec<(String, String)>,
}

/// Records every SMS instead of sending it, and stands in for the send queue too: a
/// cheap handle (`Clone`), every clone the same.
#[derive(Default, Clone)]
pub struct MemorySms {
    state: Arc<Mutex<SmsState>>,
}

impl MemorySms {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SmsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every SMS accepted so far, as (E.164 number, text).
    pub fn sent(&self) -> Vec<(String, String)> {
        self.state().sent.clone()
    }

    pub fn sent_to(&self, phone: &str) -> Vec<String> {
        self.state()
            .sent
            .iter()
            .filter(|(to, _)| to == phone)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// Every SMS to `phone` fails.
    pub fn fail_for(&self, phone: &str) {
        self.state().failing.insert(phone.to_owned());
    }

    /// Takes every job off the in-memory send queue, oldest first.
    pub fn take_jobs(&self) -> Vec<SmsJob> {
        std::mem::take(&mut self.state().queue)
    }

    /// Jobs waiting on the in-memory send queue.
    pub fn queued_jobs(&self) -> Vec<SmsJob> {
        self.state().queue.clone()
    }

    /// Jobs for `phone` cannot be queued.
    /// The next enqueue puts its jobs on the queue, then answers `late` later (an answer
    /// that the deadline may cut off).
    pub fn answer_next_enqueue_late(&self, late: std::time::Duration) {
        self.state().late_enqueue = Some(late);
    }

    pub fn fail_enqueue_for(&self, phone: &str) {
        self.state().failing_enqueue.insert(phone.to_owned());
    }

    /// Clears every injected fault.
    pub fn recover(&self) {
        let mut state = self.state();
        state.failing.clear();
        state.failing_enqueue.clear();
        state.fail_nth.clear();
        state.refusing.clear();
    }

    /// The provider answers that `phone` is opted out.
    pub fn provider_opts_out(&self, phone: &str) {
        self.state().provider_opted_out.insert(phone.to_owned());
    }

    /// Behaves as End User Messaging: not asked about opt-outs before a first SMS; a
    /// number it has opted out is refused when sent to.
    pub fn refuse_opted_out_on_send(&self) {
        self.state().refuses_opted_out_on_send = true;
    }

    /// Every SMS to `phone` is refused with `failure` and `code`.
    pub fn refuse_for(&self, phone: &str, failure: SmsFailure, code: &str) {
        self.state()
            .refusing
            .insert(phone.to_owned(), SmsError::new(failure, code));
    }

    /// Each SMS accepted, with its price cap and context.
    pub fn outgoing(&self) -> Vec<SentSms> {
        self.state().outgoing.clone()
    }

    /// The opt-outs (`true`) and opt-ins the service told the provider of.
    pub fn told(&self) -> Vec<(String, bool)> {
        self.state().told.clone()
    }

    /// How many times the provider was asked whether a number is opted out.
    pub fn opt_out_checks(&self) -> usize {
        self.state()
            .opt_out_checks
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The `n`th SMS (counting from 1) to `phone` fails; earlier ones go through.
    pub fn fail_nth_for(&self, phone: &str, n: usize) {
        self.state().fail_nth.insert(phone.to_owned(), n);
    }
}

impl SmsProvider for MemorySms {
    /// As SNS's, or none as End User Messaging's.
    fn opt_out_checks_per_second(&self) -> Option<u32> {
        (!self.state().refuses_opted_out_on_send).then_some(50)
    }

    async fn send(&self, sms: &Outgoing<'_>) -> Result<String, SmsError> {
        let mut state = self.state();
        let phone = sms.to.as_str();
        let attempt = state.sent.iter().filter(|(p, _)| p == phone).count() + 1;
        if state.failing.contains(phone) || state.fail_nth.get(phone) == Some(&attempt) {
            return Err(SmsError::new(SmsFailure::Failed, "InjectedFault"));
        }
        if let Some(error) = state.refusing.get(phone) {
            return Err(error.clone());
        }
        if state.refuses_opted_out_on_send && state.provider_opted_out.contains(phone) {
            return Err(SmsError::new(
                SmsFailure::OptedOut,
                "DESTINATION_PHONE_NUMBER_OPTED_OUT",
            ));
        }
        state.sent.push((phone.to_owned(), sms.text.to_owned()));
        let c = sms.context;
        let context = [
            ("project", Some(c.project)),
            ("batch", c.batch),
            ("job", Some(c.job)),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
        state.outgoing.push(SentSms {
            to: phone.to_owned(),
            max_price_per_part: sms.max_price_per_part.map(str::to_owned),
            context,
        });
        Ok(format!("mem-{}", state.sent.len()))
    }

    async fn set_opted_out(&self, to: &PhoneNumber, opted_out: bool) -> Result<(), SmsError> {
        let mut state = self.state();
        state.told.push((to.as_str().to_owned(), opted_out));
        if opted_out {
            state.provider_opted_out.insert(to.as_str().to_owned());
        } else {
            state.provider_opted_out.remove(to.as_str());
        }
        Ok(())
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        let state = self.state();
        state
            .opt_out_checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(state.provider_opted_out.contains(to.as_str()))
    }

    /// The stand-in for SNS reads SNS's delivery status log.
    fn read_report(line: &str) -> Option<DeliveryReport> {
        crate::adapters::sns::read_delivery_status(line)
    }
}

impl JobQueue for MemorySms {
    async fn enqueue(&self, jobs: &[SmsJob]) -> Vec<Result<(), QueueError>> {
        let (results, late) = {
            let mut state = self.state();
            let results = jobs
                .iter()
                .map(|job| {
                    if state.failing_enqueue.contains(job.phone.as_str()) {
                        return Err(QueueError {
                            code: "InjectedFault".into(),
                        });
                    }
                    state.queue.push(job.clone());
                    Ok(())
                })
                .collect();
            (results, state.late_enqueue.take())
        };
        if let Some(late) = late {
            tokio::time::sleep(late).await;
        }
        results
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
