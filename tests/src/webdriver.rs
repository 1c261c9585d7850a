//! A real headless browser for end-to-end tests of web pages: Debian's
//! `chromium` driven by its `chromedriver` over the W3C WebDriver protocol
//! (JSON over HTTP, <https://www.w3.org/TR/webdriver2/>). The handful of
//! commands the tests need are spoken directly over the HTTP client the
//! tests already use, rather than through an async WebDriver crate and its
//! runtime.

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Value};

use crate::{free_port, wait_port, Proc};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether chromium and chromedriver are installed (`.ci/install-deps`
/// installs them).
pub fn available() -> bool {
    Path::new("/usr/bin/chromedriver").exists() && Path::new("/usr/bin/chromium").exists()
}

/// A headless chromium session; the driver and browser end when dropped.
pub struct Browser {
    url: String,
    session: String,
    _driver: Proc,
}

/// An element on the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium session
    /// with a `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Proc(
            Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting chromedriver"),
        );
        wait_port(port);
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         format!("--window-size={width},{height}")]
            }
        }}});
        let v = call("POST", &format!("{url}/session"), Some(caps));
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Browser {
            url,
            session,
            _driver: driver,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(
            method,
            &format!("{}/session/{}{path}", self.url, self.session),
            body,
        )
    }

    /// Navigates to `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current URL.
    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page title.
    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector; panics if none.
    pub fn find(&self, css: &str) -> Element<'_> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        Element {
            browser: self,
            id: v[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css:?}: {v}"))
                .to_string(),
        }
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `script` in the page and returns its result.
    pub fn execute(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The open alert's text, if a script opened one.
    pub fn alert_text(&self) -> Option<String> {
        let url = format!("{}/session/{}/alert/text", self.url, self.session);
        match ureq::get(&url).call() {
            Ok(r) => r
                .into_json::<Value>()
                .ok()
                .and_then(|v| v["value"].as_str().map(str::to_string)),
            Err(_) => None,
        }
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("writing screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.url, self.session)).call();
    }
}

impl Element<'_> {
    /// Its rendered text.
    pub fn text(&self) -> String {
        self.browser
            .cmd("GET", &format!("/element/{}/text", self.id), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks a link or submit button and waits until the page it leads
    /// to has replaced the current one and finished loading. A plain click
    /// returns as soon as the event is dispatched, so the next `find` could
    /// still see the old page (and did, on a slow CI machine).
    pub fn follow(&self) {
        let b = self.browser;
        b.execute("document.documentElement.dataset.vouchLeft = '1'");
        b.cmd(
            "POST",
            &format!("/element/{}/click", self.id),
            Some(json!({})),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let script = "return document.readyState === 'complete' \
                      && !document.documentElement.dataset.vouchLeft";
        loop {
            // While the old document is torn down the driver may answer
            // with an error; that is "not yet", like `false`.
            let arrived = try_call(
                "POST",
                &format!("{}/session/{}/execute/sync", b.url, b.session),
                Some(json!({"script": script, "args": []})),
            );
            if arrived == Ok(Value::Bool(true)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the click did not lead to a new page within 30 s: {arrived:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Types `text` into it.
    pub fn send_keys(&self, text: &str) {
        self.browser.cmd(
            "POST",
            &format!("/element/{}/value", self.id),
            Some(json!({ "text": text })),
        );
    }

    /// An attribute's value.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.browser
            .cmd(
                "GET",
                &format!("/element/{}/attribute/{name}", self.id),
                None,
            )
            .as_str()
            .map(str::to_string)
    }
}

/// One WebDriver command: its `value`, or a panic with the driver's error.
fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    try_call(method, url, body).unwrap_or_else(|e| panic!("{e}"))
}

/// One WebDriver command: its `value`, or the driver's error as text.
fn try_call(method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
    let req = ureq::request(method, url).timeout(std::time::Duration::from_secs(60));
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match r {
        Ok(r) => {
            let v: Value = r
                .into_json()
                .map_err(|e| format!("WebDriver {method} {url}: not JSON: {e}"))?;
            Ok(v["value"].clone())
        }
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            Err(format!("WebDriver {method} {url}: {code}: {text}"))
        }
        Err(e) => Err(format!("WebDriver {method} {url}: {e}")),
    }
}
