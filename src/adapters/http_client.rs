//! The one HTTP client every SDK client of the process shares: the SDK's own connectors
//! (hyper, rustls over aws-lc, the system's roots), chosen per request by its scheme.
//!
//! AWS is always HTTPS. A local emulator (moto, the benches' stand-ins) is plain HTTP, and
//! a plain-HTTP call needs no TLS: its connector is made without the root certificates,
//! which are the costly part of a process's first call (docs/PERFORMANCE.md, section 3).
//! The TLS connector is made at the first HTTPS call, or taken ready from [`warm_up`].

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Connector, ConnectorBuilder};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use super::CONNECT_TIMEOUT;

/// The HTTP client of a process's SDK clients, for [`super::aws_config_loader`].
pub(super) fn shared() -> SharedHttpClient {
    SharedHttpClient::new(ByScheme::default())
}

/// Keeps one connector per set of connection timeouts (every SDK client of the process asks
/// for the same, [`is_shared`]), as the SDK's own client does. Unlike that client, it makes
/// nothing when an SDK client is built (the SDK's makes a connector then, to check it, and
/// throws it away: a TLS configuration with the roots read, once per SDK client).
#[derive(Debug, Default)]
struct ByScheme {
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for ByScheme {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(SchemeConnector::new(
            settings.clone(),
            components.sleep_impl(),
        ));
        connectors.push((timeouts, connector.clone()));
        connector
    }

    /// As the SDK's own client says it (the user agent's `md/http#hyper-1.x`).
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x".into())))
    }
}

/// A plain connector for `http://` calls, a TLS one for the others, each made at the first
/// call that needs it. Each keeps its own pool of connections, as the two schemes never
/// share one.
#[derive(Debug)]
struct SchemeConnector {
    plain: OnceLock<Connector>,
    tls: OnceLock<Connector>,
    settings: HttpConnectorSettings,
    sleep: Option<SharedAsyncSleep>,
}

impl SchemeConnector {
    fn new(settings: HttpConnectorSettings, sleep: Option<SharedAsyncSleep>) -> Self {
        Self {
            plain: OnceLock::new(),
            tls: OnceLock::new(),
            settings,
            sleep,
        }
    }

    fn plain(&self) -> &Connector {
        self.plain
            .get_or_init(|| builder(self.settings.clone(), self.sleep.clone()).build_http())
    }

    fn tls(&self) -> &Connector {
        self.tls.get_or_init(|| {
            let prepared = if is_shared(&self.settings) {
                prepared_connector()
            } else {
                None
            };
            prepared.unwrap_or_else(|| tls_connector(self.settings.clone(), self.sleep.clone()))
        })
    }
}

impl HttpConnector for SchemeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if is_plain_http(request.uri()) {
            self.plain().call(request)
        } else {
            self.tls().call(request)
        }
    }
}

fn is_plain_http(uri: &str) -> bool {
    uri.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// A connector's builder with the timeouts asked for and the SDK's sleep.
fn builder(settings: HttpConnectorSettings, sleep: Option<SharedAsyncSleep>) -> ConnectorBuilder {
    let mut builder = Connector::builder();
    builder.set_connector_settings(Some(settings));
    builder.set_sleep_impl(sleep);
    builder
}

/// A TLS connector as the SDK makes its own.
fn tls_connector(settings: HttpConnectorSettings, sleep: Option<SharedAsyncSleep>) -> Connector {
    builder(settings, sleep)
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build()
}

/// The settings every SDK client of the process asks its connector for: those of
/// [`super::aws_config_loader`] (a connect timeout; no read timeout).
fn is_shared(settings: &HttpConnectorSettings) -> bool {
    settings.connect_timeout() == Some(CONNECT_TIMEOUT) && settings.read_timeout().is_none()
}

/// The TLS connector made ahead by [`warm_up`], for the first HTTPS call to take: empty when
/// no warm-up ran (the functions other than the API) or once taken. A call that comes while
/// it is being made waits for it instead of making a second one.
static PREPARED: OnceLock<Mutex<Option<Connector>>> = OnceLock::new();

fn prepared_connector() -> Option<Connector> {
    PREPARED
        .get_or_init(|| Mutex::new(None))
        .lock()
        .ok()?
        .take()
}

/// Makes the TLS connector of the first HTTPS call, for that call to take, unless the
/// environment sends every call to a plain-HTTP endpoint (`AWS_ENDPOINT_URL`, as locally
/// and in the tests). A wrong guess costs only time: either this connector goes unused, or
/// the first HTTPS call makes its own.
///
/// That is the costly part of the call: the SDK reads the system's root certificates once
/// per process, at its first TLS connector, and keeps them (about 145 certificates, 220 kB
/// of PEM, 8 million instructions: more than half of what the API's main thread ran at a
/// cold start, docs/PERFORMANCE.md); each connector then turns them into trust anchors
/// (0.5 million more).
pub(super) fn warm_up() {
    if !may_call_https(std::env::vars()) {
        return;
    }
    PREPARED.get_or_init(|| {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build();
        let sleep = SharedAsyncSleep::new(TokioSleep::new());
        Mutex::new(Some(tls_connector(settings, Some(sleep))))
    });
}

/// Whether any AWS call may go to an HTTPS endpoint: unless `AWS_ENDPOINT_URL` names a
/// plain-HTTP one, and no service's own `AWS_ENDPOINT_URL_<SERVICE>` an HTTPS one.
fn may_call_https(vars: impl Iterator<Item = (String, String)>) -> bool {
    let mut all_plain = false;
    for (name, value) in vars {
        let https_elsewhere = match name.as_str() {
            "AWS_ENDPOINT_URL" => {
                all_plain = is_plain_http(&value);
                false
            }
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" => value.eq_ignore_ascii_case("true"),
            service if service.starts_with("AWS_ENDPOINT_URL_") => !is_plain_http(&value),
            _ => false,
        };
        if https_elsewhere {
            return true;
        }
    }
    !all_plain
}

/// One answer of [`send`]: its status, its headers (names lower-cased) and its whole body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The connectors of [`send`], one per timeout: kept apart from the SDK clients' (which ask
/// for no read timeout) and made at the first call, as theirs are.
static OUTSIDE: OnceLock<Mutex<Vec<(Duration, SharedHttpConnector)>>> = OnceLock::new();

fn outside_connector(timeout: Duration) -> SharedHttpConnector {
    let mut connectors = OUTSIDE
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeout) {
        return connector.clone();
    }
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .read_timeout(timeout)
        .build();
    let sleep = SharedAsyncSleep::new(TokioSleep::new());
    let connector = SharedHttpConnector::new(SchemeConnector::new(settings, Some(sleep)));
    connectors.push((timeout, connector.clone()));
    connector
}

/// Sends one request to a service outside AWS (a CommCare HQ server) through the SDK's own
/// connectors, so that no second HTTP or TLS stack enters the binary: HTTPS, or plain HTTP
/// for a local stand-in. The whole call, body read included, ends within `timeout`.
///
/// The error says what went wrong with the connection, never what was sent.
pub(crate) async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, String> {
    use futures::StreamExt;
    let mut request = HttpRequest::new(body.into());
    request
        .set_method(method)
        .map_err(|_| "a bad method".to_owned())?;
    request.set_uri(url).map_err(|_| "a bad URL".to_owned())?;
    for (name, value) in headers {
        request
            .headers_mut()
            .try_insert((*name).to_owned(), (*value).to_owned())
            .map_err(|_| format!("a bad value of the header {name}"))?;
    }
    let call = async {
        let response = outside_connector(timeout)
            .call(request)
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_io() {
                    "no connection".to_owned()
                } else {
                    "no answer".to_owned()
                }
            })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect();
        // The Lambda runtime's body adapter (lambda_http, a dependency already) reads the
        // SDK's body as a stream of chunks.
        let mut stream = lambda_http::lambda_runtime::streaming::Body::new(response.into_body());
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(|_| "the answer broke off".to_owned())?);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connector `warm_up` makes is taken only by a call asking for the same settings:
    /// those the SDK's orchestrator derives from the loader's timeouts. A timeout added to
    /// the loader without `is_shared` would leave it unused, and the first call making its own.
    #[tokio::test]
    async fn the_clients_ask_for_the_settings_of_the_connector_made_ahead() {
        let config = super::super::aws_config_loader()
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

    fn connector() -> SchemeConnector {
        SchemeConnector::new(
            HttpConnectorSettings::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
            Some(SharedAsyncSleep::new(TokioSleep::new())),
        )
    }

    /// A call to a plain-HTTP endpoint is answered without the TLS connector ever being made
    /// (nor, with it, the root certificates read).
    #[tokio::test]
    async fn a_plain_http_call_makes_no_tls_connector() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
        });
        let connector = connector();
        let request = HttpRequest::get(format!("http://{address}/")).unwrap();
        let response = connector.call(request).await.expect("the stand-in answers");
        assert_eq!(response.status().as_u16(), 204);
        assert!(connector.tls.get().is_none());
    }

    /// An HTTPS call goes through the TLS connector, made at that call.
    #[tokio::test]
    async fn an_https_call_makes_the_tls_connector() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let connector = connector();
        let request = HttpRequest::get(format!("https://{address}/")).unwrap();
        assert!(
            connector.call(request).await.is_err(),
            "nothing listens there"
        );
        assert!(connector.tls.get().is_some());
    }

    /// One request out (CommCare HQ's): the status, the headers and a chunked body read
    /// whole; a server that never answers ends within the timeout.
    #[tokio::test]
    async fn send_reads_a_whole_answer_and_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let read = socket.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..read]).to_lowercase();
            assert!(request.starts_with("post /a/p/api/v0.5/user/ http/1.1"));
            assert!(request.contains("authorization: apikey e:k"));
            socket
                .write_all(
                    b"HTTP/1.1 201 Created\r\nRetry-After: 3\r\ntransfer-encoding: chunked\r\n\r\n\
                      5\r\n{\"id\"\r\n7\r\n: \"u1\"}\r\n0\r\n\r\n",
                )
                .await
                .unwrap();
            let (_silent, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let answer = send(
            "POST",
            &format!("http://{address}/a/p/api/v0.5/user/"),
            &[("authorization", "ApiKey e:k")],
            b"{}".to_vec(),
            Duration::from_secs(2),
        )
        .await
        .expect("an answer");
        assert_eq!(answer.status, 201);
        assert_eq!(answer.header("Retry-After"), Some("3"));
        assert_eq!(answer.body, br#"{"id": "u1"}"#);

        let started = std::time::Instant::now();
        let silent = send(
            "GET",
            &format!("http://{address}/"),
            &[],
            Vec::new(),
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(silent.err().as_deref(), Some("timed out"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn the_scheme_picks_the_connector() {
        assert!(is_plain_http("http://127.0.0.1:5000/"));
        assert!(is_plain_http("HTTP://localhost/"));
        assert!(!is_plain_http("https://dynamodb.eu-west-1.amazonaws.com/"));
        assert!(!is_plain_http("http:/"));
        assert!(!is_plain_http(""));
    }

    #[test]
    fn the_roots_are_read_ahead_unless_every_endpoint_is_plain_http() {
        let env = |pairs: &[(&str, &str)]| {
            may_call_https(
                pairs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        };
        // On AWS: no endpoint set.
        assert!(env(&[("AWS_REGION", "eu-west-1")]));
        assert!(env(&[("AWS_ENDPOINT_URL", "https://proxy.example")]));
        // Locally and in the tests: moto over plain HTTP.
        assert!(!env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]));
        assert!(!env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5001"),
        ]));
        // One service elsewhere over HTTPS, or the endpoints ignored.
        assert!(env(&[
            (
                "AWS_ENDPOINT_URL_SNS",
                "https://sns.eu-west-1.amazonaws.com"
            ),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]));
        assert!(env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]));
        assert!(!env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false"),
        ]));
    }
}
