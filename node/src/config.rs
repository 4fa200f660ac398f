//! The one typed configuration tree.
//!
//! Values come, lowest precedence first, from the defaults below, an optional TOML file
//! (`--config` or `ROOMCAST_CONFIG`) and environment variables. Each environment
//! variable is mapped to exactly one field by [`ENV_VARS`], so the table in the README
//! and the code cannot drift apart: a test checks that every mapped key exists.
//!
//! [`Config::load`] rejects unknown keys and values of the wrong type (figment names the
//! key and where it came from) and then [`Config::validate`] checks what types cannot
//! say, naming the field in every error.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// Environment variables and the field each one sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("ROOMCAST_NODE_ID", "node.id"),
    ("ROOMCAST_HEARTBEAT_INTERVAL", "node.heartbeat_interval"),
    ("ROOMCAST_NODE_DEAD_AFTER", "node.dead_after"),
    ("ROOMCAST_LISTEN", "server.listen"),
    ("ROOMCAST_OPS_LISTEN", "server.ops_listen"),
    ("ROOMCAST_PATH", "server.path"),
    ("ROOMCAST_CORS_ORIGINS", "server.cors_origins"),
    ("ROOMCAST_PING_INTERVAL", "server.ping_interval"),
    ("ROOMCAST_PING_TIMEOUT", "server.ping_timeout"),
    ("ROOMCAST_MAX_PAYLOAD", "server.max_payload"),
    ("ROOMCAST_MAX_BUFFER", "server.max_buffer"),
    ("ROOMCAST_WS_READ_BUFFER", "server.ws_read_buffer"),
    ("ROOMCAST_SHUTDOWN_TIMEOUT", "server.shutdown_timeout"),
    ("ROOMCAST_FINAL_SWEEP_TIMEOUT", "server.final_sweep_timeout"),
    ("ROOMCAST_DRAIN_DELAY", "server.drain_delay"),
    ("DATABASE_URL", "database.url"),
    ("ROOMCAST_DATABASE_MAX_CONNECTIONS", "database.max_connections"),
    ("ROOMCAST_DATABASE_ACQUIRE_TIMEOUT", "database.acquire_timeout"),
    ("ROOMCAST_SESSION_TTL", "database.session_ttl"),
    ("REDIS_URL", "redis.url"),
    ("ROOMCAST_REDIS_KEY", "redis.key"),
    ("ROOMCAST_REDIS_REQUEST_TIMEOUT", "redis.request_timeout"),
    ("ROOMCAST_REDIS_MODE", "redis.mode"),
    ("ROOMCAST_REDIS_SUBSCRIPTION_MODE", "redis.subscription_mode"),
    ("ROOMCAST_REDIS_CLUSTER", "redis.cluster"),
    ("ROOMCAST_JWT_ALGORITHM", "auth.jwt.algorithm"),
    ("ROOMCAST_JWT_SECRET", "auth.jwt.secret"),
    ("ROOMCAST_JWT_PUBLIC_KEY_FILE", "auth.jwt.public_key_file"),
    ("ROOMCAST_JWT_PRIVATE_KEY_FILE", "auth.jwt.private_key_file"),
    ("ROOMCAST_JWT_ISSUER", "auth.jwt.issuer"),
    ("ROOMCAST_JWT_AUDIENCE", "auth.jwt.audience"),
    ("ROOMCAST_JWT_TTL", "auth.jwt.ttl"),
    ("ROOMCAST_JWT_LEEWAY", "auth.jwt.leeway"),
    ("ROOMCAST_SESSION_SECRET", "auth.session.secret"),
    ("ROOMCAST_SESSION_COOKIE", "auth.session.cookie"),
    ("ROOMCAST_AUTH_RATE_WINDOW", "auth.rate_limit.window"),
    ("ROOMCAST_AUTH_FAILURES_PER_LOGIN", "auth.rate_limit.failures_per_login"),
    ("ROOMCAST_AUTH_FAILURES_PER_ADDRESS", "auth.rate_limit.failures_per_address"),
    ("ROOMCAST_AUTH_LOGIN_DELAY", "auth.rate_limit.login_delay"),
    ("ROOMCAST_ROOMS_MAX_PER_SOCKET", "rooms.max_per_socket"),
    ("ROOMCAST_RESUME_TTL", "rooms.resume_ttl"),
    ("ROOMCAST_REQUEST_TIMEOUT", "requests.timeout"),
    ("ROOMCAST_REQUEST_CLAIM_AFTER", "requests.claim_after"),
    ("ROOMCAST_REQUEST_KEY_PREFIX", "requests.key_prefix"),
    ("ROOMCAST_REQUEST_SERVE", "requests.serve"),
    ("ROOMCAST_REQUEST_ROUTES", "requests.routes"),
    ("ROOMCAST_REQUEST_MAX_IN_FLIGHT_PER_SOCKET", "requests.max_in_flight_per_socket"),
    ("ROOMCAST_REQUEST_UPSTREAM_CONCURRENCY", "requests.upstream_concurrency"),
    ("ROOMCAST_GUEST_NAMESPACES", "auth.guest_namespaces"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
    ("ROOMCAST_TRUSTED_PROXIES", "server.trusted_proxies"),
    ("ROOMCAST_HEADER_READ_TIMEOUT", "server.header_read_timeout"),
    ("ROOMCAST_MAX_PENDING_PER_ADDRESS", "server.max_pending_per_address"),
    ("ROOMCAST_MAX_UNCONNECTED_PER_ADDRESS", "server.max_unconnected_per_address"),
    ("OTEL_SERVICE_NAME", "telemetry.service_name"),
    ("ROOMCAST_LOG_FORMAT", "log.format"),
    ("ROOMCAST_LOG_LEVEL", "log.level"),
    ("ROOMCAST_ADMIN_TOKEN", "admin.token"),
    ("ROOMCAST_REQUEST_SERVER_EVENTS", "requests.server_events"),
    ("ROOMCAST_HISTORY_ENABLED", "history.enabled"),
    ("ROOMCAST_HISTORY_SIZE", "history.size"),
    ("ROOMCAST_HISTORY_TTL", "history.ttl"),
    ("ROOMCAST_HISTORY_SKIP_PREFIXES", "history.skip_prefixes"),
];

/// The environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "ROOMCAST_CONFIG";

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's identity in the cluster.
    pub node: NodeConfig,
    /// Listeners and Socket.IO engine settings.
    pub server: ServerConfig,
    /// Where session rows and users live.
    pub database: DatabaseConfig,
    /// The cluster adapter.
    pub redis: RedisConfig,
    /// Accepted credentials.
    pub auth: AuthConfig,
    /// Rules for user-named rooms.
    pub rooms: RoomsConfig,
    /// Room history, for recovery after a reconnect and for the `history` request.
    pub history: HistoryConfig,
    /// Where `request` events are handled.
    pub requests: RequestsConfig,
    /// Trace export.
    pub telemetry: TelemetryConfig,
    /// Log output.
    pub log: LogConfig,
    /// The operators' admin API.
    pub admin: AdminConfig,
}

/// This node's identity and liveness in the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id written into session rows. Default: the host name and a random suffix,
    /// so two processes on one host never share an id.
    pub id: Option<String>,
    /// How often the node records its heartbeat and sweeps dead nodes. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Silence after which a node counts as dead and another node removes its session
    /// rows and lobby memberships. Default `30s`; at least twice the interval.
    #[serde(with = "humantime_serde")]
    pub dead_after: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: None,
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
        }
    }
}

/// Listeners and Socket.IO engine settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for Socket.IO, the demo page and (unless `ops_listen` is set) the ops
    /// endpoints. Default `0.0.0.0:3000`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Separate address for `/livez`, `/readyz` and `/metrics`. Default: unset, served
    /// on `listen`.
    pub ops_listen: Option<SocketAddr>,
    /// Socket.IO request path. Default `/socket.io`, as the official clients expect.
    pub path: String,
    /// Origins allowed to make cross-origin requests, or `*` for any. Accepts a list
    /// or a comma-separated string. Default: empty, same-origin only.
    #[serde(deserialize_with = "string_or_list")]
    pub cors_origins: Vec<String>,
    /// Engine.IO ping interval. Default `25s`, as Node's Socket.IO.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Engine.IO ping timeout. Default `20s`, as Node's Socket.IO.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// Largest accepted packet in bytes, on long-polling and WebSocket alike. Default
    /// 1 000 000, Node's `maxHttpBufferSize`.
    pub max_payload: u64,
    /// Packets queued for one connection before further emits to it are dropped. Default
    /// 128 (socketioxide's): bounds the memory a client that stops reading can hold;
    /// its heartbeat then times out and it is disconnected.
    pub max_buffer: usize,
    /// Bytes each WebSocket connection reads into at a time (larger messages still
    /// arrive whole). Default 1024: measured 3.2 KB less per idle socket than
    /// socketioxide's 4096, with the small packets Socket.IO clients send.
    pub ws_read_buffer: usize,
    /// How long a graceful shutdown may take before the node exits anyway. Default
    /// `25s`, inside Kubernetes' default grace period of 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long the node keeps its sockets, reporting not ready and
    /// refusing new ones, before it closes them: the time a load balancer needs to
    /// notice, so reconnecting clients land elsewhere. Part of `shutdown_timeout`.
    /// Default `0s` (Kubernetes' preStop hook does the waiting).
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// After the drain, how long the node may take to remove what is left of its
    /// session rows (they become resume tickets) and its heartbeat row, on top of
    /// `shutdown_timeout`. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub final_sweep_timeout: Duration,
    /// Networks of the load balancers in front, as CIDRs (`10.0.0.0/8`) or addresses.
    /// A request from one of them is taken to come from the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy; from any other peer,
    /// from the peer. Accepts a list or a comma-separated string. Default: empty, the
    /// peer address always.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// How long a client may take to send a request's head (request line and headers),
    /// and how long a kept-alive connection may sit idle between requests. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections from one address that have not completed a request head for a
    /// second or more; past it, new connections from that address are closed at once.
    /// Default 64.
    pub max_pending_per_address: usize,
    /// Engine.IO sessions from one address that have not connected a namespace yet;
    /// past it, new handshakes from that address get HTTP 429. Default 128.
    pub max_unconnected_per_address: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            ops_listen: None,
            path: "/socket.io".into(),
            cors_origins: Vec::new(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            max_buffer: 128,
            ws_read_buffer: 1024,
            shutdown_timeout: Duration::from_secs(25),
            drain_delay: Duration::ZERO,
            final_sweep_timeout: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            max_pending_per_address: 64,
            max_unconnected_per_address: 128,
        }
    }
}

/// Where session rows and users live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://<path>` (created with its schema on first run) or `postgres://…`.
    /// Default `sqlite://roomcast.db`, in the working directory.
    pub url: String,
    /// Largest number of pooled connections. Default 10.
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Lifetime of a socket's session row unless refreshed. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://roomcast.db".into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            session_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The cluster adapter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://…` switches the Redis cluster adapter on. Default: unset, the
    /// in-process adapter (one node).
    pub url: Option<String>,
    /// Channel prefix, the `key` option of Node's adapter and emitter; every node of a
    /// cluster, Roomcast or Node, must use the same. Default `socket.io`.
    pub key: String,
    /// How long a cluster-wide request (fetch sockets, rooms, server-side emit with
    /// acks) waits for every node. Default `5s`, as Node's `requestsTimeout`. In the
    /// sharded dynamic modes, also the longest a `join room` ack or a CONNECT waits for
    /// Redis to confirm the room channels.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `classic` (Node's `createAdapter`: PUBLISH) or `sharded` (its
    /// `createShardedAdapter`: Redis 7 SPUBLISH, one shard per channel in a Redis
    /// Cluster). Every node of a cluster must use the same. Default `classic`.
    pub mode: RedisMode,
    /// Sharded mode: `static`, `dynamic` or `dynamic-private`, as Node's
    /// `subscriptionMode`. Default `dynamic`.
    pub subscription_mode: SubscriptionModeConfig,
    /// Treat a `redis://` URL as a seed node of a Redis Cluster (a
    /// `redis-cluster://` URL always is). Default false.
    pub cluster: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key: "socket.io".into(),
            request_timeout: Duration::from_secs(5),
            mode: RedisMode::Classic,
            subscription_mode: SubscriptionModeConfig::Dynamic,
            cluster: false,
        }
    }
}

/// Classic or sharded pub/sub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// PUBLISH / SUBSCRIBE.
    Classic,
    /// SPUBLISH / SSUBSCRIBE.
    Sharded,
}

/// Which channels a node subscribes in sharded mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionModeConfig {
    /// The namespace channel only.
    Static,
    /// Plus a channel per room present on the node.
    Dynamic,
    /// Plus a channel per socket.
    DynamicPrivate,
}

/// Accepted credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Namespaces that admit clients without credentials. Default `/lobby` and
    /// `/chat`, open in the Flask lobby and the Socket.IO chat example they come from.
    /// `/` always requires authentication.
    #[serde(deserialize_with = "string_or_list")]
    pub guest_namespaces: Vec<String>,
    /// JSON Web Tokens.
    pub jwt: JwtConfig,
    /// express-session cookies.
    pub session: SessionCookieConfig,
    /// Brakes on password guessing.
    pub rate_limit: RateLimitConfig,
}

/// Failed password logins allowed per window, per login and client address and per
/// client address; a login failing from many addresses is slowed down, never locked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The counting window. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failures of one login from one address per window before that login is refused
    /// from that address. Other addresses keep trying that login. Default 5.
    pub failures_per_login: u32,
    /// Failures from one address per window before it is refused. Default 20.
    pub failures_per_address: u32,
    /// Wait added before each password check of a login that failed
    /// `failures_per_login` times in the window from all addresses together. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub login_delay: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            failures_per_login: 5,
            failures_per_address: 20,
            login_delay: Duration::from_secs(1),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            guest_namespaces: vec!["/lobby".into(), "/chat".into()],
            jwt: JwtConfig::default(),
            session: SessionCookieConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// JSON Web Tokens. Token authentication is off until a secret or a public key is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// The one accepted algorithm: `HS256`, `RS256` or `ES256`. Default `HS256`.
    /// Accepting exactly one closes the door on algorithm confusion.
    pub algorithm: String,
    /// HS256 shared secret, at least 32 bytes. Default: unset.
    pub secret: Option<String>,
    /// PEM public key for RS256/ES256 verification. Default: unset.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, used only by `roomcast token`. Default: unset.
    pub private_key_file: Option<PathBuf>,
    /// Required `iss`. Default: unset, not checked.
    pub issuer: Option<String>,
    /// Required `aud`. Default: unset, not checked.
    pub audience: Option<String>,
    /// Lifetime of tokens minted by `roomcast token`. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: "HS256".into(),
            secret: None,
            public_key_file: None,
            private_key_file: None,
            issuer: None,
            audience: None,
            ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        }
    }
}

/// express-session cookies. Cookie authentication is off until a secret is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionCookieConfig {
    /// The Express application's session secret. Default: unset.
    pub secret: Option<String>,
    /// Cookie name. Default `connect.sid`, express-session's.
    pub cookie: String,
}

impl Default for SessionCookieConfig {
    fn default() -> Self {
        Self { secret: None, cookie: "connect.sid".into() }
    }
}

/// Rules for user-named rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Rooms one socket may be in at once. Default 100.
    pub max_per_socket: usize,
    /// How long a gone socket's rooms wait for its client to come back with its
    /// recovery credential (or `resume`): after a disconnect, a drain, or the sweep of
    /// a dead node. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub resume_ttl: Duration,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self { max_per_socket: 100, resume_ttl: Duration::from_secs(60) }
    }
}

/// Room history on `/`: what is kept of the messages and invalidations sent to rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Whether rooms keep a history and messages carry `offset` and `epoch`. Off, a
    /// reconnecting client gets its rooms back but no missed message. Default true.
    pub enabled: bool,
    /// Messages and invalidations kept per room; older ones are dropped. Default 500.
    pub size: usize,
    /// How long one is kept, and how long a silent room's history lives. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Rooms whose name starts with one of these keep no history. Accepts a list or a
    /// comma-separated string. Default: empty.
    #[serde(deserialize_with = "string_or_list")]
    pub skip_prefixes: Vec<String>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { enabled: true, size: 500, ttl: Duration::from_secs(600), skip_prefixes: Vec::new() }
    }
}

impl HistoryConfig {
    /// Whether `room` keeps a history.
    pub fn keeps(&self, room: &str) -> bool {
        self.enabled && !self.skip_prefixes.iter().any(|p| room.starts_with(p.as_str()))
    }
}

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

/// One routing rule for `request` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Routes starting with this (`billing.`), or exactly this (`echo`).
    pub prefix: String,
    /// Who answers.
    pub kind: RouteKind,
    /// `upstream`: the URL the request is POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `worker`: the stream the request is queued on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// This route's timeout instead of `requests.timeout`.
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

/// Trace export over OTLP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://collector:4318`); spans are POSTed as
    /// JSON to `<url>/v1/traces`. Default: unset, no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans. Default `roomcast`.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "roomcast".into() }
    }
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people or `json` for collectors. Default `text`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `roomcast_node=debug`. Default `info`;
    /// `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The operators' admin API on the ops port (`/admin/...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token the admin API requires, at least 16 characters. Default: unset,
    /// the admin API is off and its routes answer 404.
    pub token: Option<String>,
}

/// Shortest admin token accepted: shorter ones are guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// A configuration that cannot be used, naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or did not fit the types.
    #[error("configuration: {field}{}: {message}", env.map(|v| format!(" ({v})")).unwrap_or_default())]
    Load {
        /// Dotted path of the field (empty for the whole file).
        field: String,
        /// The environment variable the value came from, when it did.
        env: Option<&'static str>,
        /// What is wrong with it.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("configuration: {field}: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The `ROOMCAST_*` variables among `names` that set nothing (most likely misspelt);
/// the node names them in a warning at start and otherwise ignores them.
pub fn unknown_env_vars(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = |name: &str| {
        name.eq_ignore_ascii_case(CONFIG_FILE_ENV)
            || ENV_VARS.iter().any(|(var, _)| name.eq_ignore_ascii_case(var))
    };
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.to_ascii_uppercase().starts_with("ROOMCAST_") && !known(name))
        .collect();
    unknown.sort();
    unknown
}

fn load_error(e: figment::Error) -> ConfigError {
    let field = e.path.join(".").to_lowercase();
    let from_env = e.metadata.as_ref().is_some_and(|m| m.name.contains("environment"));
    let env = ENV_VARS.iter().find(|(_, key)| from_env && *key == field).map(|(var, _)| *var);
    ConfigError::Load { field, env, message: e.kind.to_string() }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, message: message.into() }
}

impl Config {
    /// Loads defaults, the optional file and the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::raw())
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(invalid("--config", format!("file {} not found", path.display())));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = env.filter_map(|name| {
            ENV_VARS
                .iter()
                .find(|(var, _)| name.as_str().eq_ignore_ascii_case(var))
                .map(|(_, key)| (*key).into())
        });
        let config: Config = figment.merge(env).extract().map_err(load_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.node.id {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(invalid("node.id", "1-64 characters of [A-Za-z0-9._-]"));
            }
        }
        if self.node.heartbeat_interval.is_zero() {
            return Err(invalid("node.heartbeat_interval", "must be longer than zero"));
        }
        if self.node.dead_after < self.node.heartbeat_interval * 2 {
            return Err(invalid(
                "node.dead_after",
                "must be at least twice node.heartbeat_interval",
            ));
        }
        let server = &self.server;
        if !server.path.starts_with('/') || server.path.len() < 2 || server.path.ends_with('/') {
            return Err(invalid("server.path", "must start with '/' and not end with '/'"));
        }
        if server.ops_listen.is_some_and(|ops| ops == server.listen && ops.port() != 0) {
            return Err(invalid("server.ops_listen", "must differ from server.listen"));
        }
        for origin in &server.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "server.cors_origins",
                    format!("{origin:?} is not '*' nor an http(s) origin"),
                ));
            }
        }
        for (field, value) in [
            ("server.ping_interval", server.ping_interval),
            ("server.ping_timeout", server.ping_timeout),
            ("server.shutdown_timeout", server.shutdown_timeout),
            ("server.final_sweep_timeout", server.final_sweep_timeout),
            ("database.acquire_timeout", self.database.acquire_timeout),
            ("database.session_ttl", self.database.session_ttl),
            ("auth.jwt.ttl", self.auth.jwt.ttl),
            ("redis.request_timeout", self.redis.request_timeout),
            ("server.header_read_timeout", server.header_read_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "must be longer than zero"));
            }
        }
        if server.drain_delay >= server.shutdown_timeout {
            return Err(invalid(
                "server.drain_delay",
                "must be shorter than server.shutdown_timeout",
            ));
        }
        if self.history.enabled && !(1..=100_000).contains(&self.history.size) {
            return Err(invalid("history.size", "must be 1 to 100000"));
        }
        if self.history.enabled && self.history.ttl < Duration::from_secs(1) {
            return Err(invalid("history.ttl", "must be at least 1s"));
        }
        if self.history.skip_prefixes.iter().any(String::is_empty) {
            return Err(invalid("history.skip_prefixes", "an empty prefix would skip every room"));
        }
        if self.rooms.resume_ttl.is_zero() {
            return Err(invalid("rooms.resume_ttl", "must be longer than zero"));
        }
        if server.ws_read_buffer < 256 {
            return Err(invalid("server.ws_read_buffer", "must be at least 256 bytes"));
        }
        if server.max_buffer < 16 {
            return Err(invalid("server.max_buffer", "must be at least 16 packets"));
        }
        for (field, value) in [
            ("server.max_pending_per_address", server.max_pending_per_address),
            ("server.max_unconnected_per_address", server.max_unconnected_per_address),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if server.max_payload < 1024 {
            return Err(invalid("server.max_payload", "must be at least 1024 bytes"));
        }
        let db = &self.database;
        if !(db.url.starts_with("sqlite:")
            || db.url.starts_with("postgres://")
            || db.url.starts_with("postgresql://"))
        {
            return Err(invalid("database.url", "must start with sqlite: or postgres://"));
        }
        if db.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if let Some(url) = &self.redis.url
            && !["redis://", "rediss://", "redis-cluster://", "rediss-cluster://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return Err(invalid(
                "redis.url",
                "must start with redis://, rediss:// or redis-cluster://",
            ));
        }
        if self.redis.key.is_empty() || self.redis.key.contains('#') {
            return Err(invalid("redis.key", "must be non-empty and without '#'"));
        }
        self.validate_auth()?;
        if self.admin.token.as_ref().is_some_and(|t| t.chars().count() < MIN_ADMIN_TOKEN_CHARS) {
            return Err(invalid("admin.token", "must be at least 16 characters"));
        }
        if self.rooms.max_per_socket == 0 {
            return Err(invalid("rooms.max_per_socket", "must be at least 1"));
        }
        self.validate_requests()?;
        if let Some(url) = &self.telemetry.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("telemetry.otlp_endpoint", "must be an http(s) URL"));
        }
        if self.telemetry.service_name.is_empty() {
            return Err(invalid("telemetry.service_name", "must not be empty"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", e.to_string()));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let jwt = &self.auth.jwt;
        match jwt.algorithm.as_str() {
            "HS256" => {
                if jwt.public_key_file.is_some() || jwt.private_key_file.is_some() {
                    return Err(invalid(
                        "auth.jwt.public_key_file",
                        "key files need RS256 or ES256",
                    ));
                }
                if jwt.secret.as_ref().is_some_and(|s| s.len() < 32) {
                    return Err(invalid("auth.jwt.secret", "must be at least 32 bytes"));
                }
            }
            "RS256" | "ES256" => {
                if jwt.secret.is_some() {
                    return Err(invalid("auth.jwt.secret", "a shared secret needs HS256"));
                }
                if jwt.public_key_file.is_none() {
                    return Err(invalid("auth.jwt.public_key_file", "required with RS256/ES256"));
                }
            }
            other => {
                return Err(invalid(
                    "auth.jwt.algorithm",
                    format!("{other:?} is not one of HS256, RS256, ES256"),
                ));
            }
        }
        let limit = &self.auth.rate_limit;
        if limit.window.is_zero() {
            return Err(invalid("auth.rate_limit.window", "must be longer than zero"));
        }
        if limit.failures_per_login == 0 || limit.failures_per_address == 0 {
            return Err(invalid("auth.rate_limit", "failure limits must be at least 1"));
        }
        let session = &self.auth.session;
        if session.secret.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(invalid("auth.session.secret", "must not be empty"));
        }
        if session.cookie.is_empty() || !session.cookie.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid("auth.session.cookie", "must be a cookie name"));
        }
        Ok(())
    }

    fn validate_requests(&self) -> Result<(), ConfigError> {
        let requests = &self.requests;
        for (field, value) in
            [("requests.timeout", requests.timeout), ("requests.claim_after", requests.claim_after)]
        {
            if value.is_zero() {
                return Err(invalid(field, "must be longer than zero"));
            }
        }
        let key_ok = |s: &str| {
            (1..=64).contains(&s.len())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !key_ok(&requests.key_prefix) {
            return Err(invalid("requests.key_prefix", "1-64 characters of [A-Za-z0-9._-]"));
        }
        for (field, value) in [
            ("requests.max_in_flight_per_socket", requests.max_in_flight_per_socket),
            ("requests.upstream_concurrency", requests.upstream_concurrency),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        let needs_redis = !requests.serve.is_empty()
            || requests.routes.iter().any(|r| r.kind == RouteKind::Worker);
        if needs_redis && self.redis.url.is_none() {
            return Err(invalid("requests", "worker queues need redis.url"));
        }
        if let Some(stream) = requests.serve.iter().find(|s| !key_ok(s)) {
            return Err(invalid(
                "requests.serve",
                format!("{stream:?}: 1-64 characters of [A-Za-z0-9._-]"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, route) in requests.routes.iter().enumerate() {
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
                    if !route.stream.as_deref().is_some_and(key_ok) {
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
        self.validate_server_events()
    }

    fn validate_server_events(&self) -> Result<(), ConfigError> {
        let table = crate::core::requests::routes::RouteTable::new(&self.requests.routes);
        for event in &self.requests.server_events {
            if table.resolve(event).is_none() {
                return Err(invalid(
                    "requests.server_events",
                    format!("{event:?} is neither a built-in route nor under a configured prefix"),
                ));
            }
        }
        Ok(())
    }

    /// The configured node id, or one made from the host name and a random suffix.
    pub fn node_id(&self) -> String {
        self.node.id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into());
            let host: String =
                host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(48).collect();
            format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        })
    }
}

/// Networks as [`string_or_list`]; a bare address is its own /32 or /128.
fn cidr_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<IpNet>, D::Error> {
    string_or_list(de)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                serde::de::Error::custom(format!("{s:?} is not a CIDR such as 10.0.0.0/8"))
            })
        })
        .collect()
}

/// Accepts `["a", "b"]` from a file or `"a,b"` from the environment.
fn string_or_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => {
            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
        }
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
// figment's `Jail` closures return its own large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail, file: Option<&str>) -> Result<Config, ConfigError> {
        let _ = jail;
        Config::load_from(file.map(Path::new), Env::raw())
    }

    #[test]
    fn defaults_are_valid() {
        Jail::expect_with(|jail| {
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen.port(), 3000);
            assert_eq!(config.database.url, "sqlite://roomcast.db");
            assert!(config.redis.url.is_none());
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "rc.toml",
                "[server]\nlisten = \"127.0.0.1:4000\"\nping_interval = \"10s\"",
            )?;
            jail.set_env("ROOMCAST_LISTEN", "127.0.0.1:5000");
            jail.set_env("ROOMCAST_CORS_ORIGINS", "https://a.example, https://b.example");
            jail.set_env("DATABASE_URL", "postgres://u@localhost/db");
            let config = load_in(jail, Some("rc.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen.port(), 5000);
            assert_eq!(config.server.ping_interval, Duration::from_secs(10));
            assert_eq!(config.server.cors_origins, ["https://a.example", "https://b.example"]);
            assert_eq!(config.database.url, "postgres://u@localhost/db");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_field() {
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_LISTEN", "not-an-address");
            let err = load_in(jail, None).expect_err("bad address").to_string();
            assert!(err.contains("server.listen"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_JWT_SECRET", "short");
            let err = load_in(jail, None).expect_err("short secret").to_string();
            assert!(err.contains("auth.jwt.secret"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_ADMIN_TOKEN", "too-short");
            let err = load_in(jail, None).expect_err("short admin token").to_string();
            assert!(err.contains("admin.token"), "{err}");
            assert!(!err.contains("too-short"), "the secret is not echoed: {err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("rc.toml", "[server]\nlistn = \"127.0.0.1:4000\"")?;
            let err = load_in(jail, Some("rc.toml")).expect_err("unknown key").to_string();
            assert!(err.contains("listn"), "{err}");
            Ok(())
        });
        for (var, field) in [
            ("ROOMCAST_REQUEST_MAX_IN_FLIGHT_PER_SOCKET", "requests.max_in_flight_per_socket"),
            ("ROOMCAST_REQUEST_UPSTREAM_CONCURRENCY", "requests.upstream_concurrency"),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(var, "0");
                let err = load_in(jail, None).expect_err("zero").to_string();
                assert!(err.contains(field), "{err}");
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_JWT_ALGORITHM", "none");
            let err = load_in(jail, None).expect_err("alg none").to_string();
            assert!(err.contains("auth.jwt.algorithm"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn request_routes_from_file_or_environment() {
        Jail::expect_with(|jail| {
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
        Jail::expect_with(|jail| {
            jail.set_env("REDIS_URL", "redis://127.0.0.1");
            jail.set_env(
                "ROOMCAST_REQUEST_ROUTES",
                r#"[{prefix="jobs.", kind="worker", stream="jobs"}]"#,
            );
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.requests.routes[0].stream.as_deref(), Some("jobs"));
            Ok(())
        });
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
            Jail::expect_with(|jail| {
                if env {
                    jail.set_env("REDIS_URL", "redis://127.0.0.1");
                }
                jail.set_env("ROOMCAST_REQUEST_ROUTES", routes);
                let err = load_in(jail, None).expect_err(routes).to_string();
                assert!(err.contains("requests"), "{err}");
                Ok(())
            });
        }
    }

    #[test]
    fn trusted_proxies_are_networks() {
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,fd00::/8");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            let nets: Vec<String> =
                config.server.trusted_proxies.iter().map(ToString::to_string).collect();
            assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]);
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_TRUSTED_PROXIES", "10.0.0.0/33");
            let err = load_in(jail, None).expect_err("bad cidr").to_string();
            assert!(err.contains("server.trusted_proxies"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn server_events_name_routes() {
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_REQUEST_SERVER_EVENTS", "echo,time");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.requests.server_events, ["echo", "time"]);
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_REQUEST_SERVER_EVENTS", "nope");
            let err = load_in(jail, None).expect_err("unknown route").to_string();
            assert!(err.contains("requests.server_events"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_roomcast_variables_are_named() {
        let names = ["ROOMCAST_LISTEN", "ROOMCAST_CONFIG", "roomcast_log_level", "ROOMCAST_LISTN"]
            .into_iter()
            .chain(["DATABASE_URL", "HOME", "ROOMCAST_PING_INTREVAL"])
            .map(String::from);
        assert_eq!(unknown_env_vars(names), ["ROOMCAST_LISTN", "ROOMCAST_PING_INTREVAL"]);
    }

    #[test]
    fn every_env_var_maps_to_a_field() {
        // JSON keeps unset options as null, so every leaf of the tree is present.
        let tree = serde_json::to_value(Config::default()).expect("serializable");
        for (var, key) in ENV_VARS {
            let pointer = format!("/{}", key.replace('.', "/"));
            assert!(tree.pointer(&pointer).is_some(), "{var} maps to unknown {key}");
        }
    }
}
