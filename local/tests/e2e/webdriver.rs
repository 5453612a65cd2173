//! A W3C WebDriver client of the few commands the console's browser tests use (new session,
//! navigate, find, click, clear, type, text, current URL, screenshot, end session), over the
//! `reqwest` these tests already use, to a `chromedriver` on loopback.
//!
//! Why not fantoccini or thirtyfour: fantoccini 0.22 pulls in Mozilla's `webdriver` crate
//! (MPL-2.0, a licence deny.toml does not allow) and with it 21 more crates, a dozen of them a
//! second version of one already here (`icu_*` 1.5, `thiserror` 1, `cookie` 0.16), which the
//! dependency policy refuses; thirtyfour takes `reqwest` 0.13 (a second reqwest) and by default
//! the Selenium Manager. The protocol these tests need is seven JSON requests
//! (<https://www.w3.org/TR/webdriver2/>), so it is written out here instead.

// Test helpers: a WebDriver command that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver names an element in its answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What a command answered instead of success.
#[derive(Debug)]
pub(crate) struct WebDriverError(pub(crate) String);

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One browser session through a WebDriver server.
pub(crate) struct Session {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    base: String,
}

/// An element of the page, by WebDriver's reference.
pub(crate) struct Element<'a> {
    session: &'a Session,
    id: String,
}

async fn command(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| WebDriverError(format!("{method} {url}: {e}")))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| WebDriverError(format!("{method} {url}: unreadable answer: {e}")))?;
    if status.is_success() {
        Ok(answer["value"].clone())
    } else {
        Err(WebDriverError(format!(
            "{method} {url}: {status} {} {}",
            answer["value"]["error"], answer["value"]["message"]
        )))
    }
}

impl Session {
    /// Opens a session on the WebDriver server at `server` with `capabilities` (`alwaysMatch`).
    pub(crate) async fn new(server: &str, capabilities: Value) -> Result<Self, WebDriverError> {
        let http = reqwest::Client::new();
        let answer = command(
            &http,
            reqwest::Method::POST,
            &format!("{server}/session"),
            Some(json!({ "capabilities": { "alwaysMatch": capabilities } })),
        )
        .await?;
        let id = answer["sessionId"]
            .as_str()
            .ok_or_else(|| WebDriverError(format!("no session id in {answer}")))?;
        Ok(Self {
            http,
            base: format!("{server}/session/{id}"),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        command(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    pub(crate) async fn goto(&self, url: &str) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    pub(crate) async fn current_url(&self) -> Result<String, WebDriverError> {
        let url = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(url.as_str().unwrap_or_default().to_owned())
    }

    /// The first element `css` selects.
    pub(crate) async fn find(&self, css: &str) -> Result<Element<'_>, WebDriverError> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        let id = found[ELEMENT_KEY]
            .as_str()
            .ok_or_else(|| WebDriverError(format!("no element reference in {found}")))?;
        Ok(Element {
            session: self,
            id: id.to_owned(),
        })
    }

    /// The visible part of the page as PNG.
    pub(crate) async fn screenshot(&self) -> Result<Vec<u8>, WebDriverError> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .map_err(|e| WebDriverError(format!("screenshot is not base64: {e}")))
    }

    /// Ends the session (the browser quits).
    pub(crate) async fn close(self) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::DELETE, "", None).await.map(drop)
    }
}

impl Element<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        action: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        self.session
            .call(method, &format!("/element/{}{action}", self.id), body)
            .await
    }

    pub(crate) async fn text(&self) -> Result<String, WebDriverError> {
        let text = self.call(reqwest::Method::GET, "/text", None).await?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    pub(crate) async fn click(&self) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/click", Some(json!({})))
            .await
            .map(drop)
    }

    pub(crate) async fn clear(&self) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/clear", Some(json!({})))
            .await
            .map(drop)
    }

    pub(crate) async fn send_keys(&self, text: &str) -> Result<(), WebDriverError> {
        self.call(
            reqwest::Method::POST,
            "/value",
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }
}
