//! Socket.IO namespaces and their handlers, one file per protocol.
//!
//! Every authenticated namespace goes through [`authenticate`] before its connect
//! handler runs: a refused client gets `connect_error` and nothing is written.

pub mod chat;
pub mod lobby;
pub mod recovery;
pub mod reply;
pub mod todo;
pub mod workspace;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{MaybeExtension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide_core::adapter::DefinedAdapter;

use crate::auth::{AuthError, Credentials};
use crate::session::Member;
use crate::state::AppState;

/// A name a client picks in-band (the lobby's `login`, the chat's `add user`).
#[derive(Debug, Default)]
pub struct Nickname(std::sync::Mutex<Option<String>>);

impl Nickname {
    /// The name, once chosen.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the name unless one is set; returns whether it was set.
    pub fn set_once(&self, name: &str) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let free = slot.is_none();
        if free {
            *slot = Some(name.to_owned());
        }
        free
    }

    /// Forgets the name.
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A name other users will see: 1-64 characters, no control characters, no
/// surrounding white space.
pub fn valid_nickname(name: &str) -> Option<String> {
    let ok = (1..=64).contains(&name.chars().count())
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    ok.then(|| name.to_owned())
}

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

/// Authenticates the handshake and writes the session row.
async fn authenticate<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    auth: Option<&Value>,
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
    let claimed = credentials
        .login()
        .filter(|login| crate::auth::password::valid_login(login))
        .map(str::to_owned);
    let identity = match app.auth.authenticate(credentials, address).await {
        Ok(identity) => identity,
        Err(e) => {
            if matches!(e, AuthError::Unavailable(_)) {
                app.metrics.errors.with_label_values(&["database"]).inc();
                tracing::warn!(error = ?e, "handshake refused: store unavailable");
            }
            let result =
                if matches!(e, AuthError::TooManyAttempts) { "limited" } else { "refused" };
            count(method, claimed.as_deref(), result, Some(&e));
            return Err(e.into());
        }
    };
    let mut member = Member::new(identity, s.id.to_string(), app.node_id.clone(), &ns);
    if ns == workspace::NAMESPACE {
        let issued = crate::recovery::issue(s.id.as_str());
        s.extensions.insert(recovery::IssuedToken(issued.token));
        member = member.with_recovery(issued.hash);
    }
    let ttl = app.config.database.session_ttl;
    if let Err(e) = member.insert_row(&app.db, ttl, || workspace::socket_rooms(s)).await {
        app.metrics.errors.with_label_values(&["database"]).inc();
        tracing::warn!(error = %e, "handshake refused: session row not written");
        let e = AuthError::Unavailable(e);
        count(method, Some(&member.identity.user), "refused", Some(&e));
        return Err(e.into());
    }
    count(method, Some(&member.identity.user), "accepted", None);
    s.extensions.insert(Arc::new(member));
    Ok(())
}

/// The client address of a socket's handshake (see [`crate::guard::client_address`]).
fn socket_address<A: Adapter>(s: &SocketRef<A>, app: &AppState) -> Option<std::net::IpAddr> {
    let parts = s.req_parts();
    crate::guard::client_address(
        &parts.headers,
        &parts.extensions,
        &app.config.server.trusted_proxies,
    )
}

/// One line (target `audit`) per login accepted or refused: namespace, method, the
/// login claimed or proven, the client address and, when refused, why. Never a secret.
fn audit(
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
struct Presence {
    app: AppState,
    ns: String,
    sid: String,
    owner_claimed: bool,
    row: Option<String>,
    ended: AtomicBool,
}

impl Presence {
    /// Counts the socket, binds it to its address and takes charge of its row.
    fn start<A: Adapter>(s: &SocketRef<A>, app: &AppState) -> Self {
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
    fn end(&self) {
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

/// Counts the socket and cleans up after it when it goes, whatever its namespace.
fn track<A: Adapter>(s: &SocketRef<A>, app: &AppState) {
    s.extensions.insert(Arc::new(Presence::start(s, app)));
    s.on_disconnect(
        async |s: SocketRef<A>,
               io: SocketIo<A>,
               State(app): State<AppState>,
               MaybeExtension(presence): MaybeExtension<Arc<Presence>>| {
            match s.ns() {
                lobby::NAMESPACE => lobby::on_disconnect(s.clone(), io, app.clone()).await,
                chat::NAMESPACE => chat::on_disconnect(s.clone(), io, app.clone()).await,
                _ => {}
            }
            if let Some(presence) = presence {
                presence.end();
            }
        },
    );
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
        app.metrics.errors.with_label_values(&["redis"]).inc();
        tracing::warn!(error = %e, ns, "room channels not confirmed; messages sent meanwhile may be missed");
    }
}

/// Every namespace the node serves.
pub const NAMESPACES: &[&str] =
    &[workspace::NAMESPACE, lobby::NAMESPACE, chat::NAMESPACE, todo::NAMESPACE];

/// Namespaces that may be opened to guests (`auth.guest_namespaces`).
pub const GUEST_CAPABLE: &[&str] = &[lobby::NAMESPACE, chat::NAMESPACE];

/// Declares every namespace on `io`. The adapter's init results (for a cluster
/// adapter, futures that subscribe) are handed back for the caller to complete.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, app: &AppState) -> Vec<A::InitRes> {
    let guests = |ns: &str| app.config.auth.guest_namespaces.iter().any(|g| g == ns);
    // Everything happens in the connect middleware, which socketioxide awaits before it
    // sends CONNECT: the official clients send buffered events right after CONNECT, and
    // handlers registered later (in the spawned connect handler) would miss them.
    macro_rules! namespace {
        ($ns:expr, $register:path, $guests:expr, $connected:expr) => {{
            let guests = $guests;
            let setup = async move |s: SocketRef<A>,
                                    io: SocketIo<A>,
                                    State(app): State<AppState>,
                                    TryData(auth): TryData<Value>|
                        -> Result<(), ConnectError> {
                if !app.is_ready() {
                    return Err(ConnectError::ShuttingDown);
                }
                let auth = auth.ok();
                s.extensions.insert(crate::handshake::Captured::now(auth.as_ref()));
                if guests {
                    audit(s.ns(), "guest", None, socket_address(&s, &app), None);
                } else {
                    authenticate(&s, &app, auth.as_ref()).await?;
                }
                if $ns == workspace::NAMESPACE {
                    recovery::prepare(&s, &io, &app, auth.as_ref()).await;
                }
                // CONNECT means the socket hears its own channel and resumed rooms.
                let mut own = vec![s.id.to_string()];
                own.extend(workspace::socket_rooms(&s));
                rooms_ready(&app, $ns, own).await;
                track(&s, &app);
                $register(&s);
                Ok(())
            };
            io.ns($ns, $connected.with(setup))
        }};
    }
    vec![
        namespace!(workspace::NAMESPACE, workspace::register, false, recovery::complete::<A>),
        namespace!(lobby::NAMESPACE, lobby::register, guests(lobby::NAMESPACE), async || {}),
        namespace!(chat::NAMESPACE, chat::register, guests(chat::NAMESPACE), async || {}),
        namespace!(todo::NAMESPACE, todo::register, false, async || {}),
    ]
}
