//! `GET|POST /a/{domain}/register/{token}` and its short form `/r/{token}`: the page a worker opens from the SMS, as HTML,
//! or as JSON for apps that build their own screen.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tracing::warn;

use super::error::json_response;
use super::pages::{self, FormValues};
use crate::domain::Project;
use crate::domain::RegistrationRecord;
use crate::domain::worker::{FormErrors, RegistrationForm};
use crate::ports::{JobQueue, RegistrationEvents, Store};
use crate::service::RegistrationService;
use crate::service::registration::{Invitation, RegisterError};

fn app_of<'a>(project: &'a Project, record: &RegistrationRecord) -> Option<&'a crate::domain::App> {
    record.app_id.as_deref().and_then(|id| project.app(id))
}

fn wants_json(request: &Request) -> bool {
    request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// The form of a POST body: JSON or `application/x-www-form-urlencoded`. A body that is
/// neither reads as an empty form, whose errors then say what is missing.
fn read_form(request: &Request, json: bool) -> RegistrationForm {
    let body: &[u8] = request.body().as_ref();
    let parsed = if json {
        serde_json::from_slice(body).ok()
    } else {
        serde_urlencoded::from_bytes(body).ok()
    };
    parsed.unwrap_or_default()
}

/// The page (or JSON answer) for a link that leads to no pending invitation.
fn unavailable(invitation: &Invitation, json: bool) -> Response<Body> {
    let (status, message) = match invitation {
        Invitation::Expired(_) => (
            StatusCode::GONE,
            "This invitation has expired. Ask the project's administrator for a new one.",
        ),
        Invitation::Registered(..) => (
            StatusCode::CONFLICT,
            "This invitation was already used to register.",
        ),
        Invitation::Closed(_) => (
            StatusCode::FORBIDDEN,
            "Registration is closed for this project.",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "This registration link is not valid.",
        ),
    };
    if json {
        return json_response(status, &json!({ "errors": { "token": message } }));
    }
    let page = match invitation {
        Invitation::Expired(project) => pages::expired_page(project),
        Invitation::Closed(project) => pages::closed_page(project),
        Invitation::Registered(project, record) => {
            pages::registered_page(project, app_of(project, record))
        }
        _ => pages::not_found_page(),
    };
    pages::html_response(status, page)
}

/// 409: another registration with the link was in flight; nothing was stored.
fn try_again(json: bool) -> Response<Body> {
    let mut response = if json {
        json_response(
            StatusCode::CONFLICT,
            &json!({ "errors": { "token": "Another registration with this link was being \
                processed at the same moment; nothing was saved. Please try again." } }),
        )
    } else {
        pages::html_response(StatusCode::CONFLICT, pages::try_again_page())
    };
    response.headers_mut().insert("retry-after", 1.into());
    response
}

fn store_unavailable(json: bool) -> Response<Body> {
    if json {
        return super::ApiError::Unavailable.into_response();
    }
    let mut response =
        pages::html_response(StatusCode::SERVICE_UNAVAILABLE, pages::unavailable_page());
    response
        .headers_mut()
        .insert("retry-after", super::error::RETRY_AFTER_SECONDS.into());
    response
}

pub async fn handle<St: Store, Q: JobQueue>(
    service: &RegistrationService<St, Q>,
    events: &impl RegistrationEvents,
    request: &Request,
    domain: Option<&str>,
    token: &str,
    submit: bool,
) -> Response<Body> {
    let json = submit && wants_json(request);
    if !submit {
        return match service.open_invitation(domain, token).await {
            Ok(Invitation::Pending(project, record)) => {
                // A HEAD (a link preview's probe) does not count as opening it.
                if request.method() == lambda_http::http::Method::GET {
                    service.note_opened(&record).await;
                }
                pages::html_response(
                    StatusCode::OK,
                    pages::form_page(
                        &project,
                        record.require_email,
                        &FormValues::default(),
                        &FormErrors::default(),
                    ),
                )
            }
            Ok(other) => unavailable(&other, false),
            Err(error) => {
                warn!(%error, "registration page unavailable");
                store_unavailable(false)
            }
        };
    }
    let form = read_form(request, json);
    match service
        .complete_registration(domain, token, &form, events)
        .await
    {
        Ok(done) if json => {
            json_response(StatusCode::CREATED, &json!({ "username": done.username }))
        }
        Ok(done) => pages::html_response(
            StatusCode::OK,
            pages::success_page(
                &done.project,
                &done.username,
                app_of(&done.project, &done.invitation),
            ),
        ),
        Err(RegisterError::Form(_, _, errors)) if json => {
            json_response(StatusCode::BAD_REQUEST, &json!({ "errors": errors }))
        }
        Err(RegisterError::Form(project, record, errors)) => {
            let values = FormValues {
                username: form.username.trim().to_owned(),
                email: form.email.trim().to_owned(),
            };
            pages::html_response(
                StatusCode::BAD_REQUEST,
                pages::form_page(&project, record.require_email, &values, &errors),
            )
        }
        Err(RegisterError::Unavailable(invitation)) => unavailable(&invitation, json),
        Err(RegisterError::TryAgain) => try_again(json),
        Err(RegisterError::Store(error)) => {
            warn!(%error, "registration failed");
            store_unavailable(json)
        }
    }
}
