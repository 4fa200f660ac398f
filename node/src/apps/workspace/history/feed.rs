//! Delivery of stored events to this node's sockets, each exactly once and in order.
//!
//! Every node runs one [`run`] task that takes the feed (the Redis channel, or the single
//! node's store) in offset order and hands each event to the lane of its room, which
//! offers it to the local members of the room. A socket's [`Feed`] remembers, per room,
//! the last offset it was sent (its cursor):
//! - an offset at or below the cursor is a duplicate and is skipped (a replayed event
//!   that also arrived live);
//! - an offset more than one past it means events were lost on the way (the feed's
//!   listener fell behind, a link dropped): they are read back from the store and sent
//!   first;
//! - while a recovering socket's replay is being sent, live events are held, and sent
//!   through the same rules once the replay is out ([`Feed::release`]).
//!
//! The common case, every member simply due, costs one room broadcast encoded once,
//! plus one cursor update per member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Socket;
use tokio::sync::{Notify, mpsc};

use super::{Delivery, History, Position, Range, Record};
use crate::core::metrics::Metrics;
use crate::core::reply::{Packet, check_broadcast, check_sent};
use crate::core::session::REPLAYING;

#[derive(Debug, Default)]
struct State {
    cursors: HashMap<String, Position>,
    /// Live events that arrived while the socket's replay was being sent.
    held: Option<Vec<Delivery>>,
}

/// One socket's delivery state, kept in its extensions.
#[derive(Debug, Default)]
pub struct Feed {
    state: Mutex<State>,
    /// Wakes [`Feed::reached`] when a cursor moves, while someone waits there.
    moved: Notify,
    waiting: AtomicUsize,
}

/// What became of an event offered to one socket.
enum Offer {
    /// Its cursor moved: it is due for the event, which the caller sends.
    Due,
    /// Its cursor moved, but it sent the event (an invalidation's sender).
    Origin,
    /// Already sent, held during a replay, or sent here with what filled its gap.
    Done,
    /// Events between the socket's cursor (given) and this one are missing: it waits
    /// until they are read back from the store.
    Gap(u64),
}

impl Feed {
    /// A feed that holds live events until [`Feed::release`]: for a socket whose missed
    /// events are about to be replayed.
    pub fn held() -> Self {
        let state = State { cursors: HashMap::new(), held: Some(Vec::new()) };
        Self { state: Mutex::new(state), ..Self::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `room` at `position` unless the socket was already sent something newer
    /// in that epoch.
    pub fn start_at(&self, room: &str, position: &Position) {
        let mut state = self.lock();
        match state.cursors.get_mut(room) {
            Some(cursor) if cursor.epoch == position.epoch => {
                cursor.offset = cursor.offset.max(position.offset);
            }
            _ => {
                state.cursors.insert(room.to_owned(), position.clone());
            }
        }
    }

    /// Waits (at most `limit`) until the socket was offered the event at `position` of
    /// `room`: the sender of a message gets its own copy before the ack, as with a
    /// Socket.IO broadcast.
    pub async fn reached(&self, room: &str, position: &Position, limit: Duration) {
        let past = |state: &State| {
            state
                .cursors
                .get(room)
                .is_none_or(|c| c.epoch != position.epoch || c.offset >= position.offset)
        };
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if past(&self.lock()) || tokio::time::timeout_at(deadline, moved).await.is_err() {
                break;
            }
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Forgets a room the socket left.
    pub fn forget(&self, room: &str) {
        self.lock().cursors.remove(room);
    }

    /// Offers `d` and moves the cursor. Without `backfill` a socket behind is reported
    /// ([`Offer::Gap`]) and a socket due for `d` is left to the caller ([`Offer::Due`]).
    /// With it (the records read back for a gap), the missing records and `d` are sent
    /// here, under the lock: a concurrent offer cannot slip between them.
    fn offer<A: Adapter>(
        &self,
        socket: &SocketRef<A>,
        d: &Delivery,
        payload: &RawValue,
        backfill: Option<&[Record]>,
        holding: bool,
        metrics: &Metrics,
    ) -> Offer {
        let mut state = self.lock();
        if holding && let Some(held) = state.held.as_mut() {
            held.push(d.clone());
            return Offer::Done;
        }
        let cursor = state.cursors.get(&d.room).filter(|c| c.epoch == d.epoch).map(|c| c.offset);
        let mut filled = false;
        if let Some(cursor) = cursor {
            if d.record.offset <= cursor {
                return Offer::Done;
            }
            if cursor + 1 < d.record.offset {
                let Some(backfill) = backfill else { return Offer::Gap(cursor) };
                let missing =
                    backfill.iter().filter(|r| r.offset > cursor && r.offset < d.record.offset);
                for record in missing {
                    let event = record.kind.event();
                    let sent = socket.emit(event, &record.payload(&d.epoch));
                    check_sent(metrics, socket.ns(), Packet::Broadcast, event, sent);
                    metrics.history_resent.with_label_values(&["gap"]).inc();
                }
                filled = true;
            }
        }
        // In place when the room and epoch are known: no allocation per socket and event.
        match state.cursors.get_mut(&d.room) {
            Some(cursor) if cursor.epoch == d.epoch => cursor.offset = d.record.offset,
            _ => {
                let position = Position { epoch: d.epoch.clone(), offset: d.record.offset };
                state.cursors.insert(d.room.clone(), position);
            }
        }
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.moved.notify_waiters();
        }
        // The sender of an invalidation is not sent its own; its cursor still moves, so
        // the event is not taken for a gap later.
        if d.skip.as_deref() == Some(socket.id.as_str()) {
            return Offer::Origin;
        }
        if !filled && backfill.is_none() {
            return Offer::Due;
        }
        let event = d.record.kind.event();
        check_sent(metrics, socket.ns(), Packet::Broadcast, event, socket.emit(event, payload));
        Offer::Done
    }

    /// Sends what was held during the replay, then lets live events through. Events
    /// arriving meanwhile are held too and sent in turn, so order is kept.
    pub async fn release<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        socket: &SocketRef<A>,
        history: Option<&History>,
        metrics: &Metrics,
    ) {
        // Out of the replaying room first: an event offered from now on is either held
        // (and sent below) or, once the gate is open, offered like to any member.
        if socket.rooms().iter().any(|r| r == REPLAYING) {
            socket.leave(REPLAYING);
        }
        loop {
            let held = {
                let mut state = self.lock();
                match state.held.as_mut() {
                    Some(held) if !held.is_empty() => std::mem::take(held),
                    _ => {
                        state.held = None;
                        return;
                    }
                }
            };
            for d in held {
                let sockets = [socket.clone()];
                match history {
                    Some(history) => {
                        deliver(io, socket.ns(), &sockets, history, &d, false, metrics).await;
                    }
                    None => tracing::debug!("held event without a store dropped"),
                }
            }
        }
    }
}

/// The feed of a socket, if it has one (sockets of `/` do once authenticated).
pub fn of<A: Adapter>(socket: &Socket<A>) -> Option<Arc<Feed>> {
    socket.extensions.get::<Arc<Feed>>()
}

/// Offers one event to `sockets` (the local members of its room). When every one of them
/// is simply due for it, it goes out as one local room broadcast, encoded once, leaving
/// out its sender and the sockets still replaying; otherwise each due socket is sent it
/// on its own. Sockets that missed earlier events get them first, read back from the
/// store once for all of them.
async fn deliver<A: Adapter>(
    io: &SocketIo<A>,
    ns: &str,
    sockets: &[SocketRef<A>],
    history: &History,
    d: &Delivery,
    holding: bool,
    metrics: &Metrics,
) {
    let payload = match serde_json::value::to_raw_value(&d.record.payload(&d.epoch)) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::warn!(error = %e, "stored event not serialisable; dropped");
            return;
        }
    };
    let event = d.record.kind.event();
    let mut due = Vec::with_capacity(sockets.len());
    let mut origin = None;
    let mut gapped = Vec::new();
    // A room broadcast reaches exactly the sockets judged here only if each is due, its
    // sender or replaying (the room broadcast leaves those two out).
    let mut whole_room = holding;
    for socket in sockets {
        let Some(feed) = of(socket) else {
            whole_room = false;
            continue;
        };
        match feed.offer(socket, d, &payload, None, holding, metrics) {
            Offer::Due => due.push(socket),
            Offer::Origin => origin = Some(socket),
            Offer::Done => whole_room = false,
            Offer::Gap(cursor) => {
                whole_room = false;
                gapped.push((socket, feed, cursor));
            }
        }
    }
    if whole_room && !due.is_empty() {
        let room = d.room.clone();
        let members = match origin {
            Some(sender) => Some(sender.to(room)),
            None => io.of(ns).map(|ns| ns.to(room)),
        };
        if let Some(members) = members {
            let sent = members.local().except(REPLAYING).emit(event, &*payload).await;
            check_broadcast(metrics, ns, event, sent);
        }
    } else {
        for socket in due {
            check_sent(metrics, ns, Packet::Broadcast, event, socket.emit(event, &*payload));
        }
    }
    let Some(from) = gapped.iter().map(|(_, _, cursor)| *cursor).min() else { return };
    let missing = usize::try_from(d.record.offset - from - 1).unwrap_or(usize::MAX);
    let backfill = match history.read(&d.room, Range::After(from, missing)).await {
        Ok(page) if page.position.epoch == d.epoch => page.records,
        Ok(_) => Vec::new(),
        Err(e) => {
            metrics.error(crate::core::metrics::ErrorKind::Redis).inc();
            tracing::warn!(error = %e, room = %d.room, "gap in the room's events not filled");
            Vec::new()
        }
    };
    for (socket, feed, _) in gapped {
        feed.offer(socket, d, &payload, Some(&backfill), holding, metrics);
    }
}

/// Takes the feed until it closes (shutdown), offering each event to the local members
/// of its room on namespace `ns`. Rooms are split into lanes, one task each, so busy rooms use
/// every core; one lane serves a room, so its members get its events in order.
pub async fn run<A: Adapter>(
    io: SocketIo<A>,
    ns: &'static str,
    history: History,
    mut feed: mpsc::UnboundedReceiver<Delivery>,
    metrics: Metrics,
) {
    let count = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, MAX_LANES);
    let lanes: Vec<_> = (0..count)
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            let worker =
                Lane { io: io.clone(), ns, history: history.clone(), metrics: metrics.clone() };
            tokio::spawn(worker.run(rx));
            tx
        })
        .collect();
    while let Some(d) = feed.recv().await {
        // A lane ends only with the node.
        let _ = lanes[lane_of(&d.room, count)].send(d);
    }
}

/// Most fan-out tasks per node.
const MAX_LANES: usize = 8;

/// One fan-out task and what it needs.
struct Lane<A: Adapter> {
    io: SocketIo<A>,
    ns: &'static str,
    history: History,
    metrics: Metrics,
}

impl<A: Adapter> Lane<A> {
    async fn run(self, mut feed: mpsc::UnboundedReceiver<Delivery>) {
        while let Some(d) = feed.recv().await {
            let Some(ns) = self.io.of(self.ns) else { continue };
            let sockets = ns.within(d.room.clone()).sockets();
            if !sockets.is_empty() {
                deliver(&self.io, self.ns, &sockets, &self.history, &d, true, &self.metrics).await;
            }
        }
    }
}

/// The lane of a room: a fixed function of its name.
fn lane_of(room: &str, count: usize) -> usize {
    let hash = room.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    hash % count
}

/// A replayed room: what to send, oldest first, and the position after it.
pub struct Replay {
    /// The room.
    pub room: String,
    /// Its epoch.
    pub epoch: String,
    /// The records missed.
    pub records: Vec<Record>,
}

impl Replay {
    /// How many events [`Replay::send`] sends.
    pub fn events(&self) -> usize {
        let messages = self.records.iter().filter(|r| r.kind == super::Kind::Message).count();
        let marker = usize::from(self.records.iter().any(|r| r.kind == super::Kind::Invalidate));
        messages + marker
    }

    /// Sends the missed messages in order, then one `ds invalidate {room, missed, offset,
    /// epoch}` for the invalidations missed: each only says "reload", so one is enough.
    /// Returns how many events were sent.
    pub fn send<A: Adapter>(&self, socket: &SocketRef<A>, feed: &Feed, metrics: &Metrics) -> usize {
        let mut sent = 0;
        let mut missed_invalidations = 0_usize;
        for record in &self.records {
            match record.kind {
                super::Kind::Message => {
                    let event = record.kind.event();
                    check_sent(
                        metrics,
                        socket.ns(),
                        Packet::Event,
                        event,
                        socket.emit(event, &record.payload(&self.epoch)),
                    );
                    sent += 1;
                }
                super::Kind::Invalidate => missed_invalidations += 1,
            }
        }
        // The marker comes last and carries the room's position after the replay, so
        // offsets never go back for a client that tracks them.
        let position = self.records.last().map_or(0, |r| r.offset);
        if missed_invalidations > 0 {
            let marker = serde_json::json!({
                "room": self.room,
                "missed": missed_invalidations,
                "offset": position,
                "epoch": self.epoch,
            });
            let event = super::Kind::Invalidate.event();
            check_sent(metrics, socket.ns(), Packet::Event, event, socket.emit(event, &marker));
            sent += 1;
        }
        metrics.history_resent.with_label_values(&["replay"]).inc_by(sent as u64);
        if let Some(last) = self.records.last() {
            feed.start_at(&self.room, &Position { epoch: self.epoch.clone(), offset: last.offset });
        }
        sent
    }
}

/// `Value` of a position for acks and the `recovery` event.
pub fn position_fields(position: &Position) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("offset".into(), position.offset.into());
    map.insert("epoch".into(), position.epoch.clone().into());
    map
}
