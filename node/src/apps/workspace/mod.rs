//! The workspace protocol of seed 000 on namespace `/`: rooms, relayed messages and
//! invalidations, and the request controller; with the room history those messages
//! are kept in ([`history`]) and connection recovery on top of it ([`recovery`]).

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::Extensions;
use serde_json::{Map, Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, Extension, SocketRef, State, TryData};
use socketioxide::handler::{FromMessageParts, Value as PacketValue};
use socketioxide::socket::Sid;
use socketioxide::socket::Socket;

use super::{App, StartError};
use crate::core::metrics::ErrorKind;
use crate::core::reply::{Packet, Reach, Reply, check_broadcast, check_sent, count_in, count_out};
use crate::core::requests::Caller;
use crate::core::session::{
    JoinOutcome, Member, RequestAdmission, RequestSlot, persist_rooms, socket_rooms,
};
use crate::core::state::AppState;
use crate::protocol::error::{ClientError, Code, Outcome};
use crate::protocol::request::Request;
use crate::protocol::room::{self, RoomName};

pub mod credential;
pub mod history;
pub mod payload;
pub mod recovery;

use history::feed;
use history::{History, Kind, Position};
use payload::{HistoryQuery, Invalidate, SendMessage};

/// The workspace app.
pub struct Workspace;

impl App for Workspace {
    const PATH: &'static str = "/";

    fn register<A: Adapter>(socket: &SocketRef<A>) {
        socket.on("join room", join_room::<A>);
        socket.on("leave room", leave_room::<A>);
        socket.on("request", request::<A>);
        socket.on("invalidate", invalidate::<A>);
        socket.on("sendMessage", send_message::<A>);
        socket.on("history", history::<A>);
        socket.on_fallback(unknown_event::<A>);
    }

    /// The room history: its store, and the task that feeds this node's sockets.
    async fn start<A: Adapter>(io: SocketIo<A>, app: AppState) -> Result<Extensions, StartError> {
        let mut services = Extensions::new();
        if let Some(history) = History::start(&io, &app, Self::PATH).await? {
            services.insert(history);
        }
        Ok(services)
    }

    async fn stop(app: AppState) {
        if let Some(history) = History::of_node(&app) {
            history.close().await;
        }
    }

    /// Every socket gets a recovery credential; its row keeps the secret's hash.
    fn admit<A: Adapter>(socket: &SocketRef<A>, member: Member) -> Member {
        let issued = credential::issue(socket.id.as_str());
        socket.extensions.insert(recovery::IssuedToken(issued.token));
        member.with_recovery(issued.hash)
    }

    async fn prepare<A: Adapter>(
        socket: &SocketRef<A>,
        io: &SocketIo<A>,
        app: &AppState,
        auth: Option<&Value>,
    ) {
        recovery::prepare(socket, io, app, auth).await;
    }

    async fn connected<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, app: AppState) {
        recovery::complete(socket, io, app).await;
    }
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Refuses a room the sender is not in.
fn check_member<A: Adapter>(s: &Socket<A>, room: &RoomName) -> Result<(), ClientError> {
    if s.rooms().iter().any(|r| r == room.as_str()) {
        Ok(())
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
        let local = super::paths().into_iter().filter_map(|ns| io.of(ns));
        if local.into_iter().any(|ns| ns.get_socket(sid).is_some()) {
            return Ok(true);
        }
    }
    let Some(cluster) = app.cluster().filter(|_| room::could_be_socket_id(name)) else {
        return Ok(false);
    };
    let asks = super::paths().into_iter().map(|ns| cluster.has_socket(ns, name));
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
        let room = payload::room_event(data.ok())?;
        if room.as_str() == s.id.as_str() || is_private_room(&io, &app, &room).await? {
            return Err(ClientError::new(Code::RoomForbidden, "this is a socket's private room"));
        }
        let max = app.config.rooms.max_per_socket;
        match member.join_room(&room, max, || socket_rooms(&s), || s.join(room.to_string())) {
            JoinOutcome::TooMany => {
                return Err(ClientError::new(Code::TooManyRooms, "leave a room first"));
            }
            JoinOutcome::Joined => persist_rooms(&app, &s, &member).await,
            JoinOutcome::AlreadyMember => {}
        }
        // The ack promises delivery of what other nodes send to the room from now on.
        crate::core::connect::rooms_ready(&app, Workspace::PATH, vec![room.to_string()]).await;
        let mut ack = fields(json!({ "room": room }));
        if let Some(position) = start_position(&s, &app, &room).await {
            ack.extend(feed::position_fields(&position));
        }
        Ok(ack)
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
        let room = payload::room_event(data.ok())?;
        check_member(&s, &room)?;
        s.leave(room.to_string());
        if let Some(feed) = feed::of(&s) {
            feed.forget(&room);
        }
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
        let Invalidate { room, data } = Invalidate::parse(data.ok())?;
        check_member(&s, &room)?;
        count_out(&s, &app, "ds invalidate");
        if store(&s, &app, &room, Kind::Invalidate, &data).await.is_some() {
            return Ok(Map::new());
        }
        let sent = s.to(String::from(room)).emit("ds invalidate", &data).await;
        Ok(delivered(&s, &app, check_broadcast(&app.metrics, s.ns(), "ds invalidate", sent)))
    }
    .await;
    reply.send("invalidate", outcome, &app.metrics);
}

async fn send_message<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "sendMessage");
    let outcome = async {
        let SendMessage { room, message } = SendMessage::parse(data.ok())?;
        check_member(&s, &room)?;
        let id = uuid::Uuid::new_v4().to_string();
        let out = json!({
            "id": id,
            "from": member.identity.user,
            "room": room,
            "message": message,
            "ts": chrono::Utc::now().timestamp_millis(),
        });
        count_out(&s, &app, "incomingMessage");
        let mut reply = if let Some(position) = store(&s, &app, &room, Kind::Message, &out).await {
            // As with a broadcast, the sender has its own copy before the ack.
            if let Some(feed) = feed::of(&s) {
                feed.reached(&room, &position, OWN_COPY_WAIT).await;
            }
            Map::new()
        } else {
            let sent = s.within(String::from(room)).emit("incomingMessage", &out).await;
            delivered(&s, &app, check_broadcast(&app.metrics, s.ns(), "incomingMessage", sent))
        };
        reply.insert("id".into(), id.into());
        Ok(reply)
    }
    .await;
    reply.send("sendMessage", outcome, &app.metrics);
}

/// Where a socket that just joined `room` starts: the room's position, which the join
/// ack tells the client (its position to recover from if nothing arrives before a drop).
async fn start_position<A: Adapter>(s: &Socket<A>, app: &AppState, room: &str) -> Option<Position> {
    let history = History::of_room(app, room)?;
    match history.position(room).await {
        Ok(position) => {
            if let Some(feed) = feed::of(s) {
                feed.start_at(room, &position);
            }
            Some(position)
        }
        Err(e) => {
            app.metrics.error(ErrorKind::Redis).inc();
            tracing::warn!(error = %e, room, "room position not read");
            None
        }
    }
}

/// The longest a `sendMessage` ack waits for the sender's own copy.
const OWN_COPY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Stores a room event in the room's history, which delivers it to every member on
/// every node; its position. None when the room keeps none or the store failed: the
/// caller then broadcasts it as before, unstored.
async fn store<A: Adapter>(
    s: &Socket<A>,
    app: &AppState,
    room: &str,
    kind: Kind,
    data: &Value,
) -> Option<Position> {
    let history = History::of_room(app, room)?;
    let origin = (kind == Kind::Invalidate).then(|| s.id.to_string());
    match history.append(room, kind, data, origin).await {
        Ok(position) => {
            // Node.js servers in the cluster have no history: they get their copy with
            // a flag that makes Roomcast servers skip it.
            if let Some(cluster) = app.cluster() {
                let args =
                    vec![history::stamped(data, position.offset, &position.epoch)];
                let rooms = vec![room.to_owned()];
                if let Err(e) =
                    cluster.broadcast_to_peers(Workspace::PATH, rooms, kind.event(), args).await
                {
                    tracing::warn!(error = %e, room, "room event not sent to Node.js servers");
                }
            }
            Some(position)
        }
        Err(e) => {
            app.metrics.error(ErrorKind::Redis).inc();
            tracing::warn!(error = %e, room, "room event not stored; sent without history");
            None
        }
    }
}

/// `history {room, limit?, before?, after?}`: a page of the room's stored events,
/// oldest first, for its members.
async fn history<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    reply: Reply<A>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "history");
    let outcome = async {
        let HistoryQuery { room, range } = HistoryQuery::parse(data.ok())?;
        check_member(&s, &room)?;
        let Some(store) = History::of_room(&app, &room) else {
            return Err(ClientError::new(Code::NoHistory, "this room keeps no history"));
        };
        let range = range?;
        let page = store.read(&room, range).await.map_err(|e| {
            app.metrics.error(ErrorKind::Redis).inc();
            tracing::warn!(error = %e, room = room.as_str(), "history not read");
            ClientError::new(Code::Unavailable, "the history store is unavailable; try again")
        })?;
        let epoch = page.position.epoch.clone();
        let messages: Vec<Value> = page
            .records
            .iter()
            .map(|r| json!({ "event": r.kind.event(), "data": r.payload(&epoch) }))
            .collect();
        let mut ack = fields(json!({ "room": room }));
        ack.extend(feed::position_fields(&page.position));
        ack.insert("messages".into(), messages.into());
        Ok(ack)
    }
    .await;
    reply.send("history", outcome, &app.metrics);
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
    Admitted(Request, RequestSlot),
    /// Refused before it ran: a duplicate uuid, or too many in flight.
    Refused(Request, ClientError),
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
        let request = match Request::parse(data.ok()) {
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
                    ClientError::new(Code::DuplicateRequest, "this uuid is already in flight");
                Admission::Refused(request, refused)
            }
            RequestAdmission::TooMany => {
                let message = format!("at most {max} requests may be in flight on one socket");
                Admission::Refused(request, ClientError::new(Code::TooManyRequests, message))
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
    request: &Request,
    outcome: Result<Value, ClientError>,
) {
    let body = match &outcome {
        Ok(result) => json!({ "uuid": request.uuid, "ok": true, "result": result }),
        Err(e) => json!({ "uuid": request.uuid, "ok": false, "error": e.to_json() }),
    };
    if let Err(e) = &outcome {
        app.metrics.error(ErrorKind::of(&e.code)).inc();
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
