//! Engine.IO session ids double as socket ids, and whoever presents a session id in a
//! polling request or WebSocket upgrade speaks for that session. Ids are never shown to
//! other users (presence and messages name logins), and as a second line each session
//! is bound to the address that opened it: a request naming a session from another
//! address is refused before the engine sees it.
//!
//! A long-polling session is bound by its handshake, before the response carrying the
//! id leaves the node (see the server's `gate_engine`), so nobody else can speak for
//! it while its namespace connect (and the login in it) is still running. A session
//! opened over WebSocket lives on that one connection and needs no binding. The binding
//! is dropped when the session's last namespace disconnects; one that never connects a
//! namespace is closed by the engine after [`CONNECT_TIMEOUT`], and its binding expires
//! then. Sessions not yet connected are capped per address, so handshakes cannot be
//! used to grow the table without bound.
//!
//! The address is [`client_address`]: the TCP peer, or what a trusted proxy forwarded.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;

/// How long the engine waits for a new session's first namespace connect before it
/// closes the session (socketioxide's default, set explicitly on the server).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Debug)]
struct Binding {
    owner: IpAddr,
    /// Namespaces connected on the session.
    namespaces: u32,
    /// Bound by its handshake and no namespace connected yet: counted in
    /// [`Table::unconnected`].
    waiting: bool,
}

#[derive(Debug, Default)]
struct Table {
    bindings: HashMap<String, Binding>,
    /// Sessions bound at their handshake that have not connected a namespace, per
    /// address.
    unconnected: HashMap<IpAddr, usize>,
    /// Handshake bindings in the order they were made, to expire the ones whose session
    /// never connected.
    handshakes: VecDeque<(Instant, String)>,
}

impl Table {
    fn forget_unconnected(&mut self, address: IpAddr) {
        if let Some(n) = self.unconnected.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.unconnected.remove(&address);
            }
        }
    }

    /// Drops handshake bindings older than the engine's connect timeout whose session
    /// never connected a namespace (the engine has closed them).
    fn expire(&mut self, now: Instant, after: Duration) {
        while let Some((at, _)) = self.handshakes.front() {
            if now.duration_since(*at) < after {
                break;
            }
            let Some((_, sid)) = self.handshakes.pop_front() else { break };
            if let Some(binding) = self.bindings.get(&sid)
                && binding.waiting
            {
                let owner = binding.owner;
                self.bindings.remove(&sid);
                self.forget_unconnected(owner);
            }
        }
    }
}

/// A handshake was refused: its address has too many sessions not yet connected.
#[derive(Debug, thiserror::Error)]
#[error("too many sessions from {0} waiting to connect a namespace")]
pub struct TooManyUnconnected(pub IpAddr);

/// Which address each Engine.IO session belongs to.
#[derive(Debug)]
pub struct SessionOwners {
    table: Mutex<Table>,
    max_unconnected: usize,
    expire_after: Duration,
}

impl SessionOwners {
    /// Owners allowing `max_unconnected` sessions without a namespace per address.
    pub fn new(max_unconnected: usize) -> Self {
        // A little past the engine's own timeout, so a binding never ends before its
        // session.
        Self::with_expiry(max_unconnected, CONNECT_TIMEOUT + Duration::from_secs(5))
    }

    fn with_expiry(max_unconnected: usize, expire_after: Duration) -> Self {
        Self { table: Mutex::default(), max_unconnected, expire_after }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `address` may open one more session.
    pub fn admit(&self, address: IpAddr) -> Result<(), TooManyUnconnected> {
        let mut table = self.table();
        table.expire(Instant::now(), self.expire_after);
        let waiting = table.unconnected.get(&address).copied().unwrap_or(0);
        if waiting >= self.max_unconnected { Err(TooManyUnconnected(address)) } else { Ok(()) }
    }

    /// Binds a session just opened by a polling handshake to `address`.
    pub fn bind_handshake(&self, sid: &str, address: IpAddr) {
        let mut table = self.table();
        let now = Instant::now();
        table.expire(now, self.expire_after);
        if table.bindings.contains_key(sid) {
            return;
        }
        table
            .bindings
            .insert(sid.to_owned(), Binding { owner: address, namespaces: 0, waiting: true });
        *table.unconnected.entry(address).or_default() += 1;
        table.handshakes.push_back((now, sid.to_owned()));
    }

    /// A namespace of `sid` connected from `address`: binds the session if its
    /// handshake did not (WebSocket, Engine.IO 3), counts the namespace otherwise.
    pub fn claim(&self, sid: &str, address: IpAddr) {
        let mut table = self.table();
        let binding = table.bindings.entry(sid.to_owned()).or_insert(Binding {
            owner: address,
            namespaces: 0,
            waiting: false,
        });
        binding.namespaces += 1;
        if std::mem::take(&mut binding.waiting) {
            let owner = binding.owner;
            table.forget_unconnected(owner);
        }
    }

    /// One namespace of `sid` disconnected; the last one unbinds it.
    pub fn release(&self, sid: &str) {
        let mut table = self.table();
        if let Some(binding) = table.bindings.get_mut(sid) {
            binding.namespaces = binding.namespaces.saturating_sub(1);
            if binding.namespaces == 0 && !binding.waiting {
                table.bindings.remove(sid);
            }
        }
    }

    /// Whether a request from `address` may use `sid`.
    pub fn allows(&self, sid: &str, address: Option<IpAddr>) -> bool {
        let table = self.table();
        match (table.bindings.get(sid), address) {
            (Some(binding), Some(address)) => binding.owner == address,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// Whether the request came straight from one of the `trusted` proxies, whose
/// `X-Forwarded-*` headers are then believed.
pub fn from_trusted_proxy(extensions: &Extensions, trusted: &[IpNet]) -> bool {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|peer| is_trusted(trusted, &peer.0.ip()))
}

fn is_trusted(trusted: &[IpNet], ip: &IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (entries left of
/// it were written by the client and prove nothing). When every entry is a trusted
/// proxy, the leftmost; when an entry does not parse, the hop after it.
pub fn client_address(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    if !is_trusted(trusted, &peer) {
        return Some(peer);
    }
    // Several header lines are one comma-separated list, in order.
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty());
    let mut nearest = peer;
    for hop in hops.collect::<Vec<_>>().into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(trusted, &ip) => nearest = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(nearest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn binds_sessions_to_their_address_until_the_last_namespace_leaves() {
        let owners = SessionOwners::new(8);
        let (a, b) = (ip("127.0.0.1"), ip("127.0.0.2"));
        assert!(owners.allows("s", Some(b)), "unknown sessions are the engine's business");
        owners.claim("s", a);
        owners.claim("s", a);
        assert!(owners.allows("s", Some(a)));
        assert!(!owners.allows("s", Some(b)));
        assert!(!owners.allows("s", None));
        owners.release("s");
        assert!(!owners.allows("s", Some(b)), "one namespace still connected");
        owners.release("s");
        assert!(owners.allows("s", Some(b)));
    }

    #[test]
    fn binds_at_the_handshake_and_caps_sessions_not_yet_connected() {
        let owners = SessionOwners::new(2);
        let (a, b) = (ip("127.0.0.1"), ip("127.0.0.2"));
        owners.bind_handshake("s1", a);
        assert!(!owners.allows("s1", Some(b)), "bound before any namespace connects");
        owners.bind_handshake("s2", a);
        assert!(owners.admit(a).is_err(), "two sessions waiting from a");
        assert!(owners.admit(b).is_ok(), "other addresses unaffected");
        owners.claim("s1", a);
        assert!(owners.admit(a).is_ok(), "s1 connected");
        owners.claim("s1", b);
        assert!(owners.admit(a).is_ok(), "a second namespace changes no count");
        owners.release("s1");
        owners.release("s1");
        assert!(owners.allows("s1", Some(b)), "unbound after its last namespace");
        assert!(!owners.allows("s2", Some(b)));
    }

    #[test]
    fn handshake_bindings_expire_when_no_namespace_connects() {
        let owners = SessionOwners::with_expiry(1, Duration::from_millis(50));
        let a = ip("127.0.0.1");
        owners.bind_handshake("gone", a);
        owners.bind_handshake("kept", ip("127.0.0.3"));
        owners.claim("kept", ip("127.0.0.3"));
        assert!(owners.admit(a).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(owners.admit(a).is_ok(), "the engine closed the unconnected session");
        assert!(owners.allows("gone", Some(ip("127.0.0.2"))));
        assert!(!owners.allows("kept", Some(a)), "connected sessions stay bound");
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> =
            vec!["10.0.0.0/8".parse().expect("net"), "127.0.0.9/32".parse().expect("net")];
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6, 192.0.2.7".parse().expect("value"));
        headers.append("x-forwarded-for", "10.1.1.1".parse().expect("value"));
        let from = |peer: [u8; 4]| {
            let mut extensions = Extensions::new();
            extensions.insert(ConnectInfo(SocketAddr::from((peer, 1))));
            extensions
        };
        // An untrusted peer is the client, whatever it forwards.
        assert_eq!(
            client_address(&headers, &from([127, 0, 0, 8]), &trusted),
            Some(ip("127.0.0.8"))
        );
        assert_eq!(client_address(&headers, &from([127, 0, 0, 9]), &[]), Some(ip("127.0.0.9")));
        // Through two trusted hops, the first untrusted entry from the right.
        assert_eq!(
            client_address(&headers, &from([127, 0, 0, 9]), &trusted),
            Some(ip("192.0.2.7"))
        );
        // Only proxies: the leftmost; garbage: the hop after it.
        let mut only = HeaderMap::new();
        only.insert("x-forwarded-for", "10.0.0.5, 10.0.0.6".parse().expect("value"));
        assert_eq!(client_address(&only, &from([10, 0, 0, 1]), &trusted), Some(ip("10.0.0.5")));
        let mut garbage = HeaderMap::new();
        garbage.insert("x-forwarded-for", "6.6.6.6, nonsense, 10.0.0.6".parse().expect("value"));
        assert_eq!(client_address(&garbage, &from([10, 0, 0, 1]), &trusted), Some(ip("10.0.0.6")));
        // No header: the proxy itself.
        assert_eq!(
            client_address(&HeaderMap::new(), &from([10, 0, 0, 1]), &trusted),
            Some(ip("10.0.0.1"))
        );
    }
}
