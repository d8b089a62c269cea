//! Builds each function from its real adapters, shared by the binaries. Each function
//! builds only the AWS clients it uses: the API and the replies function DynamoDB and SQS
//! (the replies function also the SMS provider's, for its opt-out list), the sender DynamoDB, SQS and the SMS
//! provider's, the receipts function DynamoDB alone, the events function EventBridge alone.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::lambda_runtime::{self, LambdaEvent};

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::end_user_messaging::{EndUserMessagingSettings, EndUserMessagingSms};
use crate::adapters::eventbridge::EventBridgeBus;
use crate::adapters::load_aws_config;
use crate::adapters::sns::SnsSms;
use crate::adapters::sqs::SqsQueue;
use crate::config::{Config, ConfigError, Provider};
use crate::domain::PhoneNumber;
use crate::domain::receipt::DeliveryReport;
use crate::functions::api::Api;
use crate::functions::events::EventsFunction;
use crate::functions::receipts::ReceiptsFunction;
use crate::functions::replies::RepliesFunction;
use crate::functions::sender::SenderFunction;
use crate::ports::{Outgoing, SmsError, SmsProvider as SmsPort, SystemClock};
use crate::service::RegistrationService;
use crate::service::publish::Publisher;
use crate::service::receipts::Receipts;
use crate::service::send::Sender;

/// The SMS provider the deployment sends with, chosen by `SMS_PROVIDER` when the function
/// starts. A provider is one more adapter and its arm here (see docs/architecture.md).
#[derive(Debug, Clone)]
pub enum DeployedSms {
    Sns(SnsSms),
    EndUserMessaging(EndUserMessagingSms),
}

impl SmsPort for DeployedSms {
    fn opt_out_checks_per_second(&self) -> Option<u32> {
        match self {
            DeployedSms::Sns(p) => p.opt_out_checks_per_second(),
            DeployedSms::EndUserMessaging(p) => p.opt_out_checks_per_second(),
        }
    }

    async fn send(&self, sms: &Outgoing<'_>) -> Result<String, SmsError> {
        match self {
            DeployedSms::Sns(p) => p.send(sms).await,
            DeployedSms::EndUserMessaging(p) => p.send(sms).await,
        }
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        match self {
            DeployedSms::Sns(p) => p.is_opted_out(to).await,
            DeployedSms::EndUserMessaging(p) => p.is_opted_out(to).await,
        }
    }

    async fn set_opted_out(&self, to: &PhoneNumber, opted_out: bool) -> Result<(), SmsError> {
        match self {
            DeployedSms::Sns(p) => p.set_opted_out(to, opted_out).await,
            DeployedSms::EndUserMessaging(p) => p.set_opted_out(to, opted_out).await,
        }
    }

    /// Either provider's reports: their formats cannot be taken for each other, and the
    /// receipts function needs no client to read them.
    fn read_report(line: &str) -> Option<DeliveryReport> {
        SnsSms::read_report(line).or_else(|| EndUserMessagingSms::read_report(line))
    }

    fn is_interim(line: &str) -> bool {
        SnsSms::is_interim(line) || EndUserMessagingSms::is_interim(line)
    }
}

pub type AwsService = RegistrationService<DynamoStore, SqsQueue>;
pub type AwsApi = Api<DynamoStore, SqsQueue>;
pub type AwsReplies = RepliesFunction<DynamoStore, SqsQueue, DeployedSms>;
pub type AwsSender = SenderFunction<DynamoStore, SqsQueue, DeployedSms>;
pub type AwsReceipts = ReceiptsFunction<DynamoStore, DeployedSms>;
pub type AwsEvents = EventsFunction<EventBridgeBus>;
pub type AwsAccounts = crate::functions::accounts::AccountsFunction<DynamoStore, SqsQueue>;

/// The most the sender's SMS client waits for an answer (the sender's own deadline bound
/// is usually shorter).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

/// The SMS provider's client. It does not retry on its own: a throttled SMS retried at
/// once would go out beside the slots that pace the deployment (see `service::pace`); the
/// job is tried again later instead. A provider may answer an SMS it accepted after
/// several seconds: a timeout then would send it again, so it is waited for long, each
/// send bounded by the sender's own deadline.
pub fn sms_provider(aws: &SdkConfig, config: &Config) -> DeployedSms {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(crate::adapters::CONNECT_TIMEOUT)
        .operation_attempt_timeout(PUBLISH_TIMEOUT)
        .operation_timeout(PUBLISH_TIMEOUT)
        .build();
    match config.sms_provider {
        Provider::Sns => {
            let sns = aws_sdk_sns::config::Builder::from(aws)
                .retry_config(RetryConfig::disabled())
                .timeout_config(timeouts)
                .build();
            DeployedSms::Sns(SnsSms::new(
                aws_sdk_sns::Client::from_conf(sns),
                config.sms_sender_id.clone(),
                config.sms_origination_number.clone(),
            ))
        }
        Provider::EndUserMessaging => {
            let eum = aws_sdk_pinpointsmsvoicev2::config::Builder::from(aws)
                .retry_config(RetryConfig::disabled())
                .timeout_config(timeouts)
                .build();
            DeployedSms::EndUserMessaging(EndUserMessagingSms::new(
                aws_sdk_pinpointsmsvoicev2::Client::from_conf(eum),
                end_user_messaging_settings(config),
            ))
        }
    }
}

/// End User Messaging's settings from the configuration.
pub fn end_user_messaging_settings(config: &Config) -> EndUserMessagingSettings {
    EndUserMessagingSettings {
        origination_identity: config
            .sms_origination_identity
            .clone()
            .or_else(|| config.sms_origination_number.clone())
            .or_else(|| config.sms_sender_id.clone()),
        configuration_set: config.sms_configuration_set.clone(),
        opt_out_list: config.sms_opt_out_list.clone(),
        time_to_live_seconds: config.sms_time_to_live_seconds,
        protect_configuration_id: config.sms_protect_configuration_id.clone(),
        ask_opt_out_first: None,
    }
}

fn store(aws: &SdkConfig, config: &Config) -> DynamoStore {
    DynamoStore::new(aws, &config.table_name)
}

/// The service over DynamoDB and SQS; `SEND_QUEUE_URL` is required. It makes accounts
/// in directories when the deployment has a password key and an accounts queue.
pub fn aws_service(aws: &SdkConfig, config: Config) -> Result<AwsService, ConfigError> {
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.require_send_queue()?);
    let ports = account_ports(aws, &config);
    let service =
        RegistrationService::new(store(aws, &config), queue, Arc::new(SystemClock), config);
    Ok(match ports {
        Some(ports) => service.with_accounts(ports),
        None => service,
    })
}

/// Where the deployment makes accounts outside its table (docs/accounts.md): `None`
/// without `PASSWORD_KEY_ID` and `ACCOUNTS_QUEUE_URL`. The Cognito pool is there when
/// `USER_POOL_ID` is. Clients are made here, their first call made only when a project
/// uses them.
pub fn account_ports(
    aws: &SdkConfig,
    config: &Config,
) -> Option<Arc<dyn crate::ports::AccountPorts>> {
    let key = config.password_key_id.clone()?;
    let queue_url = config.accounts_queue_url.clone()?;
    let cognito = config.user_pool_id.clone().map(|pool| {
        crate::adapters::cognito::CognitoPool::new(
            aws_sdk_cognitoidentityprovider::Client::new(aws),
            pool,
        )
    });
    let hq =
        crate::adapters::commcare_hq::CommCareHq::new(aws_sdk_secretsmanager::Client::new(aws));
    Some(Arc::new(crate::ports::AccountBackend {
        directory: crate::adapters::accounts::Directories { cognito, hq },
        sealer: crate::adapters::kms::KmsSealer::new(aws_sdk_kms::Client::new(aws), key),
        queue: crate::adapters::sqs::SqsAccountQueue::new(aws_sdk_sqs::Client::new(aws), queue_url),
    }))
}

/// The accounts function, configured from the environment: `PASSWORD_KEY_ID` and
/// `ACCOUNTS_QUEUE_URL` are required.
pub fn aws_accounts_with(aws: &SdkConfig, config: Config) -> Result<AwsAccounts, ConfigError> {
    let Some(ports) = account_ports(aws, &config) else {
        return Err(ConfigError {
            name: "PASSWORD_KEY_ID",
            value: config.password_key_id.clone().unwrap_or_default(),
            reason: "the accounts function needs PASSWORD_KEY_ID and ACCOUNTS_QUEUE_URL \
                     (docs/accounts.md)",
        });
    };
    let service = aws_service(aws, config)?;
    Ok(crate::functions::accounts::AccountsFunction::new(
        service, ports,
    ))
}

/// Runs the accounts function, configured from the environment.
pub async fn serve_accounts() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let accounts = aws_accounts_with(&load_aws_config().await, Config::from_env()?)?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: LambdaEvent<SqsEvent>| accounts.handle(event),
    ))
    .await
}

/// The API, configured from the environment.
pub async fn aws_api(config: Config) -> Result<AwsApi, ConfigError> {
    aws_api_with(&load_aws_config().await, config)
}

pub fn aws_api_with(aws: &SdkConfig, config: Config) -> Result<AwsApi, ConfigError> {
    Ok(Api::new(aws_service(aws, config)?))
}

/// The replies function, configured from the environment.
pub async fn aws_replies(config: Config) -> Result<AwsReplies, ConfigError> {
    aws_replies_with(&load_aws_config().await, config)
}

pub fn aws_replies_with(aws: &SdkConfig, config: Config) -> Result<AwsReplies, ConfigError> {
    // Its client makes no call unless the provider keeps an opt-out list for the service.
    let provider = sms_provider(aws, &config);
    Ok(RepliesFunction::new(aws_service(aws, config)?, provider))
}

/// The sender, configured from the environment.
pub async fn aws_sender(config: Config) -> Result<AwsSender, ConfigError> {
    aws_sender_with(&load_aws_config().await, config)
}

pub fn aws_sender_with(aws: &SdkConfig, config: Config) -> Result<AwsSender, ConfigError> {
    let provider = sms_provider(aws, &config);
    Ok(SenderFunction::new(Sender::new(
        aws_service(aws, config)?,
        provider,
    )))
}

/// The receipts function, configured from the environment (it needs only the table).
pub async fn aws_receipts(config: Config) -> AwsReceipts {
    aws_receipts_with(&load_aws_config().await, &config)
}

pub fn aws_receipts_with(aws: &SdkConfig, config: &Config) -> AwsReceipts {
    ReceiptsFunction::new(aws_receipts_use_case(aws, config))
}

/// The receipts use case over DynamoDB (for the admin CLI's replay too).
pub fn aws_receipts_use_case(
    aws: &SdkConfig,
    config: &Config,
) -> Receipts<DynamoStore, DeployedSms> {
    Receipts::new(store(aws, config), Arc::new(SystemClock))
}

/// The events function, configured from the environment (it needs only the bus).
pub async fn aws_events(config: &Config) -> AwsEvents {
    aws_events_with(&load_aws_config().await, config)
}

pub fn aws_events_with(aws: &SdkConfig, config: &Config) -> AwsEvents {
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(aws),
        config.event_bus_name.clone(),
    );
    EventsFunction::new(Publisher::new(bus))
}

/// Runs the API function under the Lambda Runtime API, configured from the environment.
pub async fn serve_api() -> Result<(), lambda_http::Error> {
    // Off the main thread: see `adapters::warm_up` and `phone::warm_up`. The SDK's first:
    // init builds the clients and the first AWS call needs the roots; the numbers come
    // after that call.
    in_the_background(crate::adapters::warm_up);
    in_the_background(crate::domain::phone::warm_up);
    crate::telemetry::init();
    let api = aws_api(Config::from_env()?).await?;
    lambda_http::run(lambda_http::service_fn(|request| async {
        Ok::<_, lambda_http::Error>(api.handle(request).await)
    }))
    .await
}

/// Runs `work` on a thread of its own at the lowest priority (nice 19), so that it takes the
/// CPU time the function's own thread leaves (while it waits for the Runtime API or AWS)
/// and never holds up that thread: at 2 vCPUs or at a fraction of one (Lambda below
/// 1,769 MB), a warm-up that preempted the request it warms up for would only delay it.
/// Nothing waits for the thread; a caller that needs its result first waits for it (and
/// then leaves it the CPU).
fn in_the_background(work: fn()) {
    std::thread::spawn(move || {
        #[cfg(target_os = "linux")]
        // SAFETY: `gettid` has no preconditions; `setpriority` changes only this thread's
        // nice value (Linux keeps one per thread) and its failure is harmless: the work
        // then runs at the function's own priority.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
        }
        work();
    });
}

/// Runs the sender function, configured from the environment.
pub async fn serve_sender() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let sender = aws_sender(Config::from_env()?).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: LambdaEvent<SqsEvent>| sender.handle(event),
    ))
    .await
}

/// Runs the replies function, configured from the environment.
pub async fn serve_replies() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let replies = aws_replies(Config::from_env()?).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: LambdaEvent<SnsEvent>| replies.handle(event),
    ))
    .await
}

/// Runs the events function, configured from the environment.
pub async fn serve_events() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let events = aws_events(&Config::from_env()?).await;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: LambdaEvent<StreamEvent>| events.handle(event),
    ))
    .await
}

/// Runs the receipts function, configured from the environment.
pub async fn serve_receipts() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let receipts = aws_receipts(Config::from_env()?).await;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: LambdaEvent<LogsEvent>| receipts.handle(event),
    ))
    .await
}
