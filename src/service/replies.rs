//! Replies to the invitation SMS: `1` (Android), `2` (another phone), and
//! `JOIN <project> WORKER [username]` (registering by SMS); STOP, START and HELP; and the
//! one daily cap on answers per number.

use serde::Deserialize;
use tracing::{info, warn};

use super::RegistrationService;
use crate::domain::invitation::{PhoneType, RegistrationLinks};
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::keyword::{Keyword, help_text, keyword_in};
use crate::domain::language::Texts;
use crate::domain::sms::{self, InvitationSms};
use crate::domain::worker::{RegistrationForm, Worker, hash_password, normalise_username};
use crate::domain::{PhoneNumber, Project, RegistrationRecord};
use crate::ports::{
    JobQueue, QueueError, RegisterOutcome, SmsError, SmsFailure, SmsProvider, Store, StoreError,
};

/// An SMS a worker sent, as End User Messaging SMS publishes it to SNS.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundSms {
    pub origination_number: String,
    #[serde(default)]
    pub destination_number: String,
    #[serde(default)]
    pub message_keyword: String,
    #[serde(default)]
    pub message_body: String,
    pub inbound_message_id: String,
    #[serde(default)]
    pub previous_published_message_id: Option<String>,
}

/// Never prints the number or the text.
impl std::fmt::Debug for InboundSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSms")
            .field("inbound_message_id", &self.inbound_message_id)
            .finish_non_exhaustive()
    }
}

/// What a reply led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Handled before (the same `inboundMessageId`): nothing sent.
    Duplicate,
    /// No pending, unexpired invitation for the sender, or an unreadable sender.
    Ignored,
    AndroidLinkSent,
    JoinInstructionsSent,
    StartResent,
    /// Registered by `JOIN`, with this username.
    Joined(String),
    /// `JOIN` on an invitation that requires an email address: answered with the link to
    /// the registration page (which asks for it), nobody registered.
    RegistrationLinkSent,
    /// `JOIN` refused (username taken or invalid, wrong project): told why.
    JoinRefused,
    /// STOP and the other opt-out words: recorded, never answered.
    OptedOut,
    /// START or UNSTOP: the number may be texted again.
    OptedIn,
    /// HELP or INFO: answered with who texts and how to stop.
    HelpSent,
    /// A reply past the day's answers to its number ([`MAX_ANSWERS_PER_DAY`], or
    /// [`MAX_HELP_ANSWERS_PER_DAY_UNINVITED`]): an auto-responder, say. Logged, not
    /// answered, not acted on.
    NotAnswered,
    /// A reply the store cannot hold (its `inboundMessageId` too long, or refused as
    /// invalid): logged without the number or the text, and dropped, since retrying it
    /// would fail the same way for ever.
    Dropped,
}

/// Answers a day to one number's replies, whatever they are (HELP, 1, 2, JOIN and every
/// other text; STOP and START are never answered): a phone that answers every SMS
/// automatically must not ping-pong with the service, each answer paid for and taken from
/// the deployment's rate. While the number's invitation waits for the worker's `1` or `2`,
/// the last of them is kept for the worker's own step (that choice, or a `JOIN`), so that an
/// auto-responder cannot leave the worker without the link for the day.
pub const MAX_ANSWERS_PER_DAY: usize = 3;

/// HELP answers a day to a number the service never invited: anyone can text the
/// service's number, and each answer is paid for.
pub const MAX_HELP_ANSWERS_PER_DAY_UNINVITED: usize = 1;

/// The longest `inboundMessageId` kept (bytes). End User Messaging's are UUIDs (36); the
/// bound leaves room for another format while keeping the `INBOUND#<id>` key far below
/// DynamoDB's 2048 bytes.
pub const MAX_INBOUND_MESSAGE_ID_BYTES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The SMS provider's opt-out list could not be told of a STOP or START.
    #[error(transparent)]
    Provider(#[from] SmsError),
}

/// A random password for accounts made by SMS (the worker sets their own later).
fn random_password() -> String {
    crate::domain::project::generate_key()
}

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// Queues an answer: one job with the SMS for `phone`, sent by the sender at the
    /// account's rate, like every SMS of the service.
    /// Queues `texts` to `phone` at once, as sent (through smart encoding when `smart`).
    async fn answer(
        &self,
        domain: &str,
        smart: bool,
        phone: &PhoneNumber,
        texts: Vec<String>,
    ) -> Result<(), ReplyError> {
        let texts = sms::as_sent(texts, smart);
        let job = SmsJob {
            id: SmsJob::new_id(),
            domain: domain.to_owned(),
            phone: phone.clone(),
            texts,
            kind: JobKind::Message,
            // An answer goes at once: the worker just wrote.
            schedule: Default::default(),
            // An answer goes to a number that wrote to the service.
            max_price_per_part: None,
        };
        self.queue
            .enqueue(std::slice::from_ref(&job))
            .await
            .pop()
            .unwrap_or(Err(QueueError {
                code: "NotQueued".into(),
            }))?;
        Ok(())
    }

    /// Handles one reply (a worker who registers by `JOIN` is told to the organisation by
    /// the outbox, with the registration). A failure forgets the message, so a redelivery
    /// is handled again.
    pub async fn handle_reply(
        &self,
        sms: &InboundSms,
        provider: &impl SmsProvider,
    ) -> Result<ReplyOutcome, ReplyError> {
        let id_bytes = sms.inbound_message_id.len();
        if !(1..=MAX_INBOUND_MESSAGE_ID_BYTES).contains(&id_bytes) {
            warn!(id_bytes, "reply with an id the store cannot hold: dropped");
            return Ok(ReplyOutcome::Dropped);
        }
        match self
            .store
            .first_time(&sms.inbound_message_id, self.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                info!("reply already handled");
                return Ok(ReplyOutcome::Duplicate);
            }
            Err(error) if error.is_invalid_request() => {
                warn!(%error, "reply the store refuses to record: dropped");
                return Ok(ReplyOutcome::Dropped);
            }
            Err(error) => return Err(error.into()),
        }
        let outcome = self.reply(sms, provider).await;
        if outcome.is_err()
            && let Err(error) = self.store.forget(&sms.inbound_message_id).await
        {
            warn!(%error, "could not forget a failed reply; a redelivery will be skipped");
        }
        outcome
    }

    async fn reply(
        &self,
        sms: &InboundSms,
        provider: &impl SmsProvider,
    ) -> Result<ReplyOutcome, ReplyError> {
        let Ok(phone) = PhoneNumber::parse(&sms.origination_number) else {
            warn!("reply from an unreadable number ignored");
            return Ok(ReplyOutcome::Ignored);
        };
        let now = self.clock.now();
        // Before any other rule (carrier rules and AWS's).
        let asked = keyword_in(&sms.message_body);
        match asked.map(|(keyword, _)| keyword) {
            Some(Keyword::OptOut) => {
                self.store
                    .opt_out(&phone, now, &sms.inbound_message_id)
                    .await?;
                // And on the provider's opt-out list, where it keeps one for the service.
                provider.set_opted_out(&phone, true).await?;
                info!(phone = %phone.masked(), "opted out");
                return Ok(ReplyOutcome::OptedOut);
            }
            Some(Keyword::OptIn) => {
                self.store
                    .opt_in(&phone, now, &sms.inbound_message_id)
                    .await?;
                match provider.set_opted_out(&phone, false).await {
                    Ok(()) => {}
                    // Refused (End User Messaging lets a number be taken off a list once
                    // in 30 days, and takes START itself where it handles keywords): the
                    // list keeps the number, and a send to it is refused and recorded as
                    // a STOP again. Not retried: retrying would not change the answer.
                    Err(error) if error.failure == SmsFailure::Failed => {
                        warn!(phone = %phone.masked(), code = error.code,
                            "the provider's opt-out list kept the number");
                    }
                    Err(error) => return Err(error.into()),
                }
                info!(phone = %phone.masked(), "opted back in");
                return Ok(ReplyOutcome::OptedIn);
            }
            Some(Keyword::Help) => {
                let record = self.store.find(&phone).await?;
                let cap = match &record {
                    Some(record) => answer_cap(record, now, false),
                    None => MAX_HELP_ANSWERS_PER_DAY_UNINVITED,
                };
                if !self.may_answer(&phone, sms, cap).await? {
                    return Ok(ReplyOutcome::NotAnswered);
                }
                let project = match record {
                    Some(ref record) => self.store.project(&record.domain).await?,
                    None => None,
                };
                let domain = project.as_ref().map_or("", |p| p.name.as_str());
                // In the language of the word itself (AIDE: French), else the invitation's.
                let language = asked
                    .and_then(|(_, language)| language)
                    .or_else(|| record.as_ref().and_then(|r| r.language));
                let text = match &project {
                    Some(project) => help_text(&project.texts(language), Some(project.title())),
                    None => help_text(&Texts::english(), None),
                };
                self.answer(
                    domain,
                    project.as_ref().is_none_or(|p| p.sms.smart_encoding),
                    &phone,
                    vec![text],
                )
                .await?;
                return Ok(ReplyOutcome::HelpSent);
            }
            None => {}
        }
        let invitation = match self.store.find(&phone).await? {
            Some(r) if r.is_live(now) => r,
            _ => {
                info!(phone = %phone.masked(), "reply without a pending invitation ignored");
                return Ok(ReplyOutcome::Ignored);
            }
        };
        let Some(project) = self.store.project(&invitation.domain).await? else {
            return Ok(ReplyOutcome::Ignored);
        };
        let body = sms.message_body.trim();
        let words: Vec<&str> = body.split_whitespace().collect();
        let joins = words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("JOIN"));
        let chooses = invitation.phone_type.is_none() && (body == "1" || body == "2");
        // Checked before anything is done: past the cap a reply changes nothing (a JOIN
        // flood makes no accounts and hashes no passwords).
        let cap = answer_cap(&invitation, now, chooses || joins);
        if !self.may_answer(&phone, sms, cap).await? {
            return Ok(ReplyOutcome::NotAnswered);
        }
        if joins {
            return self.join(&project, &invitation, &words).await;
        }
        let answer = match invitation.phone_type {
            Some(known) => known,
            None if body == "1" => PhoneType::Android,
            None if body == "2" => PhoneType::Other,
            None => {
                self.answer(
                    &project.name,
                    project.sms.smart_encoding,
                    &phone,
                    vec![start_text(&project, &invitation)],
                )
                .await?;
                return Ok(ReplyOutcome::StartResent);
            }
        };
        if invitation.phone_type.is_none() {
            self.store.set_phone_type(&invitation, answer).await?;
        }
        match answer {
            PhoneType::Android => {
                let links = RegistrationLinks::new(
                    &self.config.public_base_url,
                    &project.name,
                    &invitation.token,
                );
                let install_url = invitation
                    .app_id
                    .as_deref()
                    .and_then(|id| project.app(id))
                    .and_then(|app| app.install_url.as_deref());
                let texts = InvitationSms {
                    texts: project.texts(invitation.language),
                    project_title: project.title(),
                    android_only: true,
                    custom_message: None,
                    links: &links,
                    install_url,
                    smart_encoding: project.sms.smart_encoding,
                }
                .compose();
                self.answer(&project.name, project.sms.smart_encoding, &phone, texts)
                    .await?;
                Ok(ReplyOutcome::AndroidLinkSent)
            }
            PhoneType::Other => {
                self.answer(
                    &project.name,
                    project.sms.smart_encoding,
                    &phone,
                    vec![join_instructions(&project, &invitation)],
                )
                .await?;
                Ok(ReplyOutcome::JoinInstructionsSent)
            }
        }
    }

    /// Counts an answer to `sms` against its number's answers of the day; `false` (logged)
    /// when `cap` were given already.
    async fn may_answer(
        &self,
        phone: &PhoneNumber,
        sms: &InboundSms,
        cap: usize,
    ) -> Result<bool, ReplyError> {
        let day = crate::domain::time::utc_day(self.clock.now());
        let allowed = self
            .store
            .may_answer(phone, &day, &sms.inbound_message_id, cap)
            .await?;
        if !allowed {
            info!(phone = %phone.masked(), "reply past the day's answers: not answered");
        }
        Ok(allowed)
    }

    async fn join(
        &self,
        project: &Project,
        invitation: &RegistrationRecord,
        words: &[&str],
    ) -> Result<ReplyOutcome, ReplyError> {
        let phone = &invitation.phone;
        // An account made by SMS would have no email, or (in a directory) a password
        // nobody knows: the page asks for them.
        let links = RegistrationLinks::new(
            &self.config.public_base_url,
            &project.name,
            &invitation.token,
        );
        let texts = project.texts(invitation.language);
        let page_needed = if invitation.require_email {
            Some(sms::PageNeeded::Email)
        } else if project.accounts.is_external() {
            Some(sms::PageNeeded::Password)
        } else {
            None
        };
        if let Some(why) = page_needed {
            let smart = project.sms.smart_encoding;
            let text = sms::page_needed(&texts, why, project.title(), &links, smart);
            self.answer(&project.name, smart, phone, vec![text]).await?;
            info!(phone = %phone.masked(), "JOIN answered with the registration page's link");
            return Ok(ReplyOutcome::RegistrationLinkSent);
        }
        let well_formed = matches!(words.len(), 3 | 4)
            && words[1].eq_ignore_ascii_case(&project.name)
            && words[2].eq_ignore_ascii_case("WORKER");
        if !well_formed {
            self.answer(
                &project.name,
                project.sms.smart_encoding,
                phone,
                vec![join_instructions(project, invitation)],
            )
            .await?;
            return Ok(ReplyOutcome::JoinRefused);
        }
        let username = words.get(3).map_or_else(
            || phone.as_str().trim_start_matches('+').to_owned(),
            |u| normalise_username(u),
        );
        let password = random_password();
        let form = RegistrationForm {
            username: username.clone(),
            password: password.clone(),
            password2: password.clone(),
            email: String::new(),
        };
        if let Err(errors) = form.validate(false) {
            let reason = errors.get("username").unwrap_or("it is not valid");
            let text = sms::username_refused(&texts, &project.name, &username, reason);
            self.answer(&project.name, project.sms.smart_encoding, phone, vec![text])
                .await?;
            return Ok(ReplyOutcome::JoinRefused);
        }
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .expect("password hashing does not panic");
        let worker = Worker {
            domain: project.name.clone(),
            username: username.clone(),
            password_hash: Some(password_hash),
            phone: phone.clone(),
            email: None,
            custom_user_data: invitation.custom_user_data.clone(),
            app_id: invitation.app_id.clone(),
            registered_at: self.clock.now(),
        };
        match self.store.register(invitation, &worker).await? {
            RegisterOutcome::Registered => {}
            RegisterOutcome::UsernameTaken => {
                let reason = texts.get("sms.username_taken_reason");
                let text = sms::username_refused(&texts, &project.name, &username, reason);
                self.answer(&project.name, project.sms.smart_encoding, phone, vec![text])
                    .await?;
                return Ok(ReplyOutcome::JoinRefused);
            }
            RegisterOutcome::InvitationChanged => return Ok(ReplyOutcome::Ignored),
            // Handled again when the reply is redelivered (the failure forgets it).
            RegisterOutcome::TryAgain => {
                return Err(ReplyError::Store(StoreError::Unavailable {
                    code: "TransactionCanceled".into(),
                }));
            }
        }
        info!(phone = %phone.masked(), "worker registered by SMS");
        let welcome = sms::welcome(&texts, project.title(), &username);
        self.answer(
            &project.name,
            project.sms.smart_encoding,
            phone,
            vec![welcome],
        )
        .await?;
        Ok(ReplyOutcome::Joined(username))
    }
}

/// The cap on the day's answers to `record`'s number that this reply is answered within:
/// all of them for a step only the worker takes (the first `1` or `2`, or a `JOIN`), one
/// fewer for any other reply (HELP included) while a live invitation still waits for the
/// phone type: the last is kept for the worker, whatever an auto-responder sent first.
fn answer_cap(record: &RegistrationRecord, now: u64, worker_step: bool) -> usize {
    let awaits_choice = record.is_live(now) && record.phone_type.is_none();
    if awaits_choice && !worker_step {
        MAX_ANSWERS_PER_DAY - 1
    } else {
        MAX_ANSWERS_PER_DAY
    }
}

/// The first SMS of an invitation that asks for the phone type.
fn start_text(project: &Project, invitation: &RegistrationRecord) -> String {
    let texts = project.texts(invitation.language);
    sms::sent(
        sms::ask_phone_type(&texts, project.title()),
        project.sms.smart_encoding,
    )
}

fn join_instructions(project: &Project, invitation: &RegistrationRecord) -> String {
    let texts = project.texts(invitation.language);
    let text = sms::join_instructions(&texts, project.title(), &project.name);
    sms::sent(text, project.sms.smart_encoding)
}
