//! A brake on password guessing that one attacker cannot turn against other users.
//!
//! Failed logins are counted in fixed windows under three keys:
//! - a login *from one address*: past `failures_per_login`, that login is refused from
//!   that address (even with the right password, so a guesser learns nothing from trying
//!   on) — the user, from any other address, is not;
//! - an address: past `failures_per_address`, every login from it is refused;
//! - a login from all addresses together: past `failures_per_login`, each password check
//!   of it waits `login_delay` first. Guessing spread over many addresses is slowed down;
//!   the user is never locked out.
//!
//! A success from an address forgets that login's failures from it. Counters live in
//! the node. Behind a sticky balancer one client stays on one node; a guesser spreading
//! over nodes gets at most `nodes × limit` tries per window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// Entries kept at most; past this, expired ones are dropped first and new keys are
/// not tracked (limits still apply to keys already counted).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// One login from one address (or from an unknown address).
    LoginFrom(String, Option<IpAddr>),
    /// One address, every login.
    Address(IpAddr),
    /// One login, every address.
    Login(String),
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many failures for this login from this address.
    LoginFromAddress,
    /// Too many failures from this address.
    Address,
}

/// Failure counters; one per node.
#[derive(Debug)]
pub struct FailureLimiter {
    window: Duration,
    per_login: u32,
    per_address: u32,
    login_delay: Duration,
    counts: Mutex<HashMap<Key, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Limits from the configuration.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            window: config.window,
            per_login: config.failures_per_login,
            per_address: config.failures_per_address,
            login_delay: config.login_delay,
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

    /// Whether an attempt for `login` from `address` may be checked at all; if so, how
    /// long the check must wait first.
    pub fn check(&self, login: &str, address: Option<IpAddr>) -> Result<Duration, Limited> {
        let now = Instant::now();
        if self.count(&Key::LoginFrom(login.to_owned(), address), now) >= self.per_login {
            return Err(Limited::LoginFromAddress);
        }
        if let Some(ip) = address
            && self.count(&Key::Address(ip), now) >= self.per_address
        {
            return Err(Limited::Address);
        }
        let under_attack = self.count(&Key::Login(login.to_owned()), now) >= self.per_login;
        Ok(if under_attack { self.login_delay } else { Duration::ZERO })
    }

    /// Counts a failed attempt.
    pub fn failed(&self, login: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_ENTRIES {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let keys = [
            Some(Key::LoginFrom(login.to_owned(), address)),
            address.map(Key::Address),
            Some(Key::Login(login.to_owned())),
        ];
        for key in keys.into_iter().flatten() {
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

    /// Forgets a login's failures from `address` after it proved its password there.
    pub fn succeeded(&self, login: &str, address: Option<IpAddr>) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Key::LoginFrom(login.to_owned(), address));
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
            login_delay: Duration::from_millis(700),
        })
    }

    #[test]
    fn an_attacker_locks_out_only_itself() {
        let l = limiter(60_000);
        let attacker: IpAddr = "10.0.0.1".parse().expect("ip");
        let alice: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(l.check("alice", Some(attacker)), Ok(Duration::ZERO));
            l.failed("alice", Some(attacker));
        }
        assert_eq!(l.check("alice", Some(attacker)), Err(Limited::LoginFromAddress));
        // Alice, from her own address, is slowed down, not refused.
        assert_eq!(l.check("alice", Some(alice)), Ok(Duration::from_millis(700)));
        assert_eq!(l.check("bob", Some(attacker)), Ok(Duration::ZERO));
        l.failed("bob", Some(attacker));
        l.failed("carol", Some(attacker));
        assert_eq!(l.check("dave", Some(attacker)), Err(Limited::Address));
        assert_eq!(l.check("dave", Some(alice)), Ok(Duration::ZERO));
        assert_eq!(l.check("bob", Some(alice)), Ok(Duration::ZERO));
    }

    #[test]
    fn success_forgets_failures_from_that_address_only() {
        let l = limiter(60_000);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            l.failed("alice", Some(a));
            l.failed("alice", Some(b));
        }
        l.succeeded("alice", Some(b));
        assert!(l.check("alice", Some(b)).is_ok());
        assert_eq!(l.check("alice", Some(a)), Err(Limited::LoginFromAddress));
    }

    #[test]
    fn windows_end() {
        let l = limiter(30);
        for _ in 0..3 {
            l.failed("alice", None);
        }
        assert_eq!(l.check("alice", None), Err(Limited::LoginFromAddress));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(l.check("alice", None), Ok(Duration::ZERO));
    }
}
