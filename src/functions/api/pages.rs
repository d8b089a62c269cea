//! The registration pages: small server-rendered HTML, readable on a 320 px screen,
//! usable without JavaScript.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use crate::domain::language::{Language, Texts};
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

/// A page in `t`'s language (`lang`, `dir`), with links to `others`, the same page in
/// the project's other languages.
fn layout(t: &Texts, heading: &str, title: &str, others: &[Language], content: Markup) -> Markup {
    let language = t.language;
    html! {
        (DOCTYPE)
        html lang=(language.code()) dir=(language.direction()) {
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
                    @if !others.is_empty() {
                        nav aria-label=(t.get("page.languages")) {
                            p.hint {
                                (t.get("page.languages")) ": "
                                @for (i, other) in others.iter().enumerate() {
                                    @if i > 0 { " · " }
                                    a href={ "?lang=" (other.code()) } lang=(other.code())
                                        hreflang=(other.code()) { (other.name()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `template` with `{username}` shown in bold.
fn with_bold_username(template: &str, username: &str) -> Markup {
    let (before, after) = template.split_once("{username}").unwrap_or((template, ""));
    html! { (before) strong { (username) } (after) }
}

fn install_links(t: &Texts, app: Option<&App>) -> Markup {
    html! {
        ul {
            li { a href=(PLAY_STORE_URL) { (t.get("page.install_commcare")) } }
            @if let Some(url) = app.and_then(|a| a.install_url.as_deref()) {
                li { a href=(url) {
                    (t.fill("page.install_app", &[("app", app.map_or(t.get("page.the_app"), |a| a.name.as_str()))]))
                } }
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
    fn render(&self, t: &Texts, value: &str, errors: &FormErrors) -> Markup {
        let error = errors.get(self.name).map(|e| t.localise(e));
        let error_id = format!("{}-error", self.name);
        html! {
            label for=(self.name) { (self.label) @if !self.required { " " (t.get("page.optional")) } }
            input id=(self.name) name=(self.name) type=(self.kind) value=(value)
                autocomplete=(self.autocomplete) required[self.required] maxlength=[self.max]
                aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[error.as_ref().map(|_| error_id.as_str())];
            @if let Some(hint) = self.hint { p.hint { (hint) } }
            @if let Some(message) = error { p.error id=(error_id) role="alert" { (message) } }
        }
    }
}

/// The project's languages other than the page's, for its links.
pub fn other_languages(project: &Project, t: &Texts) -> Vec<Language> {
    project
        .languages
        .iter()
        .copied()
        .filter(|l| *l != t.language)
        .collect()
}

pub fn form_page(
    t: &Texts,
    project: &Project,
    require_email: bool,
    values: &FormValues,
    errors: &FormErrors,
) -> Markup {
    let title = project.title();
    // From the rules themselves, so that the page never says other than they do.
    let (min_user, max_user) = (
        MIN_USERNAME_CHARS.to_string(),
        MAX_USERNAME_CHARS.to_string(),
    );
    let username_hint = t.fill(
        "page.username_hint",
        &[("min", &min_user), ("max", &max_user)],
    );
    let (min_pass, max_pass) = (
        MIN_PASSWORD_CHARS.to_string(),
        MAX_PASSWORD_CHARS.to_string(),
    );
    let password_hint = t.fill(
        "page.password_hint",
        &[("min", &min_pass), ("max", &max_pass)],
    );
    layout(
        t,
        title,
        &t.fill("page.register_title", &[("title", title)]),
        &other_languages(project, t),
        html! {
            p { (t.get("page.intro")) }
            form method="post" {
                (Field { name: "username", label: t.get("page.username"), kind: "text", autocomplete: "username",
                    required: true, hint: Some(&username_hint), max: Some(MAX_USERNAME_CHARS) }
                    .render(t, &values.username, errors))
                (Field { name: "password", label: t.get("page.password"), kind: "password",
                    autocomplete: "new-password", required: true, hint: Some(&password_hint),
                    max: Some(MAX_PASSWORD_CHARS) }
                    .render(t, "", errors))
                (Field { name: "password2", label: t.get("page.password2"), kind: "password",
                    autocomplete: "new-password", required: true, hint: None,
                    max: Some(MAX_PASSWORD_CHARS) }
                    .render(t, "", errors))
                (Field { name: "email", label: t.get("page.email"), kind: "email", autocomplete: "email",
                    required: require_email, hint: None, max: Some(MAX_EMAIL_OCTETS) }
                    .render(t, &values.email, errors))
                button type="submit" { (t.get("page.submit")) }
            }
        },
    )
}

pub fn success_page(t: &Texts, project: &Project, username: &str, app: Option<&App>) -> Markup {
    layout(
        t,
        project.title(),
        t.get("page.complete_title"),
        &[],
        html! {
            h2 { (t.get("page.complete_heading")) }
            p { (with_bold_username(t.get("page.complete_text"), username)) }
            (install_links(t, app))
        },
    )
}

/// The registration is saved, its account not made yet: an SMS follows when it is.
/// `username`: the name to sign in with, when this very submission made the registration.
pub fn creating_page(
    t: &Texts,
    project: &Project,
    username: Option<&str>,
    app: Option<&App>,
) -> Markup {
    layout(
        t,
        project.title(),
        t.get("page.creating_title"),
        &[],
        html! {
            h2 { (t.get("page.creating_heading")) }
            @if let Some(username) = username {
                p { (with_bold_username(t.get("page.creating_named"), username)) }
            } @else {
                p { (t.get("page.creating")) }
            }
            p { (t.get("page.creating_sms")) }
            (install_links(t, app))
        },
    )
}

pub fn registered_page(t: &Texts, project: &Project, app: Option<&App>) -> Markup {
    layout(
        t,
        project.title(),
        t.get("page.used_title"),
        &[],
        html! {
            h2 { (t.get("page.used_heading")) }
            p { (t.get("page.used_text")) }
            (install_links(t, app))
        },
    )
}

pub fn expired_page(t: &Texts, project: &Project) -> Markup {
    layout(
        t,
        project.title(),
        t.get("page.expired_title"),
        &[],
        html! {
            h2 { (t.get("page.expired_heading")) }
            p { (t.fill("page.expired_text", &[("title", project.title())])) }
        },
    )
}

pub fn closed_page(t: &Texts, project: &Project) -> Markup {
    layout(
        t,
        project.title(),
        t.get("page.closed_title"),
        &[],
        html! {
            h2 { (t.get("page.closed_heading")) }
            p { (t.fill("page.closed_text", &[("title", project.title())])) }
        },
    )
}

pub fn not_found_page(t: &Texts) -> Markup {
    layout(
        t,
        t.get("page.not_found_title"),
        t.get("page.not_found_title"),
        &[],
        html! { p { (t.get("page.not_found_text")) } },
    )
}

pub fn try_again_page(t: &Texts) -> Markup {
    layout(
        t,
        t.get("page.try_again_heading"),
        t.get("page.not_saved_title"),
        &[],
        html! {
            p { (t.get("page.conflict_text")) }
            p { (t.get("page.conflict_registered")) }
        },
    )
}

pub fn unavailable_page(t: &Texts) -> Markup {
    layout(
        t,
        t.get("page.try_again_heading"),
        t.get("page.unavailable_title"),
        &[],
        html! { p { (t.get("page.unavailable_text")) } },
    )
}

pub fn too_large_page(t: &Texts) -> Markup {
    layout(
        t,
        t.get("page.try_again_heading"),
        t.get("page.not_saved_title"),
        &[],
        html! { p { (t.get("page.too_large_text")) } },
    )
}

pub fn unreadable_page(t: &Texts) -> Markup {
    layout(
        t,
        t.get("page.try_again_heading"),
        t.get("page.not_saved_title"),
        &[],
        html! { p { (t.get("page.unreadable_text")) } },
    )
}
