//! The one typed configuration tree.
//!
//! Values come, lowest precedence first, from the defaults, an optional TOML file
//! (`--config` or `ROOMCAST_CONFIG`) and environment variables. Each environment
//! variable is mapped to exactly one field by [`ENV_VARS`], so the table in the README
//! and the code cannot drift apart: a test checks that every mapped key exists.
//!
//! [`Config::load`] rejects unknown keys and values of the wrong type (figment names the
//! key and where it came from) and then [`Config::validate`] checks what types cannot
//! say, naming the field in every error.
//!
//! One file per section, each with its structs, their defaults and its own checks.
//! Secrets are [`Secret`]s, which never print. This module is a leaf of the crate: it
//! imports nothing from the other layers, which all read it.

mod auth;
mod database;
mod history;
mod log;
mod node;
mod redis;
mod requests;
mod rooms;
mod routes;
mod secret;
mod server;
mod telemetry;

use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

pub use auth::{
    AdminConfig, AuthConfig, JwtAlgorithm, JwtConfig, MIN_ADMIN_TOKEN_CHARS, RateLimitConfig,
    SessionCookieConfig,
};
pub use database::DatabaseConfig;
pub use history::HistoryConfig;
pub use log::{LogConfig, LogFormat};
pub use node::NodeConfig;
pub use redis::RedisConfig;
pub use requests::RequestsConfig;
pub use rooms::RoomsConfig;
pub use routes::{BUILTIN, RouteConfig, RouteKind, RouteTable, Target};
pub use secret::Secret;
pub use server::ServerConfig;
pub use telemetry::TelemetryConfig;

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

    /// Checks what the types cannot, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.node.validate()?;
        self.server.validate()?;
        self.database.validate()?;
        self.redis.validate()?;
        self.auth.validate()?;
        self.admin.validate()?;
        self.rooms.validate()?;
        self.history.validate()?;
        self.requests.validate(self.redis.url.is_some())?;
        self.telemetry.validate()?;
        self.log.validate()
    }

    /// The configured node id, or one made from the host name and a random suffix.
    pub fn node_id(&self) -> String {
        self.node.id_or_generated()
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, message: message.into() }
}

/// Refuses a zero duration.
fn longer_than_zero(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(field, "must be longer than zero"));
    }
    Ok(())
}

/// Refuses a zero count.
fn at_least_one<T: Default + PartialEq>(field: &'static str, value: T) -> Result<(), ConfigError> {
    if value == T::default() {
        return Err(invalid(field, "must be at least 1"));
    }
    Ok(())
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

/// Loads as a node does, from the environment and files of a figment `Jail` (which
/// the caller holds).
#[cfg(test)]
fn load_in(jail: &figment::Jail, file: Option<&str>) -> Result<Config, ConfigError> {
    let _ = jail;
    Config::load_from(file.map(Path::new), Env::raw())
}

/// Loads as a node does with `vars` set and no file, in a `Jail` of its own so that
/// tests running at once never see each other's variables. For the tests of every
/// section.
#[cfg(test)]
// figment's `Jail` closures return its own large error type.
#[allow(clippy::result_large_err)]
fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        for (var, value) in vars {
            jail.set_env(var, value);
        }
        loaded = Some(load_in(jail, None));
        Ok(())
    });
    loaded.expect("the jail ran")
}

/// The error [`load_env`] ends with, as the node prints it; `refused` says why the
/// caller expects one.
#[cfg(test)]
fn load_error_with(vars: &[(&str, &str)], refused: &str) -> String {
    load_env(vars).expect_err(refused).to_string()
}

#[cfg(test)]
// figment's `Jail` closures return its own large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_are_valid() {
        let config = load_env(&[]).expect("valid");
        assert_eq!(config.server.listen.port(), 3000);
        assert_eq!(config.database.url.expose(), "sqlite://roomcast.db");
        assert!(config.redis.url.is_none());
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
            assert_eq!(config.database.url.expose(), "postgres://u@localhost/db");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_field() {
        let err = load_error_with(&[("ROOMCAST_LISTEN", "not-an-address")], "bad address");
        assert!(err.contains("server.listen"), "{err}");
        let err = load_error_with(&[("ROOMCAST_JWT_SECRET", "short")], "short secret");
        assert!(err.contains("auth.jwt.secret"), "{err}");
        let err = load_error_with(&[("ROOMCAST_ADMIN_TOKEN", "too-short")], "short admin token");
        assert!(err.contains("admin.token"), "{err}");
        assert!(!err.contains("too-short"), "the secret is not echoed: {err}");
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
            let err = load_error_with(&[(var, "0")], "zero");
            assert!(err.contains(field), "{err}");
        }
        let err = load_error_with(&[("ROOMCAST_JWT_ALGORITHM", "none")], "alg none");
        assert!(err.contains("auth.jwt.algorithm"), "{err}");
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let secrets = [
            ("ROOMCAST_JWT_SECRET", "jwt-secret-0123456789-0123456789"),
            ("ROOMCAST_SESSION_SECRET", "session-secret-0123456789"),
            ("ROOMCAST_ADMIN_TOKEN", "admin-token-0123456789"),
            ("DATABASE_URL", "postgres://u:db-password-0123@localhost/db"),
            ("REDIS_URL", "redis://:redis-password-0123@127.0.0.1"),
        ];
        let shown = format!("{:?}", load_env(&secrets).expect("valid"));
        for secret in
            secrets.iter().map(|(_, value)| *value).chain(["db-password", "redis-password"])
        {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(Secret::PLACEHOLDER), "{shown}");
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
