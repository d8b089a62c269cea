//! `worker_registered` events published to an SNS topic, for the organisation's systems.

use aws_config::SdkConfig;

use crate::adapters::sns::string_attribute;
use crate::ports::{PublishError, RegistrationEvents};

/// The events topic, when one is configured; without one nothing is published (and no
/// SNS client is built).
#[derive(Debug, Clone, Default)]
pub struct SnsTopic {
    topic: Option<(aws_sdk_sns::Client, String)>,
}

impl SnsTopic {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        SnsTopic {
            topic: Some((client, topic_arn)),
        }
    }

    /// `REGISTRATION_EVENTS_TOPIC_ARN`'s topic, if set.
    pub fn configured(aws: &SdkConfig, topic_arn: Option<&str>) -> Self {
        match topic_arn {
            Some(arn) => SnsTopic::new(aws_sdk_sns::Client::new(aws), arn.to_owned()),
            None => SnsTopic::default(),
        }
    }
}

impl RegistrationEvents for SnsTopic {
    async fn worker_registered(&self, event: &serde_json::Value) -> Result<(), PublishError> {
        let Some((client, topic)) = &self.topic else {
            return Ok(());
        };
        client
            .publish()
            .topic_arn(topic)
            .message(event.to_string())
            .message_attributes("event", string_attribute("worker_registered"))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| PublishError {
                code: crate::adapters::error_code(&error),
            })
    }
}
