//! `sms-settings` and `check-sms`: the AWS account's SMS, outside any project's table.

use super::context::{Admin, Failure, check_domain, failed, usage};
use crate::ports::Directory;

impl Admin {
    /// `smsreg-admin check-sms`.
    pub(super) async fn check_sms(
        &self,
        phone: String,
        domain: Option<String>,
    ) -> Result<(), Failure> {
        use crate::adapters::end_user_messaging::DryRun;
        let crate::wiring::DeployedSms::EndUserMessaging(provider) =
            crate::wiring::sms_provider(&self.aws, &self.config)
        else {
            return Err(usage(
                "check-sms asks End User Messaging SMS: set SMS_PROVIDER=end-user-messaging \
                 (and SMS_ORIGINATION_IDENTITY, SMS_CONFIGURATION_SET as the stack does)",
            ));
        };
        let phone = crate::domain::PhoneNumber::parse(&phone)
            .map_err(|_| usage(format!("{phone:?} is not a valid phone number")))?;
        let max_price = match &domain {
            Some(domain) => {
                check_domain(domain)?;
                let project = self
                    .store
                    .project(domain)
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| failed(format!("no project {domain}")))?;
                project.sms.max_price_per_part
            }
            None => None,
        };
        let text = "smsreg check-sms: a dry run, never sent";
        let job_id = crate::domain::job::SmsJob::new_id();
        let sms = crate::ports::Outgoing {
            to: &phone,
            text,
            max_price_per_part: max_price.as_deref(),
            context: crate::ports::SmsContext {
                project: domain.as_deref().unwrap_or("check-sms"),
                batch: None,
                job: &job_id,
            },
        };
        let answer = provider.dry_run(&sms).await.map_err(|e| {
            failed(format!(
                "End User Messaging did not answer the dry run: {}",
                e.code
            ))
        })?;
        let phone = phone.masked().to_string();
        match answer {
            DryRun::WouldSend(_) => {
                println!(
                    "{}",
                    serde_json::json!({"phone": phone, "would_send": true, "max_price_per_part": max_price})
                );
                Ok(())
            }
            DryRun::WouldRefuse(error) => {
                let outcome = match error.failure {
                    crate::ports::SmsFailure::OptedOut => "opted_out",
                    crate::ports::SmsFailure::Suspended => "held",
                    _ => "failed",
                };
                println!(
                    "{}",
                    serde_json::json!({"phone": phone, "would_send": false, "reason": error.code,
                        "invitation_would_be": outcome, "max_price_per_part": max_price})
                );
                Err(Failure(
                    String::from("End User Messaging would refuse this SMS"),
                    1,
                ))
            }
        }
    }

    /// `smsreg-admin sms-settings`.
    pub(super) async fn sms_settings(
        &self,
        delivery_status_role: String,
        success_sampling: u8,
    ) -> Result<(), Failure> {
        if !delivery_status_role.starts_with("arn:") || !delivery_status_role.contains(":role/") {
            return Err(usage(format!(
                "--delivery-status-role must be an IAM role ARN, not {delivery_status_role:?}"
            )));
        }
        let sns = aws_sdk_sns::Client::new(&self.aws);
        crate::adapters::sns::log_delivery_status(&sns, &delivery_status_role, success_sampling)
            .await
            .map_err(|code| failed(format!("SetSMSAttributes failed: {code}")))?;
        println!("DeliveryStatusIAMRole={delivery_status_role}");
        println!("DeliveryStatusSuccessSamplingRate={success_sampling}");
        Ok(())
    }
}
