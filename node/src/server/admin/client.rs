//! A client of the admin API, for the `roomcast admin` commands.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::Value;

/// An admin call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The base URL is not http(s).
    #[error("admin URL must start with http:// or https://")]
    BadUrl,
    /// The node could not be reached.
    #[error("admin API: {0}")]
    Transport(#[from] reqwest::Error),
    /// A successful answer was not JSON (not an admin API at this URL?).
    #[error("admin API answered something other than JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The node answered with an error.
    #[error("admin API answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The answer's `error`, or its body.
        message: String,
    },
}

/// Talks to one node's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A path segment (a login, a socket id) made safe for a URL.
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

impl AdminClient {
    /// A client of the node at `base` (`http://host:ops-port`).
    pub fn new(base: &str, token: &str) -> Result<Self, CallError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CallError::BadUrl);
        }
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), token: token.to_owned() })
    }

    /// Sends `method` to `/admin/<path>` with an optional JSON body; the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let mut request = self
            .http
            .request(method, format!("{}/admin/{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(CallError::Refused { status: status.as_u16(), message });
        }
        Ok(serde_json::from_str(&text)?)
    }
}
