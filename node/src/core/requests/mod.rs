//! Requests: `{uuid, route, params}` from a socket, answered by a handler chosen by
//! route, and the answer delivered by the node that holds the socket, to that socket
//! only, as `request <uuid>` and in the ack.
//!
//! Three kinds of handler (see [`RouteTable`]): built-in routes run on the receiving
//! node; HTTP upstreams ([`upstream`]) get a POST; worker routes are queued on a Redis
//! stream ([`queue`]) that workers in any language, or other nodes (`requests.serve`),
//! read.
//! A worker publishes its reply on the origin node's own channel, so a reply is one
//! PUBLISH that only that node receives. Every request is bounded by its route's
//! timeout and counted in `roomcast_request_duration_seconds{route,kind}`.

pub mod builtin;
pub mod queue;
pub mod upstream;
pub mod wire;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, RouteKind, RouteTable};
use crate::core::db::Db;
use crate::core::metrics::Metrics;
use crate::protocol::error::{ClientError, Code};
use crate::protocol::request::{Request, RequestUuid};
use queue::{Queue, QueueError, QueueSettings};
use upstream::Upstream;
use wire::Job;
/// The user named in the requests of inter-server events (no password login can
/// start with `$`).
pub const SERVER_CALLER: &str = "$server";

/// Who asked: what handlers may know of the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The login.
    pub user: String,
    /// The socket's rooms when it asked.
    pub rooms: Vec<String>,
}

/// The request subsystem could not start.
#[derive(Debug, thiserror::Error)]
pub enum RequestsStartError {
    /// The worker queue could not reach Redis.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The HTTP client could not be built.
    #[error("upstream client: {0}")]
    Upstream(#[from] reqwest::Error),
}

/// Routes requests to their handlers; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    node_id: String,
    table: RouteTable,
    timeout: Duration,
    db: Db,
    metrics: Metrics,
    upstream: Upstream,
    queue: Option<Queue>,
    in_flight: TaskTracker,
    shutdown: CancellationToken,
}

impl Dispatcher {
    /// Builds the route table and, when a route or `requests.serve` needs it, connects
    /// the worker queue.
    pub async fn start(
        config: &Config,
        node_id: &str,
        db: Db,
        metrics: Metrics,
    ) -> Result<Self, RequestsStartError> {
        let requests = &config.requests;
        let table = RouteTable::new(&requests.routes);
        let in_flight = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let mut streams: Vec<String> = table
            .streams()
            .chain(requests.serve.iter().map(String::as_str))
            .map(Into::into)
            .collect();
        streams.sort();
        streams.dedup();
        metrics.preset_requests(
            table.labels().map(|(label, kind)| (label, kind.as_str())),
            streams.iter().map(String::as_str),
        );
        let queue = match &config.redis.url {
            Some(url) if !streams.is_empty() => Some(
                Queue::start(
                    QueueSettings {
                        url: url.expose(),
                        prefix: &requests.key_prefix,
                        node_id,
                        streams,
                        serve: requests.serve.clone(),
                        claim_after: requests.claim_after,
                        longest_timeout: table.longest_timeout(requests.timeout),
                    },
                    db.clone(),
                    metrics.clone(),
                    in_flight.clone(),
                    shutdown.clone(),
                )
                .await?,
            ),
            // Validation refuses worker routes without Redis.
            _ => None,
        };
        let max_body = usize::try_from(config.server.max_payload).unwrap_or(usize::MAX);
        Ok(Self {
            node_id: node_id.to_owned(),
            table,
            timeout: requests.timeout,
            db,
            metrics,
            upstream: Upstream::new(max_body, requests.upstream_concurrency)?,
            queue,
            in_flight,
            shutdown,
        })
    }

    /// Runs `request` on its handler within the route's timeout, in a `request` span
    /// whose context travels with the job or the upstream call.
    #[tracing::instrument(name = "request", skip_all, fields(
        route = %request.route, uuid = %request.uuid, user = %caller.user, node = %self.node_id,
        kind = tracing::field::Empty, outcome = tracing::field::Empty,
    ))]
    pub async fn dispatch(&self, caller: &Caller, request: &Request) -> Result<Value, ClientError> {
        let _in_flight = self.in_flight.token();
        let Some(target) = self.table.resolve(&request.route) else {
            return Err(ClientError::new(Code::UnknownRoute, "no handler for this route"));
        };
        tracing::Span::current().record("kind", target.kind.as_str());
        let timeout = target.timeout.unwrap_or(self.timeout);
        let started = Instant::now();
        let run = async {
            match target.kind {
                RouteKind::Builtin => {
                    builtin::run(&self.db, &self.metrics, caller, &request.route, &request.params)
                        .await
                }
                RouteKind::Upstream => {
                    let url = target.url.unwrap_or_default();
                    let traceparent = crate::core::telemetry::traceparent();
                    self.upstream.call(url, caller, request, traceparent.as_deref()).await
                }
                RouteKind::Worker => {
                    let Some(queue) = &self.queue else {
                        return Err(ClientError::new(Code::Unavailable, "no worker queue"));
                    };
                    let deadline = chrono::Utc::now() + timeout;
                    let job = Job {
                        id: String::new(),
                        uuid: request.uuid.to_string(),
                        route: request.route.clone(),
                        params: request.params.clone(),
                        user: caller.user.clone(),
                        rooms: caller.rooms.clone(),
                        reply_to: String::new(),
                        deadline_ms: deadline.timestamp_millis(),
                        attempt: 1,
                        traceparent: crate::core::telemetry::traceparent(),
                    };
                    queue.call(target.stream.unwrap_or_default(), job).await
                }
            }
        };
        let labels = [target.label, target.kind.as_str()];
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.metrics.request_timeouts.with_label_values(&labels).inc();
                Err(ClientError::new(Code::Timeout, "no handler answered in time"))
            }
        };
        let code = outcome.as_ref().err().map_or("ok", |f| f.code.as_str());
        tracing::Span::current().record("outcome", code);
        self.metrics
            .request_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// Answers an inter-server event (another server's `serverSideEmit`) with the route
    /// of the same name, as `{ok: true, result}` or `{ok: false, error}`. The route's
    /// params are the event's single argument, `null` without one, the array of them
    /// when there are several; its caller is [`SERVER_CALLER`] in no room.
    pub async fn answer_server_event(&self, event: &str, mut args: Vec<Value>) -> Value {
        let params = match args.len() {
            0 => Value::Null,
            1 => args.remove(0),
            _ => Value::Array(args),
        };
        let request = Request { uuid: RequestUuid::random(), route: event.to_owned(), params };
        let caller = Caller { user: SERVER_CALLER.to_owned(), rooms: Vec::new() };
        match self.dispatch(&caller, &request).await {
            Ok(result) => serde_json::json!({ "ok": true, "result": result }),
            Err(e) => serde_json::json!({ "ok": false, "error": e.to_json() }),
        }
    }

    /// Waits, up to `within`, for the requests in flight to be answered; true when
    /// they all were. New requests may still come in meanwhile and are waited for too.
    pub async fn drain(&self, within: Duration) -> bool {
        self.in_flight.close();
        tokio::time::timeout(within, self.in_flight.wait()).await.is_ok()
    }

    /// Stops the queue's loops and closes its connections.
    pub async fn close(&self) {
        self.shutdown.cancel();
        if let Some(queue) = &self.queue {
            queue.close().await;
        }
    }
}
