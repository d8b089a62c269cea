//! Builds the functions from their real adapters: shared by the binaries.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::adapters::Outbox;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::load_aws_config;
use crate::adapters::sns::SnsSender;
use crate::adapters::sqs::SqsQueue;
use crate::config::{Config, ConfigError};
use crate::functions::api::Api;
use crate::functions::replies::Inbound;
use crate::functions::sender::Sender;
use crate::ports::SystemClock;
use crate::service::RegistrationService;

pub type AwsService = RegistrationService<DynamoStore, DynamoStore, Outbox>;
pub type AwsApi = Api<DynamoStore, DynamoStore, Outbox>;
pub type AwsInbound = Inbound<DynamoStore, DynamoStore, Outbox>;
pub type AwsSender = Sender<DynamoStore, DynamoStore, Outbox>;

/// The API over DynamoDB and SQS, configured from the environment.
pub async fn aws_api(config: Config) -> Result<AwsApi, ConfigError> {
    aws_api_with(&load_aws_config().await, config)
}

/// The inbound-SMS handler over DynamoDB and SQS, configured from the environment.
pub async fn aws_inbound(config: Config) -> Result<AwsInbound, ConfigError> {
    Ok(Inbound::new(aws_service(&load_aws_config().await, config)?))
}

pub type AwsReceipts = crate::functions::receipts::Receipts<DynamoStore>;

/// The receipts function over DynamoDB, configured from the environment (it needs only
/// the table).
pub async fn aws_receipts(config: Config) -> AwsReceipts {
    aws_receipts_with(&load_aws_config().await, &config)
}

pub fn aws_receipts_with(aws: &SdkConfig, config: &Config) -> AwsReceipts {
    crate::functions::receipts::Receipts::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name),
        Arc::new(SystemClock),
    )
}

/// The sender over DynamoDB, SQS and SNS, configured from the environment.
pub async fn aws_sender(config: Config) -> Result<AwsSender, ConfigError> {
    aws_sender_with(&load_aws_config().await, config)
}

/// The most the sender's SNS client waits for an answer (the sender's own deadline bound
/// is usually shorter).
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The sender with a given AWS configuration. Its SNS client does not retry on its own: a
/// throttled SMS retried at once would go out beside the slots that pace the deployment
/// (see `service::send::Pacer`); the job is tried again later instead.
pub fn aws_sender_with(aws: &SdkConfig, config: Config) -> Result<AwsSender, ConfigError> {
    let mut service = aws_service(aws, config)?;
    // SNS may answer a Publish it accepted after several seconds: a timeout then would
    // send the SMS again. The sender bounds each Publish by its invocation's deadline.
    let sns = aws_sdk_sns::config::Builder::from(aws)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(2))
                .operation_attempt_timeout(PUBLISH_TIMEOUT)
                .operation_timeout(PUBLISH_TIMEOUT)
                .build(),
        )
        .build();
    service.sms.sns = SnsSender::new(
        aws_sdk_sns::Client::from_conf(sns),
        service.config.sms_sender_id.clone(),
        service.config.sms_origination_number.clone(),
    )
    .with_events_topic(service.config.registration_events_topic_arn.clone());
    Ok(Sender::new(service))
}

/// The API over DynamoDB and SQS with a given AWS configuration.
pub fn aws_api_with(aws: &SdkConfig, config: Config) -> Result<AwsApi, ConfigError> {
    Ok(Api::new(aws_service(aws, config)?))
}

/// The service over DynamoDB, SQS and SNS; `SEND_QUEUE_URL` is required.
pub fn aws_service(aws: &SdkConfig, config: Config) -> Result<AwsService, ConfigError> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name);
    let sns = SnsSender::new(
        aws_sdk_sns::Client::new(aws),
        config.sms_sender_id.clone(),
        config.sms_origination_number.clone(),
    )
    .with_events_topic(config.registration_events_topic_arn.clone());
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.require_send_queue()?);
    let outbox = Outbox { sns, queue };
    Ok(RegistrationService::new(
        store.clone(),
        store,
        outbox,
        Arc::new(SystemClock),
        config,
    ))
}
