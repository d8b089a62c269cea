//! Just enough of the W3C WebDriver protocol to drive headless Chromium through chromedriver.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = match body {
        Some(body) => agent
            .post(url)
            .content_type("application/json")
            .send(body.to_string()),
        None if method == "DELETE" => agent.delete(url).call(),
        None => agent.get(url).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    value["value"].clone()
}

fn executable(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        Path::new(&path).exists(),
        "{path} not found: scripts/test installs Debian's chromium and chromium-driver (or set {var})"
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, phone-sized.
    pub fn start() -> Browser {
        let chromium = executable("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = executable("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(format!("{base}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = std::env::temp_dir().join(format!("smsreg-chromium-{port}"));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Finding an element waits for it a while: pages replace each other after clicks.
            "timeouts": {"implicit": 10000},
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()), "--window-size=360,780"
            ]}
        }}});
        let session = call("POST", &format!("{base}/session"), Some(capabilities));
        let session = session["sessionId"].as_str().expect("a session").to_owned();
        Browser {
            driver,
            base,
            session,
            profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, path)
    }

    pub fn goto(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({"url": url})));
    }

    fn element(&self, css: &str) -> String {
        let found = call(
            "POST",
            &self.url("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    pub fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        call(
            "POST",
            &self.url(&format!("/element/{id}/clear")),
            Some(json!({})),
        );
        call(
            "POST",
            &self.url(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        );
    }

    pub fn click(&self, css: &str) {
        let id = self.element(css);
        call(
            "POST",
            &self.url(&format!("/element/{id}/click")),
            Some(json!({})),
        );
    }

    pub fn text(&self, css: &str) -> String {
        let id = self.element(css);
        call("GET", &self.url(&format!("/element/{id}/text")), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn value(&self, css: &str) -> String {
        let id = self.element(css);
        call(
            "GET",
            &self.url(&format!("/element/{id}/property/value")),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits (up to 20 s) until the page has this title: a form submission navigates
    /// after the click has returned.
    pub fn wait_for_title(&self, title: &str) {
        let started = Instant::now();
        loop {
            let now = self.title();
            if now == title {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "title {now:?}, waited for {title:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to 20 s) until an element matching `css` is on the page.
    pub fn wait_for(&self, css: &str) {
        let started = Instant::now();
        let query = json!({"using": "css selector", "value": css});
        loop {
            let found = call("POST", &self.url("/elements"), Some(query.clone()));
            if found.as_array().is_some_and(|a| !a.is_empty()) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {css} after 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn source(&self) -> String {
        call("GET", &self.url("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn title(&self) -> String {
        call("GET", &self.url("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG of the page.
    pub fn screenshot(&self, path: &Path) {
        let png = call("GET", &self.url("/screenshot"), None);
        let bytes = STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(self.url("")).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
