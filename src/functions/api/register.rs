//! `GET|POST /a/{domain}/register/{token}` and its short form `/r/{token}`: the page a worker opens from the SMS, as HTML,
//! or as JSON for apps that build their own screen.

use std::collections::HashSet;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use tracing::warn;

use super::error::json_response;
use super::pages::{self, FormValues};
use super::{BodyKind, MAX_BODY_BYTES};
use crate::domain::Project;
use crate::domain::RegistrationRecord;
use crate::domain::language::{Language, Texts};
use crate::domain::worker::{FormErrors, RegistrationForm, normalise_username};
use crate::ports::{JobQueue, Store};
use crate::service::RegistrationService;
use crate::service::registration::{Invitation, RegisterError};
use lambda_http::RequestExt;

fn app_of<'a>(project: &'a Project, record: &RegistrationRecord) -> Option<&'a crate::domain::App> {
    record.app_id.as_deref().and_then(|id| project.app(id))
}

// The longest username and email that `domain::worker`'s rules accept (characters once
// normalised; bytes): the form shows back nothing longer.
use crate::domain::worker::{MAX_EMAIL_OCTETS as MAX_EMAIL_BYTES, MAX_USERNAME_CHARS};

/// Why a POST's body was not read. Nothing is looked up for such a body, so nobody is
/// registered.
#[derive(Debug, PartialEq)]
enum Unread {
    /// Neither JSON nor a form (or no `Content-Type`).
    MediaType,
    /// Over the API's limit, as JSON or as a form.
    TooLarge { json: bool },
    /// Not one JSON object, or a key repeated in it.
    NotJson,
    /// JSON fields present but not text.
    NotText(FormErrors),
    /// A form with a field named twice (or that could not be read at all).
    UnreadableForm,
}

impl Unread {
    /// In the page's JSON shape, `{"errors": {...}}`, `body` naming the body as a whole
    /// (as `token` names the link); a browser's form gets a page.
    fn into_response(self, t: &Texts) -> Response<Body> {
        let body_error = |status: StatusCode, message: &str| {
            json_response(status, &json!({ "errors": { "body": message } }))
        };
        match self {
            Unread::MediaType => body_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Send the form as application/x-www-form-urlencoded, or as JSON with \
                 'Content-Type: application/json'.",
            ),
            Unread::TooLarge { json: true } => body_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is larger than 1 MiB.",
            ),
            Unread::TooLarge { json: false } => {
                pages::html_response(StatusCode::PAYLOAD_TOO_LARGE, pages::too_large_page(t))
            }
            Unread::NotJson => body_error(StatusCode::BAD_REQUEST, "Request is not valid JSON."),
            Unread::NotText(errors) => {
                json_response(StatusCode::BAD_REQUEST, &json!({ "errors": errors }))
            }
            Unread::UnreadableForm => {
                pages::html_response(StatusCode::BAD_REQUEST, pages::unreadable_page(t))
            }
        }
    }
}

/// The form of a POST, and whether it came as JSON.
fn read_form(request: &Request) -> Result<(RegistrationForm, bool), Unread> {
    let json = match super::body_kind(request) {
        BodyKind::Json => true,
        BodyKind::Form => false,
        BodyKind::Other => return Err(Unread::MediaType),
    };
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(Unread::TooLarge { json });
    }
    let form = if json {
        form_from_json(body)?
    } else {
        form_from_urlencoded(body)?
    };
    Ok((form, json))
}

fn form_from_json(body: &[u8]) -> Result<RegistrationForm, Unread> {
    let object = crate::domain::json::parse_object(body).ok_or(Unread::NotJson)?;
    let mut errors = FormErrors::default();
    let mut text = |field: &str| match object.get(field) {
        None => String::new(),
        Some(Value::String(value)) => value.clone(),
        // null too: present, and not text (as the API reads its fields).
        Some(_) => {
            errors
                .0
                .insert(field.to_owned(), "Expected type: str".to_owned());
            String::new()
        }
    };
    let form = RegistrationForm {
        username: text("username"),
        password: text("password"),
        password2: text("password2"),
        email: text("email"),
    };
    if !errors.0.is_empty() {
        return Err(Unread::NotText(errors));
    }
    Ok(form)
}

/// A form with a field named twice is refused, as JSON with a key repeated is: no guess
/// at which of the two values was meant. Unknown fields are ignored.
fn form_from_urlencoded(body: &[u8]) -> Result<RegistrationForm, Unread> {
    // Percent-decoding is lossy UTF-8: any bytes read as some form.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| Unread::UnreadableForm)?;
    let mut names = HashSet::new();
    if !pairs.iter().all(|(name, _)| names.insert(name.as_str())) {
        return Err(Unread::UnreadableForm);
    }
    let mut form = RegistrationForm::default();
    for (name, value) in pairs {
        match name.as_str() {
            "username" => form.username = value,
            "password" => form.password = value,
            "password2" => form.password2 = value,
            "email" => form.email = value,
            _ => {}
        }
    }
    Ok(form)
}

/// What the form shows back after errors: each value only when within its field's limit,
/// so no page carries back more than a valid form holds (a longer value has its error).
fn shown_back(form: &RegistrationForm) -> FormValues {
    let username = form.username.trim();
    let email = form.email.trim();
    // Lower-casing never shortens, so the normalised length bounds the typed one.
    let username_fits = normalise_username(username).chars().count() <= MAX_USERNAME_CHARS;
    FormValues {
        username: if username_fits { username } else { "" }.to_owned(),
        email: if email.len() <= MAX_EMAIL_BYTES {
            email
        } else {
            ""
        }
        .to_owned(),
    }
}

/// The page's `?lang=` (a link to the page in another language), if it names one.
fn asked_language(request: &Request) -> Option<Language> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first("lang"))
        .and_then(Language::parse)
}

/// The browser's `Accept-Language`, if any.
fn accept_language(request: &Request) -> Option<&str> {
    request
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
}

/// The texts of a page of `project`: in the language its `?lang=` asks for when the
/// project has it, else the invitation's, else the browser's first among the project's,
/// else the project's default.
fn page_texts<'a>(
    request: &Request,
    project: &'a Project,
    record: Option<&RegistrationRecord>,
) -> Texts<'a> {
    let offered = &project.languages;
    let language = asked_language(request)
        .filter(|l| offered.contains(l))
        .or_else(|| record.and_then(|r| r.language))
        .or_else(|| {
            accept_language(request).and_then(|h| Language::from_accept_language(h, offered))
        });
    project.texts(language)
}

/// The texts of a page of no known project: the language asked for, else the browser's.
fn bare_texts(request: &Request) -> Texts<'static> {
    let language = asked_language(request)
        .or_else(|| {
            accept_language(request).and_then(|h| Language::from_accept_language(h, &Language::ALL))
        })
        .unwrap_or(Language::En);
    Texts {
        language,
        default: Language::En,
        own: None,
    }
}

/// The page (or JSON answer) for a link that leads to no pending invitation.
fn unavailable(request: &Request, invitation: &Invitation, json: bool) -> Response<Body> {
    let (status, message) = match invitation {
        Invitation::Expired(_) => (
            StatusCode::GONE,
            "This invitation has expired. Ask the project's administrator for a new one.",
        ),
        Invitation::Registered(..) => (
            StatusCode::CONFLICT,
            "This invitation was already used to register.",
        ),
        Invitation::Creating(..) => (
            StatusCode::CONFLICT,
            "A registration with this link is already creating its account; an SMS will \
             follow when it is ready.",
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
        Invitation::Expired(project) => {
            pages::expired_page(&page_texts(request, project, None), project)
        }
        Invitation::Closed(project) => {
            pages::closed_page(&page_texts(request, project, None), project)
        }
        Invitation::Registered(project, record) => pages::registered_page(
            &page_texts(request, project, Some(record)),
            project,
            app_of(project, record),
        ),
        Invitation::Creating(project, record) => pages::creating_page(
            &page_texts(request, project, Some(record)),
            project,
            None,
            app_of(project, record),
        ),
        _ => pages::not_found_page(&bare_texts(request)),
    };
    pages::html_response(status, page)
}

/// 409: another registration with the link was in flight; nothing was stored.
fn try_again(request: &Request, json: bool) -> Response<Body> {
    let mut response = if json {
        json_response(
            StatusCode::CONFLICT,
            &json!({ "errors": { "token": "Another registration with this link was being \
                processed at the same moment; nothing was saved. Please try again." } }),
        )
    } else {
        pages::html_response(
            StatusCode::CONFLICT,
            pages::try_again_page(&bare_texts(request)),
        )
    };
    response.headers_mut().insert("retry-after", 1.into());
    response
}

fn store_unavailable(request: &Request, json: bool) -> Response<Body> {
    if json {
        return super::ApiError::Unavailable.into_response();
    }
    let mut response = pages::html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::unavailable_page(&bare_texts(request)),
    );
    response
        .headers_mut()
        .insert("retry-after", super::error::RETRY_AFTER_SECONDS.into());
    response
}

pub async fn handle<St: Store, Q: JobQueue>(
    service: &RegistrationService<St, Q>,
    request: &Request,
    domain: Option<&str>,
    token: &str,
    submit: bool,
) -> Response<Body> {
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
                        &page_texts(request, &project, Some(&record)),
                        &project,
                        record.require_email,
                        &FormValues::default(),
                        &FormErrors::default(),
                    ),
                )
            }
            Ok(other) => unavailable(request, &other, false),
            Err(error) => {
                warn!(%error, "registration page unavailable");
                store_unavailable(request, false)
            }
        };
    }
    let (form, json) = match read_form(request) {
        Ok(read) => read,
        Err(unread) => return unread.into_response(&bare_texts(request)),
    };
    match service.complete_registration(domain, token, &form).await {
        Ok(done) if json => {
            // 201: the account exists; 202: it is being made (an SMS follows).
            let status = match &done.account {
                Some(account) if !account.status.is_settled() => StatusCode::ACCEPTED,
                _ => StatusCode::CREATED,
            };
            let mut body = json!({ "username": done.username });
            if let Some(account) = &done.account {
                body["account"] = account.listed();
            }
            json_response(status, &body)
        }
        Ok(done)
            if done
                .account
                .as_ref()
                .is_some_and(|a| !a.status.is_settled()) =>
        {
            pages::html_response(
                StatusCode::ACCEPTED,
                pages::creating_page(
                    &page_texts(request, &done.project, Some(&done.invitation)),
                    &done.project,
                    Some(&done.username),
                    app_of(&done.project, &done.invitation),
                ),
            )
        }
        Ok(done) => pages::html_response(
            StatusCode::OK,
            pages::success_page(
                &page_texts(request, &done.project, Some(&done.invitation)),
                &done.project,
                &done.username,
                app_of(&done.project, &done.invitation),
            ),
        ),
        Err(RegisterError::Form(project, record, errors)) if json => {
            // In the invitation's language (the project's default when it has none).
            let t = project.texts(record.language);
            let errors: std::collections::BTreeMap<&String, String> = errors
                .0
                .iter()
                .map(|(field, e)| (field, t.localise(e)))
                .collect();
            json_response(StatusCode::BAD_REQUEST, &json!({ "errors": errors }))
        }
        Err(RegisterError::Form(project, record, errors)) => pages::html_response(
            StatusCode::BAD_REQUEST,
            pages::form_page(
                &page_texts(request, &project, Some(&record)),
                &project,
                record.require_email,
                &shown_back(&form),
                &errors,
            ),
        ),
        Err(RegisterError::Unavailable(invitation)) => unavailable(request, &invitation, json),
        Err(RegisterError::TryAgain) => try_again(request, json),
        Err(RegisterError::AccountsUnavailable) => {
            warn!("registration refused: the project's directory cannot be used now");
            store_unavailable(request, json)
        }
        Err(RegisterError::Store(error)) => {
            warn!(%error, "registration failed");
            store_unavailable(request, json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address of exactly `bytes` bytes, in labels a strict check accepts.
    fn email_of(bytes: usize) -> String {
        let tail = bytes - 64 - 1 - 64 - 64 - 4;
        format!(
            "{}@{}.{}.{}.org",
            "e".repeat(64),
            "d".repeat(63),
            "c".repeat(63),
            "b".repeat(tail)
        )
    }

    fn form(username: &str, email: &str) -> RegistrationForm {
        RegistrationForm {
            username: username.into(),
            password: "correct horse".into(),
            password2: "correct horse".into(),
            email: email.into(),
        }
    }

    #[test]
    fn the_limits_shown_back_are_the_fields_own() {
        let at = form(&"a".repeat(MAX_USERNAME_CHARS), &email_of(MAX_EMAIL_BYTES));
        assert_eq!(at.email.len(), MAX_EMAIL_BYTES);
        assert!(at.validate(false).is_ok(), "values at the limits are valid");
        let shown = shown_back(&at);
        assert_eq!((shown.username, shown.email), (at.username, at.email));

        let past = form(
            &"a".repeat(MAX_USERNAME_CHARS + 1),
            &email_of(MAX_EMAIL_BYTES + 1),
        );
        let errors = past.validate(false).unwrap_err();
        assert!(errors.get("username").is_some() && errors.get("email").is_some());
        let shown = shown_back(&past);
        assert_eq!((shown.username.as_str(), shown.email.as_str()), ("", ""));
    }

    #[test]
    fn a_form_reads_its_four_fields_once_each() {
        let read =
            form_from_urlencoded(b"username=Jane&password=a+b&password2=a%20b&x=1&email=").unwrap();
        assert_eq!(
            (read.username.as_str(), read.password.as_str()),
            ("Jane", "a b")
        );
        assert_eq!(read.password2, "a b");
        for repeated in [&b"username=a&username=a"[..], b"x=1&x=2&username=a"] {
            assert_eq!(form_from_urlencoded(repeated), Err(Unread::UnreadableForm));
        }
        assert_eq!(
            form_from_urlencoded(b"").unwrap(),
            RegistrationForm::default()
        );
    }
}
