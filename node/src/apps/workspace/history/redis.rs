//! The history of a cluster: per room, a hash `{<key>:history:<room>}:meta` (epoch, top)
//! and a stream `{…}:log` whose entry ids are the offsets. Both share a hash tag, so a
//! Redis Cluster keeps them in one slot and one script can use both.
//!
//! `APPEND` assigns the offset, appends, trims and PUBLISHes the event on the feed
//! channel in one atomic step: Redis runs scripts one at a time, so the feed carries each
//! room's events in offset order to every node. The feed message is Roomcast's own
//! (`<offset> <epoch> <stored_ms> <tag> <skip> <room length> <room><json>`, `skip` the
//! socket not to send it to live, or `-`), on a channel Node.js peers never subscribe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config as RedisConfig, EventInterface, LuaInterface, Options,
    PubsubInterface, ReconnectPolicy, ServerConfig, Value as RedisValue,
};
use fred::types::config::ClusterDiscoveryPolicy;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::memory::EPOCH_LIFETIME;
use super::{
    Delivery, HistoryError, Kind, Page, Position, Range, Record, new_epoch, now_ms, oldest_kept,
};
use crate::config::HistoryConfig;
use crate::core::metrics::Metrics;

/// KEYS: meta, log. ARGV: epoch if new, size, log ttl ms, meta ttl ms, tag, stored ms,
/// data, feed channel, feed prefix (`<skip> <room length> <room>`).
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], offset .. '-0', 'k', ARGV[5], 't', ARGV[6], 'd', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[8], offset .. ' ' .. epoch .. ' ' .. ARGV[6] .. ' ' .. ARGV[5] .. ' ' .. ARGV[9] .. ARGV[7])
return {offset, epoch}
";

/// KEYS: meta, log. ARGV: epoch if new, meta ttl ms, mode (`latest`, `after`,
/// `before`), bound offset, count. Returns epoch, top, then id, tag, stored ms, data per
/// entry as XRANGE/XREVRANGE gives them.
const READ: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top')) or 0
local out = {epoch, top}
local count = tonumber(ARGV[5])
if count == 0 then return out end
local entries
if ARGV[3] == 'after' then
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[4] .. '-0', '+', 'COUNT', count)
elseif ARGV[3] == 'before' then
  if tonumber(ARGV[4]) <= 1 then return out end
  entries = redis.call('XREVRANGE', KEYS[2], '(' .. ARGV[4] .. '-0', '-', 'COUNT', count)
else
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', count)
end
for _, e in ipairs(entries) do
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  table.insert(out, e[1]); table.insert(out, f.k); table.insert(out, f.t); table.insert(out, f.d)
end
return out
";

/// What the store knows of its two connections: each false from a connection error
/// until it has reconnected (fred itself would queue a command until Redis is back).
#[derive(Default)]
struct Link {
    client: AtomicBool,
    subscriber: AtomicBool,
}

/// How long a command may take while the subscriber is reconnecting: Redis itself may
/// be gone (the subscriber, always reading, notices first), or only the subscriptions
/// were dropped, and a live Redis answers well within this.
const SUSPECT_BUDGET: Duration = Duration::from_secs(1);

/// Flags `up` false on each connection error of `client`, true on each reconnection.
async fn watch(client: Client, link: Arc<Link>, subscriber: bool) {
    fn up(link: &Link, subscriber: bool) -> &AtomicBool {
        if subscriber { &link.subscriber } else { &link.client }
    }
    let mut errors = client.error_rx();
    let mut reconnects = client.reconnect_rx();
    loop {
        tokio::select! {
            error = errors.recv() => match error {
                Ok(_) => up(&link, subscriber).store(false, Ordering::Release),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) => up(&link, subscriber).store(true, Ordering::Release),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// The cluster store; cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    subscriber: Client,
    link: Arc<Link>,
    timeout: Duration,
    config: HistoryConfig,
    prefix: String,
    channel: String,
    options: Options,
}

/// What the store needs to connect.
pub struct RedisSettings<'a> {
    /// `redis.url`.
    pub url: &'a str,
    /// `redis.cluster`: the URL names a seed node of a Redis Cluster.
    pub cluster: bool,
    /// `redis.key`: keys and the feed channel start with it.
    pub key: &'a str,
    /// `redis.request_timeout`: the longest a command may take.
    pub timeout: Duration,
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

impl RedisStore {
    /// Connects, subscribes to the feed and forwards what it carries to `feed`.
    pub async fn connect(
        settings: RedisSettings<'_>,
        config: HistoryConfig,
        feed: mpsc::UnboundedSender<Delivery>,
        metrics: Metrics,
    ) -> Result<Self, HistoryError> {
        let mut redis = RedisConfig::from_url(settings.url)?;
        if settings.cluster
            && let ServerConfig::Centralized { server } = &redis.server
        {
            redis.server = ServerConfig::Clustered {
                hosts: vec![server.clone()],
                policy: ClusterDiscoveryPolicy::default(),
            };
        }
        let mut builder = Builder::from_config(redis);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .with_connection_config(|c| {
                c.connection_timeout = settings.timeout;
                c.internal_command_timeout = settings.timeout;
            })
            // A burst larger than this is dropped by the listener and then filled in
            // from the store by the per-socket gap check.
            .with_performance_config(|p| p.broadcast_channel_capacity = 16 * 1024);
        let client = builder.build()?;
        let subscriber = builder.build()?;
        let channel = format!("{}:history:feed", settings.key);
        // Listen before subscribing, so nothing is missed.
        tokio::spawn(listen(subscriber.clone(), channel.clone(), feed, metrics));
        let link = Arc::new(Link::default());
        tokio::spawn(watch(client.clone(), link.clone(), false));
        tokio::spawn(watch(subscriber.clone(), link.clone(), true));
        client.init().await?;
        subscriber.init().await?;
        subscriber.subscribe(channel.as_str()).await?;
        link.client.store(true, Ordering::Release);
        link.subscriber.store(true, Ordering::Release);
        Ok(Self {
            client,
            subscriber,
            link,
            timeout: settings.timeout,
            config,
            prefix: format!("{}:history:", settings.key),
            channel,
            // While Redis is away a send fails at once (and is delivered on this node
            // only) rather than waiting in a queue.
            options: Options {
                fail_fast: true,
                max_attempts: Some(1),
                timeout: Some(settings.timeout),
                ..Default::default()
            },
        })
    }

    /// Runs a script, bounded: at once refused while the command connection is down,
    /// and given [`SUSPECT_BUDGET`] while the subscriber is (Redis may be gone and the
    /// command connection not know yet). A send must not wait on history: it is then
    /// delivered unstored.
    async fn eval(
        &self,
        script: &str,
        room: &str,
        args: Vec<String>,
    ) -> Result<RedisValue, HistoryError> {
        if !self.link.client.load(Ordering::Acquire) {
            return Err(HistoryError::Unavailable);
        }
        let budget = if self.link.subscriber.load(Ordering::Acquire) {
            self.timeout
        } else {
            SUSPECT_BUDGET
        };
        let client = self.client.with_options(&self.options);
        match tokio::time::timeout(budget, client.eval(script, self.keys(room), args)).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(HistoryError::Unavailable),
        }
    }

    fn keys(&self, room: &str) -> Vec<String> {
        let tag = format!("{{{}{room}}}", self.prefix);
        vec![format!("{tag}:meta"), format!("{tag}:log")]
    }

    fn meta_ttl(&self) -> String {
        millis(self.config.ttl + EPOCH_LIFETIME)
    }

    /// Stores the room's next event; the feed brings it to every node.
    pub async fn append(
        &self,
        room: &str,
        kind: Kind,
        data: &Value,
        skip: Option<&str>,
    ) -> Result<Position, HistoryError> {
        let args: Vec<String> = vec![
            new_epoch(),
            self.config.size.to_string(),
            millis(self.config.ttl),
            self.meta_ttl(),
            kind.tag().to_owned(),
            now_ms().to_string(),
            data.to_string(),
            self.channel.clone(),
            format!("{} {} {room}", skip.unwrap_or("-"), room.len()),
        ];
        let reply = self.eval(APPEND, room, args).await?;
        let RedisValue::Array(items) = reply else { return Err(HistoryError::Reply("append")) };
        match &items[..] {
            [offset, epoch] => Ok(Position {
                epoch: text(epoch).ok_or(HistoryError::Reply("append epoch"))?,
                offset: number(offset).ok_or(HistoryError::Reply("append offset"))?,
            }),
            _ => Err(HistoryError::Reply("append")),
        }
    }

    /// Reads part of a room's history.
    pub async fn read(&self, room: &str, range: Range) -> Result<Page, HistoryError> {
        let (mode, bound, count) = match range {
            Range::Latest(n) => ("latest", 0, n),
            Range::After(after, n) => ("after", after, n),
            Range::Before(before, n) => ("before", before, n),
        };
        let args: Vec<String> = vec![
            new_epoch(),
            self.meta_ttl(),
            mode.to_owned(),
            bound.to_string(),
            count.to_string(),
        ];
        let reply = self.eval(READ, room, args).await?;
        let RedisValue::Array(items) = reply else { return Err(HistoryError::Reply("read")) };
        let [epoch, top, entries @ ..] = &items[..] else {
            return Err(HistoryError::Reply("read"));
        };
        let position = Position {
            epoch: text(epoch).ok_or(HistoryError::Reply("read epoch"))?,
            offset: number(top).ok_or(HistoryError::Reply("read top"))?,
        };
        let oldest = oldest_kept(&self.config);
        let mut records = Vec::with_capacity(entries.len() / 4);
        for entry in entries.chunks(4) {
            let record = parse_entry(entry).ok_or(HistoryError::Reply("read entry"))?;
            if record.stored_ms >= oldest {
                records.push(record);
            }
        }
        if mode != "after" {
            records.reverse();
        }
        Ok(Page { position, records })
    }

    /// Ends both connections.
    pub async fn close(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }
}

fn text(value: &RedisValue) -> Option<String> {
    value.as_string()
}

fn number(value: &RedisValue) -> Option<u64> {
    match value {
        RedisValue::Integer(n) => u64::try_from(*n).ok(),
        other => other.as_string()?.parse().ok(),
    }
}

/// One `[id, tag, stored ms, data]` of [`READ`]'s reply.
fn parse_entry(entry: &[RedisValue]) -> Option<Record> {
    let [id, tag, stored, data] = entry else { return None };
    let id = text(id)?;
    Some(Record {
        offset: id.split_once('-')?.0.parse().ok()?,
        kind: Kind::from_tag(&text(tag)?)?,
        stored_ms: text(stored)?.parse().ok()?,
        data: serde_json::from_str(&text(data)?).ok()?,
    })
}

/// Parses a feed message (see the module docs).
pub fn parse_feed(bytes: &[u8]) -> Option<Delivery> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut head = text.splitn(7, ' ');
    let offset = head.next()?.parse().ok()?;
    let epoch = head.next()?.to_owned();
    let stored_ms = head.next()?.parse().ok()?;
    let kind = Kind::from_tag(head.next()?)?;
    let skip = Some(head.next()?).filter(|s| *s != "-").map(str::to_owned);
    let room_len: usize = head.next()?.parse().ok()?;
    let rest = head.next()?;
    let room = rest.get(..room_len)?.to_owned();
    let data = serde_json::from_str(rest.get(room_len..)?).ok()?;
    Some(Delivery { room, epoch, record: Record { offset, kind, stored_ms, data }, skip })
}

async fn listen(
    subscriber: Client,
    channel: String,
    feed: mpsc::UnboundedSender<Delivery>,
    metrics: Metrics,
) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) if &*message.channel == channel.as_str() => {
                    let delivery = match &message.value {
                        RedisValue::Bytes(b) => parse_feed(b),
                        RedisValue::String(s) => parse_feed(s.as_bytes()),
                        _ => None,
                    };
                    match delivery {
                        Some(delivery) => {
                            if feed.send(delivery).is_err() {
                                return;
                            }
                        }
                        None => tracing::warn!("unreadable history feed message dropped"),
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    metrics.error(crate::core::metrics::ErrorKind::Redis).inc();
                    tracing::warn!(dropped = n, "history feed messages dropped; gaps are filled from the store");
                }
                Err(RecvError::Closed) => return,
            },
            // Every connection, the first included (subscribing twice is harmless, and
            // this task may start after the first one), subscribes until Redis says yes.
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) => {
                    while let Err(e) = subscriber.subscribe(channel.as_str()).await {
                        metrics.error(crate::core::metrics::ErrorKind::Redis).inc();
                        tracing::warn!(error = %e, "history feed not subscribed again; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if !subscriber.is_connected() {
                            break;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn feed_messages_carry_rooms_with_spaces_and_any_json() {
        let bytes = br#"12 00ff 1700000000000 m - 9 a room 1:{"id":"x","message":"hi there"}"#;
        let d = parse_feed(bytes).expect("parsed");
        assert_eq!(d.room, "a room 1:");
        assert_eq!(d.epoch, "00ff");
        assert_eq!(d.record.offset, 12);
        assert_eq!(d.record.kind, Kind::Message);
        assert_eq!(d.record.data, json!({"id": "x", "message": "hi there"}));
        assert_eq!(d.skip, None);
        let skipped = parse_feed(b"3 e 17 i AAAAAAAAAAAAAAAA 1 r{}").expect("parsed");
        assert_eq!(skipped.skip.as_deref(), Some("AAAAAAAAAAAAAAAA"));
        assert!(parse_feed(b"12 00ff 17 x - 1 a{}").is_none(), "unknown tag");
        assert!(parse_feed(b"12 00ff 17 m - 9 a{}").is_none(), "room longer than the rest");
    }
}
