//! Sending the install link again to a list of numbers (no new invitation).

use std::time::Instant;

use tracing::{debug, info, warn};

use super::deadline::cut_off_error;
use super::invite::OptOutCheck;
use super::{AccessError, RegistrationService, Step, split_settled};
use crate::domain::job::{JobKind, Schedule, SmsJob};
use crate::domain::outcome::ReinstallReport;
use crate::domain::request::ReinstallRequest;
use crate::domain::sms::{PLAY_STORE_URL, as_sent, reinstall_texts};
use crate::domain::{FieldErrors, InviteOutcome, Project, RegistrationStatus, UserEntry};
use crate::ports::{JobQueue, Store};

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    pub fn validate_reinstall(
        &self,
        project: &Project,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ReinstallRequest, FieldErrors> {
        ReinstallRequest::validate(body, self.validation_context(project), PLAY_STORE_URL)
    }

    /// Sends the install link again to each number of the request, counted against the
    /// project's daily limit (all or none up front; what was not sent is given back).
    pub async fn reinstall(
        &self,
        project: &Project,
        request: ReinstallRequest,
        deadline: Option<Instant>,
    ) -> Result<ReinstallReport, AccessError> {
        let until = self.work_until(deadline);
        let (reservation, opted_out) = self
            .reserve_and_look_up(project, &request.users, until)
            .await?;
        let report = self
            .reinstall_numbers(project, request, &opted_out, deadline)
            .await;
        self.settle(project, reservation, report.success_numbers.len())
            .await;
        Ok(report)
    }

    /// Queues the install link again for each number of the request (a Google Play
    /// message, then the app's install-link SMS), unless the number is registered in
    /// another project.
    async fn reinstall_numbers(
        &self,
        project: &Project,
        request: ReinstallRequest,
        opted_out: &OptOutCheck,
        deadline: Option<Instant>,
    ) -> ReinstallReport {
        let install_url = project
            .app(&request.app_id)
            .and_then(|app| app.install_url.as_deref());
        let texts = as_sent(
            reinstall_texts(
                &project.texts(None),
                project.title(),
                request.reinstall_message.as_deref(),
                install_url,
            ),
            request.smart_encoding,
        );
        // The install link goes in the project's send window too, and not before send_at.
        let schedule = Schedule::new(request.send_at, project.sms.send_window);
        let until = self.work_until(deadline);
        let checked: Vec<Step<SmsJob>> = self
            .in_order((0..request.users.len()).map(|i| {
                self.reinstall_check(
                    project,
                    &request.users[i],
                    &texts,
                    schedule,
                    opted_out,
                    until,
                )
            }))
            .await;
        let (mut outcomes, jobs) = split_settled(checked);
        let (places, jobs): (Vec<usize>, Vec<SmsJob>) = jobs.into_iter().unzip();
        let mut queued = self.enqueue_all(&jobs, until).await;
        // A `SendMessageBatch` cut off by the deadline may have put its jobs on the queue:
        // they are sent again in the margin left, the same jobs (the sender sends a job's
        // SMS once, by its id, however many copies arrive), so that no number whose job may
        // be on the queue is reported an error unless this second send fails too.
        let cut: Vec<usize> = (0..queued.len())
            .filter(|&k| matches!(&queued[k], Err(e) if *e == cut_off_error()))
            .collect();
        if !cut.is_empty() {
            let finish_by = deadline.map(|d| d - self.config.deadline_margin / 4);
            let again = self
                .enqueue_all(
                    &cut.iter().map(|&k| jobs[k].clone()).collect::<Vec<_>>(),
                    finish_by,
                )
                .await;
            for (k, result) in cut.into_iter().zip(again) {
                queued[k] = result;
            }
        }
        let sms = self.queued_summary(&jobs, &queued);
        for ((i, job), result) in places.into_iter().zip(&jobs).zip(queued) {
            let phone = job.phone.as_str().to_owned();
            outcomes[i] = Some(match result {
                Ok(()) => InviteOutcome::Success(phone),
                Err(error) => {
                    warn!(phone = %job.masked_phone(), %error, "reinstall SMS not queued");
                    InviteOutcome::Error(phone)
                }
            });
        }
        let mut report: ReinstallReport = outcomes.into_iter().flatten().collect();
        report.sms = sms;
        info!(
            users = request.users.len(),
            success = report.success_numbers.len(),
            invalid_format = report.invalid_format_numbers.len(),
            errors = report.error_numbers.len(),
            opted_out = report.opted_out_numbers.len(),
            "reinstall links queued"
        );
        report
    }

    /// Checks one number of a reinstall request, and makes its job.
    async fn reinstall_check(
        &self,
        project: &Project,
        user: &UserEntry,
        texts: &[String],
        schedule: Schedule,
        opted_out: &OptOutCheck,
        until: Option<Instant>,
    ) -> Step<SmsJob> {
        let phone = match self.first_checks(user, opted_out, until) {
            Step::GoOn(phone) => phone,
            Step::Settled(outcome) => return Step::Settled(outcome),
        };
        let number = phone.as_str().to_owned();
        match self.bounded(until, self.store.find(phone)).await {
            Some(Ok(Some(r)))
                if r.status == RegistrationStatus::Registered && r.domain != project.name =>
            {
                debug!(phone = %phone.masked(), "registered in another project");
                return Step::Settled(InviteOutcome::Error(number));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                warn!(phone = %phone.masked(), %error, "lookup failed");
                return Step::Settled(InviteOutcome::Error(number));
            }
            None => return Step::Settled(InviteOutcome::Error(number)),
        }
        Step::GoOn(SmsJob {
            id: SmsJob::new_id(),
            domain: project.name.clone(),
            phone: phone.clone(),
            texts: texts.to_vec(),
            kind: JobKind::Message,
            schedule,
            max_price_per_part: project.sms.max_price_per_part.clone(),
        })
    }
}
