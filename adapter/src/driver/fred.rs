//! The Redis driver, on `fred`.
//!
//! Two connections, as Node uses: one publishes and runs PUBSUB NUMSUB, the
//! other is in subscribed mode. The subscriber connection is the only one
//! that subscribes, so NUMSUB on a request channel counts each server once.
//! fred reconnects with exponential backoff; after each reconnection this
//! driver subscribes again to every route it holds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use fred::{
    prelude::{
        Builder, Client, ClientLike, Config, EventInterface, Options, PubsubInterface,
        ReconnectPolicy, Value,
    },
    types::MessageKind,
};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use super::{Driver, DriverError, Message, MessageSink, Subscription};
use crate::{
    AdapterConfig,
    metrics::{AdapterMetrics, incr},
};

type Routes = Arc<Mutex<HashMap<Subscription, MessageSink>>>;

/// A [`Driver`] on a Redis server.
#[derive(Debug)]
pub struct FredDriver {
    publisher: Client,
    subscriber: Client,
    routes: Routes,
    options: Options,
    tasks: Vec<JoinHandle<()>>,
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
        let mut builder = Builder::from_config(Config::from_url(&config.redis_url)?);
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

        // Listen before connecting, so nothing is missed.
        let mut tasks = vec![
            tokio::spawn(route_messages(subscriber.clone(), routes.clone(), metrics.clone())),
            tokio::spawn(resubscribe(subscriber.clone(), routes.clone(), metrics.clone())),
        ];
        for (client, role) in [(&publisher, "publisher"), (&subscriber, "subscriber")] {
            tasks.push(tokio::spawn(watch_errors(client.clone(), role, metrics.clone())));
        }
        let this = Self {
            publisher,
            subscriber,
            routes,
            // While Redis is away commands fail at once instead of queueing:
            // local delivery must not wait on the bus.
            options: Options {
                fail_fast: true,
                timeout: Some(config.request_timeout),
                ..Default::default()
            },
            tasks,
        };
        this.publisher.init().await?;
        this.subscriber.init().await?;
        Ok(this)
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
                let pattern = msg.kind == MessageKind::PMessage;
                let mut routes = lock(&routes);
                // A sink whose receiver is gone belongs to a closed namespace.
                routes.retain(|sub, sink| {
                    let wanted =
                        matches!(sub, Subscription::Pattern(_)) == pattern && sub.matches(&channel);
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

/// Subscribes again to every route after a reconnection.
async fn resubscribe(subscriber: Client, routes: Routes, metrics: Arc<AdapterMetrics>) {
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
                tracing::info!(%server, "reconnected to redis, subscribing again");
                let subs: Vec<Subscription> = lock(&routes).keys().cloned().collect();
                if let Err(e) = send_subscribe(&subscriber, subs).await {
                    incr(&metrics.redis_errors);
                    tracing::warn!(error = %e, "resubscribing failed");
                }
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

async fn watch_errors(client: Client, role: &'static str, metrics: Arc<AdapterMetrics>) {
    let mut rx = client.error_rx();
    loop {
        match rx.recv().await {
            Ok((error, server)) => {
                incr(&metrics.redis_errors);
                tracing::warn!(%error, ?server, role, "redis connection error");
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

fn split(subs: Vec<Subscription>) -> (Vec<String>, Vec<String>) {
    let mut channels = Vec::new();
    let mut patterns = Vec::new();
    for sub in subs {
        match sub {
            Subscription::Channel(c) => channels.push(c),
            Subscription::Pattern(p) => patterns.push(p),
        }
    }
    (channels, patterns)
}

async fn send_subscribe(client: &Client, subs: Vec<Subscription>) -> Result<(), DriverError> {
    let (channels, patterns) = split(subs);
    if !channels.is_empty() {
        client.subscribe(channels).await?;
    }
    if !patterns.is_empty() {
        client.psubscribe(patterns).await?;
    }
    Ok(())
}

impl Driver for FredDriver {
    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), DriverError> {
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
        let (channels, patterns) = split(subs);
        let client = self.subscriber.with_options(&self.options);
        if !channels.is_empty() {
            client.subscribe(channels).await?;
        }
        if !patterns.is_empty() {
            client.psubscribe(patterns).await?;
        }
        Ok(())
    }

    async fn unsubscribe(&self, subs: Vec<Subscription>) -> Result<(), DriverError> {
        {
            let mut routes = lock(&self.routes);
            for sub in &subs {
                routes.remove(sub);
            }
        }
        let (channels, patterns) = split(subs);
        let client = self.subscriber.with_options(&self.options);
        if !channels.is_empty() {
            client.unsubscribe(channels).await?;
        }
        if !patterns.is_empty() {
            client.punsubscribe(patterns).await?;
        }
        Ok(())
    }

    async fn numsub(&self, channel: String) -> Result<u64, DriverError> {
        // The reply is `[channel, count]`.
        let reply: Vec<Value> =
            self.publisher.with_options(&self.options).pubsub_numsub(channel).await?;
        Ok(reply.get(1).and_then(Value::as_u64).unwrap_or(0))
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
