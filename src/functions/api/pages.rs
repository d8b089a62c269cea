//! The registration pages: small server-rendered HTML, readable on a 320 px screen,
//! usable without JavaScript.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use crate::domain::worker::{
    FormErrors, MAX_EMAIL_OCTETS, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, MIN_PASSWORD_CHARS,
    MIN_USERNAME_CHARS,
};
use crate::domain::{App, Project};

/// Where Android workers get the CommCare app.
pub const PLAY_STORE_URL: &str =
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik";

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;max-width:30rem;\
line-height:1.4;color:#1a1a1a}h1{font-size:1.3rem;margin:0 0 .25rem}h2{font-size:1.1rem}\
label{display:block;margin-top:1rem;font-weight:600}input{display:block;width:100%;\
box-sizing:border-box;padding:.6rem;font-size:1rem;margin-top:.25rem;border:1px solid #888;\
border-radius:4px}.error{color:#b00020;margin:.25rem 0 0}.hint{color:#555;font-size:.9rem;\
margin:.25rem 0 0}button{margin-top:1.5rem;width:100%;padding:.8rem;font-size:1.05rem;\
background:#1b5e20;color:#fff;border:0;border-radius:4px}a{color:#0b57d0}";

/// The page's security headers: the token is in the URL, so nothing may leak it.
fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

pub fn html_response(status: StatusCode, page: Markup) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("content-security-policy", content_security_policy())
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(page.into_string()))
        .expect("a valid HTML response")
}

fn layout(heading: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    h1 { (heading) }
                    (content)
                }
            }
        }
    }
}

fn install_links(app: Option<&App>) -> Markup {
    html! {
        ul {
            li { a href=(PLAY_STORE_URL) { "Install CommCare from the Google Play store" } }
            @if let Some(url) = app.and_then(|a| a.install_url.as_deref()) {
                li { a href=(url) { "Install " (app.map_or("the app", |a| a.name.as_str())) } }
            }
        }
    }
}

/// What the form shows back: never the passwords.
#[derive(Debug, Clone, Default)]
pub struct FormValues {
    pub username: String,
    pub email: String,
}

/// One input of the form.
struct Field<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'a str,
    autocomplete: &'a str,
    required: bool,
    hint: Option<&'a str>,
    /// The most characters the field's rule allows: a browser stops there.
    max: Option<usize>,
}

impl Field<'_> {
    fn render(&self, value: &str, errors: &FormErrors) -> Markup {
        let error = errors.get(self.name);
        let error_id = format!("{}-error", self.name);
        html! {
            label for=(self.name) { (self.label) @if !self.required { " (optional)" } }
            input id=(self.name) name=(self.name) type=(self.kind) value=(value)
                autocomplete=(self.autocomplete) required[self.required] maxlength=[self.max]
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| error_id.as_str())];
            @if let Some(hint) = self.hint { p.hint { (hint) } }
            @if let Some(message) = error { p.error id=(error_id) role="alert" { (message) } }
        }
    }
}

pub fn form_page(
    project: &Project,
    require_email: bool,
    values: &FormValues,
    errors: &FormErrors,
) -> Markup {
    let title = project.title();
    // From the rules themselves, so that the page never says other than they do.
    let username_hint =
        format!("{MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} letters, digits, '.', '_' or '-'");
    let password_hint = format!("{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters");
    layout(
        title,
        &format!("Register with {title}"),
        html! {
            p { "You are invited to register as a mobile worker. Choose a username and a password." }
            form method="post" {
                (Field { name: "username", label: "Username", kind: "text", autocomplete: "username",
                    required: true, hint: Some(&username_hint), max: Some(MAX_USERNAME_CHARS) }
                    .render(&values.username, errors))
                (Field { name: "password", label: "Password", kind: "password",
                    autocomplete: "new-password", required: true, hint: Some(&password_hint),
                    max: Some(MAX_PASSWORD_CHARS) }
                    .render("", errors))
                (Field { name: "password2", label: "Password again", kind: "password",
                    autocomplete: "new-password", required: true, hint: None,
                    max: Some(MAX_PASSWORD_CHARS) }
                    .render("", errors))
                (Field { name: "email", label: "Email", kind: "email", autocomplete: "email",
                    required: require_email, hint: None, max: Some(MAX_EMAIL_OCTETS) }
                    .render(&values.email, errors))
                button type="submit" { "Register" }
            }
        },
    )
}

pub fn success_page(project: &Project, username: &str, app: Option<&App>) -> Markup {
    layout(
        project.title(),
        "Registration complete",
        html! {
            h2 { "Thank you, you are registered" }
            p { "Your username is " strong { (username) } ". Next, install the app on your phone:" }
            (install_links(app))
        },
    )
}

/// The registration is saved, its account not made yet: an SMS follows when it is.
/// `username`: the name to sign in with, when this very submission made the registration.
pub fn creating_page(project: &Project, username: Option<&str>, app: Option<&App>) -> Markup {
    layout(
        project.title(),
        "Account being created",
        html! {
            h2 { "Thank you, your registration is saved" }
            @if let Some(username) = username {
                p { "Your account is being created. Your username will be " strong { (username) } "." }
            } @else {
                p { "Your account is being created." }
            }
            p { "We will send you an SMS when it is ready. Meanwhile, install the app on your phone:" }
            (install_links(app))
        },
    )
}

pub fn registered_page(project: &Project, app: Option<&App>) -> Markup {
    layout(
        project.title(),
        "Already registered",
        html! {
            h2 { "This invitation was already used" }
            p { "A worker has already registered with this invitation. To use the app, install it:" }
            (install_links(app))
        },
    )
}

pub fn expired_page(project: &Project) -> Markup {
    layout(
        project.title(),
        "Invitation expired",
        html! {
            h2 { "This invitation has expired" }
            p { "Ask the administrator of " (project.title()) " to send you a new invitation." }
        },
    )
}

pub fn closed_page(project: &Project) -> Markup {
    layout(
        project.title(),
        "Registration closed",
        html! {
            h2 { "Registration is closed" }
            p { (project.title()) " is not registering mobile workers at the moment. \
                 Ask its administrator when to try again." }
        },
    )
}

pub fn not_found_page() -> Markup {
    layout(
        "Invitation not found",
        "Invitation not found",
        html! {
            p { "This registration link is not valid. It may have been replaced by a newer invitation: \
                 use the link in the most recent SMS you received." }
        },
    )
}

pub fn try_again_page() -> Markup {
    layout(
        "Please try again",
        "Not saved",
        html! {
            p { "Your registration was not saved: another submission of this form was being \
                 processed at the same moment. Go back and submit it again." }
            p { "If the page then says this invitation was already used, you are registered." }
        },
    )
}

pub fn unavailable_page() -> Markup {
    layout(
        "Please try again",
        "Temporarily unavailable",
        html! { p { "The service is temporarily unavailable. Please try again in a moment." } },
    )
}

pub fn too_large_page() -> Markup {
    layout(
        "Please try again",
        "Not saved",
        html! {
            p { "Your registration was not saved: the form sent was too large. Go back, check \
                 what you typed and submit it again." }
        },
    )
}

pub fn unreadable_page() -> Markup {
    layout(
        "Please try again",
        "Not saved",
        html! {
            p { "Your registration was not saved: the form sent could not be read. Go back \
                 and submit it again." }
        },
    )
}
