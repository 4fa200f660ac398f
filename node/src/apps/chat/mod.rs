//! The chat of the Socket.IO guide (seed 002) on namespace `/chat`: `add user`,
//! `new message`, `typing`, `stop typing`, answered with `login`, `user joined`,
//! `user left` and the relayed events, as the guide's server does.
//!
//! The user count must hold across the cluster, so it is not a counter in memory: every
//! named user is in the room [`USERS_ROOM`], and the count is that room's size as the
//! adapter reports it for the whole cluster.

use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::App;
use crate::core::nickname::NicknameSlot;
use crate::core::reply::{check_broadcast, count_in, count_out, emit, fail};
use crate::core::state::AppState;
use crate::protocol::names::Nickname;

/// The room of every socket that has chosen a name.
pub const USERS_ROOM: &str = "$chat:users";

/// Longest chat message, in characters.
const MAX_MESSAGE_CHARS: usize = 4096;

/// The chat app.
pub struct Chat;

impl App for Chat {
    const PATH: &'static str = "/chat";
    const GUEST_CAPABLE: bool = true;

    fn register<A: Adapter>(socket: &SocketRef<A>) {
        socket.extensions.insert(Arc::new(NicknameSlot::default()));
        socket.on("add user", add_user::<A>);
        socket.on("new message", new_message::<A>);
        for event in ["typing", "stop typing"] {
            socket.on(
                event,
                async move |s: SocketRef<A>,
                            State(app): State<AppState>,
                            Extension(n): Extension<Arc<NicknameSlot>>| {
                    relay_presence(&s, &app, &n, event).await;
                },
            );
        }
        socket.on_fallback(async |s: SocketRef<A>, State(app): State<AppState>| {
            count_in(&s, &app, "unknown");
            fail(&s, &app, "Unknown event");
        });
    }

    /// Tells the others who left and how many remain.
    async fn disconnected<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, app: AppState) {
        let Some(nickname) = s.extensions.get::<Arc<NicknameSlot>>() else { return };
        let Some(username) = nickname.get() else { return };
        // The socket is still in its rooms while this handler runs.
        s.leave(USERS_ROOM);
        let num_users = user_count(&io, &app).await;
        broadcast(&s, &app, "user left", json!({ "username": username, "numUsers": num_users }))
            .await;
    }
}

/// Sends to every socket of the namespace but the sender, as `socket.broadcast`.
async fn broadcast<A: Adapter>(s: &SocketRef<A>, app: &AppState, event: &str, data: Value) {
    count_out(s, app, event);
    let sent = s.broadcast().emit(event, &data).await;
    check_broadcast(&app.metrics, s.ns(), event, sent);
}

/// Named users across the cluster: this node's, and those the other servers report by
/// id (a Node.js server's sockets included, which socketioxide's `fetch_sockets` skips).
async fn user_count<A: Adapter>(io: &SocketIo<A>, app: &AppState) -> usize {
    let Some(ns) = io.of(Chat::PATH) else { return 0 };
    let local = ns.within(USERS_ROOM).sockets().len();
    let Some(cluster) = app.cluster() else { return local };
    match cluster.remote_sockets(Chat::PATH, vec![USERS_ROOM.to_owned()]).await {
        Ok(remote) => local + remote.len(),
        Err(e) => {
            tracing::warn!(error = %e, "chat user count: other nodes not counted");
            local
        }
    }
}

/// The user name of an `add user` payload: the name itself.
fn user_name(data: Value) -> Option<Nickname> {
    match data {
        Value::String(name) => Nickname::parse(name).ok(),
        _ => None,
    }
}

async fn add_user<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(nickname): Extension<Arc<NicknameSlot>>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "add user");
    let Some(username) = data.ok().and_then(user_name) else {
        return fail(&s, &app, "Bad payload: expected a user name");
    };
    // As in the guide, a second `add user` on the same socket is ignored.
    if !nickname.set_once(&username) {
        return;
    }
    s.join(USERS_ROOM);
    let num_users = user_count(&io, &app).await;
    emit(&s, &app, "login", &json!({ "numUsers": num_users }));
    broadcast(&s, &app, "user joined", json!({ "username": username, "numUsers": num_users }))
        .await;
}

async fn new_message<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(nickname): Extension<Arc<NicknameSlot>>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "new message");
    let Some(username) = nickname.get() else { return fail(&s, &app, "Add a user first") };
    let message = match data {
        Ok(Value::String(m)) if !m.is_empty() && m.chars().count() <= MAX_MESSAGE_CHARS => m,
        _ => return fail(&s, &app, "Bad payload: expected a message of 1-4096 characters"),
    };
    broadcast(&s, &app, "new message", json!({ "username": username, "message": message })).await;
}

async fn relay_presence<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    nickname: &NicknameSlot,
    event: &str,
) {
    count_in(s, app, event);
    match nickname.get() {
        Some(username) => broadcast(s, app, event, json!({ "username": username })).await,
        None => fail(s, app, "Add a user first"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(user_name(json!("Ann")).as_deref(), Some("Ann"));
        for bad in [json!({"username": "Ann"}), json!(""), json!("Ann "), json!(7), json!(null)] {
            assert_eq!(user_name(bad.clone()), None, "{bad}");
        }
    }
}
