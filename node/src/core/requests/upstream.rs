//! HTTP upstream handlers: the request is POSTed to the route's URL with the caller's
//! identity in headers; the status and body come back to the client.
//!
//! Headers sent: `x-roomcast-user` (login), `x-roomcast-route`, `x-roomcast-request`
//! (the client's uuid), `traceparent` when tracing is on. The body is the request's
//! `params` as JSON. The upstream must only be reachable by the nodes: it trusts these
//! headers.
//!
//! Calls in flight are bounded node-wide (`requests.upstream_concurrency`): a flood of
//! requests to a slow upstream waits for a permit, within each request's timeout,
//! instead of opening a connection per request.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use serde_json::{Map, Value, json};

use super::Caller;
use crate::protocol::error::{ClientError, Code};
use crate::protocol::request::Request;

/// The shared HTTP client; bodies over `max_body` bytes are refused.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    max_body: usize,
    permits: Arc<Semaphore>,
}

impl Upstream {
    /// One connection pool for every upstream, with at most `concurrency` calls in
    /// flight (and as many idle connections kept per host).
    pub fn new(max_body: usize, concurrency: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(concurrency)
            .build()?;
        Ok(Self { client, max_body, permits: Arc::new(Semaphore::new(concurrency)) })
    }

    /// POSTs the request; 2xx is a success `{status, body}`, any other status the error
    /// `upstream_status` with the same two fields. The caller bounds the time.
    pub async fn call(
        &self,
        url: &str,
        caller: &Caller,
        request: &Request,
        traceparent: Option<&str>,
    ) -> Result<Value, ClientError> {
        // Held until the body is read; the semaphore is never closed.
        let _permit = self.permits.acquire().await.map_err(|_| {
            ClientError::new(Code::Unavailable, "the upstream handler is unavailable")
        })?;
        let mut post = self
            .client
            .post(url)
            .header("x-roomcast-user", &caller.user)
            .header("x-roomcast-route", &request.route)
            .header("x-roomcast-request", request.uuid.as_str())
            .json(&request.params);
        if let Some(tp) = traceparent {
            post = post.header("traceparent", tp);
        }
        let unreachable = |e: reqwest::Error| {
            tracing::warn!(error = %e, url, "upstream request failed");
            ClientError::new(Code::Unavailable, "the upstream handler is unavailable")
        };
        let mut response = post.send().await.map_err(unreachable)?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let body = if is_json {
            serde_json::from_slice(&body).unwrap_or_else(|_| text(&body))
        } else {
            text(&body)
        };
        if status.is_success() {
            Ok(json!({ "status": status.as_u16(), "body": body }))
        } else {
            let mut details = Map::new();
            details.insert("status".into(), status.as_u16().into());
            details.insert("body".into(), body);
            Err(ClientError::with_details(
                Code::UpstreamStatus.into(),
                format!("the upstream handler answered {}", status.as_u16()),
                details,
            ))
        }
    }
}

fn text(body: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(body).into_owned())
}

fn too_large() -> ClientError {
    ClientError::new(Code::Unavailable, "the upstream reply is larger than server.max_payload")
}
