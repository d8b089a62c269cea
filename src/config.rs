//! Configuration from environment variables, each with its documented default.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME`: the DynamoDB table.
    pub table_name: String,
    /// `PUBLIC_BASE_URL`: where the registration pages are served.
    pub public_base_url: String,
    /// `SMS_SENDER_ID`: alphanumeric sender ID, where the destination country allows it.
    pub sms_sender_id: Option<String>,
    /// `SMS_ORIGINATION_NUMBER`: the number SMS are sent from, in E.164.
    pub sms_origination_number: Option<String>,
    /// `EVENT_BUS_NAME`: the EventBridge bus (name or ARN) the events function puts the
    /// organisation's events on; `default` is the account's own bus.
    pub event_bus_name: String,
    /// `MAX_USERS_PER_REQUEST`
    pub max_users_per_request: usize,
    /// `CONCURRENCY`: DynamoDB and SNS calls in flight per request.
    pub concurrency: usize,
    /// `INVITATION_LIFETIME_DAYS`
    pub invitation_lifetime: Duration,
    /// `CLAIM_STALE_SECONDS`: when a claim never marked sent counts as left by a crash.
    pub claim_stale_after: Duration,
    /// `DEADLINE_MARGIN_MS`: no number is started with less time than this left.
    pub deadline_margin: Duration,
    /// `SEND_QUEUE_URL`: the SQS queue of send jobs (required by the functions on AWS).
    pub send_queue_url: Option<String>,
    /// `SMS_RATE_PER_SECOND`: SMS per second for the whole deployment.
    pub sms_rate_per_second: u32,
    /// `SEND_MAX_ATTEMPTS`: failed SMS attempts of a job before it is given up (counted on
    /// the job's record; jobs handed back unstarted spend none).
    pub send_max_attempts: u32,
    /// `SEND_DEAD_LETTER_QUEUE_ARN`: the send queue's dead-letter queue, which the sender
    /// also consumes: a job there is given up (its invitation `failed`).
    pub send_dead_letter_queue_arn: Option<String>,
    /// `SMS_PROVIDER`: `sns` (the default) or `end-user-messaging`.
    pub sms_provider: Provider,
    /// `SMS_ORIGINATION_IDENTITY` (End User Messaging): the phone number, sender ID or
    /// pool that sends, by ID or ARN.
    pub sms_origination_identity: Option<String>,
    /// `SMS_CONFIGURATION_SET` (End User Messaging): whose event destination carries the
    /// delivery events.
    pub sms_configuration_set: Option<String>,
    /// `SMS_OPT_OUT_LIST` (End User Messaging): the opt-out list STOP and START are kept on
    /// (default `Default`, the account's).
    pub sms_opt_out_list: String,
    /// `SMS_TIME_TO_LIVE_SECONDS` (End User Messaging): an SMS not handed to a carrier
    /// within this is dropped (default 86400, 5 to 259200).
    pub sms_time_to_live_seconds: u64,
    /// `SMS_PROTECT_CONFIGURATION_ID` (End User Messaging): the protect configuration
    /// (country rules) to send under, if any.
    pub sms_protect_configuration_id: Option<String>,
    /// The Cognito user pool of projects whose accounts are `cognito` (`USER_POOL_ID`).
    pub user_pool_id: Option<String>,
    /// The KMS key that seals a password while its account waits (`PASSWORD_KEY_ID`).
    pub password_key_id: Option<String>,
    /// The queue of accounts still to make (`ACCOUNTS_QUEUE_URL`).
    pub accounts_queue_url: Option<String>,
    /// How long the registration page waits for a directory before it answers that the
    /// account is being made (`ACCOUNT_WAIT_MS`; the page answers within 10 s).
    pub account_wait: Duration,
}

/// Who texts the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Provider {
    /// Amazon SNS `Publish` to a phone number.
    #[default]
    Sns,
    /// AWS End User Messaging SMS `SendTextMessage`.
    EndUserMessaging,
}

impl std::str::FromStr for Provider {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "sns" => Ok(Provider::Sns),
            "end-user-messaging" => Ok(Provider::EndUserMessaging),
            _ => Err(()),
        }
    }
}

pub const DEFAULT_TABLE_NAME: &str = "sms-registration";
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:9000";

impl Default for Config {
    fn default() -> Self {
        Config {
            table_name: DEFAULT_TABLE_NAME.into(),
            public_base_url: DEFAULT_PUBLIC_BASE_URL.into(),
            sms_sender_id: None,
            sms_origination_number: None,
            event_bus_name: "default".into(),
            max_users_per_request: 500,
            concurrency: 16,
            invitation_lifetime: Duration::from_secs(30 * 86_400),
            claim_stale_after: Duration::from_secs(300),
            deadline_margin: Duration::from_millis(2_000),
            send_queue_url: None,
            sms_rate_per_second: 20,
            send_max_attempts: 8,
            send_dead_letter_queue_arn: None,
            sms_provider: Provider::Sns,
            sms_origination_identity: None,
            sms_configuration_set: None,
            sms_opt_out_list: crate::adapters::end_user_messaging::DEFAULT_OPT_OUT_LIST.into(),
            sms_time_to_live_seconds: 86_400,
            sms_protect_configuration_id: None,
            user_pool_id: None,
            password_key_id: None,
            accounts_queue_url: None,
            account_wait: Duration::from_secs(6),
        }
    }
}

impl Config {
    /// The send queue's URL, which the functions cannot work without.
    pub fn require_send_queue(&self) -> Result<&str, ConfigError> {
        self.send_queue_url.as_deref().ok_or(ConfigError {
            name: "SEND_QUEUE_URL",
            value: String::new(),
            reason: "the send queue's URL is required (smsreg-admin create-queue prints it)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads each variable through `lookup`; unset or empty means the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let d = Config::default();
        let number = |name: &'static str,
                      default: u64,
                      min: u64,
                      max: u64|
         -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError {
                        name,
                        value: v,
                        reason: "expected a whole number in the allowed range (see docs/deploying.md)",
                    }),
                },
            }
        };
        let public_base_url = get("PUBLIC_BASE_URL").unwrap_or(d.public_base_url);
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://")) {
            return Err(ConfigError {
                name: "PUBLIC_BASE_URL",
                value: public_base_url,
                reason: "expected an http:// or https:// URL",
            });
        }
        let sms_provider = match get("SMS_PROVIDER") {
            None => Provider::Sns,
            Some(v) => v.trim().parse().map_err(|()| ConfigError {
                name: "SMS_PROVIDER",
                value: v,
                reason: "expected sns or end-user-messaging",
            })?,
        };
        Ok(Config {
            table_name: get("TABLE_NAME").unwrap_or(d.table_name),
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            sms_sender_id: get("SMS_SENDER_ID"),
            sms_origination_number: get("SMS_ORIGINATION_NUMBER"),
            event_bus_name: get("EVENT_BUS_NAME").unwrap_or_else(|| "default".into()),
            max_users_per_request: number("MAX_USERS_PER_REQUEST", 500, 1, 10_000)? as usize,
            concurrency: number("CONCURRENCY", 16, 1, 256)? as usize,
            invitation_lifetime: Duration::from_secs(
                number("INVITATION_LIFETIME_DAYS", 30, 1, 365)? * 86_400,
            ),
            claim_stale_after: Duration::from_secs(number("CLAIM_STALE_SECONDS", 300, 30, 86_400)?),
            deadline_margin: Duration::from_millis(number("DEADLINE_MARGIN_MS", 2_000, 0, 15_000)?),
            send_queue_url: get("SEND_QUEUE_URL"),
            sms_rate_per_second: number("SMS_RATE_PER_SECOND", 20, 1, 1_000)? as u32,
            send_max_attempts: number("SEND_MAX_ATTEMPTS", 8, 2, 20)? as u32,
            send_dead_letter_queue_arn: get("SEND_DEAD_LETTER_QUEUE_ARN"),
            sms_provider,
            sms_origination_identity: get("SMS_ORIGINATION_IDENTITY"),
            sms_configuration_set: get("SMS_CONFIGURATION_SET"),
            sms_opt_out_list: get("SMS_OPT_OUT_LIST").unwrap_or(d.sms_opt_out_list),
            // End User Messaging's TimeToLive bounds.
            sms_time_to_live_seconds: number("SMS_TIME_TO_LIVE_SECONDS", 86_400, 5, 259_200)?,
            sms_protect_configuration_id: get("SMS_PROTECT_CONFIGURATION_ID"),
            user_pool_id: get("USER_POOL_ID"),
            password_key_id: get("PASSWORD_KEY_ID"),
            accounts_queue_url: get("ACCOUNTS_QUEUE_URL"),
            account_wait: Duration::from_millis(number("ACCOUNT_WAIT_MS", 6_000, 500, 8_000)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_gives_the_defaults() {
        assert_eq!(from(&[]).unwrap(), Config::default());
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("TABLE_NAME", "t"),
            ("PUBLIC_BASE_URL", "https://x.example/"),
            ("SMS_SENDER_ID", "DEMO"),
            ("SMS_ORIGINATION_NUMBER", "+18005550100"),
            ("EVENT_BUS_NAME", "org-events"),
            ("MAX_USERS_PER_REQUEST", "100"),
            ("CONCURRENCY", "4"),
            ("INVITATION_LIFETIME_DAYS", "7"),
            ("CLAIM_STALE_SECONDS", "60"),
            ("DEADLINE_MARGIN_MS", "500"),
            (
                "SEND_QUEUE_URL",
                "http://127.0.0.1:5005/123456789012/smsreg-send",
            ),
            ("SMS_RATE_PER_SECOND", "3"),
            ("SEND_MAX_ATTEMPTS", "4"),
            ("SMS_PROVIDER", "end-user-messaging"),
            ("SMS_ORIGINATION_IDENTITY", "pool-0123456789abcdef"),
            ("SMS_CONFIGURATION_SET", "smsreg-events"),
            ("SMS_OPT_OUT_LIST", "smsreg-optouts"),
            ("SMS_TIME_TO_LIVE_SECONDS", "3600"),
            ("SMS_PROTECT_CONFIGURATION_ID", "protect-0123"),
        ])
        .unwrap();
        assert_eq!(c.table_name, "t");
        assert_eq!(c.public_base_url, "https://x.example");
        assert_eq!(c.sms_sender_id.as_deref(), Some("DEMO"));
        assert_eq!(c.sms_origination_number.as_deref(), Some("+18005550100"));
        assert_eq!(c.event_bus_name, "org-events");
        assert_eq!(c.max_users_per_request, 100);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.invitation_lifetime, Duration::from_secs(7 * 86_400));
        assert_eq!(c.claim_stale_after, Duration::from_secs(60));
        assert_eq!(c.deadline_margin, Duration::from_millis(500));
        assert_eq!(
            c.require_send_queue().unwrap(),
            "http://127.0.0.1:5005/123456789012/smsreg-send"
        );
        assert_eq!((c.sms_rate_per_second, c.send_max_attempts), (3, 4));
        assert_eq!(c.sms_provider, Provider::EndUserMessaging);
        assert_eq!(
            c.sms_origination_identity.as_deref(),
            Some("pool-0123456789abcdef")
        );
        assert_eq!(c.sms_configuration_set.as_deref(), Some("smsreg-events"));
        assert_eq!(c.sms_opt_out_list, "smsreg-optouts");
        assert_eq!(c.sms_time_to_live_seconds, 3600);
        assert_eq!(
            c.sms_protect_configuration_id.as_deref(),
            Some("protect-0123")
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        for (name, value) in [
            ("CONCURRENCY", "0"),
            ("CONCURRENCY", "many"),
            ("MAX_USERS_PER_REQUEST", "-1"),
            ("INVITATION_LIFETIME_DAYS", "1000"),
            ("PUBLIC_BASE_URL", "sms.example.org"),
            ("SMS_RATE_PER_SECOND", "0"),
            ("SMS_PROVIDER", "pinpoint"),
            ("SMS_TIME_TO_LIVE_SECONDS", "4"),
            ("SMS_TIME_TO_LIVE_SECONDS", "259201"),
        ] {
            let err = from(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().contains(name));
        }
    }
}
