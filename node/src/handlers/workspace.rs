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

use super::reply::{ClientError, Code, Outcome, Reply, count_in, count_out};
use crate::requests::{self, Caller, Failure};
use crate::rooms::{self, RoomError};
use crate::session::{JoinOutcome, Member};
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

/// A room the sender must be in.
fn member_room<'a>(member: &Member, value: Option<&'a Value>) -> Result<&'a str, ClientError> {
    let room = room_name(value)?;
    if member.is_in(room) {
        Ok(room)
    } else {
        Err(ClientError::new(Code::NotMember, "join the room first"))
    }
}

/// Whether `name` is the id of a connected socket anywhere in the cluster, i.e. its
/// private room. Only names shaped like a socket id cost a cluster round trip.
async fn is_socket_id<A: Adapter>(io: &SocketIo<A>, name: &str) -> bool {
    let Ok(sid) = name.parse::<Sid>() else { return false };
    if io.get_socket(sid).is_some() {
        return true;
    }
    // The cluster adapter delivers a room named after a socket id to that socket, so
    // the room's members include it wherever it is connected.
    match io.within(name.to_owned()).fetch_sockets().await {
        Ok(sockets) => sockets.iter().any(|socket| socket.data().id == sid),
        // When the cluster cannot tell, refusing is the safe answer.
        Err(_) => true,
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
    for room in rooms {
        // Names were checked when joined; a changed rule still applies.
        if rooms::check_name(&room).is_ok()
            && member.add_room(&room, app.config.rooms.max_per_socket) == JoinOutcome::Joined
        {
            s.join(room);
        }
    }
    persist_rooms(app, &member).await;
    tracing::debug!(user = %member.identity.user, rooms = member.room_list().len(), "rooms resumed");
}

async fn persist_rooms(app: &AppState, member: &Member) {
    if let Err(e) = member.update_row(&app.db, app.config.database.session_ttl).await {
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
        if room == s.id.as_str() || is_socket_id(&io, room).await {
            return Err(ClientError::new(Code::RoomForbidden, "this is a socket's private room"));
        }
        match member.add_room(room, app.config.rooms.max_per_socket) {
            JoinOutcome::TooMany => {
                return Err(ClientError::new(Code::TooManyRooms, "leave a room first"));
            }
            JoinOutcome::Joined => {
                s.join(room.to_owned());
                persist_rooms(&app, &member).await;
            }
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
        let room = member_room(&member, Some(&data))?;
        member.remove_room(room);
        s.leave(room.to_owned());
        persist_rooms(&app, &member).await;
        Ok(fields(json!({ "room": room })))
    }
    .await;
    reply.send("leave room", outcome, &app.metrics);
}

async fn invalidate<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "invalidate");
    let outcome: Outcome = async {
        let data = data.ok().filter(Value::is_object).ok_or_else(|| {
            ClientError::new(Code::BadPayload, "an object with a room is required")
        })?;
        let room = member_room(&member, data.get("room"))?.to_owned();
        count_out(&s, &app, "ds invalidate");
        if let Err(e) = s.to(room).emit("ds invalidate", &data).await {
            tracing::warn!(error = %e, "ds invalidate not fully delivered");
        }
        Ok(Map::new())
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
        let room = member_room(&member, data.get("room"))?.to_owned();
        let id = uuid::Uuid::new_v4().to_string();
        let out = json!({
            "id": id,
            "from": member.identity.user,
            "room": room,
            "message": message,
            "ts": chrono::Utc::now().timestamp_millis(),
        });
        count_out(&s, &app, "incomingMessage");
        if let Err(e) = s.within(room).emit("incomingMessage", &out).await {
            tracing::warn!(error = %e, "incomingMessage not fully delivered");
        }
        Ok(fields(json!({ "id": id })))
    }
    .await;
    reply.send("sendMessage", outcome, &app.metrics);
}

/// A `request` event as the socket's packet loop saw it. Extractors run inline, in
/// arrival order (the handler then runs in a task of its own), so the duplicate-uuid
/// check happens here: two requests with one uuid are told apart by arrival, not by
/// which task the runtime schedules first.
enum Admission {
    /// Parsed and marked in flight on the socket.
    Admitted(requests::Request),
    /// Its uuid is already in flight on this socket.
    Duplicate(requests::Request),
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
        Ok(match s.extensions.get::<Arc<Member>>() {
            Some(member) if member.begin_request(&request.uuid) => Admission::Admitted(request),
            Some(_) => Admission::Duplicate(request),
            // Handlers are registered after the member is attached.
            None => Admission::Invalid(ClientError::new(Code::Unavailable, "not ready")),
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
        Admission::Duplicate(request) => {
            let refused = Failure::new(Code::DuplicateRequest, "this uuid is already in flight");
            answer(&s, &app, reply, &request, Err(refused));
        }
        Admission::Admitted(request) => {
            let caller = Caller { user: member.identity.user.clone(), rooms: member.room_list() };
            let outcome = app.requests.dispatch(&caller, &request).await;
            member.end_request(&request.uuid);
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
    if let Err(e) = s.emit(format!("request {}", request.uuid), &body) {
        tracing::debug!(error = %e, "request reply not delivered");
    }
    reply.ack(&body);
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
