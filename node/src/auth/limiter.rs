//! A brake on password guessing: failed logins are counted per login and per client
//! address in fixed windows. Past a limit, that login (or address) is refused — even
//! with the right password — until its window ends, so a guesser learns nothing from
//! trying on.
//!
//! Counters live in the node. Behind a sticky balancer one client stays on one node; a
//! guesser spreading over nodes gets at most `nodes × limit` tries per window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// Entries kept at most; past this, expired ones are dropped first and new keys are
/// not tracked (the address limit still applies to addresses already counted).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Login(String),
    Address(IpAddr),
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many failures for this login.
    Login,
    /// Too many failures from this address.
    Address,
}

/// Failure counters; one per node.
#[derive(Debug)]
pub struct FailureLimiter {
    window: Duration,
    per_login: u32,
    per_address: u32,
    counts: Mutex<HashMap<Key, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Limits from the configuration.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            window: config.window,
            per_login: config.failures_per_login,
            per_address: config.failures_per_address,
            counts: Mutex::default(),
        }
    }

    fn count(&self, key: &Key, now: Instant) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get(key) {
            Some((start, n)) if now.duration_since(*start) < self.window => *n,
            _ => 0,
        }
    }

    /// Whether an attempt for `login` from `address` may be checked at all.
    pub fn check(&self, login: &str, address: Option<IpAddr>) -> Result<(), Limited> {
        let now = Instant::now();
        if self.count(&Key::Login(login.to_owned()), now) >= self.per_login {
            return Err(Limited::Login);
        }
        if let Some(ip) = address
            && self.count(&Key::Address(ip), now) >= self.per_address
        {
            return Err(Limited::Address);
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub fn failed(&self, login: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_ENTRIES {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let keys = std::iter::once(Key::Login(login.to_owned())).chain(address.map(Key::Address));
        for key in keys {
            if counts.len() >= MAX_ENTRIES && !counts.contains_key(&key) {
                continue;
            }
            let entry = counts.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// Forgets a login's failures after it proved its password.
    pub fn succeeded(&self, login: &str) {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).remove(&Key::Login(login.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(window_ms: u64) -> FailureLimiter {
        FailureLimiter::new(&RateLimitConfig {
            window: Duration::from_millis(window_ms),
            failures_per_login: 3,
            failures_per_address: 5,
            trust_forwarded_for: false,
        })
    }

    #[test]
    fn limits_per_login_then_per_address() {
        let l = limiter(60_000);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(l.check("alice", Some(a)), Ok(()));
            l.failed("alice", Some(a));
        }
        assert_eq!(l.check("alice", Some(b)), Err(Limited::Login), "from any address");
        assert_eq!(l.check("bob", Some(a)), Ok(()));
        l.failed("bob", Some(a));
        l.failed("carol", Some(a));
        assert_eq!(l.check("dave", Some(a)), Err(Limited::Address));
        assert_eq!(l.check("dave", Some(b)), Ok(()));
        l.succeeded("bob");
        assert_eq!(l.check("bob", Some(b)), Ok(()));
    }

    #[test]
    fn windows_end() {
        let l = limiter(30);
        for _ in 0..3 {
            l.failed("alice", None);
        }
        assert_eq!(l.check("alice", None), Err(Limited::Login));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(l.check("alice", None), Ok(()));
    }
}
