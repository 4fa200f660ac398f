//! The routing rules of `requests.routes` and which handler answers a route: the
//! longest configured prefix, else a built-in route of that exact name, else none.
//! Pure, so validation can check names against it and the dispatcher can route by it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One routing rule for `request` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Routes starting with this (`billing.`), or exactly this (`echo`). Required.
    pub prefix: String,
    /// Who answers. Required.
    pub kind: RouteKind,
    /// `upstream`: the URL the request is POSTed to. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `worker`: the stream the request is queued on. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// This route's timeout instead of `requests.timeout`. Default: unset.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Kinds of request handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// A built-in route, run on the node that received the request.
    Builtin,
    /// An HTTP service.
    Upstream,
    /// A Redis stream read by workers (or by nodes listed in `requests.serve`).
    Worker,
}

/// Routes every node answers itself unless a configured route says otherwise.
pub const BUILTIN: &[&str] = &["echo", "time", "rooms.list", "presence.room"];

/// Where one request goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    /// The metrics label: the matched prefix or built-in name, a bounded set.
    pub label: &'a str,
    /// Who answers.
    pub kind: RouteKind,
    /// `upstream`: the URL.
    pub url: Option<&'a str>,
    /// `worker`: the stream.
    pub stream: Option<&'a str>,
    /// The route's own timeout, if it has one.
    pub timeout: Option<Duration>,
}

impl RouteKind {
    /// The metrics label of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Builtin => "builtin",
            RouteKind::Upstream => "upstream",
            RouteKind::Worker => "worker",
        }
    }
}

/// The configured routes, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<RouteConfig>,
}

impl RouteTable {
    /// Orders the configured routes so the first match is the longest.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut routes = routes.to_vec();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes }
    }

    /// The handler for `route`, if any.
    pub fn resolve<'a>(&'a self, route: &'a str) -> Option<Target<'a>> {
        if let Some(r) = self.routes.iter().find(|r| route.starts_with(r.prefix.as_str())) {
            return Some(Target {
                label: &r.prefix,
                kind: r.kind,
                url: r.url.as_deref(),
                stream: r.stream.as_deref(),
                timeout: r.timeout,
            });
        }
        BUILTIN.iter().find(|b| **b == route).map(|b| Target {
            label: b,
            kind: RouteKind::Builtin,
            url: None,
            stream: None,
            timeout: None,
        })
    }

    /// The metrics labels of every route that can answer: (route label, kind).
    pub fn labels(&self) -> impl Iterator<Item = (&str, RouteKind)> {
        let configured = self.routes.iter().map(|r| (r.prefix.as_str(), r.kind));
        // A built-in name that a configured prefix covers goes to that route instead.
        let builtin = BUILTIN.iter().filter_map(|b| self.resolve(b)).map(|t| (t.label, t.kind));
        configured.chain(builtin)
    }

    /// Every stream a configured route queues on.
    pub fn streams(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().filter_map(|r| r.stream.as_deref())
    }

    /// The longest timeout any route may use, given the default.
    pub fn longest_timeout(&self, default: Duration) -> Duration {
        self.routes.iter().filter_map(|r| r.timeout).fold(default, Duration::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, kind: RouteKind) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            kind,
            url: (kind == RouteKind::Upstream).then(|| "http://x".into()),
            stream: (kind == RouteKind::Worker).then(|| prefix.trim_end_matches('.').into()),
            timeout: None,
        }
    }

    #[test]
    fn longest_prefix_wins_then_builtins() {
        let table = RouteTable::new(&[
            route("jobs.", RouteKind::Worker),
            route("jobs.fast.", RouteKind::Upstream),
            route("presence.", RouteKind::Worker),
        ]);
        let t = table.resolve("jobs.fast.add").expect("match");
        assert_eq!((t.label, t.kind), ("jobs.fast.", RouteKind::Upstream));
        let t = table.resolve("jobs.slow").expect("match");
        assert_eq!((t.label, t.kind, t.stream), ("jobs.", RouteKind::Worker, Some("jobs")));
        let t = table.resolve("presence.room").expect("configured beats built-in");
        assert_eq!(t.kind, RouteKind::Worker);
        let t = table.resolve("echo").expect("built-in");
        assert_eq!((t.label, t.kind), ("echo", RouteKind::Builtin));
        assert!(table.resolve("echo.more").is_none());
        assert!(table.resolve("nope").is_none());
    }

    #[test]
    fn labels_name_every_route_that_can_answer() {
        let t = RouteTable::new(&[
            route("jobs.", RouteKind::Worker),
            route("rooms.", RouteKind::Upstream),
        ]);
        let labels: Vec<_> = t.labels().collect();
        assert_eq!(
            labels,
            [
                // Longest prefix first.
                ("rooms.", RouteKind::Upstream),
                ("jobs.", RouteKind::Worker),
                ("echo", RouteKind::Builtin),
                ("time", RouteKind::Builtin),
                // `rooms.list` goes to the `rooms.` upstream, labelled by its prefix.
                ("rooms.", RouteKind::Upstream),
                ("presence.room", RouteKind::Builtin),
            ]
        );
    }
}
