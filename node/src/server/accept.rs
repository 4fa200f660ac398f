//! The HTTP accept loop, with the two limits `axum::serve` lacks: a deadline on the
//! request head, and a cap on connections per address that have not sent one.
//!
//! A client that trickles a header line every few seconds would otherwise hold its
//! connection (and a task) forever. Every connection must complete each request head
//! within `server.header_read_timeout` (an idle kept-alive connection counts as one
//! waiting for its next head). A connection still without a complete head after
//! [`PENDING_GRACE`] counts as pending against its peer address; past
//! `server.max_pending_per_address`, new connections from that address are closed as
//! soon as they are accepted. The grace keeps bursts of ordinary clients, which send
//! their head at once, from ever being counted. Trusted proxies are not counted: they
//! forward whole requests, and many clients share their address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::core::metrics::Metrics;

/// How long a new connection may go without a complete request head before it counts
/// as pending.
pub const PENDING_GRACE: Duration = Duration::from_secs(1);

/// What the loop enforces on every accepted connection.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Deadline for each request head (`server.header_read_timeout`).
    pub header_read_timeout: Duration,
    /// Pending connections allowed per address (`server.max_pending_per_address`).
    pub max_pending_per_address: usize,
    /// Peers exempt from the pending cap (`server.trusted_proxies`).
    pub trusted_proxies: Vec<IpNet>,
    /// `TCP_USER_TIMEOUT` of accepted sockets.
    pub tcp_user_timeout: Duration,
}

/// Pending connections per address.
#[derive(Debug, Default)]
struct Pending(Mutex<HashMap<IpAddr, usize>>);

impl Pending {
    fn count(&self, address: IpAddr) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&address).copied().unwrap_or(0)
    }

    fn add(&self, address: IpAddr) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(address).or_default() += 1;
    }

    fn remove(&self, address: IpAddr) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&address);
            }
        }
    }
}

const IN_GRACE: u8 = 0;
const COUNTED: u8 = 1;
const HEAD_SEEN: u8 = 2;

/// One connection's place in [`Pending`]: in its grace, counted, or past its first head.
/// Dropped with the connection, it takes its count back.
struct Slot {
    pending: Arc<Pending>,
    address: IpAddr,
    state: AtomicU8,
}

impl Slot {
    /// The grace is over without a head: count the connection.
    fn grace_over(&self) {
        if self
            .state
            .compare_exchange(IN_GRACE, COUNTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.pending.add(self.address);
        }
    }

    /// A request head arrived: the connection no longer counts.
    fn head_seen(&self) {
        if self.state.swap(HEAD_SEEN, Ordering::AcqRel) == COUNTED {
            self.pending.remove(self.address);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if *self.state.get_mut() == COUNTED {
            self.pending.remove(self.address);
        }
    }
}

/// Serves `router` on `listener` until `stop`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let pending = Arc::new(Pending::default());
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, mostly: give connections time to close.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let address = peer.ip();
        let counted = !limits.trusted_proxies.iter().any(|net| net.contains(&address));
        if counted && pending.count(address) >= limits.max_pending_per_address {
            metrics.error(crate::core::metrics::ErrorKind::PendingLimit).inc();
            drop(tcp);
            continue;
        }
        set_user_timeout(&tcp, limits.tcp_user_timeout);
        let slot = counted.then(|| {
            Arc::new(Slot { pending: pending.clone(), address, state: AtomicU8::new(IN_GRACE) })
        });
        tokio::spawn(serve_connection(
            builder.clone(),
            graceful.watcher(),
            tcp,
            peer,
            router.clone(),
            slot,
        ));
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn serve_connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    slot: Option<Arc<Slot>>,
) {
    let seen = slot.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        if let Some(slot) = &seen {
            slot.head_seen();
        }
        // What `into_make_service_with_connect_info` would insert.
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service));
    tokio::pin!(conn);
    let finished = match &slot {
        Some(slot) => tokio::select! {
            // A head already waiting in the socket is read before the grace is looked at.
            biased;
            finished = &mut conn => Some(finished),
            () = tokio::time::sleep(PENDING_GRACE) => {
                slot.grace_over();
                None
            }
        },
        None => None,
    };
    let finished = match finished {
        Some(finished) => finished,
        None => conn.await,
    };
    if let Err(e) = finished {
        // Header timeouts, resets and malformed requests: the client's business.
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// A client that stops reading while data is queued for it keeps its TCP window shut;
/// engineioxide's writer then waits on the socket forever and neither the heartbeat
/// nor a close can finish. The kernel gives up on such a peer after this.
fn set_user_timeout(tcp: &TcpStream, timeout: Duration) {
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_from_its_grace_until_its_head_or_its_end() {
        let pending = Arc::new(Pending::default());
        let address: IpAddr = "127.0.0.1".parse().expect("ip");
        let slot = |state| Slot { pending: pending.clone(), address, state: AtomicU8::new(state) };
        let fast = slot(IN_GRACE);
        fast.head_seen();
        fast.grace_over();
        assert_eq!(pending.count(address), 0, "a head within the grace never counts");
        let slow = slot(IN_GRACE);
        slow.grace_over();
        let silent = slot(IN_GRACE);
        silent.grace_over();
        assert_eq!(pending.count(address), 2);
        slow.head_seen();
        slow.head_seen();
        assert_eq!(pending.count(address), 1);
        drop(silent);
        drop((fast, slow));
        assert_eq!(pending.count(address), 0);
    }
}
