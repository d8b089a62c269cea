//! Implementations of the ports: DynamoDB, SQS and SNS for real, in-memory for tests.

pub mod dynamodb;
pub mod end_user_messaging;
pub mod memory;
pub mod sns;
pub mod sqs;
pub mod topic;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::HttpConnectorSettings;

/// The shared AWS configuration: region, credentials and `AWS_ENDPOINT_URL` from the
/// environment, with retries (throttling backs off) bounded so calls end well within a
/// Lambda invocation.
///
/// One HTTPS client serves every SDK client of the process (each would otherwise build its
/// own, and with it a TLS configuration and a store of the system's ~145 root certificates).
/// On Lambda, which always puts the region and the function's credentials in the
/// environment, they are read from there alone: the default chains would also build
/// instance-metadata and STS clients that a function never uses (docs/PERFORMANCE.md,
/// section 3).
pub async fn load_aws_config() -> SdkConfig {
    let mut loader = aws_config_loader().http_client(https_client());
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

/// The HTTPS client (rustls over aws-lc, the system's roots) that every SDK client of the
/// process shares.
///
/// Each SDK client, when it is built, checks its HTTP client by making a connector and
/// throwing it away; made as the SDK makes it, that is a TLS configuration with the ~145
/// roots parsed, once per client. Here that check gets a plain connector, and TLS is set up
/// once, for the first call (the connector is then kept for every client and call with the
/// same timeouts), or taken ready from [`warm_up`]. `build_with_connector_fn` is the SDK's
/// own hook for this (hidden from its docs, at the version `Cargo.lock` pins; every test
/// that calls AWS goes through it).
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        match (settings, components) {
            // The check at the SDK client's construction: this connector is never called.
            (None, None) => Connector::builder().build_http(),
            _ => settings
                .filter(|s| is_shared(s))
                .and_then(|_| prepared_connector())
                .unwrap_or_else(|| {
                    tls_connector(settings.cloned(), components.and_then(|c| c.sleep_impl()))
                }),
        }
    })
}

/// A TLS connector as the SDK makes its own.
fn tls_connector(
    settings: Option<HttpConnectorSettings>,
    sleep: Option<aws_smithy_async::rt::sleep::SharedAsyncSleep>,
) -> Connector {
    let mut connector = Connector::builder();
    connector.set_connector_settings(settings);
    connector.set_sleep_impl(sleep);
    connector
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build()
}

/// The settings every SDK client of the process asks its connector for: those of
/// [`aws_config_loader`] (a connect timeout; no read timeout).
fn is_shared(settings: &HttpConnectorSettings) -> bool {
    settings.connect_timeout() == Some(CONNECT_TIMEOUT) && settings.read_timeout().is_none()
}

/// The connector made ahead by [`warm_up`], for the first call to take: empty when no
/// warm-up ran (the functions other than the API) or once taken. A call that comes while it
/// is being made waits for it instead of making a second one.
static PREPARED: OnceLock<Mutex<Option<Connector>>> = OnceLock::new();

fn prepared_connector() -> Option<Connector> {
    PREPARED
        .get_or_init(|| Mutex::new(None))
        .lock()
        .ok()?
        .take()
}

/// What the SDK sets up once per process, done ahead: the API calls it on a thread of its
/// own as it starts (`wiring`), so that its main thread finds it done. First the endpoint
/// partitions of DynamoDB and SQS, which the first client of each service builds; then the
/// TLS connector of the first AWS call, with the root certificates.
pub fn warm_up() {
    parse_endpoint_partitions();
    prepare_connector();
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

/// Makes the connector of the first AWS call (see [`https_client`]), for that call to take.
///
/// That is the costly part of the call: the SDK reads the system's root certificates once
/// per process, at its first TLS connector, and keeps them (about 145 certificates, 220 kB
/// of PEM decoded in constant time, 8 million instructions: more than half of what the
/// API's main thread ran at a cold start, docs/PERFORMANCE.md); each connector then turns
/// them into trust anchors (0.5 million more).
fn prepare_connector() {
    PREPARED.get_or_init(|| {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build();
        let sleep = aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
            aws_smithy_async::rt::sleep::TokioSleep::new(),
        );
        Mutex::new(Some(tls_connector(Some(settings), Some(sleep))))
    });
}

/// How long any AWS call may take to connect. One value for every client, so that they
/// share one connector (the SDK's HTTP client keeps one per set of connection timeouts).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The loader behind [`load_aws_config`], for callers that set more (tests set the endpoint).
pub fn aws_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The connector `warm_up` makes is taken only by a call asking for the same settings:
    /// those the SDK's orchestrator derives from the loader's timeouts. A timeout added to
    /// the loader without `is_shared` would leave it unused, and the first call making its own.
    #[tokio::test]
    async fn the_clients_ask_for_the_settings_of_the_connector_made_ahead() {
        let config = aws_config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .no_credentials()
            .load()
            .await;
        let timeouts = config.timeout_config().expect("the loader sets timeouts");
        let mut settings = HttpConnectorSettings::builder();
        settings.set_connect_timeout(timeouts.connect_timeout());
        settings.set_read_timeout(timeouts.read_timeout());
        assert!(is_shared(&settings.build()));

        let with_read_timeout = HttpConnectorSettings::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(Duration::from_secs(1))
            .build();
        assert!(!is_shared(&with_read_timeout));
    }
}
