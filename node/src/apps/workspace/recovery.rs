//! Connection recovery on `/`: a reconnecting client's rooms, and the events it missed.
//!
//! It happens in two steps around CONNECT. In the connect middleware, [`prepare`]
//! checks and uses up the credential and joins the previous socket's rooms, with the
//! socket's feed holding live events. Once CONNECT is out, [`complete`] sends `recovery`
//! (the next credential and the outcome per room), then each room's missed events in
//! order, then what was held meanwhile: nothing new can overtake the replay, and nothing
//! replayed is sent twice.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use super::is_private_room;
use super::credential::{self, Claim, Refusal, RoomReason};
use super::history::feed::{self, Feed, Replay};
use super::history::{History, Position, Range};
use crate::core::metrics::ErrorKind;
use crate::core::session::{JoinOutcome, Member, REPLAYING};
use crate::core::session::{persist_rooms, socket_rooms};
use crate::core::state::AppState;
use crate::protocol::room;

/// The credential issued to a socket at connect, for its `recovery` event.
#[derive(Debug, Clone)]
pub struct IssuedToken(pub String);

/// What the middleware decided, for [`complete`] to report and replay.
#[derive(Debug, Default, Clone)]
struct Pending {
    /// The client asked to recover (`auth.recover`).
    asked: bool,
    /// Why nothing was recovered, when it asked.
    refusal: Option<Refusal>,
    /// The previous socket's rooms, and those the client named.
    rooms: Vec<(String, Plan)>,
    /// The socket the accepted credential named, closed once this one is up.
    previous: Option<String>,
}

#[derive(Debug, Clone)]
enum Plan {
    /// Joined again; replay from the client's position, if it gave one.
    Joined(Option<Claim>),
    /// Not joined.
    Refused(RoomReason),
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
    from_auth.or_else(from_query).filter(|id| id.parse::<socketioxide::socket::Sid>().is_ok())
}

/// The rooms a client gets back: with `auth.recover`, those of the socket its credential
/// names (used up here); with `auth.resume`, a drained or gone socket's rooms for the
/// same login, without replay. Runs in the connect middleware, before CONNECT.
pub async fn prepare<A: Adapter>(
    s: &SocketRef<A>,
    io: &SocketIo<A>,
    app: &AppState,
    auth: Option<&Value>,
) {
    s.extensions.insert(Arc::new(Feed::held()));
    let Some(member) = s.extensions.get::<Arc<Member>>() else { return };
    let user = &member.identity.user;
    let max = app.config.rooms.max_per_socket;
    let mut pending = Pending::default();
    let previous = if let Some(recover) = auth.and_then(|a| a.get("recover")) {
        pending.asked = true;
        match credential::parse(recover, max) {
            Err(refusal) => Err(refusal),
            Ok(ask) => match app.db.take_recovery(&ask.sid, user, &ask.hash).await {
                Ok(Some(rooms)) => {
                    pending.previous = Some(ask.sid);
                    Ok((rooms, Some(ask.rooms)))
                }
                Ok(None) => Err(Refusal::InvalidCredential),
                Err(e) => {
                    app.metrics.error(ErrorKind::Database).inc();
                    tracing::warn!(error = %e, "recovery credential not checked");
                    Err(Refusal::Unavailable)
                }
            },
        }
    } else if let Some(previous) = resume_id(auth, s.req_parts().uri.query()) {
        match app.db.resume_rooms(&previous, user).await {
            Ok(rooms) => Ok((rooms, None)),
            Err(e) => {
                app.metrics.error(ErrorKind::Database).inc();
                tracing::warn!(error = %e, "resume ticket not read; rooms not restored");
                Ok((Vec::new(), None))
            }
        }
    } else {
        Ok((Vec::new(), None))
    };
    match previous {
        Err(refusal) => pending.refusal = Some(refusal),
        Ok((rooms, claims)) => {
            let mut claims = claims.unwrap_or_default();
            if !rooms.is_empty() {
                // Room broadcasts leave it out until its replay is out (`Feed::release`).
                s.join(REPLAYING);
            }
            for room in rooms {
                let claim = claims.remove(&room);
                // Names were checked when joined; a changed rule still applies, and a name
                // may have become a socket's private room (or been made one by a peer's
                // socketsJoin): the same checks as `join room`, failing closed.
                let allowed = room::check_name(&room).is_ok()
                    && matches!(is_private_room(io, app, &room).await, Ok(false));
                let joined = allowed
                    && member.join_room(&room, max, || socket_rooms(s), || s.join(room.clone()))
                        != JoinOutcome::TooMany;
                let plan = if joined {
                    Plan::Joined(claim)
                } else {
                    Plan::Refused(RoomReason::RoomForbidden)
                };
                pending.rooms.push((room, plan));
            }
            // Named by the client, but not rooms of the socket it continues.
            for room in claims.into_keys() {
                pending.rooms.push((room, Plan::Refused(RoomReason::NotMember)));
            }
            if !pending.rooms.is_empty() {
                persist_rooms(app, s, &member).await;
            }
        }
    }
    s.extensions.insert(pending);
}

/// One room's outcome in the `recovery` event.
struct Settled {
    reason: Option<RoomReason>,
    position: Option<Position>,
    replay: Option<Replay>,
}

impl Settled {
    fn refused(reason: RoomReason, position: Option<Position>) -> Self {
        Self { reason: Some(reason), position, replay: None }
    }

    fn to_json(&self, replayed: usize) -> Value {
        let mut out = Map::new();
        out.insert("recovered".into(), self.reason.is_none().into());
        if let Some(reason) = self.reason {
            out.insert("reason".into(), reason.as_str().into());
        }
        if let Some(position) = &self.position {
            out.extend(feed::position_fields(position));
        }
        out.insert("replayed".into(), replayed.into());
        Value::Object(out)
    }
}

/// Decides what one rejoined room gets: its missed events, or why not.
async fn settle(app: &AppState, feed: &Feed, room: &str, claim: Option<Claim>) -> Settled {
    let Some(history) = History::of_room(app, room) else {
        return Settled::refused(RoomReason::NoHistory, None);
    };
    let after = match &claim {
        Some(Claim::At { offset, .. }) => *offset,
        _ => 0,
    };
    let size = app.config.history.size;
    let page = match history.read(room, Range::After(after, size)).await {
        Ok(page) => page,
        Err(e) => {
            app.metrics.error(ErrorKind::Redis).inc();
            tracing::warn!(error = %e, room, "history not read; room rejoined without replay");
            return Settled::refused(RoomReason::HistoryUnavailable, None);
        }
    };
    let position = page.position;
    feed.start_at(room, &position);
    let Some(Claim::At { offset, epoch }) = claim else {
        let reason = if claim.is_none() { RoomReason::NoOffset } else { RoomReason::BadOffset };
        return Settled::refused(reason, Some(position));
    };
    if epoch != position.epoch {
        return Settled::refused(RoomReason::EpochChanged, Some(position));
    }
    if offset > position.offset {
        return Settled::refused(RoomReason::BadOffset, Some(position));
    }
    // Everything after the client's offset must still be there, without a hole.
    let complete = offset == position.offset
        || (page.records.first().map(|r| r.offset) == Some(offset + 1)
            && page.records.last().map(|r| r.offset) == Some(position.offset));
    if !complete {
        return Settled::refused(RoomReason::GapTooLarge, Some(position));
    }
    let replay =
        Replay { room: room.to_owned(), epoch: position.epoch.clone(), records: page.records };
    Settled { reason: None, position: Some(position), replay: Some(replay) }
}

/// Runs once CONNECT is out: sends `recovery`, the replay, then what was held.
pub async fn complete<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, app: AppState) {
    let Some(feed) = feed::of(&s) else { return };
    let pending = s.extensions.remove::<Pending>().unwrap_or_default();
    let token = s.extensions.get::<IssuedToken>().map(|t| t.0);
    let mut settled = Vec::with_capacity(pending.rooms.len());
    for (room, plan) in pending.rooms {
        let outcome = match plan {
            Plan::Refused(reason) => Settled::refused(reason, None),
            Plan::Joined(claim) => settle(&app, &feed, &room, claim).await,
        };
        settled.push((room, outcome));
    }
    let mut rooms = Map::new();
    let mut all = true;
    for (room, outcome) in &settled {
        all &= outcome.reason.is_none();
        let replayed = outcome.replay.as_ref().map_or(0, Replay::events);
        rooms.insert(room.clone(), outcome.to_json(replayed));
    }
    let mut event = json!({
        "token": token,
        "recovered": pending.asked && pending.refusal.is_none() && all,
        "rooms": rooms,
    });
    if let Some(refusal) = pending.refusal {
        event["reason"] = refusal.as_str().into();
    }
    if pending.asked {
        let result = match (pending.refusal, all) {
            (Some(_), _) => "refused",
            (None, true) => "recovered",
            (None, false) => "partial",
        };
        app.metrics.recoveries.with_label_values(&[result]).inc();
    }
    crate::core::reply::emit(&s, &app, "recovery", &event);
    for replay in settled.iter().filter_map(|(_, o)| o.replay.as_ref()) {
        replay.send(&s, &feed, &app.metrics);
    }
    feed.release(&io, &s, History::of_node(&app), &app.metrics).await;
    // The client came back before the server noticed its old transport was dead: that
    // socket, wherever it is, is closed now rather than at its ping timeout.
    if let Some(previous) = pending.previous
        && let Err(e) = s.to(previous).disconnect().await
    {
        tracing::debug!(error = %e, "previous socket not closed");
    }
}
