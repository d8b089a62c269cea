//! The HTTP entry point: API Gateway requests in, JSON responses out.

pub mod auth;
pub mod error;
pub mod listing;
pub mod pages;
pub mod register;
pub mod route;

use std::time::Instant;

use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use tracing::{Instrument, info, info_span};

use crate::domain::Project;
use crate::ports::{JobQueue, ListQuery, Store, StoredResponse};
use crate::service::idempotency::{IdempotencyError, Once};
use crate::service::{Access, RegistrationService};
pub use error::ApiError;
use error::json_response;
use route::Route;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The function: the registration service behind HTTP.
pub struct Api<St, Q> {
    service: RegistrationService<St, Q>,
}

fn request_id(request: &Request) -> String {
    if let Some(ctx) = request.lambda_context_ref()
        && !ctx.request_id.is_empty()
    {
        return ctx.request_id.clone();
    }
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The invocation's deadline as an `Instant`; `None` where there is no real one
/// (replayed events, local emulators).
fn deadline(request: &Request) -> Option<Instant> {
    crate::domain::time::invocation_deadline(request.lambda_context_ref()?.deadline)
}

fn stage(request: &Request) -> Option<String> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    }
}

impl<St: Store, Q: JobQueue> Api<St, Q> {
    pub fn new(service: RegistrationService<St, Q>) -> Self {
        Api { service }
    }

    /// Answers one request; every outcome, errors included, is a JSON response.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let span = info_span!("request", request_id = %request_id(&request), domain = tracing::field::Empty);
        async {
            // On the heap: each endpoint's future is large, and a debug build's frames
            // that hold it on the stack add up (a test thread has 2 MiB).
            let response = match Box::pin(self.dispatch(&request)).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            };
            info!(status = response.status().as_u16(), "request handled");
            response
        }
        .instrument(span)
        .await
    }

    async fn dispatch(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let stage = stage(request);
        match route::route(
            request.method().as_str(),
            request.uri().path(),
            stage.as_deref(),
        ) {
            Route::NotFound => Err(ApiError::NotFound),
            Route::MethodNotAllowed { allow } => Err(ApiError::MethodNotAllowed { allow }),
            Route::CreateInvitations { domain } => {
                tracing::Span::current().record("domain", domain);
                Box::pin(self.sending(request, domain, Sending::Invitations)).await
            }
            Route::Reinstall { domain } => {
                tracing::Span::current().record("domain", domain);
                Box::pin(self.sending(request, domain, Sending::Reinstall)).await
            }
            Route::ListInvitations { domain } => {
                tracing::Span::current().record("domain", domain);
                self.list_invitations(request, domain).await
            }
            Route::BatchProgress { domain, batch_id } => {
                tracing::Span::current().record("domain", domain);
                self.batch_progress(request, domain, batch_id).await
            }
            Route::Registration {
                domain,
                token,
                submit,
            } => {
                if let Some(domain) = domain {
                    tracing::Span::current().record("domain", domain);
                }
                Ok(register::handle(&self.service, request, domain, token, submit).await)
            }
        }
    }

    /// Authenticates the request and authorises it in the project.
    async fn access(
        &self,
        request: &Request,
        domain: &str,
        access: Access,
    ) -> Result<Project, ApiError> {
        let header = request.headers().get("authorization").map(|v| v.as_bytes());
        let credentials = auth::parse_authorization(header).ok_or(ApiError::Unauthenticated)?;
        Ok(self.service.admit(&credentials, domain, access).await?)
    }

    /// A request that sends SMS: invitations or reinstall links, with `Idempotency-Key`.
    async fn sending(
        &self,
        request: &Request,
        domain: &str,
        sending: Sending,
    ) -> Result<Response<Body>, ApiError> {
        // Before authentication: it depends on the request alone, so it reveals nothing of
        // the project, and a browser's cross-site form (text/plain, credentials cached)
        // costs no key check and never meets a challenge.
        if body_kind(request) != BodyKind::Json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let project = self.access(request, domain, Access::Edit).await?;
        let Some(idempotency_key) = idempotency_key(request)? else {
            return Box::pin(self.send_from_body(request, &project, sending)).await;
        };
        // The endpoint is part of the request: one key never serves both sending endpoints.
        let request_hash =
            sha256_hex(&[sending.name().as_bytes(), b"\n", request.body().as_ref()].concat());
        let run = Box::pin(async {
            self.send_from_body(request, &project, sending)
                .await
                .unwrap_or_else(ApiError::into_response)
        });
        let kept = |response: &Response<Body>| StoredResponse {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(response.body().as_ref()).into_owned(),
        };
        match self
            .service
            .once(domain, &idempotency_key, &request_hash, run, kept)
            .await
        {
            Ok(Once::Ran(response)) => Ok(response),
            Ok(Once::Replay(stored)) => Ok(replay(&stored)),
            Err(IdempotencyError::Unavailable) => Err(ApiError::Unavailable),
            Err(IdempotencyError::Mismatch) => Err(ApiError::IdempotencyMismatch),
            Err(IdempotencyError::InProgress) => Err(ApiError::IdempotencyInProgress),
            Err(IdempotencyError::Unknown) => Err(ApiError::IdempotencyUnknown),
        }
    }

    async fn send_from_body(
        &self,
        request: &Request,
        project: &Project,
        sending: Sending,
    ) -> Result<Response<Body>, ApiError> {
        let body = read_json_object(request.body())?;
        let deadline = deadline(request);
        match sending {
            Sending::Invitations => {
                let invitations = self.service.validate(project, &body).map_err(|errors| {
                    ApiError::Validation {
                        resource: "sms_user_registration",
                        errors,
                    }
                })?;
                let report = self.service.invite(project, invitations, deadline).await?;
                Ok(json_response(StatusCode::OK, &report))
            }
            Sending::Reinstall => {
                let reinstall =
                    self.service
                        .validate_reinstall(project, &body)
                        .map_err(|errors| ApiError::Validation {
                            resource: "sms_user_registration_reinstall",
                            errors,
                        })?;
                let report = self.service.reinstall(project, reinstall, deadline).await?;
                Ok(json_response(StatusCode::OK, &report))
            }
        }
    }

    /// A create request's progress: its counts, kept as it goes (one read, no scan).
    async fn batch_progress(
        &self,
        request: &Request,
        domain: &str,
        batch_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let project = self.access(request, domain, Access::Read).await?;
        let progress = self
            .service
            .batch_progress(&project, batch_id, deadline(request))
            .await
            .map_err(|_| ApiError::Unavailable)?;
        match progress {
            Some(progress) => Ok(json_response(StatusCode::OK, &progress)),
            None => Err(ApiError::NotFound),
        }
    }

    async fn list_invitations(
        &self,
        request: &Request,
        domain: &str,
    ) -> Result<Response<Body>, ApiError> {
        let project = self.access(request, domain, Access::Read).await?;
        let query = listing::parse_query(request.uri().query().unwrap_or_default())?;
        let now = self.service.now();
        let list_query = ListQuery {
            domain: project.name.clone(),
            status: query.status,
            now,
            limit: query.limit,
            after: query.after.clone(),
        };
        // One or two queries; still, never past the deadline.
        let mut page = self
            .service
            .list_invitations(&list_query, deadline(request))
            .await
            .map_err(|_| ApiError::Unavailable)?;
        page.items.retain(|record| query.keeps(record));
        Ok(json_response(
            StatusCode::OK,
            &listing::page_json(&page, now),
        ))
    }
}

/// What a sending request sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    Invitations,
    Reinstall,
}

impl Sending {
    fn name(self) -> &'static str {
        match self {
            Sending::Invitations => "sms_user_registration",
            Sending::Reinstall => "sms_user_registration_reinstall",
        }
    }
}

/// The `Idempotency-Key` header: 1 to 255 printable ASCII characters, if present.
fn idempotency_key(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::BadIdempotencyKey);
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The stored answer, as first given.
fn replay(stored: &StoredResponse) -> Response<Body> {
    Response::builder()
        .status(stored.status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("idempotent-replayed", "true")
        .body(Body::Text(stored.body.clone()))
        .expect("a stored status is valid")
}

fn read_json_object(body: &Body) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes: &[u8] = body.as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    crate::domain::json::parse_object(bytes).ok_or(ApiError::InvalidJson)
}

/// What a request's `Content-Type` declares its body to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Json,
    Form,
    /// Anything else, or no `Content-Type` at all.
    Other,
}

/// The media type of `Content-Type`, compared without its parameters and in any case
/// (RFC 9110): `Application/JSON; charset=utf-8` is JSON.
pub(crate) fn body_kind(request: &Request) -> BodyKind {
    let Some(value) = request.headers().get("content-type") else {
        return BodyKind::Other;
    };
    let Ok(value) = value.to_str() else {
        return BodyKind::Other;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        BodyKind::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Context;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn request_with_deadline(deadline_ms: u64) -> Request {
        let mut context = Context::default();
        context.deadline = deadline_ms;
        Request::default().with_lambda_context(context)
    }

    #[test]
    fn a_real_deadline_becomes_an_instant_that_far_ahead() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let at = deadline(&request_with_deadline(now_ms + 10_000)).unwrap();
        let left = at.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(9) && left <= Duration::from_secs(10),
            "{left:?}"
        );
    }

    #[test]
    fn a_relative_or_missing_deadline_is_unknown() {
        assert!(deadline(&request_with_deadline(600_000)).is_none());
        assert!(deadline(&request_with_deadline(0)).is_none());
        assert!(deadline(&Request::default()).is_none());
    }
}
