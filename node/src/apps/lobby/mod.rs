//! The lobby protocol of seed 001 on namespace `/lobby`, event names and payloads
//! exactly as the Flask original had them (`proccess_check` included).
//!
//! Sessions and memberships live in the database, so a host and its clients may be on
//! different nodes; each session is the room `lobby:<key>`, which the adapter spreads
//! across the cluster.

pub mod store;

use std::sync::Arc;

use rand::Rng;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::App;
use crate::apps::lobby::store::{JoinResult, Membership, Role};
use crate::core::db::DbError;
use crate::core::metrics::ErrorKind;
use crate::core::nickname::NicknameSlot;
use crate::core::reply::{check_broadcast, count_in, count_out, emit, fail};
use crate::core::state::AppState;
use crate::protocol::names::Nickname;

/// The lobby app.
pub struct Lobby;

impl App for Lobby {
    const PATH: &'static str = "/lobby";
    const GUEST_CAPABLE: bool = true;

    fn register<A: Adapter>(socket: &SocketRef<A>) {
        socket.extensions.insert(Arc::new(NicknameSlot::default()));
        socket.on("login", login::<A>);
        socket.on("logout", logout::<A>);
        socket.on("create_session", create_session::<A>);
        socket.on("join_session", join_session::<A>);
        socket.on("proccess_check", process_check::<A>);
        socket.on_fallback(async |s: SocketRef<A>, State(app): State<AppState>| {
            count_in(&s, &app, "unknown");
            fail(&s, &app, "Unknown event");
        });
    }

    /// A socket that goes leaves its session like a `logout`.
    async fn disconnected<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, app: AppState) {
        leave_session(&s, &io, &app).await;
    }

    /// The dead node's memberships go, each announced as a departure.
    async fn node_swept<A: Adapter>(
        io: SocketIo<A>,
        app: AppState,
        node: String,
    ) -> Result<(), DbError> {
        let left = app.db.remove_node_lobby(&node).await?;
        announce_departures(&io, &app, &left).await;
        Ok(())
    }
}

fn room(key: &str) -> String {
    format!("lobby:{key}")
}

fn unavailable(app: &AppState, e: &DbError) -> &'static str {
    app.metrics.error(ErrorKind::Database).inc();
    tracing::warn!(error = %e, "lobby store failed");
    "Service unavailable, try again"
}

/// Sends to every member of the session `key`.
async fn broadcast<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    key: &str,
    event: &str,
    data: Value,
) {
    count_out(s, app, event);
    let sent = s.within(room(key)).emit(event, &data).await;
    check_broadcast(&app.metrics, Lobby::PATH, event, sent);
}

/// The player name of a `login` payload `{name}`.
fn player_name(data: &Value) -> Option<Nickname> {
    Nickname::parse(data.get("name")?.as_str()?).ok()
}

/// Checks a `create_session` payload `{type: "default", ph_users: 0}`: the one kind of
/// session the original served. The refusal is the `error` event's message.
fn check_session_request(data: Option<Value>) -> Result<(), &'static str> {
    let data = data.filter(Value::is_object).unwrap_or_default();
    if data.get("type").and_then(Value::as_str) != Some("default") {
        return Err("Unsupported session type: only \"default\"");
    }
    if data.get("ph_users").and_then(Value::as_i64) != Some(0) {
        return Err("ph_users must be 0");
    }
    Ok(())
}

/// The session key of a `join_session` payload: the key itself, 1-16 bytes.
fn session_key(data: Value) -> Option<String> {
    match data {
        Value::String(key) if (1..=16).contains(&key.len()) => Some(key),
        _ => None,
    }
}

async fn login<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(user): Extension<Arc<NicknameSlot>>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "login");
    let Some(name) = data.ok().as_ref().and_then(player_name) else {
        return fail(&s, &app, "Bad payload: expected {\"name\": \"...\"}");
    };
    if !user.set_once(&name) {
        return fail(&s, &app, "Already logged in");
    }
    let reply = json!({ "message": "You are connected!", "name": name, "type": "USER" });
    emit(&s, &app, "login_success", &reply);
}

/// Takes the socket out of its session, closing the session if it was the host.
async fn leave_session<A: Adapter>(s: &SocketRef<A>, io: &SocketIo<A>, app: &AppState) {
    let left = match app.db.leave_lobby(s.id.as_str()).await {
        Ok(left) => left,
        Err(e) => {
            unavailable(app, &e);
            return;
        }
    };
    let Some(membership) = left else { return };
    s.leave(room(&membership.session_key));
    announce_departures(io, app, &[membership]).await;
}

async fn logout<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(user): Extension<Arc<NicknameSlot>>,
) {
    count_in(&s, &app, "logout");
    if user.get().is_none() {
        return fail(&s, &app, "Not logged in");
    }
    leave_session(&s, &io, &app).await;
    user.clear();
    emit(&s, &app, "logout_success", &json!({ "message": "You are disconnected!" }));
}

/// Lobby session keys: 8 characters of an alphabet without look-alikes, 40 bits.
fn new_session_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

async fn create_session<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(user): Extension<Arc<NicknameSlot>>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "create_session");
    let Some(name) = user.get() else { return fail(&s, &app, "Not logged in") };
    if let Err(refusal) = check_session_request(data.ok()) {
        return fail(&s, &app, refusal);
    }
    let key = new_session_key();
    match app.db.create_lobby(&key, "default", 0, s.id.as_str(), &name, &app.node_id).await {
        Ok(true) => {
            s.join(room(&key));
            let reply = json!({ "message": "Session created!", "session_key": key });
            emit(&s, &app, "send_session_key", &reply);
        }
        Ok(false) => fail(&s, &app, "Already in a session"),
        Err(e) => fail(&s, &app, unavailable(&app, &e)),
    }
}

async fn join_session<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(user): Extension<Arc<NicknameSlot>>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "join_session");
    let Some(name) = user.get() else { return fail(&s, &app, "Not logged in") };
    let Some(key) = data.ok().and_then(session_key) else {
        return fail(&s, &app, "Bad payload: expected the session key");
    };
    match app.db.join_lobby(&key, s.id.as_str(), &name, &app.node_id).await {
        Ok(JoinResult::Joined) => {
            s.join(room(&key));
            let hello = json!({ "message": "User connected!", "name": name });
            broadcast(&s, &app, &key, "user_connected", hello).await;
        }
        Ok(JoinResult::UnknownKey) => fail(&s, &app, "Session not found"),
        Ok(JoinResult::Started) => fail(&s, &app, "Session already started"),
        Ok(JoinResult::AlreadyMember) => fail(&s, &app, "Already in a session"),
        Err(e) => fail(&s, &app, unavailable(&app, &e)),
    }
}

async fn process_check<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(user): Extension<Arc<NicknameSlot>>,
) {
    count_in(&s, &app, "proccess_check");
    if user.get().is_none() {
        return fail(&s, &app, "Not logged in");
    }
    let membership = match app.db.lobby_membership(s.id.as_str()).await {
        Ok(Some(m)) if m.role == Role::Host => m,
        Ok(_) => return fail(&s, &app, "Only the host can start the session"),
        Err(e) => return fail(&s, &app, unavailable(&app, &e)),
    };
    match app.db.start_lobby(&membership.session_key).await {
        Ok(true) => {
            let key = membership.session_key;
            let started = json!({ "message": "Session started!", "session_key": key });
            broadcast(&s, &app, &key, "session_started", started).await;
        }
        Ok(false) => fail(&s, &app, "Session already started"),
        Err(e) => fail(&s, &app, unavailable(&app, &e)),
    }
}

/// Tells the remaining members of each session about a departure: a HOST's closes the
/// session (its members are told and taken out of its room), a CLIENT's is announced.
/// Serves logouts, disconnects and the sweep of a dead node's memberships.
pub async fn announce_departures<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    left: &[Membership],
) {
    let Some(ns) = io.of(Lobby::PATH) else { return };
    for Membership { session_key, name, role } in left {
        let room = room(session_key);
        let (event, data) = match role {
            Role::Host => (
                "session_closed",
                json!({ "message": "Session closed!", "session_key": session_key }),
            ),
            Role::Client => {
                ("user_disconnected", json!({ "message": "User disconnected!", "name": name }))
            }
        };
        app.metrics.events_out.with_label_values(&[Lobby::PATH, event]).inc();
        let sent = ns.clone().within(room.clone()).emit(event, &data).await;
        check_broadcast(&app.metrics, Lobby::PATH, event, sent);
        if *role == Role::Host
            && let Err(e) = ns.clone().within(room.clone()).leave(room).await
        {
            tracing::warn!(error = %e, "members not removed from a closed lobby room");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_use_the_alphabet() {
        let key = new_session_key();
        assert_eq!(key.len(), 8);
        assert!(key.chars().all(|c| c.is_ascii_uppercase() || ('2'..='9').contains(&c)), "{key}");
        assert_ne!(new_session_key(), key);
    }

    #[test]
    fn session_requests() {
        assert_eq!(check_session_request(Some(json!({"type": "default", "ph_users": 0}))), Ok(()));
        let kind = "Unsupported session type: only \"default\"";
        for bad in [None, Some(json!("default")), Some(json!({"type": "duel", "ph_users": 0}))] {
            assert_eq!(check_session_request(bad.clone()), Err(kind), "{bad:?}");
        }
        let users = Some(json!({"type": "default", "ph_users": 2}));
        assert_eq!(check_session_request(users), Err("ph_users must be 0"));
    }

    #[test]
    fn session_keys() {
        assert_eq!(session_key(json!("ABCD2345")).as_deref(), Some("ABCD2345"));
        for bad in [json!(""), json!("K".repeat(17)), json!({"key": "ABCD2345"}), json!(7)] {
            assert_eq!(session_key(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn player_names() {
        assert_eq!(player_name(&json!({"name": "Ann"})).as_deref(), Some("Ann"));
        for bad in [
            json!({}),
            json!({"name": 1}),
            json!({"name": ""}),
            json!({"name": " x"}),
            json!("Ann"),
        ] {
            assert_eq!(player_name(&bad), None, "{bad}");
        }
    }
}
