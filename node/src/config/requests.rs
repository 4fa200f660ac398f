//! `[requests]`: where `request` events (and the inter-server events answered like
//! them) are handled.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ConfigError, RouteConfig, RouteKind, RouteTable, at_least_one, invalid, longer_than_zero,
    string_or_list,
};

/// Where `request` events are handled: the built-in routes run on the node that got
/// the request unless a configured route sends them elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestsConfig {
    /// How long a request may take before the client gets a `timeout` error, unless its
    /// route says otherwise. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A worker-queue entry delivered to a worker and not acknowledged for this long is
    /// taken back and queued again for another worker. Default `15s`.
    #[serde(with = "humantime_serde")]
    pub claim_after: Duration,
    /// Prefix of the Redis keys of the request streams and reply channels. Default
    /// `roomcast`.
    pub key_prefix: String,
    /// Worker-queue streams this node consumes itself, answering with its built-in
    /// routes, so those routes can run on any node. Default: none.
    #[serde(deserialize_with = "string_or_list")]
    pub serve: Vec<String>,
    /// Routes by prefix; the longest matching prefix wins. Default: none.
    pub routes: Vec<RouteConfig>,
    /// Requests one socket may have in flight; beyond it a request is refused at once
    /// with `too_many_requests`. Default `32`.
    pub max_in_flight_per_socket: usize,
    /// HTTP upstream calls in flight on the node, all routes and sockets together (also
    /// the idle connections kept per upstream host); further calls wait their turn
    /// within their timeout. Default `64`.
    pub upstream_concurrency: usize,
    /// Inter-server events (another server's `serverSideEmit`) this node answers: each
    /// runs the request route of the same name and its reply is the ack. Events not
    /// listed get no answer, as on a Node server without a listener. Default: none.
    #[serde(deserialize_with = "string_or_list")]
    pub server_events: Vec<String>,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            claim_after: Duration::from_secs(15),
            key_prefix: "roomcast".into(),
            serve: Vec::new(),
            routes: Vec::new(),
            max_in_flight_per_socket: 32,
            upstream_concurrency: 64,
            server_events: Vec::new(),
        }
    }
}

impl RequestsConfig {
    /// `redis_configured`: whether `redis.url` is set, which worker queues need.
    pub(super) fn validate(&self, redis_configured: bool) -> Result<(), ConfigError> {
        longer_than_zero("requests.timeout", self.timeout)?;
        longer_than_zero("requests.claim_after", self.claim_after)?;
        if !is_key_part(&self.key_prefix) {
            return Err(invalid("requests.key_prefix", "1-64 characters of [A-Za-z0-9._-]"));
        }
        at_least_one("requests.max_in_flight_per_socket", self.max_in_flight_per_socket)?;
        at_least_one("requests.upstream_concurrency", self.upstream_concurrency)?;
        let needs_redis =
            !self.serve.is_empty() || self.routes.iter().any(|r| r.kind == RouteKind::Worker);
        if needs_redis && !redis_configured {
            return Err(invalid("requests", "worker queues need redis.url"));
        }
        if let Some(stream) = self.serve.iter().find(|s| !is_key_part(s)) {
            return Err(invalid(
                "requests.serve",
                format!("{stream:?}: 1-64 characters of [A-Za-z0-9._-]"),
            ));
        }
        self.validate_routes()?;
        self.validate_server_events()
    }

    fn validate_routes(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let bad = |message: String| invalid("requests.routes", format!("[{i}]: {message}"));
            if route.prefix.is_empty() || route.prefix.len() > 128 {
                return Err(bad("prefix must be 1-128 characters".into()));
            }
            if !seen.insert(route.prefix.as_str()) {
                return Err(bad(format!("prefix {:?} is listed twice", route.prefix)));
            }
            if route.timeout.is_some_and(|t| t.is_zero()) {
                return Err(bad("timeout must be longer than zero".into()));
            }
            match route.kind {
                RouteKind::Builtin => {
                    if route.url.is_some() || route.stream.is_some() {
                        return Err(bad("a builtin route takes neither url nor stream".into()));
                    }
                }
                RouteKind::Upstream => {
                    let url = route.url.as_deref().unwrap_or_default();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(bad("an upstream route needs an http(s) url".into()));
                    }
                    if route.stream.is_some() {
                        return Err(bad("an upstream route takes no stream".into()));
                    }
                }
                RouteKind::Worker => {
                    if !route.stream.as_deref().is_some_and(is_key_part) {
                        return Err(bad(
                            "a worker route needs a stream of [A-Za-z0-9._-]{1,64}".into()
                        ));
                    }
                    if route.url.is_some() {
                        return Err(bad("a worker route takes no url".into()));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_server_events(&self) -> Result<(), ConfigError> {
        let table = RouteTable::new(&self.routes);
        for event in &self.server_events {
            if table.resolve(event).is_none() {
                return Err(invalid(
                    "requests.server_events",
                    format!("{event:?} is neither a built-in route nor under a configured prefix"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `s` can be part of a Redis key here: 1-64 characters of `[A-Za-z0-9._-]`.
fn is_key_part(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_env, load_error_with, load_in};

    #[test]
    fn request_routes_from_file_or_environment() {
        // figment's `Jail` closures return its own large error type.
        #[allow(clippy::result_large_err)]
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "rc.toml",
                "[redis]\nurl = \"redis://127.0.0.1\"\n[[requests.routes]]\n\
                 prefix = \"billing.\"\nkind = \"upstream\"\nurl = \"http://127.0.0.1:9/rpc\"\n\
                 timeout = \"2s\"",
            )?;
            jail.set_env("ROOMCAST_REQUEST_SERVE", "nodes");
            let config = load_in(jail, Some("rc.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.requests.routes[0].kind, RouteKind::Upstream);
            assert_eq!(config.requests.routes[0].timeout, Some(Duration::from_secs(2)));
            assert_eq!(config.requests.serve, ["nodes"]);
            Ok(())
        });
        let config = load_env(&[
            ("REDIS_URL", "redis://127.0.0.1"),
            ("ROOMCAST_REQUEST_ROUTES", r#"[{prefix="jobs.", kind="worker", stream="jobs"}]"#),
        ])
        .expect("valid");
        assert_eq!(config.requests.routes[0].stream.as_deref(), Some("jobs"));
    }

    #[test]
    fn bad_request_routes_are_refused() {
        for (env, routes) in [
            (true, r#"[{prefix="a", kind="worker", stream="bad stream"}]"#),
            (true, r#"[{prefix="a", kind="upstream", url="ftp://x"}]"#),
            (true, r#"[{prefix="a", kind="builtin", url="http://x"}]"#),
            (
                true,
                r#"[{prefix="a", kind="upstream", url="http://x"}, {prefix="a", kind="builtin"}]"#,
            ),
            (true, r#"[{prefix="", kind="builtin"}]"#),
            (false, r#"[{prefix="a", kind="worker", stream="s"}]"#),
        ] {
            let redis = [("REDIS_URL", "redis://127.0.0.1")];
            let vars =
                [&redis[..usize::from(env)], &[("ROOMCAST_REQUEST_ROUTES", routes)]].concat();
            let err = load_error_with(&vars, routes);
            assert!(err.contains("requests"), "{err}");
        }
    }

    #[test]
    fn server_events_name_routes() {
        let config = load_env(&[("ROOMCAST_REQUEST_SERVER_EVENTS", "echo,time")]).expect("valid");
        assert_eq!(config.requests.server_events, ["echo", "time"]);
        let err = load_error_with(&[("ROOMCAST_REQUEST_SERVER_EVENTS", "nope")], "unknown route");
        assert!(err.contains("requests.server_events"), "{err}");
    }
}
