//! Room history on `/`: every message and invalidation sent to a room is stored with
//! the room's next offset, so a client that comes back after a drop gets exactly what it
//! missed, and members can page back through a room.
//!
//! The broker contract (docs/recovery.md has it for users):
//! - Each room has an `epoch` and a `top` offset. A stored event takes `top + 1`. The
//!   epoch changes only when the room's history was lost (Redis flushed or restarted
//!   empty, a single node restarted, or the room silent for a day past `history.ttl`);
//!   offsets then start again at 1.
//! - Storing and publishing are one step: in a cluster one Lua script assigns the offset,
//!   appends to the room's stream and PUBLISHes to the node feed, so every node receives
//!   a room's events in offset order; on a single node one lock does the same.
//! - Live delivery is at most once, as Socket.IO's. What makes it exact is the per-socket
//!   cursor in [`feed`]: a socket is never sent an offset it already had, and a gap (a
//!   feed message lost while a link was down) is filled from the store before the next.
//! - Kept: the last `history.size` events of a room, none older than `history.ttl`.

pub mod feed;
pub mod memory;
pub mod redis;

use std::fmt;

use serde_json::{Map, Value};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

use crate::config::HistoryConfig;
use crate::core::state::AppState;
use memory::MemoryStore;
use redis::{RedisSettings, RedisStore};

/// What a stored event was, and the event name clients receive it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A chat message: `incomingMessage`.
    Message,
    /// A data invalidation: `ds invalidate`.
    Invalidate,
}

impl Kind {
    /// The Socket.IO event name.
    pub fn event(self) -> &'static str {
        match self {
            Kind::Message => "incomingMessage",
            Kind::Invalidate => "ds invalidate",
        }
    }

    /// Its one-letter tag in the store and on the feed.
    fn tag(self) -> &'static str {
        match self {
            Kind::Message => "m",
            Kind::Invalidate => "i",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "m" => Some(Kind::Message),
            "i" => Some(Kind::Invalidate),
            _ => None,
        }
    }
}

/// One stored event of a room.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its offset in the room.
    pub offset: u64,
    /// Message or invalidation.
    pub kind: Kind,
    /// When it was stored, Unix milliseconds.
    pub stored_ms: i64,
    /// The payload as sent, without `offset` and `epoch`.
    pub data: Value,
}

impl Record {
    /// The payload a client receives: the stored one with `offset` and `epoch` last.
    pub fn payload(&self, epoch: &str) -> Value {
        stamped(&self.data, self.offset, epoch)
    }
}

/// `data` with the room position it was stored at, `offset` and `epoch` last.
pub fn stamped(data: &Value, offset: u64, epoch: &str) -> Value {
    let mut map = match data {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    map.insert("offset".into(), offset.into());
    map.insert("epoch".into(), epoch.into());
    Value::Object(map)
}

/// Where a room stands: its epoch and last offset (0 before anything was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The room's epoch.
    pub epoch: String,
    /// Its last offset.
    pub offset: u64,
}

/// A stored event as the feed hands it to every node: the room, its epoch and the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The room.
    pub room: String,
    /// The room's epoch when it was stored.
    pub epoch: String,
    /// The event.
    pub record: Record,
    /// A socket not to send it to live: the sender of an invalidation.
    pub skip: Option<String>,
}

/// Which part of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The latest `n`.
    Latest(usize),
    /// Up to `n` after offset `0` (exclusive), oldest first.
    After(u64, usize),
    /// Up to `n` before offset `0` (exclusive), the nearest ones.
    Before(u64, usize),
}

/// A read: where the room stands, and the records asked for, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The room's position when read.
    pub position: Position,
    /// The records, oldest first; none older than `history.ttl`.
    pub records: Vec<Record>,
}

/// The history store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Redis failed or is away.
    #[error("history store: {0}")]
    Redis(#[from] fred::error::Error),
    /// Redis is away (reconnecting): nothing was sent.
    #[error("history store: redis unavailable")]
    Unavailable,
    /// The store answered something this node cannot read.
    #[error("history store: unexpected reply ({0})")]
    Reply(&'static str),
}

/// The store: in-process on a single node, Redis in a cluster.
#[derive(Clone)]
pub enum History {
    /// One node: a map in memory, lost on restart (a new epoch).
    Memory(memory::MemoryStore),
    /// A cluster: one Redis stream per room.
    Redis(redis::RedisStore),
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            History::Memory(_) => f.write_str("History::Memory"),
            History::Redis(_) => f.write_str("History::Redis"),
        }
    }
}

impl History {
    /// Opens the store (in-process on one node, Redis in a cluster) and starts the task
    /// that delivers its feed to this node's sockets of namespace `ns`; nothing when
    /// `history.enabled` is off.
    pub async fn start<A: Adapter>(
        io: &SocketIo<A>,
        app: &AppState,
        ns: &'static str,
    ) -> Result<Option<History>, HistoryError> {
        let config = &app.config;
        if !config.history.enabled {
            return Ok(None);
        }
        let (feed, deliveries) = tokio::sync::mpsc::unbounded_channel();
        let history = match &config.redis.url {
            None => History::Memory(MemoryStore::new(config.history.clone(), feed)),
            Some(url) => {
                let settings = RedisSettings {
                    url: url.expose(),
                    cluster: config.redis.cluster,
                    key: &config.redis.key,
                    timeout: config.redis.request_timeout,
                };
                let metrics = app.metrics.clone();
                let store =
                    RedisStore::connect(settings, config.history.clone(), feed, metrics).await?;
                History::Redis(store)
            }
        };
        let metrics = app.metrics.clone();
        tokio::spawn(feed::run(io.clone(), ns, history.clone(), deliveries, metrics));
        Ok(Some(history))
    }

    /// The node's room history, when it keeps one.
    pub fn of_node(app: &AppState) -> Option<&History> {
        app.service::<History>()
    }

    /// The history of `room`, when it keeps one.
    pub fn of_room<'a>(app: &'a AppState, room: &str) -> Option<&'a History> {
        Self::of_node(app).filter(|_| app.config.history.keeps(room))
    }

    /// Closes the store's Redis connections; in process there is nothing to close.
    pub async fn close(&self) {
        if let History::Redis(store) = self {
            store.close().await;
        }
    }

    /// Stores `data` as the room's next event and hands it to the feed of every node.
    /// `skip` names a socket that is not sent it live (an invalidation's sender).
    pub async fn append(
        &self,
        room: &str,
        kind: Kind,
        data: &Value,
        skip: Option<String>,
    ) -> Result<Position, HistoryError> {
        match self {
            History::Memory(store) => Ok(store.append(room, kind, data, skip)),
            History::Redis(store) => store.append(room, kind, data, skip.as_deref()).await,
        }
    }

    /// Reads part of a room's history; a room never used gets an epoch now.
    pub async fn read(&self, room: &str, range: Range) -> Result<Page, HistoryError> {
        match self {
            History::Memory(store) => Ok(store.read(room, range)),
            History::Redis(store) => store.read(room, range).await,
        }
    }

    /// Where a room stands.
    pub async fn position(&self, room: &str) -> Result<Position, HistoryError> {
        Ok(self.read(room, Range::Latest(0)).await?.position)
    }
}

/// A fresh epoch: 16 hex digits from the OS's random source.
fn new_epoch() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The oldest `stored_ms` a kept record may have.
fn oldest_kept(config: &HistoryConfig) -> i64 {
    now_ms() - i64::try_from(config.ttl.as_millis()).unwrap_or(i64::MAX)
}
