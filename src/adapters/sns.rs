//! SNS adapter: one `Publish` to the phone number per SMS.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::domain::PhoneNumber;
use crate::ports::{RegistrationEvents, SmsError, SmsSender};

#[derive(Debug, Clone)]
pub struct SnsSender {
    client: Client,
    sender_id: Option<String>,
    origination_number: Option<String>,
    events_topic_arn: Option<String>,
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("a message attribute with a data type")
}

impl SnsSender {
    pub fn new(
        client: Client,
        sender_id: Option<String>,
        origination_number: Option<String>,
    ) -> Self {
        SnsSender {
            client,
            sender_id,
            origination_number,
            events_topic_arn: None,
        }
    }

    /// Publishes `worker_registered` events to this topic.
    pub fn with_events_topic(mut self, topic_arn: Option<String>) -> Self {
        self.events_topic_arn = topic_arn;
        self
    }
}

impl SmsSender for SnsSender {
    async fn send(&self, to: &PhoneNumber, text: &str) -> Result<String, SmsError> {
        let mut publish = self
            .client
            .publish()
            .phone_number(to.as_str())
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional"));
        if let Some(id) = &self.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(id));
        }
        if let Some(number) = &self.origination_number {
            publish = publish
                .message_attributes("AWS.MM.SMS.OriginationNumber", string_attribute(number));
        }
        // Throttling is retried with backoff by the client's retry policy (see `aws`).
        publish
            .send()
            .await
            .map(|out| out.message_id.unwrap_or_default())
            .map_err(|error| SmsError {
                code: crate::adapters::error_code(&error),
            })
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        self.client
            .check_if_phone_number_is_opted_out()
            .phone_number(to.as_str())
            .send()
            .await
            .map(|out| out.is_opted_out())
            .map_err(|error| SmsError {
                code: crate::adapters::error_code(&error),
            })
    }
}

impl RegistrationEvents for SnsSender {
    async fn worker_registered(&self, event: &serde_json::Value) -> Result<(), SmsError> {
        let Some(topic) = &self.events_topic_arn else {
            return Ok(());
        };
        self.client
            .publish()
            .topic_arn(topic)
            .message(event.to_string())
            .message_attributes("event", string_attribute("worker_registered"))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| SmsError {
                code: crate::adapters::error_code(&error),
            })
    }
}
