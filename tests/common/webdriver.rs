//! Headless Chromium, driven through chromedriver with fantoccini.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::NewSessionError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// A session of Chromium. Dropping it stops chromedriver and the browser, and deletes the
/// profile.
pub struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
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
    pub async fn start() -> Browser {
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
            .process_group(0) // Chromium joins it; see `drop`.
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("smsreg-chromium-{port}"));
        let Value::Object(capabilities) = json!({
            "browserName": "chrome",
            // Finding an element waits for it a while: pages replace each other after clicks.
            "timeouts": {"implicit": 10000},
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()), "--window-size=360,780"
            ]}
        }) else {
            unreachable!()
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let started = Instant::now();
        let client = loop {
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => break client,
                // Not listening yet.
                Err(NewSessionError::FailedC(_)) if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no chromedriver session: {e}"),
            }
        };
        Browser {
            client,
            driver,
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.client.find(Locator::Css(css)).await;
        found.unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap()
    }

    pub async fn value(&self, css: &str) -> String {
        let value = self.find(css).await.prop("value").await.unwrap();
        value.unwrap_or_default()
    }

    /// Waits (up to 20 s) until an element matching `css` is on the page.
    pub async fn wait_for(&self, css: &str) {
        let wait = self.client.wait().at_most(Duration::from_secs(20));
        let found = wait.for_element(Locator::Css(css)).await;
        found.unwrap_or_else(|e| panic!("no {css} after 20 s: {e}"));
    }

    /// Waits (up to 20 s) until the page has this title: a form submission navigates
    /// after the click has returned.
    pub async fn wait_for_title(&self, title: &str) {
        let started = Instant::now();
        loop {
            let now = self.client.title().await.unwrap();
            if now == title {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "title {now:?}, waited for {title:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Saves a PNG of the page.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    /// Kills chromedriver's process group, Chromium included: it outlives a killed
    /// chromedriver, and a failed test does not end its session.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
