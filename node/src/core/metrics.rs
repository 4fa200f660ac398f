//! Prometheus metrics of a node.
//!
//! Label values are bounded: event names are those the node defines (anything else is
//! counted as `unknown`), so a client cannot grow the registry. The namespace label is
//! `nsp`, Socket.IO's own short name for it, so it never collides with the `namespace` label
//! Kubernetes service discovery adds.
//!
//! Series whose label values are known at start (per namespace, per auth method) are
//! present at zero from the first scrape, so dashboards and alerts see 0, not nothing.

use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use roomcast_adapter::AdapterMetrics;

use crate::core::build::BuildInfo;
use crate::core::process::ProcessCollector;
use crate::protocol::error::{Code, ErrorCode};

/// What went wrong: the `kind` label of `roomcast_errors_total`. Dashboards and alerts
/// read these values, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind<'a> {
    /// The SQL store failed.
    Database,
    /// A Redis command failed (room history, worker queue, room channels).
    Redis,
    /// A worker published a reply that cannot be read.
    WorkerReply,
    /// A connection closed at once: its address has too many without a request head.
    PendingLimit,
    /// A handshake refused: its address has too many sessions without a namespace.
    HandshakeLimit,
    /// An Engine.IO request refused: its session belongs to another client address.
    SessionGuard,
    /// A client error, by its code.
    Client(Code),
    /// An `error {message}` event of an example app, by its namespace without the
    /// slash (`lobby`, `chat`, `todo`).
    AppEvent(&'a str),
}

impl<'a> ErrorKind<'a> {
    /// The kind of a client error, by its code. A handler's own codes are not a
    /// bounded set, so they count as [`Code::HandlerError`].
    pub fn of(code: &ErrorCode) -> Self {
        match code {
            ErrorCode::Node(code) => ErrorKind::Client(*code),
            ErrorCode::Handler(_) => ErrorKind::Client(Code::HandlerError),
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'a str {
        match self {
            ErrorKind::Database => "database",
            ErrorKind::Redis => "redis",
            ErrorKind::WorkerReply => "worker_reply",
            ErrorKind::PendingLimit => "pending_limit",
            ErrorKind::HandshakeLimit => "handshake_limit",
            ErrorKind::SessionGuard => "session_guard",
            ErrorKind::Client(code) => code.as_str(),
            ErrorKind::AppEvent(nsp) => nsp.trim_start_matches('/'),
        }
    }
}

/// What this node holds in one namespace, counted at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceLoad {
    /// Distinct authenticated users with a socket here.
    pub users: usize,
    /// Rooms with a member here (a socket's own room not counted).
    pub rooms: usize,
}

/// Counts [`NamespaceLoad`] for each namespace, when asked.
pub type LoadSource = Box<dyn Fn() -> Vec<(&'static str, NamespaceLoad)> + Send + Sync>;

/// The node's metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Connected sockets by namespace.
    pub connections: IntGaugeVec,
    /// Accepted and refused handshakes by namespace, method and result.
    pub handshakes: IntCounterVec,
    /// Events received by namespace and event name.
    pub events_in: IntCounterVec,
    /// Events emitted (one per emit call, however many receive it) by namespace and name.
    pub events_out: IntCounterVec,
    /// Errors by kind (see [`Metrics::error`]).
    errors: IntCounterVec,
    /// Dead nodes whose rows this node removed.
    pub swept_nodes: IntCounter,
    /// Time from a request's arrival to its answer, by route (the configured prefix or
    /// built-in name) and handler kind.
    pub request_duration: HistogramVec,
    /// Requests no handler answered in time, by route and kind.
    pub request_timeouts: IntCounterVec,
    /// Worker-queue jobs taken back from a silent worker and queued again, by stream.
    pub requests_reclaimed: IntCounterVec,
    /// Worker-queue jobs this node answered itself (`requests.serve`), by stream.
    pub requests_served: IntCounterVec,
    /// Redis adapter activity by kind (published, received, redis_errors, …).
    adapter: IntCounterVec,
    adapter_source: Arc<OnceLock<Arc<AdapterMetrics>>>,
    /// Distinct authenticated users with a socket on this node, by namespace.
    pub users_online: IntGaugeVec,
    /// Rooms with a member on this node, by namespace.
    pub rooms: IntGaugeVec,
    load_source: Arc<OnceLock<LoadSource>>,
    /// `process_*`, outside the `roomcast_` prefix as every exporter names them.
    process: Registry,
    /// Packets that could not reach their client, by namespace and kind (ack, event,
    /// broadcast): its buffer was full or it was gone.
    pub undelivered: IntCounterVec,
    /// Emits dropped because the client's buffer was full, by namespace.
    pub emits_dropped: IntCounterVec,
    /// 1 while the Redis adapter is connected (publisher up, subscriptions in place).
    adapter_connected: IntGauge,
    adapter_link: Arc<OnceLock<Box<dyn Fn() -> bool + Send + Sync>>>,
    /// Room messages acked while the adapter was down: delivered on this node only.
    pub delivered_local: IntCounterVec,
    /// Room events sent from the history, by why: `replay` (a recovering client's missed
    /// events) or `gap` (events the node's feed lost on the way, read back).
    pub history_resent: IntCounterVec,
    /// Recoveries asked for at connect, by outcome: `recovered` (every room),
    /// `partial` (some rooms with `recovered: false`) or `refused` (the credential).
    pub recoveries: IntCounterVec,
}

/// Values the adapter counter takes, exported at zero before the first message.
const ADAPTER_KINDS: [&str; 8] = [
    "published",
    "publish_errors",
    "received",
    "decode_errors",
    "dropped",
    "redis_errors",
    "reconnects",
    "request_timeouts",
];

/// Handshake outcomes, exported at zero per namespace and method.
const HANDSHAKE_RESULTS: [&str; 3] = ["accepted", "refused", "limited"];

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("roomcast".into()), None).expect("valid prefix");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("registered once");
            metric
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("registered once");
            metric
        };
        Self {
            connections: gauge("connections", "Connected sockets", &["nsp"]),
            handshakes: counter(
                "handshakes_total",
                "Handshakes by outcome",
                &["nsp", "method", "result"],
            ),
            events_in: counter("events_in_total", "Events received", &["nsp", "event"]),
            events_out: counter("events_out_total", "Events emitted", &["nsp", "event"]),
            errors: counter("errors_total", "Errors by kind", &["kind"]),
            swept_nodes: {
                let metric = IntCounter::new("swept_nodes_total", "Dead nodes swept by this node")
                    .expect("valid metric");
                registry.register(Box::new(metric.clone())).expect("registered once");
                metric
            },
            request_duration: {
                // From an in-process echo (sub-millisecond) to a slow worker (seconds).
                let buckets = vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ];
                let opts = HistogramOpts::new("request_duration_seconds", "Request latency")
                    .buckets(buckets);
                let metric = HistogramVec::new(opts, &["route", "kind"]).expect("valid metric");
                registry.register(Box::new(metric.clone())).expect("registered once");
                metric
            },
            request_timeouts: counter(
                "request_timeouts_total",
                "Requests not answered in time",
                &["route", "kind"],
            ),
            requests_reclaimed: counter(
                "requests_reclaimed_total",
                "Worker jobs taken back from a silent worker",
                &["stream"],
            ),
            requests_served: counter(
                "requests_served_total",
                "Worker jobs this node answered with its built-in routes",
                &["stream"],
            ),
            adapter: counter(
                "adapter_messages_total",
                "Redis adapter messages and failures by kind",
                &["kind"],
            ),
            adapter_source: Arc::default(),
            users_online: gauge(
                "users_online",
                "Distinct authenticated users with a socket on this node",
                &["nsp"],
            ),
            rooms: gauge("rooms", "Rooms with a member on this node", &["nsp"]),
            load_source: Arc::default(),
            process: {
                let process = Registry::new();
                process.register(Box::new(ProcessCollector::new())).expect("registered once");
                process
            },
            undelivered: counter(
                "undelivered_total",
                "Packets that could not reach their client",
                &["nsp", "kind"],
            ),
            emits_dropped: counter(
                "emits_dropped_total",
                "Emits dropped on a full client buffer",
                &["nsp"],
            ),
            adapter_connected: {
                let metric = IntGauge::new(
                    "adapter_connected",
                    "1 while the Redis adapter is connected and subscribed",
                )
                .expect("valid metric");
                registry.register(Box::new(metric.clone())).expect("registered once");
                metric
            },
            adapter_link: Arc::default(),
            delivered_local: counter(
                "delivered_local_total",
                "Room messages delivered on this node only: the adapter was down",
                &["nsp"],
            ),
            history_resent: counter(
                "history_resent_total",
                "Room events sent again from the history: replay at recovery, or a gap filled",
                &["reason"],
            ),
            recoveries: counter(
                "recoveries_total",
                "Recoveries asked for at connect, by outcome",
                &["result"],
            ),
            registry,
        }
        .with_build_info(&BuildInfo::CURRENT)
    }

    /// Adds `roomcast_build_info{version,commit,profile} 1`.
    fn with_build_info(self, build: &BuildInfo) -> Self {
        let opts = Opts::new("build_info", "The running build; always 1")
            .const_label("version", build.version)
            .const_label("commit", build.commit)
            .const_label("profile", build.profile);
        let info = IntGauge::with_opts(opts).expect("valid metric");
        info.set(1);
        self.registry.register(Box::new(info)).expect("registered once");
        self
    }

    /// Puts every series whose labels are known at start at zero: per namespace the
    /// connection, user and room gauges, each handshake outcome (method `none` is a
    /// handshake without credentials), unknown events in and `error` events out; and
    /// the adapter's message kinds. Other event names appear when first counted.
    pub fn preset(&self, namespaces: &[&str], methods: &[&str]) {
        for ns in namespaces {
            self.events_in.with_label_values(&[ns, "unknown"]).inc_by(0);
            self.events_out.with_label_values(&[ns, "error"]).inc_by(0);
            for gauge in [&self.connections, &self.users_online, &self.rooms] {
                gauge.with_label_values(&[ns]).set(0);
            }
            for method in methods.iter().chain(&["none"]) {
                for result in HANDSHAKE_RESULTS {
                    self.handshakes.with_label_values(&[ns, method, result]).inc_by(0);
                }
            }
        }
        for kind in ADAPTER_KINDS {
            self.adapter.with_label_values(&[kind]).inc_by(0);
        }
        self.error(ErrorKind::Database).inc_by(0);
    }

    /// The counter of errors of `kind`.
    pub fn error(&self, kind: ErrorKind<'_>) -> IntCounter {
        self.errors.with_label_values(&[kind.as_str()])
    }

    /// Puts the request series of every route (label, kind) and worker stream at zero.
    pub fn preset_requests<'a>(
        &self,
        routes: impl Iterator<Item = (&'a str, &'a str)>,
        streams: impl Iterator<Item = &'a str>,
    ) {
        for (route, kind) in routes {
            self.request_duration.with_label_values(&[route, kind]);
            self.request_timeouts.with_label_values(&[route, kind]).inc_by(0);
        }
        for stream in streams {
            self.requests_reclaimed.with_label_values(&[stream]).inc_by(0);
            self.requests_served.with_label_values(&[stream]).inc_by(0);
        }
    }

    /// Counts users and rooms with `source` at each scrape from now on.
    pub fn watch_load(&self, source: LoadSource) {
        let _ = self.load_source.set(source);
    }

    fn refresh_load(&self) {
        let Some(source) = self.load_source.get() else { return };
        for (ns, load) in source() {
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            self.users_online.with_label_values(&[ns]).set(count(load.users));
            self.rooms.with_label_values(&[ns]).set(count(load.rooms));
        }
    }

    /// The registry, for metrics other crates (the adapter) add.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Exports the Redis adapter's counters from now on.
    pub fn watch_adapter(&self, source: Arc<AdapterMetrics>) {
        let _ = self.adapter_source.set(source);
    }

    /// Shows the delivery series of namespace `nsp` at zero, so they exist from start.
    pub fn show_delivery_series(&self, nsp: &str, kinds: &[&str]) {
        for kind in kinds {
            self.undelivered.with_label_values(&[nsp, kind]);
        }
        self.emits_dropped.with_label_values(&[nsp]);
        self.delivered_local.with_label_values(&[nsp]);
        for reason in ["replay", "gap"] {
            self.history_resent.with_label_values(&[reason]);
        }
        for result in ["recovered", "partial", "refused"] {
            self.recoveries.with_label_values(&[result]);
        }
    }

    /// Exports `roomcast_adapter_connected` from `is_connected` from now on.
    pub fn watch_adapter_link(&self, is_connected: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.adapter_link.set(Box::new(is_connected));
    }

    /// Brings the adapter counters up to the adapter's own, which only grow.
    fn refresh_adapter(&self) {
        if let Some(is_connected) = self.adapter_link.get() {
            self.adapter_connected.set(i64::from(is_connected()));
        }
        let Some(source) = self.adapter_source.get() else { return };
        let s = source.snapshot();
        let values = [
            s.published,
            s.publish_errors,
            s.received,
            s.decode_errors,
            s.dropped,
            s.redis_errors,
            s.reconnects,
            s.request_timeouts,
        ];
        for (kind, value) in ADAPTER_KINDS.into_iter().zip(values) {
            let counter = self.adapter.with_label_values(&[kind]);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.refresh_adapter();
        self.refresh_load();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics() {
        let m = Metrics::new();
        m.events_in.with_label_values(&["/", "join room"]).inc();
        m.connections.with_label_values(&["/"]).set(2);
        let text = m.render();
        assert!(
            text.contains("roomcast_events_in_total{event=\"join room\",nsp=\"/\"} 1"),
            "{text}"
        );
        assert!(text.contains("roomcast_connections{nsp=\"/\"} 2"), "{text}");
        assert!(!text.contains("namespace="), "{text}");
    }

    #[test]
    fn known_series_start_at_zero() {
        let m = Metrics::new();
        m.preset(&["/", "/chat"], &["password", "token"]);
        let text = m.render();
        for line in [
            "roomcast_connections{nsp=\"/chat\"} 0",
            "roomcast_users_online{nsp=\"/\"} 0",
            "roomcast_rooms{nsp=\"/chat\"} 0",
            "roomcast_handshakes_total{method=\"none\",nsp=\"/\",result=\"refused\"} 0",
            "roomcast_handshakes_total{method=\"token\",nsp=\"/chat\",result=\"limited\"} 0",
            "roomcast_adapter_messages_total{kind=\"reconnects\"} 0",
            "roomcast_errors_total{kind=\"database\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from {text}");
        }
        let build = text.lines().find(|l| l.starts_with("roomcast_build_info{")).expect("build");
        assert!(build.ends_with("} 1"), "{build}");
        assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{build}");
    }

    #[test]
    fn error_kinds_keep_their_labels() {
        let labels = [
            (ErrorKind::Database, "database"),
            (ErrorKind::Redis, "redis"),
            (ErrorKind::WorkerReply, "worker_reply"),
            (ErrorKind::PendingLimit, "pending_limit"),
            (ErrorKind::HandshakeLimit, "handshake_limit"),
            (ErrorKind::SessionGuard, "session_guard"),
            (ErrorKind::Client(Code::BadPayload), "bad_payload"),
            (ErrorKind::Client(Code::UpstreamStatus), "upstream_status"),
            (ErrorKind::Client(Code::HandlerError), "handler_error"),
            (ErrorKind::AppEvent("/lobby"), "lobby"),
        ];
        for (kind, label) in labels {
            assert_eq!(kind.as_str(), label, "{kind:?}");
        }
        let of = |code: &str| ErrorKind::of(&ErrorCode::from_handler(Some(code)));
        assert_eq!(of("timeout"), ErrorKind::Client(Code::Timeout));
        assert_eq!(of("upstream_status"), ErrorKind::Client(Code::UpstreamStatus));
        assert_eq!(of("no_stock"), ErrorKind::Client(Code::HandlerError));
        let m = Metrics::new();
        m.error(ErrorKind::AppEvent("/chat")).inc();
        assert!(m.render().lines().any(|l| l == "roomcast_errors_total{kind=\"chat\"} 1"));
    }

    #[test]
    fn load_is_counted_at_scrape_time() {
        let m = Metrics::new();
        let load = NamespaceLoad { users: 3, rooms: 7 };
        m.watch_load(Box::new(move || vec![("/", load)]));
        let text = m.render();
        assert!(text.contains("roomcast_users_online{nsp=\"/\"} 3"), "{text}");
        assert!(text.contains("roomcast_rooms{nsp=\"/\"} 7"), "{text}");
    }
}
