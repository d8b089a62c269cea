//! The admin CLI `smsreg-admin`: provisions projects, apps and keys, and inspects invitations.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Parser, Subcommand};
use serde_json::json;

use crate::adapters::dynamodb::{DynamoStore, MarkRegistered, ProjectUpdate};
use crate::adapters::load_aws_config;
use crate::config::Config;
use crate::domain::encoding::{Encoding, measure};
use crate::domain::invitation::{ClaimRules, DeliveryFilter, ShownStatus};
use crate::domain::project::{
    MAX_DISPLAY_NAME_UNITS, check_display_name, generate_key, hash_key, is_valid_project_name,
};
use crate::domain::time::rfc3339;
use crate::domain::window::{SendWindow, why_waiting};
use crate::domain::{ApiKey, App, PhoneNumber, Plan};
use crate::ports::{Clock, DeliveryLog, Directory, InvitationStore, ListQuery, SystemClock};
use crate::service::receipts::{Receipts, ReceiptsReport};

/// Longest app id: an app's item key must stay far below DynamoDB's key limit.
const MAX_APP_ID_BYTES: usize = 128;

/// Administers the SMS registration service's table: projects ("domains"), apps, API keys
/// and invitations. Reads TABLE_NAME, AWS_ENDPOINT_URL, AWS_REGION and the usual AWS
/// credentials from the environment, as the function does.
#[derive(Debug, Parser)]
#[command(name = "smsreg-admin", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the table with its index and TTL (does nothing if it exists).
    CreateTable,
    /// Creates the send queue and its dead-letter queue NAME-dlq (for local use: on AWS
    /// the stack creates them). Idempotent. The last line printed is the queue URL, for
    /// SEND_QUEUE_URL.
    CreateQueue {
        #[arg(long, default_value = "smsreg-send")]
        name: String,
        /// Receives of a job before it moves to the dead-letter queue (maxReceiveCount): a
        /// safety net well above SEND_MAX_ATTEMPTS, as the stack's 50.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_attempts: u32,
        /// Seconds a received job stays hidden from other receivers.
        #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u32).range(0..=43200))]
        visibility_timeout: u32,
    },
    /// Creates or updates a project.
    PutDomain(PutDomainArgs),
    /// Creates or updates an app of a project.
    PutApp {
        domain: String,
        app_id: String,
        #[arg(long)]
        name: String,
        /// Link from which the CommCare app installs it; sent by SMS to Android workers.
        #[arg(long)]
        install_url: Option<String>,
    },
    /// Creates (or replaces) the API key of a user in a project; prints USERNAME:KEY.
    CreateKey {
        domain: String,
        username: String,
        /// A key without the edit_data permission (cannot create invitations).
        #[arg(long)]
        read_only: bool,
        /// Reads the key from stdin instead of generating one (at least 24 printable
        /// characters): for local fixtures such as the keys in events/. Never on AWS.
        #[arg(long)]
        key_from_stdin: bool,
    },
    /// Revokes the API key of a user in a project.
    RevokeKey { domain: String, username: String },
    /// Lists a project's invitations, newest first, one JSON object per line.
    ListInvitations {
        domain: String,
        #[arg(long, value_parser = ShownStatus::NAMES)]
        status: Option<String>,
        /// Only those whose first SMS's receipt says this.
        #[arg(long, value_parser = ["unknown", "delivered", "failed"])]
        delivery: Option<String>,
    },
    /// Sets the account's SNS SMS attributes that make SNS log each SMS's delivery status
    /// to CloudWatch Logs (an account setting, for the region, not a stack resource).
    SmsSettings {
        /// The role SNS writes the delivery status logs with (the stack's output
        /// SmsDeliveryStatusRoleArn).
        #[arg(long)]
        delivery_status_role: String,
        /// Percent of successful SMS logged (failures always are).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
        success_sampling: u8,
    },
    /// A project's day: invitations, SMS sent, delivered, failed and their cost.
    Usage {
        domain: String,
        /// The UTC day, YYYY-MM-DD (default: today).
        #[arg(long)]
        day: Option<String>,
    },
    /// Records the receipts of log batches that the receipts function failed at every try,
    /// from its on-failure queue (the stack's output ReceiptsFailedQueueUrl). A batch is
    /// deleted from the queue once recorded; receipts recorded before count once.
    ReplayReceipts {
        #[arg(long)]
        queue_url: String,
    },
    /// Publishes the events of stream batches that the events function failed at every
    /// try, from its on-failure queue (the stack's output EventsFailedQueueUrl), on
    /// EVENT_BUS_NAME. Each batch is read again from the table's stream (24 hours), or,
    /// once the stream no longer has it, its outbox items from the table (14 days).
    /// Deleted from the queue once every event is on the bus; an event published before is
    /// published again with the same event_id.
    ReplayEvents {
        #[arg(long)]
        queue_url: String,
    },
    /// Records that the worker behind a number registered in the project.
    MarkRegistered { domain: String, phone: String },
    /// Asks End User Messaging SMS what it would do with an invitation SMS to PHONE (a
    /// `DryRun`: free, nothing sent), from the deployment's origination identity and
    /// configuration set (SMS_PROVIDER=end-user-messaging and the SMS_* settings). Prints
    /// one JSON line; exits 1 when it would be refused.
    CheckSms {
        phone: String,
        /// The project whose price cap (`--max-price-per-part`) applies, if any.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Lists a project's worker accounts, one JSON object per line (no password hashes).
    ListWorkers { domain: String },
}

/// `put-domain`'s arguments.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("feature").required(true).args(["enable", "disable"])))]
struct PutDomainArgs {
    /// Project name: lowercase letters, digits and hyphens.
    domain: String,
    /// COMMUNITY, STANDARD, PRO, ADVANCED or ENTERPRISE (the API needs PRO or higher).
    #[arg(long, value_parser = clap::value_parser!(PlanArg))]
    plan: PlanArg,
    /// Turns SMS mobile worker registration on.
    #[arg(long)]
    enable: bool,
    /// Turns SMS mobile worker registration off.
    #[arg(long)]
    disable: bool,
    /// The name workers see in SMS (defaults to the project name): at most 30
    /// characters, so that every default SMS stays in one part.
    #[arg(long, value_parser = parse_display_name)]
    display_name: Option<String>,
    /// Countries the project may text, as ISO codes (`US,CA,KE`); "" allows all.
    /// Unset keeps the current list (new projects: all countries).
    #[arg(long, value_parser = parse_countries)]
    allowed_countries: Option<CountryList>,
    /// Most invitations per UTC day (new projects: 1000). Unset keeps the current limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    daily_invitation_limit: Option<u32>,
    /// Replace characters that have a GSM-7 look-alike (curly quotes, dashes, ...) so
    /// that an SMS is not sent as UCS-2 for them: on or off (new projects: on). Unset
    /// keeps the current setting.
    #[arg(long, value_parser = parse_on_off)]
    smart_encoding: Option<bool>,
    /// Most parts one SMS of a custom message may take, 1 to 11 (new projects: 3);
    /// a longer message is refused with a 400. Unset keeps the current setting.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=11))]
    max_parts_per_sms: Option<u32>,
    /// Hours of the worker's local day (from the number's time zone) in which
    /// invitations go, HH:MM-HH:MM, or any (new projects: 08:00-21:00). Unset keeps
    /// the current window.
    #[arg(long, value_parser = clap::value_parser!(SendWindow))]
    send_window: Option<SendWindow>,
    /// The most one part of an SMS may cost, in USD (0.05), or off (new projects: off).
    /// With End User Messaging, a dearer SMS (a premium-rate destination) is refused,
    /// not billed, and its invitation `failed`; SNS takes no cap. Unset keeps the cap.
    #[arg(long, value_parser = parse_max_price)]
    max_price_per_part: Option<MaxPrice>,
}

/// A price cap as given on the command line: `off`, or a price.
#[derive(Debug, Clone)]
struct MaxPrice(Option<String>);

fn parse_max_price(value: &str) -> Result<MaxPrice, String> {
    if value == "off" {
        return Ok(MaxPrice(None));
    }
    crate::domain::project::check_max_price(value).map(|()| MaxPrice(Some(value.to_owned())))
}

/// Country codes as given on the command line.
#[derive(Debug, Clone)]
struct CountryList(Vec<String>);

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, not {value:?}")),
    }
}

fn parse_display_name(name: &str) -> Result<String, String> {
    check_display_name(name).map(|()| name.to_owned())
}

fn parse_countries(list: &str) -> Result<CountryList, String> {
    crate::domain::project::parse_country_list(list).map(CountryList)
}

/// A plan as given on the command line.
#[derive(Debug, Clone, Copy)]
struct PlanArg(Plan);

impl std::str::FromStr for PlanArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(PlanArg)
            .map_err(|e: crate::domain::project::UnknownPlan| e.to_string())
    }
}

/// A failure to report on stderr, with the exit code to leave with.
struct Failure(String, u8);

fn usage(message: impl Into<String>) -> Failure {
    Failure(message.into(), 2)
}

fn failed(message: impl std::fmt::Display) -> Failure {
    Failure(message.to_string(), 1)
}

fn check_domain(domain: &str) -> Result<(), Failure> {
    if is_valid_project_name(domain) {
        Ok(())
    } else {
        Err(usage(format!(
            "invalid project name {domain:?}: use 1 to 63 lowercase letters, digits and hyphens"
        )))
    }
}

async fn require_project(store: &DynamoStore, domain: &str) -> Result<(), Failure> {
    match store.project(domain).await.map_err(failed)? {
        Some(_) => Ok(()),
        None => Err(failed(format!(
            "project {domain:?} does not exist: create it with put-domain first"
        ))),
    }
}

/// Records every failed log batch waiting on `queue_url`, deleting each once recorded;
/// prints what they came to. A message that is no failed batch stays on the queue.
async fn replay_receipts(
    aws: &aws_config::SdkConfig,
    store: DynamoStore,
    clock: Arc<dyn Clock>,
    queue_url: &str,
) -> Result<(), Failure> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let receipts: Receipts<DynamoStore, crate::wiring::DeployedSms> = Receipts::new(store, clock);
    let mut report = ReceiptsReport::default();
    let (mut batches, mut kept) = (0, 0);
    loop {
        let messages = super::receive_failed(&sqs, queue_url)
            .await
            .map_err(failed)?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let Some(lines) = message
                .body()
                .and_then(crate::functions::receipts::failed_batch_lines)
            else {
                eprintln!(
                    "smsreg-admin: message {} is not a failed log batch: left on the queue",
                    message.message_id().unwrap_or("?")
                );
                kept += 1;
                continue;
            };
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            receipts.record(&lines, &mut report).await.map_err(failed)?;
            super::delete_replayed(&sqs, queue_url, &message, "recorded")
                .await
                .map_err(failed)?;
            batches += 1;
        }
    }
    let mut line = report.to_json();
    line["batches"] = batches.into();
    line["left_on_queue"] = kept.into();
    println!("{line}");
    Ok(())
}

/// Runs the CLI; the `smsreg-admin` binary only calls this.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("smsreg-admin: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = Config::from_env().map_err(|e| usage(e.to_string()))?;
    let aws = load_aws_config().await;
    let store = DynamoStore::new(&aws, &config.table_name);
    let admin = Admin {
        aws,
        config,
        store,
        clock: Arc::new(SystemClock),
    };
    match cli.command {
        Command::CreateTable => admin.create_table().await,
        Command::CreateQueue {
            name,
            max_attempts,
            visibility_timeout,
        } => {
            admin
                .create_queue(name, max_attempts, visibility_timeout)
                .await
        }
        Command::PutDomain(args) => admin.put_domain(args).await,
        Command::PutApp {
            domain,
            app_id,
            name,
            install_url,
        } => admin.put_app(domain, app_id, name, install_url).await,
        Command::CreateKey {
            domain,
            username,
            read_only,
            key_from_stdin,
        } => {
            admin
                .create_key(domain, username, read_only, key_from_stdin)
                .await
        }
        Command::RevokeKey { domain, username } => admin.revoke_key(domain, username).await,
        Command::ListInvitations {
            domain,
            status,
            delivery,
        } => admin.list_invitations(domain, status, delivery).await,
        Command::SmsSettings {
            delivery_status_role,
            success_sampling,
        } => {
            admin
                .sms_settings(delivery_status_role, success_sampling)
                .await
        }
        Command::Usage { domain, day } => admin.day_usage(domain, day).await,
        Command::ReplayReceipts { queue_url } => admin.replay(queue_url).await,
        Command::ReplayEvents { queue_url } => {
            super::replay_events::replay(&admin.aws, &admin.config, &queue_url)
                .await
                .map_err(failed)
        }
        Command::ListWorkers { domain } => admin.list_workers(domain).await,
        Command::MarkRegistered { domain, phone } => admin.mark_registered(domain, phone).await,
        Command::CheckSms { phone, domain } => admin.check_sms(phone, domain).await,
    }
}

/// What every subcommand works with: the AWS configuration, the table and the clock.
struct Admin {
    aws: aws_config::SdkConfig,
    config: Config,
    store: DynamoStore,
    clock: Arc<dyn Clock>,
}

impl Admin {
    /// `smsreg-admin create-table`.
    async fn create_table(&self) -> Result<(), Failure> {
        let created = self.store.create_table().await.map_err(failed)?;
        let verb = if created { "created" } else { "already exists" };
        println!("table {} {verb}", self.store.table());
        Ok(())
    }

    /// `smsreg-admin create-queue`.
    async fn create_queue(
        &self,
        name: String,
        max_attempts: u32,
        visibility_timeout: u32,
    ) -> Result<(), Failure> {
        let client = aws_sdk_sqs::Client::new(&self.aws);
        let url =
            crate::adapters::sqs::create_queues(&client, &name, max_attempts, visibility_timeout)
                .await
                .map_err(failed)?;
        eprintln!("send queue {name} (dead-letter queue {name}-dlq after {max_attempts} receives)");
        println!("{url}");
        Ok(())
    }

    /// `smsreg-admin put-domain`.
    async fn put_domain(&self, args: PutDomainArgs) -> Result<(), Failure> {
        let PutDomainArgs {
            domain,
            plan,
            enable,
            disable: _,
            display_name,
            allowed_countries,
            daily_invitation_limit,
            smart_encoding,
            max_parts_per_sms,
            send_window,
            max_price_per_part,
        } = args;
        check_domain(&domain)?;
        match display_name.as_deref() {
            Some(title) if measure(title).encoding == Encoding::Ucs2 => eprintln!(
                "note: the display name has characters outside GSM-7: every default SMS \
                 will be sent as UCS-2 (70 characters a part), about twice the parts"
            ),
            None if domain.len() > MAX_DISPLAY_NAME_UNITS => eprintln!(
                "note: SMS name the project {domain:?} unless it has a display name; names \
                 over {MAX_DISPLAY_NAME_UNITS} characters can make default SMS two parts \
                 (set --display-name)"
            ),
            _ => {}
        }
        self.store
            .put_project(&ProjectUpdate {
                accounts: None,
                domain: &domain,
                plan: plan.0,
                enabled: enable,
                display_name: display_name.as_deref(),
                allowed_countries: allowed_countries.as_ref().map(|c| c.0.as_slice()),
                daily_invitation_limit,
                smart_encoding,
                max_parts_per_sms,
                send_window,
                max_price_per_part: max_price_per_part.as_ref().map(|p| p.0.as_deref()),
            })
            .await
            .map_err(failed)?;
        let state = if enable { "enabled" } else { "disabled" };
        println!("project {domain}: plan {}, registration {state}", plan.0);
        Ok(())
    }

    /// `smsreg-admin put-app`.
    async fn put_app(
        &self,
        domain: String,
        app_id: String,
        name: String,
        install_url: Option<String>,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        if app_id.trim().is_empty() || app_id.len() > MAX_APP_ID_BYTES {
            return Err(usage(format!(
                "the app id must be 1 to {MAX_APP_ID_BYTES} bytes"
            )));
        }
        if let Some(url) = &install_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(usage(format!(
                "--install-url must be an http(s) URL, not {url:?}"
            )));
        }
        let app = App {
            id: app_id,
            name,
            install_url,
        };
        if !self.store.put_app(&domain, &app).await.map_err(failed)? {
            return Err(failed(format!(
                "project {domain:?} does not exist: create it with put-domain first"
            )));
        }
        println!("app {} of project {domain} saved", app.id);
        Ok(())
    }

    /// `smsreg-admin create-key`.
    async fn create_key(
        &self,
        domain: String,
        username: String,
        read_only: bool,
        key_from_stdin: bool,
    ) -> Result<(), Failure> {
        check_domain(&domain)?;
        if username.is_empty()
            || username.len() > crate::functions::api::auth::MAX_USERNAME_BYTES
            || username.contains(':')
            || username.chars().any(char::is_whitespace)
        {
            return Err(usage(
                "the username must be 1 to 254 bytes, without ':' or spaces",
            ));
        }
        require_project(&self.store, &domain).await?;
        let key = if key_from_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| failed(format!("reading the key from stdin: {e}")))?;
            let key = line.trim().to_owned();
            if key.len() < 24 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(usage(
                    "the key must be at least 24 printable characters without spaces",
                ));
            }
            key
        } else {
            generate_key()
        };
        let record = ApiKey {
            username: username.clone(),
            domain,
            key_hash: hash_key(&key),
            can_edit_data: !read_only,
        };
        self.store
            .put_key(&record, self.clock.now())
            .await
            .map_err(failed)?;
        println!("{username}:{key}");
        Ok(())
    }

    /// `smsreg-admin revoke-key`.
    async fn revoke_key(&self, domain: String, username: String) -> Result<(), Failure> {
        check_domain(&domain)?;
        if !self
            .store
            .delete_key(&domain, &username)
            .await
            .map_err(failed)?
        {
            return Err(failed(format!("{username} has no key in project {domain}")));
        }
        println!("key of {username} in project {domain} revoked");
        Ok(())
    }

    /// `smsreg-admin list-invitations`.
    async fn list_invitations(
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

    /// `smsreg-admin check-sms`.
    async fn check_sms(&self, phone: String, domain: Option<String>) -> Result<(), Failure> {
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
    async fn sms_settings(
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
        let sampling = success_sampling.to_string();
        sns.set_sms_attributes()
            .attributes("DeliveryStatusIAMRole", &delivery_status_role)
            .attributes("DeliveryStatusSuccessSamplingRate", &sampling)
            .send()
            .await
            .map_err(|e| {
                failed(format!(
                    "SetSMSAttributes failed: {}",
                    crate::adapters::error_code(&e)
                ))
            })?;
        println!("DeliveryStatusIAMRole={delivery_status_role}");
        println!("DeliveryStatusSuccessSamplingRate={sampling}");
        Ok(())
    }

    /// `smsreg-admin usage`.
    async fn day_usage(&self, domain: String, day: Option<String>) -> Result<(), Failure> {
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

    /// `smsreg-admin replay-receipts`.
    async fn replay(&self, queue_url: String) -> Result<(), Failure> {
        replay_receipts(
            &self.aws,
            self.store.clone(),
            self.clock.clone(),
            &queue_url,
        )
        .await?;
        Ok(())
    }

    /// `smsreg-admin list-workers`.
    async fn list_workers(&self, domain: String) -> Result<(), Failure> {
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
    async fn mark_registered(&self, domain: String, phone: String) -> Result<(), Failure> {
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
