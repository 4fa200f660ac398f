//! A throwaway `redis-server` on a free loopback port, killed on drop.

use std::{net::TcpListener, process::Child};

use super::redis_cluster::spawn_redis;

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts on a port no one uses.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port)
    }

    /// Starts on `port` (to bring a stopped server back).
    pub fn start_on(port: u16) -> Self {
        Self { port, child: spawn_redis(port, &[], None) }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
