//! The workspace protocol of seed 000 on namespace `/`: rooms, relayed messages and
//! invalidations, and the request controller.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, Extension, SocketRef, State, TryData};
use socketioxide::handler::{FromMessageParts, Value as PacketValue};
use socketioxide::socket::Sid;
use socketioxide::socket::Socket;

use super::reply::{
    ClientError, Code, Outcome, Packet, Reach, Reply, check_broadcast, check_sent, count_in,
    count_out,
};
use crate::requests::{self, Caller, Failure};
use crate::rooms::{self, RoomError};
use crate::session::{JoinOutcome, Member, RequestAdmission, RequestSlot};
use crate::state::AppState;

/// The namespace these handlers serve.
pub const NAMESPACE: &str = "/";

/// Registers the event handlers on an authenticated socket.
pub fn register<A: Adapter>(socket: &SocketRef<A>) {
    socket.on("join room", join_room::<A>);
    socket.on("leave room", leave_room::<A>);
    socket.on("request", request::<A>);
    socket.on("invalidate", invalidate::<A>);
    socket.on("sendMessage", send_message::<A>);
    socket.on_fallback(unknown_event::<A>);
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A room name from a payload: a string that follows the naming rules.
fn room_name(value: Option<&Value>) -> Result<&str, ClientError> {
    let name = value
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::new(Code::BadPayload, "a room name (string) is required"))?;
    rooms::check_name(name).map_err(|e| match e {
        RoomError::Invalid => ClientError::new(Code::RoomInvalid, e.to_string()),
        RoomError::Reserved => ClientError::new(Code::RoomForbidden, e.to_string()),
    })?;
    Ok(name)
}

/// The socket's rooms, sorted, as socketioxide records them: the one record of
/// membership, which a peer's `socketsJoin` / `socketsLeave` changes too.
pub fn socket_rooms<A: Adapter>(s: &Socket<A>) -> Vec<String> {
    let mut rooms: Vec<String> = s.rooms().into_iter().map(|r| r.into_owned()).collect();
    rooms.sort();
    rooms
}

/// A room the sender must be in.
fn member_room<'a, A: Adapter>(
    s: &Socket<A>,
    value: Option<&'a Value>,
) -> Result<&'a str, ClientError> {
    let room = room_name(value)?;
    if s.rooms().iter().any(|r| r == room) {
        Ok(room)
    } else {
        Err(ClientError::new(Code::NotMember, "join the room first"))
    }
}

/// Whether `name` is the id of a connected socket (its private room) in any namespace,
/// on any node of the cluster, Node.js servers included. This node's sockets are looked
/// up directly; the cluster is asked only about names an Engine.IO id could have. When
/// the cluster cannot answer in time the name is refused: an unknown answer must not
/// open someone's private room.
async fn is_private_room<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    name: &str,
) -> Result<bool, ClientError> {
    if let Ok(sid) = name.parse::<Sid>() {
        let local = super::NAMESPACES.iter().filter_map(|ns| io.of(*ns));
        if local.into_iter().any(|ns| ns.get_socket(sid).is_some()) {
            return Ok(true);
        }
    }
    let Some(cluster) = app.cluster().filter(|_| rooms::could_be_socket_id(name)) else {
        return Ok(false);
    };
    let asks = super::NAMESPACES.iter().map(|ns| cluster.has_socket(ns, name));
    match futures::future::try_join_all(asks).await {
        Ok(found) => Ok(found.into_iter().any(|f| f)),
        Err(e) => {
            tracing::warn!(error = %e, "private room check failed; join refused");
            Err(ClientError::new(
                Code::Unavailable,
                "the cluster cannot check this room name right now; try again",
            ))
        }
    }
}

/// The previous socket id a reconnecting client names: `auth.resume`, or `resume` in
/// the query string (Engine.IO 3 clients have no auth payload).
fn resume_id(auth: Option<&Value>, query: Option<&str>) -> Option<String> {
    let from_auth = auth.and_then(|a| a.get("resume")).and_then(Value::as_str).map(str::to_owned);
    let from_query = || {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("resume="))
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    };
    from_auth.or_else(from_query).filter(|id| id.parse::<Sid>().is_ok())
}

/// Gives a reconnecting client the rooms its previous socket had (a draining node's
/// ticket, or the previous socket's live row), only for the same login, so a leaked
/// socket id gives nobody else anything. Runs in the connect middleware, before the client
/// sees `connect`: a message sent to the room after that reaches it.
pub async fn resume<A: Adapter>(s: &SocketRef<A>, app: &AppState, auth: Option<&Value>) {
    let Some(previous) = resume_id(auth, s.req_parts().uri.query()) else { return };
    let Some(member) = s.extensions.get::<Arc<Member>>() else { return };
    let rooms = match app.db.resume_rooms(&previous, &member.identity.user).await {
        Ok(rooms) if rooms.is_empty() => return,
        Ok(rooms) => rooms,
        Err(e) => {
            app.metrics.errors.with_label_values(&["database"]).inc();
            tracing::warn!(error = %e, "resume ticket not read; rooms not restored");
            return;
        }
    };
    let max = app.config.rooms.max_per_socket;
    for room in rooms {
        // Names were checked when joined; a changed rule still applies.
        if rooms::check_name(&room).is_ok() {
            member.join_room(&room, max, || socket_rooms(s), || s.join(room.clone()));
        }
    }
    persist_rooms(app, s, &member).await;
    tracing::debug!(user = %member.identity.user, rooms = s.rooms().len(), "rooms resumed");
}

/// Rewrites the socket's session row with its current rooms.
pub async fn persist_rooms<A: Adapter>(app: &AppState, s: &Socket<A>, member: &Member) {
    let ttl = app.config.database.session_ttl;
    if let Err(e) = member.update_row(&app.db, ttl, || socket_rooms(s)).await {
        app.metrics.errors.with_label_values(&["database"]).inc();
        tracing::warn!(error = %e, user = %member.identity.user, "session row not updated");
    }
}

async fn join_room<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "join room");
    let outcome = async {
        let data = data.map_err(|_| ClientError::new(Code::BadPayload, "unreadable payload"))?;
        let room = room_name(Some(&data))?;
        if room == s.id.as_str() || is_private_room(&io, &app, room).await? {
            return Err(ClientError::new(Code::RoomForbidden, "this is a socket's private room"));
        }
        let max = app.config.rooms.max_per_socket;
        match member.join_room(room, max, || socket_rooms(&s), || s.join(room.to_owned())) {
            JoinOutcome::TooMany => {
                return Err(ClientError::new(Code::TooManyRooms, "leave a room first"));
            }
            JoinOutcome::Joined => persist_rooms(&app, &s, &member).await,
            JoinOutcome::AlreadyMember => {}
        }
        // The ack promises delivery of what other nodes send to the room from now on.
        super::rooms_ready(&app, NAMESPACE, vec![room.to_owned()]).await;
        Ok(fields(json!({ "room": room })))
    }
    .await;
    reply.send("join room", outcome, &app.metrics);
}

async fn leave_room<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "leave room");
    let outcome = async {
        let data = data.map_err(|_| ClientError::new(Code::BadPayload, "unreadable payload"))?;
        let room = member_room(&s, Some(&data))?;
        s.leave(room.to_owned());
        persist_rooms(&app, &s, &member).await;
        Ok(fields(json!({ "room": room })))
    }
    .await;
    reply.send("leave room", outcome, &app.metrics);
}

async fn invalidate<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "invalidate");
    let outcome: Outcome = async {
        let data = data.ok().filter(Value::is_object).ok_or_else(|| {
            ClientError::new(Code::BadPayload, "an object with a room is required")
        })?;
        let room = member_room(&s, data.get("room"))?.to_owned();
        count_out(&s, &app, "ds invalidate");
        let sent = s.to(room).emit("ds invalidate", &data).await;
        Ok(delivered(&s, &app, check_broadcast(&app.metrics, s.ns(), "ds invalidate", sent)))
    }
    .await;
    reply.send("invalidate", outcome, &app.metrics);
}

/// Largest `message` of a chat message, in bytes of its JSON.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

async fn send_message<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "sendMessage");
    let outcome = async {
        let data = data.ok().filter(Value::is_object).ok_or_else(|| {
            ClientError::new(Code::BadPayload, "an object {room, message} is required")
        })?;
        let message = match data.get("message") {
            Some(Value::String(text)) if !text.is_empty() => data["message"].clone(),
            Some(Value::Object(_)) => data["message"].clone(),
            _ => {
                return Err(ClientError::new(
                    Code::BadPayload,
                    "message must be a non-empty string or an object",
                ));
            }
        };
        if message.to_string().len() > MAX_MESSAGE_BYTES {
            return Err(ClientError::new(Code::BadPayload, "message is too large"));
        }
        let room = member_room(&s, data.get("room"))?.to_owned();
        let id = uuid::Uuid::new_v4().to_string();
        let out = json!({
            "id": id,
            "from": member.identity.user,
            "room": room,
            "message": message,
            "ts": chrono::Utc::now().timestamp_millis(),
        });
        count_out(&s, &app, "incomingMessage");
        let sent = s.within(room).emit("incomingMessage", &out).await;
        let mut reply =
            delivered(&s, &app, check_broadcast(&app.metrics, s.ns(), "incomingMessage", sent));
        reply.insert("id".into(), id.into());
        Ok(reply)
    }
    .await;
    reply.send("sendMessage", outcome, &app.metrics);
}

/// The extra fields of a room send's ack: none when it reached the cluster,
/// `delivered: "local"` (and counted) when the adapter is down and only this node's
/// members got it.
fn delivered<A: Adapter>(s: &SocketRef<A>, app: &AppState, reach: Reach) -> Map<String, Value> {
    match reach {
        Reach::Cluster => Map::new(),
        Reach::Local => {
            app.metrics.delivered_local.with_label_values(&[s.ns()]).inc();
            fields(json!({ "delivered": "local" }))
        }
    }
}

/// A `request` event as the socket's packet loop saw it. Extractors run inline, in
/// arrival order (the handler then runs in a task of its own), so the duplicate-uuid
/// check happens here: two requests with one uuid are told apart by arrival, not by
/// which task the runtime schedules first.
enum Admission {
    /// Parsed and holding one of the socket's request slots.
    Admitted(requests::Request, RequestSlot),
    /// Refused before it ran: a duplicate uuid, or too many in flight.
    Refused(requests::Request, Failure),
    /// Not a request.
    Invalid(ClientError),
}

impl<A: Adapter> FromMessageParts<A> for Admission {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut PacketValue,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let TryData(data) = TryData::<Value>::from_message_parts(s, v, ack_id)?;
        let request = match requests::Request::parse(data.ok()) {
            Ok(request) => request,
            Err(e) => return Ok(Admission::Invalid(e)),
        };
        // Handlers are registered after the member is attached, with the state.
        let (Some(member), Ok(State(app))) = (
            s.extensions.get::<Arc<Member>>(),
            State::<AppState>::from_message_parts(s, v, ack_id),
        ) else {
            return Ok(Admission::Invalid(ClientError::new(Code::Unavailable, "not ready")));
        };
        let max = app.config.requests.max_in_flight_per_socket;
        Ok(match member.begin_request(&request.uuid, max) {
            RequestAdmission::Admitted(slot) => Admission::Admitted(request, slot),
            RequestAdmission::Duplicate => {
                let refused =
                    Failure::new(Code::DuplicateRequest, "this uuid is already in flight");
                Admission::Refused(request, refused)
            }
            RequestAdmission::TooMany => {
                let message = format!("at most {max} requests may be in flight on one socket");
                Admission::Refused(request, Failure::new(Code::TooManyRequests, message))
            }
        })
    }
}

async fn request<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    reply: Reply<A>,
    admission: Admission,
) {
    count_in(&s, &app, "request");
    match admission {
        Admission::Invalid(e) => reply.send("request", Err(e), &app.metrics),
        Admission::Refused(request, refused) => answer(&s, &app, reply, &request, Err(refused)),
        Admission::Admitted(request, slot) => {
            let caller = Caller { user: member.identity.user.clone(), rooms: socket_rooms(&s) };
            let outcome = app.requests.dispatch(&caller, &request).await;
            // Freed before the answer goes out: a client that sends its next request as
            // soon as it has the answer finds the slot free.
            drop(slot);
            answer(&s, &app, reply, &request, outcome);
        }
    }
}

/// Sends a request's outcome as `request <uuid>` and in the ack.
fn answer<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    reply: Reply<A>,
    request: &requests::Request,
    outcome: Result<Value, Failure>,
) {
    let body = match &outcome {
        Ok(result) => json!({ "uuid": request.uuid, "ok": true, "result": result }),
        Err(e) => json!({ "uuid": request.uuid, "ok": false, "error": e.to_json() }),
    };
    if let Err(e) = &outcome {
        // Worker codes are not a bounded set; they count as `handler_error`.
        let code = if Code::is_known(&e.code) { e.code.as_str() } else { "handler_error" };
        app.metrics.errors.with_label_values(&[code]).inc();
    }
    count_out(s, app, "request reply");
    let sent = s.emit(format!("request {}", request.uuid), &body);
    check_sent(&app.metrics, s.ns(), Packet::Event, "request reply", sent);
    reply.ack("request", &body, &app.metrics);
}

async fn unknown_event<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Event(event): Event,
    reply: Reply<A>,
) {
    count_in(&s, &app, "unknown");
    // The name is the client's; keep what is echoed back short.
    let event: String = event.chars().take(64).collect();
    let message = format!("unknown event {event:?}");
    reply.send(&event, Err(ClientError::new(Code::UnknownEvent, message)), &app.metrics);
}
