//! Builds the function from its real adapters: shared by the binaries.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::load_aws_config;
use crate::adapters::sns::SnsSender;
use crate::config::Config;
use crate::http::Api;
use crate::inbound::Inbound;
use crate::ports::SystemClock;
use crate::service::RegistrationService;

pub type AwsApi = Api<DynamoStore, DynamoStore, SnsSender>;
pub type AwsInbound = Inbound<DynamoStore, DynamoStore, SnsSender>;

/// The API over DynamoDB and SNS, configured from the environment.
pub async fn aws_api(config: Config) -> AwsApi {
    aws_api_with(&load_aws_config().await, config)
}

/// The inbound-SMS handler over DynamoDB and SNS, configured from the environment.
pub async fn aws_inbound(config: Config) -> AwsInbound {
    Inbound::new(aws_service(&load_aws_config().await, config))
}

/// The API over DynamoDB and SNS with a given AWS configuration.
pub fn aws_api_with(aws: &SdkConfig, config: Config) -> AwsApi {
    Api::new(aws_service(aws, config))
}

/// The service over DynamoDB and SNS.
pub fn aws_service(
    aws: &SdkConfig,
    config: Config,
) -> RegistrationService<DynamoStore, DynamoStore, SnsSender> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name);
    let sms = SnsSender::new(
        aws_sdk_sns::Client::new(aws),
        config.sms_sender_id.clone(),
        config.sms_origination_number.clone(),
    )
    .with_events_topic(config.registration_events_topic_arn.clone());
    RegistrationService::new(store.clone(), store, sms, Arc::new(SystemClock), config)
}
