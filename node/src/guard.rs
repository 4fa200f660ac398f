//! Engine.IO session ids double as socket ids, and whoever presents a session id in a
//! polling request or WebSocket upgrade speaks for that session. Ids are never shown to
//! other users (presence and messages name logins), and as a second line each session
//! is bound to the address that opened it: a request naming a session from another
//! address is refused before the engine sees it.
//!
//! The binding is made when the session's first Socket.IO namespace connects (the
//! engine's own handshake cannot be observed from outside socketioxide) and dropped
//! when its last namespace disconnects. Behind a load balancer, the address is that of
//! the balancer unless `auth.rate_limit.trust_forwarded_for` is set. socketioxide gives
//! every namespace's socket the session's id, for Engine.IO 3 and 4 clients alike.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

/// Session id → (owner address, namespaces connected).
#[derive(Debug, Default)]
pub struct SessionOwners(Mutex<HashMap<String, (IpAddr, u32)>>);

impl SessionOwners {
    /// Binds `sid` to `address` (or counts one more namespace on it).
    pub fn claim(&self, sid: &str, address: IpAddr) {
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        owners.entry(sid.to_owned()).or_insert((address, 0)).1 += 1;
    }

    /// One namespace of `sid` disconnected; the last one unbinds it.
    pub fn release(&self, sid: &str) {
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = owners.get_mut(sid) {
            entry.1 -= 1;
            if entry.1 == 0 {
                owners.remove(sid);
            }
        }
    }

    /// Whether a request from `address` may use `sid`.
    pub fn allows(&self, sid: &str, address: Option<IpAddr>) -> bool {
        let owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (owners.get(sid), address) {
            (Some((owner, _)), Some(address)) => *owner == address,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// The client's address: the TCP peer, or the last `X-Forwarded-For` entry when the
/// balancer in front is trusted to write it.
pub fn client_address(
    headers: &HeaderMap,
    extensions: &Extensions,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    let forwarded = || {
        let header = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
        header.rsplit(',').next()?.trim().parse().ok()
    };
    let peer = || extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if trust_forwarded { forwarded().or_else(peer) } else { peer() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_sessions_to_their_address_until_the_last_namespace_leaves() {
        let owners = SessionOwners::default();
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
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
    fn reads_the_forwarded_address_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "10.1.1.1, 10.2.2.2".parse().expect("value"));
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 9], 1))));
        let peer: IpAddr = "127.0.0.9".parse().expect("ip");
        let last: IpAddr = "10.2.2.2".parse().expect("ip");
        assert_eq!(client_address(&headers, &extensions, false), Some(peer));
        assert_eq!(client_address(&headers, &extensions, true), Some(last));
    }
}
