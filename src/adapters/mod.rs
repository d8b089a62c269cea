//! Implementations of the ports: DynamoDB, SQS and SNS for real, in-memory for tests.

pub mod accounts;
pub mod cognito;
pub mod cognito_admin;
pub mod commcare_hq;
pub mod dynamodb;
pub mod end_user_messaging;
pub mod eventbridge;
mod http_client;
pub mod kms;
pub mod kms_admin;
pub mod memory;
pub mod secrets;
pub mod sns;
pub mod sqs;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// The shared AWS configuration: region, credentials and `AWS_ENDPOINT_URL` from the
/// environment, with retries (throttling backs off) bounded so calls end well within a
/// Lambda invocation.
///
/// On Lambda, which always puts the region and the function's credentials in the
/// environment, they are read from there alone: the default chains would also build
/// instance-metadata and STS clients that a function never uses (docs/PERFORMANCE.md,
/// section 3).
pub async fn load_aws_config() -> SdkConfig {
    let mut loader = aws_config_loader();
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
    {
        loader = loader
            .region(aws_config::environment::EnvironmentVariableRegionProvider::new())
            .credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            );
    }
    loader.load().await
}

/// What the SDK sets up once per process, done ahead: the API calls it on a thread of its
/// own as it starts (`wiring`), so that its main thread finds it done. First the endpoint
/// partitions of DynamoDB and SQS, which the first client of each service builds; then the
/// TLS connector of the first HTTPS call, with the root certificates (`http_client`).
pub fn warm_up() {
    parse_endpoint_partitions();
    http_client::warm_up();
}

/// Each SDK crate parses its table of AWS partitions (regions, DNS suffixes: a JSON
/// document) once per process, when its first client is built: 0.42 million instructions
/// for DynamoDB's and as much for SQS's, on the main thread during init. Resolving any
/// endpoint does it; the region here is only there to be resolved.
fn parse_endpoint_partitions() {
    use futures::FutureExt;
    let dynamodb = {
        use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        Params::builder().region("us-east-1").build().map(|params| {
            DefaultResolver::new()
                .resolve_endpoint(&params)
                .now_or_never()
        })
    };
    let sqs = {
        use aws_sdk_sqs::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        Params::builder().region("us-east-1").build().map(|params| {
            DefaultResolver::new()
                .resolve_endpoint(&params)
                .now_or_never()
        })
    };
    drop((dynamodb, sqs));
}

/// How long any AWS call may take to connect. One value for every client, so that they
/// share one connector (the SDK's HTTP client keeps one per set of connection timeouts).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The loader behind [`load_aws_config`], for callers that set more (tests set the endpoint).
///
/// Its SDK clients share one HTTP client (`http_client`), which each would otherwise make
/// its own, and with it a TLS configuration and a store of the system's ~145 root
/// certificates.
pub fn aws_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client::shared())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(50)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
}

/// The code of an SDK failure, for logs: never its message, which may quote request data.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        _ => error.code().unwrap_or("Unknown"),
    }
    .to_owned()
}
