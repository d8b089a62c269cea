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
use tracing::{Instrument, info, info_span, warn};

use crate::domain::Project;
use crate::ports::{
    DailyQuota, Directory, IdempotencyBegin, IdempotencyStore, InvitationStore, JobQueue,
    ListQuery, RegistrationEvents, StoredResponse, WorkerStore,
};
use crate::service::{Access, RegistrationService};
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

impl<D, I, S> Api<D, I, S>
where
    D: Directory + DailyQuota + IdempotencyStore,
    I: InvitationStore + WorkerStore,
    S: JobQueue + RegistrationEvents,
{
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
                self.sending(request, domain, Sending::Invitations).await
            }
            Route::Reinstall { domain } => {
                tracing::Span::current().record("domain", domain);
                self.sending(request, domain, Sending::Reinstall).await
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
                tracing::Span::current().record("domain", domain);
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
        let key = self.service.authenticate(&credentials).await?;
        Ok(self.service.authorize(&key, domain, access).await?)
    }

    /// A request that sends SMS: invitations or reinstall links, with `Idempotency-Key`.
    async fn sending(
        &self,
        request: &Request,
        domain: &str,
        sending: Sending,
    ) -> Result<Response<Body>, ApiError> {
        let project = self.access(request, domain, Access::Edit).await?;
        let Some(idempotency_key) = idempotency_key(request)? else {
            return self.send_from_body(request, &project, sending).await;
        };
        let store = &self.service.directory;
        // The endpoint is part of the request: one key never serves both sending endpoints.
        let request_hash =
            sha256_hex(&[sending.name().as_bytes(), b"\n", request.body().as_ref()].concat());
        let begun = store
            .begin(
                domain,
                &idempotency_key,
                &request_hash,
                self.service.clock.now(),
                IDEMPOTENCY_LEASE_SECONDS,
                IDEMPOTENCY_WINDOW_SECONDS,
            )
            .await
            .map_err(|error| {
                warn!(%error, "idempotency record unavailable");
                ApiError::Unavailable
            })?;
        let lease = match begun {
            IdempotencyBegin::Proceed { lease } => lease,
            IdempotencyBegin::Replay(stored) => {
                info!(status = stored.status, "replaying the stored response");
                return Ok(replay(&stored));
            }
            IdempotencyBegin::Mismatch => return Err(ApiError::IdempotencyMismatch),
            IdempotencyBegin::InProgress => return Err(ApiError::IdempotencyInProgress),
            IdempotencyBegin::Unknown => return Err(ApiError::IdempotencyUnknown),
        };
        let response = self
            .send_from_body(request, &project, sending)
            .await
            .unwrap_or_else(ApiError::into_response);
        let status = response.status();
        // A request that failed as a whole, or was turned away for now, keeps no key.
        let forget = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        let stored = StoredResponse {
            status: status.as_u16(),
            body: String::from_utf8_lossy(response.body().as_ref()).into_owned(),
        };
        for attempt in 1..=STORE_ANSWER_TRIES {
            let outcome = if forget {
                store.abandon(domain, &idempotency_key, &lease).await
            } else {
                store
                    .complete(domain, &idempotency_key, &lease, &stored)
                    .await
            };
            match outcome {
                Ok(()) => break,
                // A retry of this key gets 409: in progress, then unknown once the lease
                // has run out. The request is never run twice.
                Err(error) if attempt == STORE_ANSWER_TRIES => {
                    warn!(%error, "could not record the idempotent response")
                }
                Err(_) => tokio::time::sleep(STORE_ANSWER_PAUSE * attempt).await,
            }
        }
        Ok(response)
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
                let reservation = self
                    .service
                    .reserve_invitations(project, &invitations.users)
                    .await?;
                let report = self.service.invite(project, invitations, deadline).await;
                let sent = report.success_numbers.len();
                self.service.settle(project, reservation, sent).await;
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
                let reservation = self
                    .service
                    .reserve_invitations(project, &reinstall.users)
                    .await?;
                let report = self.service.reinstall(project, reinstall, deadline).await;
                let sent = report.success_numbers.len();
                self.service.settle(project, reservation, sent).await;
                Ok(json_response(StatusCode::OK, &report))
            }
        }
    }

    /// `GET .../sms_user_registration/`: a page of the project's invitations, newest first.
    /// A read of the store, cut off at the request's deadline (less the margin); a failure
    /// or the cut-off is a 503.
    async fn read_before_deadline<T>(
        &self,
        request: &Request,
        what: &str,
        read: impl Future<Output = Result<T, crate::ports::StoreError>>,
    ) -> Result<T, ApiError> {
        let until = self.service.work_until(deadline(request));
        match self.service.bounded(until, read).await {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => {
                warn!(%error, what, "read failed");
                Err(ApiError::Unavailable)
            }
            None => {
                warn!(what, "the deadline cut off the read");
                Err(ApiError::Unavailable)
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
        // Batch ids are made like tokens: anything else names no batch.
        if !crate::domain::Token::is_well_formed(batch_id) {
            return Err(ApiError::NotFound);
        }
        let progress = self
            .read_before_deadline(
                request,
                "batch progress",
                self.service.store.batch_progress(batch_id),
            )
            .await?;
        match progress {
            // Another project's batch is as unknown as one that never was.
            Some(progress) if progress.domain == project.name => {
                Ok(json_response(StatusCode::OK, &progress))
            }
            _ => Err(ApiError::NotFound),
        }
    }

    async fn list_invitations(
        &self,
        request: &Request,
        domain: &str,
    ) -> Result<Response<Body>, ApiError> {
        let project = self.access(request, domain, Access::Read).await?;
        let query = listing::parse_query(request.uri().query().unwrap_or_default())?;
        let now = self.service.clock.now();
        let list_query = ListQuery {
            domain: project.name.clone(),
            status: query.status,
            now,
            limit: query.limit,
            after: query.after.clone(),
        };
        // One or two queries; still, never past the deadline.
        let mut page = self
            .read_before_deadline(request, "listing", self.service.store.list(&list_query))
            .await?;
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

/// How long the answer to an `Idempotency-Key` is replayed.
pub const IDEMPOTENCY_WINDOW_SECONDS: u64 = 24 * 3600;
/// How long a running request holds its key: past the function's timeout. After it, a
/// run that stored no answer is known to have died, and its key answers 409 (unknown).
pub const IDEMPOTENCY_LEASE_SECONDS: u64 = 120;
/// Tries at storing a request's answer (or forgetting its key), and the pause between.
const STORE_ANSWER_TRIES: u32 = 3;
const STORE_ANSWER_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

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
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::InvalidJson),
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
