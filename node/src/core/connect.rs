//! What every namespace's connect middleware does, whatever the app: check the
//! credentials and write the session row ([`authenticate`]), and hold the socket's
//! [`Presence`] until it goes. A refused client gets `connect_error` and nothing is
//! written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use crate::core::auth::{AuthError, Credentials};
use crate::core::metrics::ErrorKind;
use crate::core::session::{Member, socket_rooms};
use crate::core::state::AppState;
use crate::protocol::names::Login;

/// Why a connection was refused; the text is the client's `connect_error` message.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The node is shutting down and takes no new sockets.
    #[error("service unavailable: shutting down")]
    ShuttingDown,
    /// Credentials missing or refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Authenticates the handshake and writes the session row, with what the app's
/// `admit` adds to the member first.
pub async fn authenticate<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    auth: Option<&Value>,
    admit: impl FnOnce(&SocketRef<A>, Member) -> Member,
) -> Result<(), ConnectError> {
    let ns = s.ns().to_owned();
    let parts = s.req_parts();
    let address = socket_address(s, app);
    // Every outcome is counted and leaves one audit line.
    let count = |method: &str, user: Option<&str>, result: &str, reason: Option<&AuthError>| {
        app.metrics.handshakes.with_label_values(&[ns.as_str(), method, result]).inc();
        audit(&ns, method, user, address, reason);
    };
    let cookie = parts.headers.get(axum::http::header::COOKIE).and_then(|v| v.to_str().ok());
    let found = Credentials::from_handshake(
        auth,
        parts.uri.query(),
        cookie,
        &app.config.auth.session.cookie,
    );
    let credentials = match found {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            count("none", None, "refused", Some(&AuthError::NoCredentials));
            return Err(AuthError::NoCredentials.into());
        }
        Err(e) => {
            count("none", None, "refused", Some(&e));
            return Err(e.into());
        }
    };
    let method = credentials.method().as_str();
    // A claimed login goes to the log only in the form logins have (no control
    // characters, bounded length): it is client input.
    let claimed = credentials.login().and_then(|login| Login::parse(login).ok());
    let identity = match app.auth.authenticate(credentials, address).await {
        Ok(identity) => identity,
        Err(e) => {
            if matches!(e, AuthError::Unavailable(_)) {
                app.metrics.error(ErrorKind::Database).inc();
                tracing::warn!(error = ?e, "handshake refused: store unavailable");
            }
            let result =
                if matches!(e, AuthError::TooManyAttempts) { "limited" } else { "refused" };
            count(method, claimed.as_deref(), result, Some(&e));
            return Err(e.into());
        }
    };
    let member = admit(s, Member::new(identity, s.id.to_string(), app.node_id.clone(), &ns));
    let ttl = app.config.database.session_ttl;
    if let Err(e) = member.insert_row(&app.db, ttl, || socket_rooms(s)).await {
        app.metrics.error(ErrorKind::Database).inc();
        tracing::warn!(error = %e, "handshake refused: session row not written");
        let e = AuthError::Unavailable(e);
        count(method, Some(&member.identity.user), "refused", Some(&e));
        return Err(e.into());
    }
    count(method, Some(&member.identity.user), "accepted", None);
    s.extensions.insert(Arc::new(member));
    Ok(())
}

/// The client address of a socket's handshake (see [`crate::core::guard::client_address`]).
pub fn socket_address<A: Adapter>(s: &SocketRef<A>, app: &AppState) -> Option<std::net::IpAddr> {
    let parts = s.req_parts();
    crate::core::guard::client_address(
        &parts.headers,
        &parts.extensions,
        &app.config.server.trusted_proxies,
    )
}

/// One line (target `audit`) per login accepted or refused: namespace, method, the
/// login claimed or proven, the client address and, when refused, why. Never a secret.
pub fn audit(
    ns: &str,
    method: &str,
    user: Option<&str>,
    address: Option<std::net::IpAddr>,
    refused: Option<&AuthError>,
) {
    let address = address.map(tracing::field::display);
    match refused {
        None => tracing::info!(target: "audit", ns, method, user, address, "login accepted"),
        Some(reason) => tracing::info!(
            target: "audit",
            ns,
            method,
            user,
            address,
            reason = %reason,
            "login refused"
        ),
    }
}

/// What a socket holds on the node from its connect middleware on: its place in the
/// connection gauge, its address binding and its session row. Given back exactly once:
/// at `disconnect`, or when the socket is dropped without one. socketioxide calls no
/// disconnect handler for a socket whose client left while the middleware ran (a slow
/// password check): the socket never completes CONNECT and is simply dropped. Holding
/// the presence in the socket's extensions makes the row live exactly as long as the
/// socket, whatever the close timing.
pub struct Presence {
    app: AppState,
    ns: String,
    sid: String,
    owner_claimed: bool,
    row: Option<String>,
    ended: AtomicBool,
}

impl Presence {
    /// Counts the socket, binds it to its address and takes charge of its row.
    pub fn start<A: Adapter>(s: &SocketRef<A>, app: &AppState) -> Self {
        app.metrics.connections.with_label_values(&[s.ns()]).inc();
        let address = socket_address(s, app);
        if let Some(address) = address {
            app.owners.claim(s.id.as_str(), address);
        }
        Self {
            app: app.clone(),
            ns: s.ns().to_owned(),
            sid: s.id.to_string(),
            owner_claimed: address.is_some(),
            row: s.extensions.get::<Arc<Member>>().map(|m| m.row_sid()),
            ended: AtomicBool::new(false),
        }
    }

    /// Gives everything back; later calls do nothing.
    pub fn end(&self) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        self.app.metrics.connections.with_label_values(&[self.ns.as_str()]).dec();
        if self.owner_claimed {
            self.app.owners.release(&self.sid);
        }
        if let Some(row) = &self.row {
            self.app.reaper.remove(row.clone());
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.end();
    }
}

/// Waits until this node hears what other nodes send to `rooms` of `ns`: with the
/// sharded adapter in a dynamic mode a room's channel is subscribed only once a local
/// socket is in it, and a message published before Redis confirmed it would be lost.
/// Acks and CONNECT wait for it, so "joined" means "will receive". Bounded by
/// `redis.request_timeout`; past it the socket goes on (its rooms follow once Redis
/// answers).
pub async fn rooms_ready(app: &AppState, ns: &str, rooms: Vec<String>) {
    let Some(cluster) = app.cluster() else { return };
    if let Err(e) = cluster.rooms_ready(ns, &rooms, app.config.redis.request_timeout).await {
        app.metrics.error(ErrorKind::Redis).inc();
        tracing::warn!(error = %e, ns, "room channels not confirmed; messages sent meanwhile may be missed");
    }
}
