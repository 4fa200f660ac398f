//! The worker queue: one Redis stream per configured `stream`, read by a consumer group.
//!
//! Delivery guarantee: at least once. The origin node adds a job (XADD) and waits on
//! its own reply channel; a worker reads it (XREADGROUP), PUBLISHes the reply to the
//! job's `reply_to` and acknowledges it (XACK). A job delivered but not acknowledged
//! within `requests.claim_after` belonged to a worker that died or stalled: a node takes
//! it back (XAUTOCLAIM), queues a copy with `attempt + 1` for any live worker and
//! deletes the original. The origin keeps the first reply for a job id and drops the
//! rest, so a slow worker and its replacement cannot answer twice.
//!
//! Streams are trimmed by age on each XADD (MINID): an entry older than the longest
//! route timeout plus `claim_after` and a minute of clock skew has no one waiting for
//! it. Nodes listed as consumers (`requests.serve`) run the same worker loop with the
//! built-in routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config as RedisConfig, EventInterface, PubsubInterface,
    ReconnectPolicy, StreamsInterface, Value as RedisValue,
};
use serde_json::Value;
use tokio::sync::{broadcast::error::RecvError, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::wire::{Job, JobReply};
use super::{Caller, builtin};
use crate::core::db::Db;
use crate::core::metrics::{ErrorKind, Metrics};
use crate::protocol::error::{ClientError, Code};

/// The consumer group every worker of a stream joins.
pub const GROUP: &str = "workers";

/// Redis failed while the queue started.
#[derive(Debug, thiserror::Error)]
#[error("request queue: {0}")]
pub struct QueueError(#[from] fred::error::Error);

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, ClientError>>>>>;

/// A handle on the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue(Arc<Inner>);

struct Inner {
    client: Client,
    subscriber: Client,
    readers: Vec<Client>,
    prefix: String,
    reply_to: String,
    waiters: Waiters,
    horizon: Duration,
}

/// What the queue needs to start.
pub struct QueueSettings<'a> {
    /// `redis://…`.
    pub url: &'a str,
    /// `requests.key_prefix`.
    pub prefix: &'a str,
    /// This node's id; names its reply channel and its consumer.
    pub node_id: &'a str,
    /// Streams routes queue on, and streams this node serves.
    pub streams: Vec<String>,
    /// Streams this node consumes with its built-in routes.
    pub serve: Vec<String>,
    /// `requests.claim_after`.
    pub claim_after: Duration,
    /// The longest route timeout.
    pub longest_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Queue {
    /// Connects, creates the consumer groups and starts the background loops (reply
    /// listener, reclaimer, and a consumer per served stream) until `shutdown`.
    pub async fn start(
        settings: QueueSettings<'_>,
        db: Db,
        metrics: Metrics,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, QueueError> {
        let mut builder = Builder::from_config(RedisConfig::from_url(settings.url)?);
        builder.set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let client = builder.build()?;
        let subscriber = builder.build()?;
        let readers =
            settings.serve.iter().map(|_| builder.build()).collect::<Result<Vec<_>, _>>()?;
        let reply_to = format!("{}:replies:{}", settings.prefix, settings.node_id);
        let waiters = Waiters::default();

        // Listen before subscribing, so no reply is missed.
        tokio::spawn(listen(
            subscriber.clone(),
            reply_to.clone(),
            waiters.clone(),
            metrics.clone(),
        ));
        client.init().await?;
        subscriber.init().await?;
        subscriber.subscribe(reply_to.as_str()).await?;
        let keys: Vec<String> =
            settings.streams.iter().map(|s| stream_key(settings.prefix, s)).collect();
        for key in &keys {
            create_group(&client, key).await?;
        }
        tokio::spawn(reclaim(
            client.clone(),
            keys,
            settings.claim_after,
            metrics.clone(),
            shutdown.clone(),
        ));
        for (reader, stream) in readers.iter().zip(&settings.serve) {
            reader.init().await?;
            let consumer = Consumer {
                reader: reader.clone(),
                client: client.clone(),
                key: stream_key(settings.prefix, stream),
                name: settings.node_id.to_owned(),
                db: db.clone(),
                metrics: metrics.clone(),
                tracker: tracker.clone(),
            };
            tokio::spawn(consumer.run(shutdown.clone()));
        }
        let horizon = settings.longest_timeout + settings.claim_after + Duration::from_secs(60);
        Ok(Self(Arc::new(Inner {
            client,
            subscriber,
            readers,
            prefix: settings.prefix.to_owned(),
            reply_to,
            waiters,
            horizon,
        })))
    }

    /// The channel replies to this node's jobs arrive on.
    pub fn reply_to(&self) -> &str {
        &self.0.reply_to
    }

    /// Queues `job` on `stream` and waits for its reply; the caller bounds the wait.
    /// `job.id` and `job.reply_to` are set here.
    pub async fn call(&self, stream: &str, mut job: Job) -> Result<Value, ClientError> {
        job.id = uuid::Uuid::new_v4().simple().to_string();
        job.reply_to = self.0.reply_to.clone();
        let (tx, rx) = oneshot::channel();
        let waiter = WaiterGuard { waiters: &self.0.waiters, id: job.id.clone() };
        lock(&self.0.waiters).insert(job.id.clone(), tx);
        let key = stream_key(&self.0.prefix, stream);
        let oldest = now_ms() - i64::try_from(self.0.horizon.as_millis()).unwrap_or(i64::MAX);
        let cap = ("MINID", "~", oldest.max(0).to_string());
        let added: Result<RedisValue, _> =
            self.0.client.xadd(key, false, cap, "*", job.to_fields()).await;
        if let Err(e) = added {
            tracing::warn!(error = %e, stream, "job not queued");
            return Err(ClientError::new(Code::Unavailable, "the worker queue is unavailable"));
        }
        let outcome = rx.await.unwrap_or_else(|_| {
            Err(ClientError::new(Code::Unavailable, "the node stopped before the reply came"))
        });
        drop(waiter);
        outcome
    }

    /// Ends the Redis connections.
    pub async fn close(&self) {
        for client in [&self.0.client, &self.0.subscriber].into_iter().chain(self.0.readers.iter())
        {
            let _ = client.quit().await;
        }
    }
}

/// Forgets a job's waiter when its call ends, answered or not (timeout, disconnect).
struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    id: String,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        lock(self.waiters).remove(&self.id);
    }
}

/// The Redis key of a stream.
pub fn stream_key(prefix: &str, stream: &str) -> String {
    format!("{prefix}:requests:{stream}")
}

async fn create_group(client: &Client, key: &str) -> Result<(), fred::error::Error> {
    let created: Result<RedisValue, fred::error::Error> =
        client.xgroup_create(key, GROUP, "0", true).await;
    match created {
        Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Hands each reply on this node's channel to the call waiting for it, and subscribes
/// again after a reconnection.
async fn listen(subscriber: Client, channel: String, waiters: Waiters, metrics: Metrics) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    let mut first = true;
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => {
                    let bytes = match &message.value {
                        RedisValue::Bytes(b) => b.to_vec(),
                        RedisValue::String(s) => s.as_bytes().to_vec(),
                        _ => continue,
                    };
                    deliver(&bytes, &waiters, &metrics);
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "request replies dropped: the node fell behind");
                }
                Err(RecvError::Closed) => return,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) if std::mem::take(&mut first) => {}
                Ok(_) => {
                    if let Err(e) = subscriber.subscribe(channel.as_str()).await {
                        metrics.error(ErrorKind::Redis).inc();
                        tracing::warn!(error = %e, "reply channel not subscribed again");
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}

fn deliver(bytes: &[u8], waiters: &Waiters, metrics: &Metrics) {
    match JobReply::parse(bytes) {
        Ok(reply) => match lock(waiters).remove(&reply.id) {
            Some(waiter) => {
                let _ = waiter.send(reply.outcome);
            }
            // Its caller timed out, or another worker answered first.
            None => tracing::debug!(id = %reply.id, "reply for no waiting request"),
        },
        Err(e) => {
            metrics.error(ErrorKind::WorkerReply).inc();
            tracing::warn!(error = %e, "unusable worker reply dropped");
        }
    }
}

/// A stream entry: its id and fields.
type Entry = (String, Vec<(String, String)>);

fn text(value: RedisValue) -> Option<String> {
    value.into_string()
}

/// Reads `[[id, [field, value, …]], …]`, skipping what is not shaped so (entries
/// deleted while pending come back with nil fields).
fn entries(value: RedisValue) -> Vec<Entry> {
    value
        .into_array()
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let id = text(parts.next()?)?;
            let flat = match parts.next()? {
                RedisValue::Null => Vec::new(),
                other => other.into_array(),
            };
            let mut fields = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                fields.push((text(k)?, text(v)?));
            }
            Some((id, fields))
        })
        .collect()
}

fn job_of(fields: &[(String, String)]) -> Result<Job, super::wire::JobError> {
    Job::from_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Takes back jobs a worker held too long and queues them again, until shutdown.
/// XAUTOCLAIM resets an entry's idle time, so two nodes never both take the same one.
async fn reclaim(
    client: Client,
    keys: Vec<String>,
    claim_after: Duration,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    if keys.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval((claim_after / 4).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let min_idle = u64::try_from(claim_after.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for key in &keys {
            if let Err(e) = reclaim_stream(&client, key, min_idle, &metrics).await {
                metrics.error(ErrorKind::Redis).inc();
                tracing::warn!(error = %e, key, "reclaiming jobs failed");
            }
        }
    }
}

async fn reclaim_stream(
    client: &Client,
    key: &str,
    min_idle: u64,
    metrics: &Metrics,
) -> Result<(), fred::error::Error> {
    let mut cursor = "0-0".to_owned();
    loop {
        let reply: RedisValue = client
            .xautoclaim(key, GROUP, "roomcast-reclaimer", min_idle, cursor, Some(100), false)
            .await?;
        let mut parts = reply.into_array().into_iter();
        cursor = parts.next().and_then(text).unwrap_or_else(|| "0-0".into());
        for (id, fields) in entries(parts.next().unwrap_or(RedisValue::Null)) {
            match job_of(&fields) {
                Ok(mut job) if job.deadline_ms > now_ms() => {
                    job.attempt += 1;
                    let _: RedisValue = client.xadd(key, true, None, "*", job.to_fields()).await?;
                    metrics.requests_reclaimed.with_label_values(&[stream_label(key)]).inc();
                    tracing::info!(job = %job.id, attempt = job.attempt, key, "job taken back from a silent worker");
                }
                Ok(job) => tracing::debug!(job = %job.id, "expired job dropped"),
                Err(e) => tracing::warn!(error = %e, key, "malformed job dropped"),
            }
            let _: RedisValue = client.xack(key, GROUP, id.as_str()).await?;
            let _: RedisValue = client.xdel(key, id.as_str()).await?;
        }
        if cursor == "0-0" {
            return Ok(());
        }
    }
}

/// The stream name in a key, for metric labels (the configured names, a bounded set).
fn stream_label(key: &str) -> &str {
    key.rsplit_once(":requests:").map_or(key, |(_, stream)| stream)
}

/// A node serving a stream with its built-in routes.
struct Consumer {
    reader: Client,
    client: Client,
    key: String,
    name: String,
    db: Db,
    metrics: Metrics,
    tracker: TaskTracker,
}

impl Consumer {
    async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        loop {
            let read = this.reader.xreadgroup::<RedisValue, _, _, _, _>(
                GROUP,
                this.name.as_str(),
                Some(16),
                Some(1_000),
                false,
                this.key.as_str(),
                ">",
            );
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = read => batch,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    this.metrics.error(ErrorKind::Redis).inc();
                    tracing::warn!(error = %e, key = %this.key, "reading jobs failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            // `[[key, entries]]`, or nil when the block timed out.
            for stream in batch.into_array() {
                let mut parts = stream.into_array().into_iter();
                let _key = parts.next();
                for (id, fields) in entries(parts.next().unwrap_or(RedisValue::Null)) {
                    let this = this.clone();
                    this.tracker.clone().spawn(async move { this.answer(id, fields).await });
                }
            }
        }
    }

    async fn answer(&self, id: String, fields: Vec<(String, String)>) {
        match job_of(&fields) {
            Ok(job) if job.deadline_ms > now_ms() => {
                // The job's span continues the trace of the request on the origin node.
                let span = tracing::info_span!(
                    "job", route = %job.route, stream = stream_label(&self.key),
                    attempt = job.attempt, node = %self.name,
                );
                if let Some(tp) = &job.traceparent {
                    crate::core::telemetry::continue_trace(&span, tp);
                }
                if !self.answer_job(job).instrument(span).await {
                    // Unacknowledged, the job will be taken back and answered again.
                    return;
                }
            }
            Ok(_) => tracing::debug!("expired job dropped"),
            Err(e) => tracing::warn!(error = %e, key = %self.key, "malformed job dropped"),
        }
        let acked: Result<RedisValue, _> =
            self.client.xack(self.key.as_str(), GROUP, id.as_str()).await;
        if let Err(e) = acked {
            tracing::warn!(error = %e, "job not acknowledged");
        }
    }

    /// Runs the job and publishes its reply; false when the reply could not be
    /// published, so the job stays unacknowledged and is taken back later.
    async fn answer_job(&self, job: Job) -> bool {
        let caller = Caller { user: job.user.clone(), rooms: job.rooms.clone() };
        let outcome = builtin::run(&self.db, &self.metrics, &caller, &job.route, &job.params).await;
        self.metrics.requests_served.with_label_values(&[stream_label(&self.key)]).inc();
        let reply = JobReply { id: job.id, outcome };
        let published: Result<RedisValue, _> =
            self.client.publish(job.reply_to.as_str(), reply.to_json()).await;
        if let Err(e) = &published {
            tracing::warn!(error = %e, "reply not published");
        }
        published.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> RedisValue {
        RedisValue::String(v.into())
    }

    #[test]
    fn reads_stream_entries() {
        let value = RedisValue::Array(vec![
            RedisValue::Array(vec![
                s("1-0"),
                RedisValue::Array(vec![s("a"), s("1"), s("b"), s("2")]),
            ]),
            RedisValue::Array(vec![s("2-0"), RedisValue::Null]),
            s("garbage"),
        ]);
        let got = entries(value);
        assert_eq!(
            got[0],
            ("1-0".into(), vec![("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        assert_eq!(got[1], ("2-0".into(), vec![]));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn labels_streams_by_name() {
        assert_eq!(stream_label("roomcast:requests:jobs"), "jobs");
        assert_eq!(stream_key("rc", "jobs"), "rc:requests:jobs");
    }
}
