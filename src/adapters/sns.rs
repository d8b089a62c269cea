//! SNS adapter: one `Publish` to the phone number per SMS.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::domain::PhoneNumber;
use crate::ports::{SmsError, SmsSender};

#[derive(Debug, Clone)]
pub struct SnsSender {
    client: Client,
    sender_id: Option<String>,
    origination_number: Option<String>,
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
        }
    }
}

impl SmsSender for SnsSender {
    async fn send(&self, to: &PhoneNumber, text: &str) -> Result<(), SmsError> {
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
        publish.send().await.map(|_| ()).map_err(|error| SmsError {
            code: crate::adapters::error_code(&error),
        })
    }
}
