//! A stand-in for CommCare HQ's User API (mobile workers), which moto does not have,
//! answered by the fault proxy on the paths under `/a/`: written from HQ's documentation
//! (/work/shared/COMMCARE-HQ.md): `POST`, `GET`, `PUT` and `DELETE` of `api/v0.5/user/`,
//! the user list, and `domain_usernames`; HQ's username rules; its refusals of a key, of a
//! web user without the permissions, of a plan without API access; and its throttling.
//!
//! Projects exist only once a test registers them, each with its API key (`email:key`).
//! Each user's password is kept, for a test to check the one the service set.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::fault_proxy::{Fault, State};
use super::http1::Request;

/// HQ's 401 body for a project whose plan has no API access.
pub const NO_API_ACCESS: &str = "Your current subscription does not have access to this feature";
/// Names HQ keeps for itself.
const RESERVED: [&str; 2] = ["admin", "demo_user"];
/// tastypie's page size, and the most a `limit` may ask for.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

/// One mobile worker of a project.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    /// Full: `jane@{domain}.commcarehq.org`.
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// Without a `+`.
    pub phone_numbers: Vec<String>,
    pub user_data: Map<String, Value>,
    /// `false` once retired (deleted): its name stays taken.
    pub active: bool,
}

impl User {
    fn json(&self, domain: &str) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email.clone().unwrap_or_default(),
            "phone_numbers": self.phone_numbers,
            "default_phone_number": self.phone_numbers.first(),
            "user_data": self.user_data,
            "groups": [],
            "resource_uri": format!("/a/{domain}/api/v0.5/user/{}/", self.id),
        })
    }
}

/// Calls a second a project may make, as a bucket refilled at that rate (burst: one
/// second's worth, at least one call).
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn take(&mut self, now: Instant) -> bool {
        let burst = self.per_second.max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second).min(burst);
        self.at = now;
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Project {
    /// `email:key`.
    key: String,
    api_access: bool,
    /// The key's web user has Edit Mobile Workers and Edit Access APIs.
    permitted: bool,
    users: Vec<User>,
    rate: Option<Rate>,
}

#[derive(Debug, Default)]
pub struct Server {
    projects: BTreeMap<String, Project>,
    /// Calls by kind (`POST user`, `GET user`, `PUT user`, `DELETE user`,
    /// `GET domain_usernames`), throttled ones included.
    calls: BTreeMap<String, usize>,
    throttled: usize,
    /// Every call to a project: when, its kind, whether the throttle refused it.
    log: Vec<(Instant, String, bool)>,
    next_id: u64,
}

/// The HQ stand-in, from the tests' side.
pub struct Hq<'a>(pub(crate) &'a Arc<Mutex<State>>);

impl Hq<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut Server) -> T) -> T {
        f(&mut self.0.lock().unwrap().hq)
    }

    /// Registers the project `domain`, reached with the API key `email_key` (`email:key`),
    /// with API access and a web user allowed everything.
    pub fn project(&self, domain: &str, email_key: &str) {
        self.with(|s| {
            s.projects.insert(
                domain.to_owned(),
                Project {
                    key: email_key.to_owned(),
                    api_access: true,
                    permitted: true,
                    users: Vec::new(),
                    rate: None,
                },
            )
        });
    }

    fn project_mut<T>(&self, domain: &str, f: impl FnOnce(&mut Project) -> T) -> T {
        self.with(|s| f(s.projects.get_mut(domain).expect("a registered project")))
    }

    /// The project's plan has API access (`true`, the default) or not (every call: 401).
    pub fn api_access(&self, domain: &str, access: bool) {
        self.project_mut(domain, |p| p.api_access = access);
    }

    /// The key's web user has the permissions the User API needs (the default) or not
    /// (every call: 403, empty).
    pub fn permission(&self, domain: &str, permitted: bool) {
        self.project_mut(domain, |p| p.permitted = permitted);
    }

    /// Lets `per_second` calls a second through for the project; the others get 429.
    pub fn throttle(&self, domain: &str, per_second: f64) {
        self.project_mut(domain, |p| {
            p.rate = Some(Rate {
                per_second,
                tokens: per_second.max(1.0),
                at: Instant::now(),
            })
        });
    }

    /// Calls answered 429 by the throttle so far.
    pub fn throttled(&self) -> usize {
        self.with(|s| s.throttled)
    }

    /// Every call to a project so far: when, its kind (`POST user`, ...), and whether it
    /// was answered 429.
    pub fn log(&self) -> Vec<(Instant, String, bool)> {
        self.with(|s| s.log.clone())
    }

    /// Calls of `kind` (`POST user`, `GET user`, `PUT user`, `DELETE user`,
    /// `GET domain_usernames`) so far.
    pub fn calls(&self, kind: &str) -> usize {
        self.with(|s| s.calls.get(kind).copied().unwrap_or(0))
    }

    /// Makes a user as someone else would (through HQ's own pages): `local` completed as
    /// HQ completes it. Its id.
    pub fn add_user(&self, domain: &str, local: &str, password: &str, user_data: Value) -> String {
        self.with(|s| {
            let id = s.new_id();
            let project = s.projects.get_mut(domain).expect("a registered project");
            project.users.push(User {
                id: id.clone(),
                username: complete(local, domain),
                password: password.to_owned(),
                email: None,
                first_name: String::new(),
                last_name: String::new(),
                phone_numbers: Vec::new(),
                user_data: user_data.as_object().cloned().unwrap_or_default(),
                active: true,
            });
            id
        })
    }

    /// The project's user `username` (full, or its local part), retired or not.
    pub fn user(&self, domain: &str, username: &str) -> Option<User> {
        let full = complete(username, domain);
        self.with(|s| {
            s.projects
                .get(domain)?
                .users
                .iter()
                .find(|u| u.username == full)
                .cloned()
        })
    }

    /// Every user of the project, retired ones included.
    pub fn users(&self, domain: &str) -> Vec<User> {
        self.with(|s| {
            s.projects
                .get(domain)
                .map(|p| p.users.clone())
                .unwrap_or_default()
        })
    }

    /// The password the user `username` signs in with.
    pub fn password_of(&self, domain: &str, username: &str) -> Option<String> {
        self.user(domain, username).map(|u| u.password)
    }
}

impl Server {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        user_id(self.next_id)
    }
}

/// The id of the `n`th user made: 32 hex digits, as HQ's are.
fn user_id(n: u64) -> String {
    format!("{:032x}", 0x00c0_ffee_0000_0000_u64 + n)
}

/// HQ's completion of a username without `@`: whitespace runs to `.`, lower-cased, the
/// project's suffix added.
pub fn complete(username: &str, domain: &str) -> String {
    if username.contains('@') {
        return username.to_owned();
    }
    let dotted = username.split_whitespace().collect::<Vec<_>>().join(".");
    format!("{}@{domain}.commcarehq.org", dotted.to_lowercase())
}

/// Whether a request is for HQ: its paths are under `/a/{domain}/`, moto's never are.
pub fn is_hq(request: &Request) -> bool {
    request.path.starts_with("/a/")
}

/// The project, the resource (`user`, `domain_usernames`), the id in the path and the
/// query of an HQ call.
struct Target<'a> {
    domain: &'a str,
    resource: &'a str,
    id: Option<&'a str>,
    query: Vec<(String, String)>,
}

fn target(path: &str) -> Option<Target<'_>> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let rest = path.strip_prefix("/a/")?;
    let (domain, rest) = rest.split_once('/')?;
    let rest = rest
        .strip_prefix("api/v0.5/")
        .or_else(|| rest.strip_prefix("api/"))?;
    let mut parts = rest.trim_end_matches('/').split('/');
    let mut resource = parts.next()?;
    // `api/user/v1/...`: the same resource under its newer address.
    let mut next = parts.next();
    if next == Some("v1") {
        next = parts.next();
    }
    if resource.is_empty() {
        resource = "?";
    }
    Some(Target {
        domain,
        resource,
        id: next.filter(|id| !id.is_empty()),
        query: serde_urlencoded::from_str(query).unwrap_or_default(),
    })
}

/// The kind of an HQ call (`POST user`, `GET domain_usernames`): the proxy's operation
/// name for rules, with `HQ ` before it (`HQ POST user`).
pub fn kind(request: &Request) -> String {
    let resource = target(&request.path).map_or("?", |t| t.resource);
    format!("{} {resource}", request.method)
}

fn response(status: &str, body: Option<&Value>) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let content_type = if body.is_empty() {
        ""
    } else {
        "content-type: application/json\r\n"
    };
    format!(
        "HTTP/1.1 {status}\r\n{content_type}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn bad_request(message: &str) -> Vec<u8> {
    response("400 BAD REQUEST", Some(&json!({ "error": message })))
}

/// An injected fault, as HQ answers it.
pub fn fault_answer(fault: Fault) -> Vec<u8> {
    match fault {
        Fault::Throttle => response("429 TOO MANY REQUESTS", None),
        Fault::Invalid => bad_request("injected fault"),
        _ => response(
            "500 INTERNAL SERVER ERROR",
            Some(&json!({"error": "injected fault"})),
        ),
    }
}

/// A 500, as HQ answers a call it applied and then failed to answer.
pub fn lost_answer() -> Vec<u8> {
    fault_answer(Fault::ServerError)
}

/// The answer to one call (applied to the stand-in's state).
pub fn answer(state: &Arc<Mutex<State>>, request: &Request) -> Vec<u8> {
    let mut guard = state.lock().unwrap();
    let server = &mut guard.hq;
    let Some(target) = target(&request.path) else {
        return response("404 NOT FOUND", None);
    };
    let kind = format!("{} {}", request.method, target.resource);
    *server.calls.entry(kind.clone()).or_default() += 1;
    let id = server.next_id + 1;
    let Some(project) = server.projects.get_mut(target.domain) else {
        return response("404 NOT FOUND", None);
    };
    let now = Instant::now();
    let refused = project.rate.as_mut().is_some_and(|rate| !rate.take(now));
    server.log.push((now, kind, refused));
    if refused {
        server.throttled += 1;
        return response("429 TOO MANY REQUESTS", None);
    }
    let authorized = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("ApiKey "))
        .is_some_and(|k| k == project.key);
    if !authorized {
        return response("401 UNAUTHORIZED", None);
    }
    if !project.api_access {
        return response("401 UNAUTHORIZED", Some(&json!({ "error": NO_API_ACCESS })));
    }
    if !project.permitted {
        return response("403 FORBIDDEN", None);
    }
    let domain = target.domain.to_owned();
    let body: Option<Value> = serde_json::from_slice(&request.body).ok();
    match (request.method.as_str(), target.resource, target.id) {
        ("POST", "user", None) => {
            let Some(body) = body.filter(Value::is_object) else {
                return bad_request("The request body is not a JSON object.");
            };
            let answer = create_user(project, &domain, &body, id);
            if answer.starts_with(b"HTTP/1.1 201") {
                server.next_id += 1;
            }
            answer
        }
        ("GET", "user", None) => {
            let active: Vec<&User> = project.users.iter().filter(|u| u.active).collect();
            let page = page(&target.query, active.len());
            let objects: Vec<Value> = active[page.offset..page.end]
                .iter()
                .map(|u| u.json(&domain))
                .collect();
            response(
                "200 OK",
                Some(
                    &json!({ "meta": page.meta(&domain, "user", active.len()), "objects": objects }),
                ),
            )
        }
        ("GET", "domain_usernames", None) => {
            let active: Vec<&User> = project.users.iter().filter(|u| u.active).collect();
            let page = page(&target.query, active.len());
            let objects: Vec<Value> = active[page.offset..page.end]
                .iter()
                .map(|u| {
                    let raw = u.username.split('@').next().unwrap_or_default();
                    json!({ "user_id": u.id, "user_name": raw })
                })
                .collect();
            response(
                "200 OK",
                Some(
                    &json!({ "meta": page.meta(&domain, "domain_usernames", active.len()),
                              "objects": objects }),
                ),
            )
        }
        (method, "user", Some(id)) => {
            let Some(user) = project.users.iter_mut().find(|u| u.id == id && u.active) else {
                return response("404 NOT FOUND", None);
            };
            match method {
                "GET" => response("200 OK", Some(&user.json(&domain))),
                "PUT" => {
                    let Some(body) = body.filter(Value::is_object) else {
                        return bad_request("The request body is not a JSON object.");
                    };
                    if let Some(name) = body.get("username")
                        && name.as_str() != Some(user.username.as_str())
                    {
                        return bad_request("Attempted to update unallowed field 'username'.");
                    }
                    if let Some(password) = body.get("password") {
                        match password.as_str() {
                            Some(p) if !p.is_empty() => user.password = p.to_owned(),
                            _ => return bad_request("Password is required."),
                        }
                    }
                    if let Some(email) = body["email"].as_str() {
                        user.email = Some(email.to_owned());
                    }
                    if let Some(data) = body["user_data"].as_object() {
                        user.user_data.extend(data.clone());
                    }
                    if let Some(numbers) = phone_numbers(&body) {
                        user.phone_numbers = numbers;
                    }
                    response("200 OK", Some(&user.json(&domain)))
                }
                "DELETE" => {
                    user.active = false;
                    response("202 ACCEPTED", None)
                }
                _ => response("405 METHOD NOT ALLOWED", None),
            }
        }
        _ => response("405 METHOD NOT ALLOWED", None),
    }
}

fn phone_numbers(body: &Value) -> Option<Vec<String>> {
    body["phone_numbers"].as_array().map(|numbers| {
        numbers
            .iter()
            .filter_map(Value::as_str)
            .map(|n| n.trim_start_matches('+').to_owned())
            .collect()
    })
}

/// A page of a tastypie list: `limit` (20, at most 1000; 0 is the most) and `offset`.
struct Page {
    limit: usize,
    offset: usize,
    end: usize,
}

fn page(query: &[(String, String)], total: usize) -> Page {
    let field = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let limit = match field("limit").unwrap_or(DEFAULT_LIMIT) {
        0 => MAX_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let offset = field("offset").unwrap_or(0).min(total);
    Page {
        limit,
        offset,
        end: (offset + limit).min(total),
    }
}

impl Page {
    fn meta(&self, domain: &str, resource: &str, total: usize) -> Value {
        let at = |offset: usize| {
            format!(
                "/a/{domain}/api/v0.5/{resource}/?limit={}&offset={offset}",
                self.limit
            )
        };
        json!({
            "limit": self.limit,
            "offset": self.offset,
            "total_count": total,
            "next": (self.end < total).then(|| at(self.end)),
            "previous": (self.offset > 0).then(|| at(self.offset.saturating_sub(self.limit))),
        })
    }
}

/// A plain check of an email address: one `@`, a local part, a domain with a dot, nothing
/// blank.
fn is_email(text: &str) -> bool {
    let Some((local, host)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && host.contains('.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.contains('@')
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn create_user(project: &mut Project, domain: &str, body: &Value, id: u64) -> Vec<u8> {
    let given = body["username"].as_str().unwrap_or_default().trim();
    if given.is_empty() {
        return bad_request("Username is required.");
    }
    let full = complete(given, domain);
    if !is_email(&full) {
        return bad_request(&format!("Username '{full}' must be a valid email address."));
    }
    let (local, host) = full.split_once('@').unwrap_or_default();
    if !local
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'))
    {
        return bad_request(&format!(
            "The username '{full}' may contain only letters, numbers, '.', '+', '-' and '_'."
        ));
    }
    if host != format!("{domain}.commcarehq.org") {
        return bad_request(&format!(
            "The username '{full}' must end with @{domain}.commcarehq.org."
        ));
    }
    if RESERVED.contains(&local) || project.users.iter().any(|u| u.username == full) {
        return bad_request(&format!("Username '{full}' is already taken or reserved."));
    }
    let password = body["password"].as_str().unwrap_or_default();
    if password.is_empty() {
        return bad_request("Password is required.");
    }
    let id = user_id(id);
    project.users.push(User {
        id: id.clone(),
        username: full,
        password: password.to_owned(),
        email: body["email"].as_str().map(str::to_owned),
        first_name: body["first_name"].as_str().unwrap_or_default().to_owned(),
        last_name: body["last_name"].as_str().unwrap_or_default().to_owned(),
        phone_numbers: phone_numbers(body).unwrap_or_default(),
        user_data: body["user_data"].as_object().cloned().unwrap_or_default(),
        active: true,
    });
    response("201 CREATED", Some(&json!({ "id": id })))
}
