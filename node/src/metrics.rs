//! Prometheus metrics of a node.
//!
//! Label values are bounded: event names are those the node defines (anything else is
//! counted as `unknown`), so a client cannot grow the registry.

use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use roomcast_adapter::AdapterMetrics;

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
    /// Errors by kind: client errors by code, and `database`.
    pub errors: IntCounterVec,
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
}

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
            connections: gauge("connections", "Connected sockets", &["namespace"]),
            handshakes: counter(
                "handshakes_total",
                "Handshakes by outcome",
                &["namespace", "method", "result"],
            ),
            events_in: counter("events_in_total", "Events received", &["namespace", "event"]),
            events_out: counter("events_out_total", "Events emitted", &["namespace", "event"]),
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
            registry,
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
        for (kind, value) in [
            ("published", s.published),
            ("publish_errors", s.publish_errors),
            ("received", s.received),
            ("decode_errors", s.decode_errors),
            ("dropped", s.dropped),
            ("redis_errors", s.redis_errors),
            ("reconnects", s.reconnects),
            ("request_timeouts", s.request_timeouts),
        ] {
            let counter = self.adapter.with_label_values(&[kind]);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.refresh_adapter();
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
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
            text.contains("roomcast_events_in_total{event=\"join room\",namespace=\"/\"} 1"),
            "{text}"
        );
        assert!(text.contains("roomcast_connections{namespace=\"/\"} 2"), "{text}");
    }
}
