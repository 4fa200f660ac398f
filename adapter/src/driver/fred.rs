//! The Redis driver, on `fred`.
//!
//! Two clients, as Node uses: one publishes and runs PUBSUB, the other is
//! in subscribed mode. The subscriber is the only one that subscribes, so
//! (SHARD)NUMSUB counts each server once.
//!
//! On a Redis Cluster (`redis-cluster://` or [`AdapterConfig::cluster`])
//! each client holds one connection per primary. fred sends SUBSCRIBE and
//! PSUBSCRIBE to the primary owning the hash slot of the client's id (so
//! NUMSUB is summed over every primary, as Node does), and SSUBSCRIBE,
//! SUNSUBSCRIBE and SPUBLISH to the owner of the first channel's slot.
//! SSUBSCRIBE may name several channels only if they share a slot, so shard
//! subscriptions are sent as one SSUBSCRIBE per slot (on a single server:
//! one for all), the groups concurrently. fred never pipelines SSUBSCRIBE
//! (it follows MOVED redirections one command at a time), so each group
//! costs one round trip on its connection; channels without a hash tag
//! rarely share a slot.
//!
//! fred reconnects with exponential backoff; after each reconnection this
//! driver subscribes again: the classic routes (a handful of channels) in
//! full, the shard routes whose slot the reconnected node owns, batched as
//! above. Caveat of fred 10.1: it takes the first confirmation of a
//! multi-channel SSUBSCRIBE as the reply and drops the others.
//!
//! fred keeps taking commands after a connection error and holds them
//! until it has reconnected (its `fail_fast` only covers the moments it
//! knows it is disconnected), so a publish during an outage would wait for
//! Redis. The driver keeps its own [`Link`] state instead: a connection
//! error marks the client down at once; the publisher is up again when fred
//! reports its reconnection, the subscriber once it has subscribed again.
//! While the publisher is down, (S)PUBLISH fails at once with
//! [`DriverError::Unavailable`].

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use fred::{
    prelude::{
        Builder, Client, ClientLike, ClusterInterface, Config, EventInterface, Options,
        PubsubInterface, ReconnectPolicy, Server, ServerConfig, Value,
    },
    types::{MessageKind, config::ClusterDiscoveryPolicy},
    util::redis_keyslot,
};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use super::{Driver, DriverError, Message, MessageSink, Subscription};
use crate::{
    AdapterConfig,
    metrics::{AdapterMetrics, incr},
};

type Routes = Arc<Mutex<HashMap<Subscription, MessageSink>>>;

/// Which of the two connections are usable.
#[derive(Debug)]
struct Link {
    publisher: AtomicBool,
    subscriber: AtomicBool,
}

impl Link {
    fn role(&self, role: Role) -> &AtomicBool {
        match role {
            Role::Publisher => &self.publisher,
            Role::Subscriber => &self.subscriber,
        }
    }

    fn set(&self, role: Role, up: bool) {
        if self.role(role).swap(up, Ordering::AcqRel) != up {
            tracing::info!(role = role.as_str(), up, "redis link changed");
        }
    }

    fn is_up(&self, role: Role) -> bool {
        self.role(role).load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
        }
    }
}

/// A [`Driver`] on a Redis server.
#[derive(Debug)]
pub struct FredDriver {
    publisher: Client,
    subscriber: Client,
    link: Arc<Link>,
    routes: Routes,
    options: Options,
    tasks: Vec<JoinHandle<()>>,
    clustered: bool,
}

impl Drop for FredDriver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(routes: &Routes) -> MutexGuard<'_, HashMap<Subscription, MessageSink>> {
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl FredDriver {
    /// Connects both connections. Fails if Redis cannot be reached now;
    /// later outages are survived by reconnecting.
    pub async fn connect(
        config: &AdapterConfig,
        metrics: Arc<AdapterMetrics>,
    ) -> Result<Self, DriverError> {
        let mut redis = Config::from_url(&config.redis_url)?;
        if config.cluster
            && let ServerConfig::Centralized { server } = &redis.server
        {
            redis.server = ServerConfig::Clustered {
                hosts: vec![server.clone()],
                policy: ClusterDiscoveryPolicy::default(),
            };
        }
        let clustered = redis.server.is_clustered();
        let mut builder = Builder::from_config(redis);
        builder
            .set_policy(ReconnectPolicy::new_exponential(
                0, // retry forever
                millis(config.reconnect_min_delay),
                millis(config.reconnect_max_delay),
                2,
            ))
            .with_connection_config(|c| {
                c.connection_timeout = config.request_timeout;
                c.internal_command_timeout = config.request_timeout;
            })
            .with_performance_config(|p| {
                p.broadcast_channel_capacity = config.queue_capacity.max(1);
            });
        let publisher = builder.build()?;
        let subscriber = builder.build()?;
        let routes = Routes::default();
        // Up once `init` below has connected both.
        let link = Arc::new(Link { publisher: false.into(), subscriber: false.into() });

        // Listen before connecting, so nothing is missed.
        let mut tasks = vec![
            tokio::spawn(route_messages(subscriber.clone(), routes.clone(), metrics.clone())),
            tokio::spawn(resubscribe(
                subscriber.clone(),
                routes.clone(),
                metrics.clone(),
                link.clone(),
                clustered,
            )),
            tokio::spawn(watch_reconnects(publisher.clone(), link.clone())),
        ];
        for (client, role) in [(&publisher, Role::Publisher), (&subscriber, Role::Subscriber)] {
            tasks.push(tokio::spawn(watch_errors(
                client.clone(),
                role,
                metrics.clone(),
                link.clone(),
            )));
        }
        let this = Self {
            publisher,
            subscriber,
            link,
            routes,
            // While Redis is away commands fail at once instead of queueing:
            // local delivery must not wait on the bus.
            options: Options {
                fail_fast: true,
                timeout: Some(config.request_timeout),
                ..Default::default()
            },
            tasks,
            clustered,
        };
        this.publisher.init().await?;
        this.subscriber.init().await?;
        this.link.set(Role::Publisher, true);
        this.link.set(Role::Subscriber, true);
        Ok(this)
    }
}

#[derive(Clone, Copy)]
enum Count {
    Numsub,
    ShardNumsub,
}

impl FredDriver {
    /// PUBSUB (SHARD)NUMSUB. On a cluster a subscriber is counted only by
    /// the node it is connected to: the answers of every primary are
    /// summed, as Node does.
    async fn count(&self, count: Count, channel: String) -> Result<u64, DriverError> {
        async fn one<C: PubsubInterface>(
            client: &C,
            count: Count,
            channel: String,
        ) -> Result<u64, DriverError> {
            // The reply is `[channel, count]`.
            let reply: Vec<Value> = match count {
                Count::Numsub => client.pubsub_numsub(channel).await?,
                Count::ShardNumsub => client.pubsub_shardnumsub(channel).await?,
            };
            Ok(reply.get(1).and_then(Value::as_u64).unwrap_or(0))
        }
        let primaries: Vec<Server> = match self.publisher.cached_cluster_state() {
            Some(layout) if self.clustered => layout.unique_primary_nodes(),
            _ => return one(&self.publisher.with_options(&self.options), count, channel).await,
        };
        let answers = futures::future::join_all(primaries.into_iter().map(|server| {
            let options = Options { cluster_node: Some(server), ..self.options.clone() };
            let channel = channel.clone();
            async move { one(&self.publisher.with_options(&options), count, channel).await }
        }))
        .await;
        answers.into_iter().try_fold(0, |sum, n| Ok(sum + n?))
    }
}

/// Hands every pub/sub message to the sinks whose subscription matches.
async fn route_messages(subscriber: Client, routes: Routes, metrics: Arc<AdapterMetrics>) {
    let mut rx = subscriber.message_rx();
    loop {
        match rx.recv().await {
            Ok(msg) => {
                let payload = match msg.value {
                    Value::Bytes(b) => b,
                    Value::String(s) => Bytes::copy_from_slice(s.as_bytes()),
                    _ => continue,
                };
                let channel = msg.channel.to_string();
                let kind = match msg.kind {
                    MessageKind::PMessage => Kind::Pattern,
                    MessageKind::SMessage => Kind::Shard,
                    _ => Kind::Channel,
                };
                let mut routes = lock(&routes);
                // A sink whose receiver is gone belongs to a closed namespace.
                routes.retain(|sub, sink| {
                    let wanted = Kind::of(sub) == kind && sub.matches(&channel);
                    !wanted
                        || sink
                            .deliver(Message { channel: channel.clone(), payload: payload.clone() })
                });
            }
            Err(RecvError::Lagged(n)) => {
                metrics.dropped.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(dropped = n, "redis messages dropped: the adapter fell behind");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn of(sub: &Subscription) -> Self {
        match sub {
            Subscription::Channel(_) => Self::Channel,
            Subscription::Pattern(_) => Self::Pattern,
            Subscription::Shard(_) => Self::Shard,
        }
    }
}

/// Subscribes again after a reconnection: every classic route, and the
/// shard routes that live on the reconnected node (all of them when the
/// cluster layout is unknown or on a single server).
async fn resubscribe(
    subscriber: Client,
    routes: Routes,
    metrics: Arc<AdapterMetrics>,
    link: Arc<Link>,
    clustered: bool,
) {
    let mut rx = subscriber.reconnect_rx();
    // fred also reports the first connection.
    let mut first = true;
    loop {
        match rx.recv().await {
            Ok(server) => {
                if std::mem::take(&mut first) {
                    continue;
                }
                incr(&metrics.reconnects);
                let layout = if clustered { subscriber.cached_cluster_state() } else { None };
                let subs: Vec<Subscription> = lock(&routes)
                    .keys()
                    .filter(|sub| match (sub, &layout) {
                        (Subscription::Shard(channel), Some(layout)) => layout
                            .get_server(redis_keyslot(channel.as_bytes()))
                            .is_none_or(|owner| *owner == server),
                        _ => true,
                    })
                    .cloned()
                    .collect();
                tracing::info!(%server, count = subs.len(), "reconnected to redis, subscribing again");
                match send_subscribe(&subscriber, subs, clustered).await {
                    Ok(()) => link.set(Role::Subscriber, true),
                    Err(e) => {
                        incr(&metrics.redis_errors);
                        tracing::warn!(error = %e, "resubscribing failed");
                    }
                }
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

/// The publisher is usable again once fred has reconnected it.
async fn watch_reconnects(publisher: Client, link: Arc<Link>) {
    let mut rx = publisher.reconnect_rx();
    loop {
        match rx.recv().await {
            Ok(_) => link.set(Role::Publisher, true),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Every connection error marks the client down until it is usable again.
async fn watch_errors(client: Client, role: Role, metrics: Arc<AdapterMetrics>, link: Arc<Link>) {
    let mut rx = client.error_rx();
    loop {
        match rx.recv().await {
            Ok((error, server)) => {
                link.set(role, false);
                incr(&metrics.redis_errors);
                tracing::warn!(%error, ?server, role = role.as_str(), "redis connection error");
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

#[derive(Default)]
struct Split {
    channels: Vec<String>,
    patterns: Vec<String>,
    shards: Vec<String>,
}

fn split(subs: Vec<Subscription>) -> Split {
    let mut out = Split::default();
    for sub in subs {
        match sub {
            Subscription::Channel(c) => out.channels.push(c),
            Subscription::Pattern(p) => out.patterns.push(p),
            Subscription::Shard(c) => out.shards.push(c),
        }
    }
    out
}

/// Shard channels in groups one SSUBSCRIBE/SUNSUBSCRIBE may carry: one
/// group per hash slot on a cluster, a single group on one server.
fn slot_groups(channels: Vec<String>, clustered: bool) -> Vec<Vec<String>> {
    if channels.is_empty() {
        return Vec::new();
    }
    if !clustered {
        return vec![channels];
    }
    let mut groups: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for channel in channels {
        groups.entry(redis_keyslot(channel.as_bytes())).or_default().push(channel);
    }
    groups.into_values().collect()
}

/// Runs the commands concurrently; the first error wins.
async fn all<F: Future<Output = Result<(), ::fred::error::Error>>>(
    commands: impl IntoIterator<Item = F>,
) -> Result<(), DriverError> {
    for result in futures::future::join_all(commands).await {
        result?;
    }
    Ok(())
}

async fn send_subscribe<C: PubsubInterface>(
    client: &C,
    subs: Vec<Subscription>,
    clustered: bool,
) -> Result<(), DriverError> {
    let Split { channels, patterns, shards } = split(subs);
    if !channels.is_empty() {
        client.subscribe(channels).await?;
    }
    if !patterns.is_empty() {
        client.psubscribe(patterns).await?;
    }
    all(slot_groups(shards, clustered).into_iter().map(|group| client.ssubscribe(group))).await
}

impl FredDriver {
    /// Fails at once while the publisher is down, rather than queue in fred.
    fn check_publisher(&self) -> Result<(), DriverError> {
        if self.link.is_up(Role::Publisher) { Ok(()) } else { Err(DriverError::Unavailable) }
    }
}

impl Driver for FredDriver {
    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), DriverError> {
        self.check_publisher()?;
        let _receivers: i64 =
            self.publisher.with_options(&self.options).publish(channel, payload).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        subs: Vec<Subscription>,
        sink: MessageSink,
    ) -> Result<(), DriverError> {
        {
            let mut routes = lock(&self.routes);
            for sub in &subs {
                routes.insert(sub.clone(), sink.clone());
            }
        }
        send_subscribe(&self.subscriber.with_options(&self.options), subs, self.clustered).await
    }

    async fn unsubscribe(&self, subs: Vec<Subscription>) -> Result<(), DriverError> {
        {
            let mut routes = lock(&self.routes);
            for sub in &subs {
                routes.remove(sub);
            }
        }
        let Split { channels, patterns, shards } = split(subs);
        let client = self.subscriber.with_options(&self.options);
        if !channels.is_empty() {
            client.unsubscribe(channels).await?;
        }
        if !patterns.is_empty() {
            client.punsubscribe(patterns).await?;
        }
        let groups = slot_groups(shards, self.clustered);
        all(groups.into_iter().map(|group| client.sunsubscribe(group))).await
    }

    async fn spublish(&self, channel: String, payload: Vec<u8>) -> Result<(), DriverError> {
        self.check_publisher()?;
        let _receivers: i64 =
            self.publisher.with_options(&self.options).spublish(channel, payload).await?;
        Ok(())
    }

    async fn numsub(&self, channel: String) -> Result<u64, DriverError> {
        self.count(Count::Numsub, channel).await
    }

    async fn shard_numsub(&self, channel: String) -> Result<u64, DriverError> {
        self.count(Count::ShardNumsub, channel).await
    }

    fn is_connected(&self) -> bool {
        self.link.is_up(Role::Publisher) && self.link.is_up(Role::Subscriber)
    }

    async fn close(&self) {
        lock(&self.routes).clear();
        for client in [&self.subscriber, &self.publisher] {
            if let Err(e) = client.quit().await {
                tracing::debug!(error = %e, "redis quit failed");
            }
        }
    }
}
