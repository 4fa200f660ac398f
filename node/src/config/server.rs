//! `[server]`: the listeners and the Socket.IO engine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use super::{ConfigError, at_least_one, invalid, longer_than_zero, string_or_list};

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

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') || self.path.len() < 2 || self.path.ends_with('/') {
            return Err(invalid("server.path", "must start with '/' and not end with '/'"));
        }
        if self.ops_listen.is_some_and(|ops| ops == self.listen && ops.port() != 0) {
            return Err(invalid("server.ops_listen", "must differ from server.listen"));
        }
        for origin in &self.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "server.cors_origins",
                    format!("{origin:?} is not '*' nor an http(s) origin"),
                ));
            }
        }
        longer_than_zero("server.ping_interval", self.ping_interval)?;
        longer_than_zero("server.ping_timeout", self.ping_timeout)?;
        longer_than_zero("server.shutdown_timeout", self.shutdown_timeout)?;
        longer_than_zero("server.final_sweep_timeout", self.final_sweep_timeout)?;
        longer_than_zero("server.header_read_timeout", self.header_read_timeout)?;
        if self.drain_delay >= self.shutdown_timeout {
            return Err(invalid(
                "server.drain_delay",
                "must be shorter than server.shutdown_timeout",
            ));
        }
        if self.ws_read_buffer < 256 {
            return Err(invalid("server.ws_read_buffer", "must be at least 256 bytes"));
        }
        if self.max_buffer < 16 {
            return Err(invalid("server.max_buffer", "must be at least 16 packets"));
        }
        at_least_one("server.max_pending_per_address", self.max_pending_per_address)?;
        at_least_one("server.max_unconnected_per_address", self.max_unconnected_per_address)?;
        if self.max_payload < 1024 {
            return Err(invalid("server.max_payload", "must be at least 1024 bytes"));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use crate::config::{load_env, load_error_with};

    #[test]
    fn trusted_proxies_are_networks() {
        let config = load_env(&[("ROOMCAST_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,fd00::/8")])
            .expect("valid");
        let nets: Vec<String> =
            config.server.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]);
        let err = load_error_with(&[("ROOMCAST_TRUSTED_PROXIES", "10.0.0.0/33")], "bad cidr");
        assert!(err.contains("server.trusted_proxies"), "{err}");
    }
}
