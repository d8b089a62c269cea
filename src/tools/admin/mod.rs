//! The admin CLI `smsreg-admin`: provisions projects, apps and keys, and inspects invitations.
//! This file holds the commands and their dispatch; each group of commands has a file.

mod accounts;
mod context;
mod invitations;
mod keys;
mod projects;
mod replay;
mod sms;
mod table;
mod texts;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::load_aws_config;
use crate::config::Config;
use crate::domain::invitation::ShownStatus;
use crate::ports::SystemClock;
use context::{Admin, Failure, usage};

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
    PutDomain(projects::PutDomainArgs),
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
    /// Creates a Cognito user pool for worker accounts; prints its id, then client_id=ID.
    ///
    /// Creates a Cognito user pool for worker accounts (put-domain --accounts cognito), as
    /// the stack does: usernames that ignore case, the registration form's password rule
    /// (at least 8 characters, no character classes), the custom attributes the service
    /// writes, phone_number and email, no self sign-up; and an app client without a secret
    /// (SRP, password and refresh-token sign-in). Each run makes a new pool. Prints the
    /// pool id (for USER_POOL_ID) on the first line and client_id=ID on the second.
    CreateUserPool {
        /// The pool's name; its app client is NAME-app.
        #[arg(long, default_value = "smsreg-workers")]
        name: String,
    },
    /// Creates the KMS key that seals waiting passwords; prints its key id.
    ///
    /// Creates the KMS key that seals workers' passwords while their accounts wait (a
    /// symmetric encryption key); prints its key id, for PASSWORD_KEY_ID. Each run makes a
    /// new key.
    CreatePasswordKey,
    /// Says whether a project's accounts can be made: prints `ready`, or what is missing.
    ///
    /// Says whether the directory of a project's accounts (put-domain --accounts) can take
    /// them: prints one line, `ready` (exit 0) or what is missing (exit 1). A cognito
    /// project needs USER_POOL_ID set, as the functions have it; a service project is
    /// always ready.
    CheckAccounts {
        /// The project.
        domain: String,
    },
    /// Prints, as JSON, each of a project's languages with every text a worker reads.
    ///
    /// Prints, as JSON, each of a project's languages with every text a worker reads in
    /// it (the project's own, else the built-in one: docs/languages.md), whether it is the
    /// project's own, and each SMS's parts as a worker would get it.
    Texts {
        /// The project.
        domain: String,
    },
    /// Sets a project's own texts in one of its languages from a JSON file of text ids.
    ///
    /// Sets a project's own texts in one of its languages from a JSON file of the ids
    /// `texts` prints (`{"sms.android_link": "...: {}"}`). Each must keep the English
    /// text's placeholders; a bad file changes nothing. Prints each SMS's parts.
    PutTexts {
        /// The project.
        domain: String,
        /// The language (one of the project's).
        #[arg(long)]
        language: String,
        /// The JSON file.
        file: std::path::PathBuf,
    },
}

/// Runs the CLI; the `smsreg-admin` binary only calls this.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            if !message.is_empty() {
                eprintln!("smsreg-admin: {message}");
            }
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
        Command::ReplayReceipts { queue_url } => admin.replay_receipts(queue_url).await,
        Command::ReplayEvents { queue_url } => admin.replay_events(queue_url).await,
        Command::ListWorkers { domain } => admin.list_workers(domain).await,
        Command::MarkRegistered { domain, phone } => admin.mark_registered(domain, phone).await,
        Command::CheckSms { phone, domain } => admin.check_sms(phone, domain).await,
        Command::CreateUserPool { name } => admin.create_user_pool(name).await,
        Command::CreatePasswordKey => admin.create_password_key().await,
        Command::CheckAccounts { domain } => admin.check_accounts(domain).await,
        Command::Texts { domain } => admin.texts(domain).await,
        Command::PutTexts {
            domain,
            language,
            file,
        } => admin.put_texts(domain, language, file).await,
    }
}
