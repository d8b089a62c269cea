//! The HTTP entry point: API Gateway requests in, JSON responses out.

pub mod auth;
pub mod error;
pub mod route;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use tracing::{Instrument, info, info_span};

use crate::ports::{Directory, InvitationStore, SmsSender};
use crate::service::RegistrationService;
pub use error::ApiError;
use error::json_response;
use route::Route;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The function: the registration service behind HTTP.
pub struct Api<D, I, S> {
    pub service: RegistrationService<D, I, S>,
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

/// Deadlines before this (September 2001, in ms) are not Unix times: `cargo lambda watch`
/// sends a relative `600000`. Such a deadline is treated as unknown.
const PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation's deadline as an `Instant`; `None` where there is no real one
/// (replayed events, local emulators).
fn deadline(request: &Request) -> Option<Instant> {
    let deadline_ms = request.lambda_context_ref()?.deadline;
    if deadline_ms < PLAUSIBLE_DEADLINE_MS {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

fn stage(request: &Request) -> Option<String> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    }
}

impl<D: Directory, I: InvitationStore, S: SmsSender> Api<D, I, S> {
    pub fn new(service: RegistrationService<D, I, S>) -> Self {
        Api { service }
    }

    /// Answers one request; every outcome, errors included, is a JSON response.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let span = info_span!("request", request_id = %request_id(&request), domain = tracing::field::Empty);
        async {
            let response = match self.dispatch(&request).await {
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
                self.create_invitations(request, domain).await
            }
        }
    }

    async fn create_invitations(
        &self,
        request: &Request,
        domain: &str,
    ) -> Result<Response<Body>, ApiError> {
        let header = request.headers().get("authorization").map(|v| v.as_bytes());
        let credentials = auth::parse_authorization(header).ok_or(ApiError::Unauthenticated)?;
        let key = self.service.authenticate(&credentials).await?;
        let project = self.service.authorize(&key, domain).await?;

        let body = read_json_object(request.body())?;
        let invitation_request = self
            .service
            .validate(&project, &body)
            .map_err(ApiError::Validation)?;
        let report = self
            .service
            .invite(&project, invitation_request, deadline(request))
            .await;
        Ok(json_response(StatusCode::OK, &report))
    }
}

fn read_json_object(body: &Body) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes: &[u8] = body.as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::InvalidJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Context;

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
