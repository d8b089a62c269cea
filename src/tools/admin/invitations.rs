//! `list-invitations`, `mark-registered`, `list-workers` and `usage`: what became of a
//! project's invitations.

use serde_json::json;

use super::context::{Admin, Failure, check_domain, failed, require_project, usage};
use crate::adapters::dynamodb::MarkRegistered;
use crate::domain::PhoneNumber;
use crate::domain::invitation::{ClaimRules, DeliveryFilter, ShownStatus};
use crate::domain::time::rfc3339;
use crate::domain::window::{SendWindow, why_waiting};
use crate::ports::{DeliveryLog, Directory, InvitationStore, ListQuery};

impl Admin {
    /// `smsreg-admin list-invitations`.
    pub(super) async fn list_invitations(
        &self,
        domain: String,
        status: Option<String>,
        delivery: Option<String>,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        let status = status.as_deref().and_then(ShownStatus::parse);
        let delivery = delivery.as_deref().and_then(DeliveryFilter::parse);
        let mut query = ListQuery {
            domain: domain.clone(),
            status,
            now: self.clock.now(),
            limit: 100,
            after: None,
        };
        // A queued invitation says why it has not gone: the project's window, its
        // send_at, or the queue.
        let window = match self.store.project(&domain).await.map_err(failed)? {
            Some(project) => project.sms.send_window,
            None => SendWindow::Any,
        };
        loop {
            let page = self.store.list(&query).await.map_err(failed)?;
            for r in &page.items {
                if delivery.is_none_or(|d| DeliveryFilter::of(r.delivery.as_ref()) == d) {
                    let mut listed = r.listed(query.now);
                    if r.shown_status(query.now) == ShownStatus::Queued {
                        listed["waiting"] =
                            why_waiting(window, &r.phone, r.scheduled_for, query.now).into();
                    }
                    println!("{listed}");
                }
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        Ok(())
    }

    /// `smsreg-admin usage`.
    pub(super) async fn day_usage(
        &self,
        domain: String,
        day: Option<String>,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        let day = match day {
            Some(day) if crate::domain::time::day_start(&day).is_some() => day,
            Some(day) => return Err(usage(format!("--day must be YYYY-MM-DD, not {day:?}"))),
            None => crate::domain::time::utc_day(self.clock.now()),
        };
        let usage_of_day = self.store.day_usage(&domain, &day).await.map_err(failed)?;
        let line = json!({
            "domain": domain,
            "day": day,
            "invitations": usage_of_day.invitations,
            "sms_sent": usage_of_day.sms_sent,
            "parts_sent": usage_of_day.parts_sent,
            "delivered": usage_of_day.delivered,
            "delivery_failed": usage_of_day.delivery_failed,
            "parts_delivered": usage_of_day.parts_delivered,
            "price_usd": (usage_of_day.price_usd * 1e6).round() / 1e6,
        });
        println!("{line}");
        Ok(())
    }

    /// `smsreg-admin list-workers`.
    pub(super) async fn list_workers(&self, domain: String) -> Result<(), Failure> {
        check_domain(&domain)?;
        for worker in self.store.list_workers(&domain).await.map_err(failed)? {
            let line = json!({
                "username": worker.username,
                "phone_number": worker.phone.as_str(),
                "email": worker.email,
                "app_id": worker.app_id,
                "custom_user_data": worker.custom_user_data,
                "registered_at": rfc3339(worker.registered_at),
            });
            println!("{line}");
        }
        Ok(())
    }

    /// `smsreg-admin mark-registered`.
    pub(super) async fn mark_registered(
        &self,
        domain: String,
        phone: String,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        let phone = PhoneNumber::parse(&phone)
            .map_err(|e| usage(format!("invalid phone number {phone:?}: {e}")))?;
        require_project(&self.store, &domain).await?;
        let now = self.clock.now();
        let rules = ClaimRules {
            domain: &domain,
            now,
            stale_before: now.saturating_sub(self.config.claim_stale_after.as_secs()),
        };
        match self
            .store
            .mark_registered(&domain, &phone, rules)
            .await
            .map_err(failed)?
        {
            MarkRegistered::Registered => println!("{phone} registered in project {domain}"),
            MarkRegistered::InUseElsewhere => {
                return Err(failed(format!("{phone} is in use by another project")));
            }
        }
        Ok(())
    }
}
