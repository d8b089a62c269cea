//! Inviting a list of numbers: each number claimed with a conditional write, one send job
//! per claimed number on the queue, the batch recorded; what did not reach the queue undone.

use std::collections::HashSet;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::deadline::cut_off_error;
use super::deadline::deadline_error;
use super::{AccessError, RegistrationService, Reservation, Step, split_settled};
use crate::domain::encoding::measure;
use crate::domain::invitation::{ClaimRules, PhoneType, RegistrationLinks};
use crate::domain::job::{JobKind, Schedule, SmsJob};
use crate::domain::outcome::{SendEstimate, SmsSummary};
use crate::domain::sms::InvitationSms;
use crate::domain::time::rfc3339;
use crate::domain::{
    FieldErrors, Invitation, InviteOutcome, PhoneNumber, Project, RegistrationReport,
    RegistrationRequest, RegistrationStatus, RequestedNumber, UserEntry,
};
use crate::ports::{BatchRecord, Claim, JobQueue, QueueError, Store};

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    pub fn validate(
        &self,
        project: &Project,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<RegistrationRequest, FieldErrors> {
        RegistrationRequest::validate(body, self.validation_context(project))
    }

    /// Invites every number of the request, counted against the project's daily limit
    /// (all or none up front; what was not sent is given back): see [`Self::invite_numbers`].
    pub async fn invite(
        &self,
        project: &Project,
        request: RegistrationRequest,
        deadline: Option<Instant>,
    ) -> Result<RegistrationReport, AccessError> {
        let until = self.work_until(deadline);
        let (reservation, opted_out) = self
            .reserve_and_look_up(project, &request.users, until)
            .await?;
        let report = self
            .invite_numbers(project, request, &opted_out, deadline)
            .await;
        self.settle(project, reservation, report.success_numbers.len())
            .await;
        Ok(report)
    }

    /// Claims each number (`concurrency` at a time), puts one send job per claimed number
    /// on the queue (10 per call), and records the batch. A number whose job did not reach
    /// the queue, or that the deadline cut off, is undone and reported in `error_numbers`.
    async fn invite_numbers(
        &self,
        project: &Project,
        request: RegistrationRequest,
        opted_out: &OptOutCheck,
        deadline: Option<Instant>,
    ) -> RegistrationReport {
        let until = self.work_until(deadline);
        let batch_id = SmsJob::new_id();
        let claims: Vec<Step<Claimed<St::Previous>>> = self
            .in_order(
                (0..request.users.len())
                    .map(|i| self.claim_one(project, &request, i, &batch_id, opted_out, until)),
            )
            .await;
        let (mut outcomes, claimed) = split_settled(claims);
        let (claimed, jobs): (Vec<_>, Vec<_>) = claimed
            .into_iter()
            .map(|(i, c)| ((i, c.claim), c.job))
            .unzip();
        let queued = self.enqueue_all(&jobs, until).await;
        let sms = self.queued_summary(&jobs, &queued);
        let mut on_queue = Vec::new();
        let mut undo = Vec::new();
        for ((i, c), result) in claimed.into_iter().zip(queued) {
            match result {
                Ok(()) => {
                    outcomes[i] = Some(InviteOutcome::Success(
                        c.invitation.phone.as_str().to_owned(),
                    ));
                    on_queue.push(c.invitation);
                }
                Err(error) => {
                    warn!(phone = %c.invitation.phone.masked(), %error, "job not queued; undoing the claim");
                    outcomes[i] =
                        Some(InviteOutcome::Error(c.invitation.phone.as_str().to_owned()));
                    undo.push(c);
                }
            }
        }
        // Recorded, and undone, within the margin left before the deadline.
        let undo_until = deadline.map(|d| d - self.config.deadline_margin / 4);
        if !on_queue.is_empty() {
            let now = self.clock.now();
            let batch = BatchRecord {
                id: batch_id.clone(),
                domain: project.name.clone(),
                queued_at: now,
                // Its invitations' lifetimes count from their sends: a week's hold at most.
                expires_at: now
                    + crate::domain::request::MAX_SEND_AT_AHEAD_SECONDS
                    + 2 * 24 * 3600
                    + self.config.invitation_lifetime.as_secs(),
                queued: on_queue
                    .iter()
                    .map(|i| i.token.as_str().to_owned())
                    .collect(),
                scheduled: on_queue
                    .iter()
                    .filter(|i| i.scheduled_for.is_some())
                    .count() as u64,
            };
            match self
                .bounded(undo_until, self.store.record_batch(&batch))
                .await
            {
                Some(Ok(())) => {}
                // The sender records each job it takes; until then such a claim no longer
                // holds its number once stale, and its job is dropped if the number is
                // taken meanwhile.
                Some(Err(error)) => warn!(%error, "could not record the batch"),
                None => warn!("the deadline cut off recording the batch"),
            }
        }
        self.in_order(
            undo.into_iter()
                .map(|c| self.undo_claim(c.invitation, c.previous, undo_until)),
        )
        .await;
        let mut report: RegistrationReport = outcomes.into_iter().flatten().collect();
        if !report.success_numbers.is_empty() {
            report.batch_id = Some(batch_id);
            report.sms = sms;
        }
        info!(
            users = request.users.len(),
            success = report.success_numbers.len(),
            invalid_format = report.invalid_format_numbers.len(),
            in_use = report.numbers_in_use.len(),
            errors = report.error_numbers.len(),
            opted_out = report.opted_out_numbers.len(),
            "invitations recorded and queued"
        );
        crate::metrics::Metrics::new("api")
            .count("InvitationsQueued", report.success_numbers.len())
            .count("InvitationsInUse", report.numbers_in_use.len())
            .count("InvitationsInvalid", report.invalid_format_numbers.len())
            .count("InvitationsOptedOut", report.opted_out_numbers.len())
            .count("InvitationsErrors", report.error_numbers.len())
            .emit();
        report
    }

    /// Puts back what a claim replaced (or removes the claim), if it is still ours.
    async fn undo_claim(
        &self,
        invitation: Invitation,
        previous: Option<St::Previous>,
        until: Option<Instant>,
    ) {
        match self
            .bounded(until, self.store.release(&invitation, previous))
            .await
        {
            Some(Ok(())) => {}
            // Never marked queued, the claim turns stale and claimable.
            Some(Err(error)) => {
                warn!(phone = %invitation.phone.masked(), %error, "undoing the claim failed")
            }
            None => {
                warn!(phone = %invitation.phone.masked(), "the deadline cut off undoing the claim")
            }
        }
    }

    /// Claims one number of the request, and makes its job.
    async fn claim_one(
        &self,
        project: &Project,
        request: &RegistrationRequest,
        index: usize,
        batch_id: &str,
        opted_out: &OptOutCheck,
        until: Option<Instant>,
    ) -> Step<Claimed<St::Previous>> {
        let user = &request.users[index];
        let phone = match self.first_checks(user, opted_out, until) {
            Step::GoOn(phone) => phone,
            Step::Settled(outcome) => return Step::Settled(outcome),
        };
        let number = phone.as_str().to_owned();

        let now = self.clock.now();
        let schedule = Schedule::new(request.send_at, project.sms.send_window);
        let scheduled_for = schedule.hold_until(phone, now);
        let invitation = Invitation {
            scheduled_for,
            app_id: Some(request.app_id.clone()),
            android_only: request.android_only,
            require_email: request.require_email,
            custom_user_data: user.custom_user_data.clone(),
            language: user.language.or(request.language),
            phone_type: request.android_only.then_some(PhoneType::Android),
            batch_id: Some(batch_id.to_owned()),
            ..Invitation::new(
                &project.name,
                phone.clone(),
                RegistrationStatus::Queued,
                now,
                // The lifetime counts from the send.
                scheduled_for.unwrap_or(now) + self.config.invitation_lifetime.as_secs(),
            )
        };
        let rules = ClaimRules {
            domain: &project.name,
            now,
            stale_before: now.saturating_sub(self.config.claim_stale_after.as_secs()),
        };
        let previous = match self
            .bounded(until, self.store.claim(&invitation, rules))
            .await
        {
            Some(Ok(Claim::Taken { previous })) => previous,
            Some(Ok(Claim::InUse)) => {
                debug!(phone = %phone.masked(), "number in use");
                return Step::Settled(InviteOutcome::InUse(number));
            }
            Some(Err(error)) => {
                warn!(phone = %phone.masked(), %error, "claim failed");
                return Step::Settled(InviteOutcome::Error(number));
            }
            None => {
                // It may have been written: undone (what it replaced is not known).
                warn!(phone = %phone.masked(), "the deadline cut off the claim; undoing it");
                self.undo_claim(invitation, None, None).await;
                return Step::Settled(InviteOutcome::Error(number));
            }
        };

        let links = RegistrationLinks::new(
            &self.config.public_base_url,
            &project.name,
            &invitation.token,
        );
        let texts = InvitationSms {
            texts: project.texts(invitation.language),
            project_title: project.title(),
            android_only: request.android_only,
            custom_message: request.custom_registration_message.as_deref(),
            links: &links,
            install_url: project
                .app(&request.app_id)
                .and_then(|app| app.install_url.as_deref()),
            smart_encoding: request.smart_encoding,
        }
        .compose();
        let job = SmsJob {
            id: SmsJob::new_id(),
            domain: project.name.clone(),
            phone: phone.clone(),
            texts,
            kind: JobKind::Invitation {
                token: invitation.token.as_str().to_owned(),
                created_at: now,
                previous: previous.as_ref().map(|p| self.store.encode_previous(p)),
                batch_id: Some(batch_id.to_owned()),
            },
            schedule,
            max_price_per_part: project.sms.max_price_per_part.clone(),
        };
        Step::GoOn(Claimed {
            claim: Undo {
                invitation,
                previous,
            },
            job,
        })
    }

    /// The checks every number of a request goes through first: a valid number, not opted
    /// out (its lookup answered), and time left before the deadline.
    pub(super) fn first_checks<'u>(
        &self,
        user: &'u UserEntry,
        opted_out: &OptOutCheck,
        until: Option<Instant>,
    ) -> Step<&'u PhoneNumber> {
        let phone = match &user.number {
            RequestedNumber::Invalid(raw) => {
                return Step::Settled(InviteOutcome::InvalidFormat(raw.clone()));
            }
            RequestedNumber::Valid(phone) => phone,
        };
        if let Some(settled) = opted_out.outcome(phone.as_str()) {
            return Step::Settled(settled);
        }
        if self.too_late(until) {
            warn!(phone = %phone.masked(), "not started: the Lambda deadline is too close");
            return Step::Settled(InviteOutcome::Error(phone.as_str().to_owned()));
        }
        Step::GoOn(phone)
    }

    /// Which of the request's numbers opted out: one lookup per 100 numbers, `concurrency`
    /// at a time. A lookup that fails leaves its numbers unknown (each then an error).
    /// Counts the request's numbers against the daily limit and, at the same time, looks
    /// up which of them opted out: one round trip before the claims instead of two. If the
    /// limit turns the request away, the lookup was a read for nothing, and nothing changed.
    pub(super) async fn reserve_and_look_up(
        &self,
        project: &Project,
        users: &[UserEntry],
        until: Option<Instant>,
    ) -> Result<(Reservation, OptOutCheck), AccessError> {
        let (reservation, opted_out) = tokio::join!(
            self.reserve_invitations(project, users),
            self.opted_out_among(users, until)
        );
        Ok((reservation?, opted_out))
    }

    async fn opted_out_among(&self, users: &[UserEntry], until: Option<Instant>) -> OptOutCheck {
        let phones: Vec<PhoneNumber> = users
            .iter()
            .filter_map(|u| match &u.number {
                RequestedNumber::Valid(phone) => Some(phone.clone()),
                RequestedNumber::Invalid(_) => None,
            })
            .collect();
        let chunks: Vec<Vec<PhoneNumber>> =
            phones.chunks(St::MAX_LOOKUP).map(<[_]>::to_vec).collect();
        let results = self
            .in_order(
                chunks
                    .into_iter()
                    .map(|chunk| self.opted_out_chunk(chunk, until)),
            )
            .await;
        let mut check = OptOutCheck::default();
        for (chunk, found) in results {
            match found {
                Some(found) => check.opted_out.extend(found),
                None => check
                    .unknown
                    .extend(chunk.iter().map(|p| p.as_str().to_owned())),
            }
        }
        check
    }

    async fn opted_out_chunk(
        &self,
        chunk: Vec<PhoneNumber>,
        until: Option<Instant>,
    ) -> (Vec<PhoneNumber>, Option<HashSet<String>>) {
        if self.too_late(until) {
            return (chunk, None);
        }
        match self.bounded(until, self.store.opted_out(&chunk)).await {
            Some(Ok(found)) => (chunk, Some(found)),
            Some(Err(error)) => {
                warn!(%error, numbers = chunk.len(), "opt-out lookup failed");
                (chunk, None)
            }
            None => (chunk, None),
        }
    }

    /// Puts jobs on the send queue, 10 per call, `concurrency` calls at a time; one
    /// result per job, in order. A call cut off by the deadline fails its jobs.
    pub(super) async fn enqueue_all(
        &self,
        jobs: &[SmsJob],
        until: Option<Instant>,
    ) -> Vec<Result<(), QueueError>> {
        let results: Vec<Vec<Result<(), QueueError>>> = self
            .in_order((0..jobs.len()).step_by(Q::MAX_BATCH).map(|start| {
                // By index: a future borrowing `jobs` itself, not a closure argument.
                let end = (start + Q::MAX_BATCH).min(jobs.len());
                self.enqueue_chunk(&jobs[start..end], until)
            }))
            .await;
        results.into_iter().flatten().collect()
    }

    async fn enqueue_chunk(
        &self,
        chunk: &[SmsJob],
        until: Option<Instant>,
    ) -> Vec<Result<(), QueueError>> {
        if self.too_late(until) {
            return vec![Err(deadline_error()); chunk.len()];
        }
        match self.bounded(until, self.queue.enqueue(chunk)).await {
            Some(results) => results,
            // Sent, perhaps received: its jobs may be on the queue.
            None => vec![Err(cut_off_error()); chunk.len()],
        }
    }
}

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// What the SMS of the jobs that reached the queue cost on the air, and when the
    /// first and the last are expected to go (see `SendEstimate`).
    pub(super) fn queued_summary(
        &self,
        jobs: &[SmsJob],
        queued: &[Result<(), QueueError>],
    ) -> Option<SmsSummary> {
        let on_queue: Vec<&SmsJob> = jobs
            .iter()
            .zip(queued)
            .filter(|(_, q)| q.is_ok())
            .map(|(job, _)| job)
            .collect();
        let mut summary = SmsSummary::of(
            on_queue
                .iter()
                .flat_map(|job| job.texts.iter().map(String::as_str)),
        )?;
        let now = self.clock.now();
        let moments = on_queue
            .iter()
            .map(|job| {
                let at = job.schedule.hold_until(&job.phone, now).unwrap_or(now);
                let parts = job.texts.iter().map(|t| measure(t).parts).sum();
                (at, parts)
            })
            .collect();
        let interval = super::pace::interval_us(self.config.sms_rate_per_second);
        if let Some(estimate) = SendEstimate::of(moments, interval) {
            summary.first_at = Some(rfc3339(estimate.first_at));
            summary.last_at = Some(rfc3339(estimate.last_at));
        }
        Some(summary)
    }
}

/// The request's numbers that opted out, and those whose lookup failed.
#[derive(Default)]
pub(super) struct OptOutCheck {
    opted_out: HashSet<String>,
    unknown: HashSet<String>,
}

impl OptOutCheck {
    /// The outcome already settled for a number, if any.
    pub(super) fn outcome(&self, number: &str) -> Option<InviteOutcome> {
        if self.opted_out.contains(number) {
            debug!("number opted out");
            Some(InviteOutcome::OptedOut(number.to_owned()))
        } else if self.unknown.contains(number) {
            Some(InviteOutcome::Error(number.to_owned()))
        } else {
            None
        }
    }
}

/// A number claimed, with its job, waiting to be queued.
struct Claimed<P> {
    claim: Undo<P>,
    job: SmsJob,
}

/// What undoing a claim needs: the invitation written and what it replaced.
struct Undo<P> {
    invitation: Invitation,
    previous: Option<P>,
}
