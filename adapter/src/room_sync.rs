//! The room channels of the dynamic sharded modes, kept in step with the
//! rooms and sockets of the namespace.
//!
//! socketioxide tells an adapter nothing when a socket connects or joins a
//! room (`socket.join` goes straight to the local room table), so the room
//! channels are reconciled: on a timer (`room_sync_interval`), and at once
//! after the adapter's own join/leave operations. Each pass subscribes the
//! missing channels and unsubscribes the stale ones, each in one driver call.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use socketioxide_core::adapter::{BroadcastFlags, BroadcastOptions, SocketEmitter};
use tokio::sync::{Notify, watch};

use crate::{
    ClusterAdapter,
    driver::{Driver, MessageSink, Subscription},
    proto::ShardedChannels,
};

/// The room channels a namespace subscribes to (dynamic modes).
#[derive(Debug)]
pub(crate) struct RoomSync {
    channels: Mutex<RoomChannels>,
    /// Wakes the sync task before its next tick.
    wake: Notify,
    /// Serializes passes, so a subscribe and an unsubscribe of the same
    /// channel never race.
    pass: tokio::sync::Mutex<()>,
    /// Counts finished passes, for [`RoomSync::ready`] to wait on.
    passes: watch::Sender<u64>,
}

/// What [`RoomSync`] knows of each room channel.
#[derive(Debug, Default)]
struct RoomChannels {
    /// Rooms (and socket ids) whose channel is subscribed.
    subscribed: HashSet<String>,
    /// The part of `subscribed` Redis has confirmed.
    confirmed: HashSet<String>,
    /// Rooms kept subscribed until the given instant whatever the local
    /// sockets: those a caller waits for before its socket is in the
    /// namespace (a connecting socket's own id and rooms).
    pinned: HashMap<String, Instant>,
}

impl Default for RoomSync {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            wake: Notify::new(),
            pass: tokio::sync::Mutex::new(()),
            passes: watch::Sender::new(0),
        }
    }
}

impl RoomSync {
    fn channels(&self) -> MutexGuard<'_, RoomChannels> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a pass now (rooms were changed by the adapter itself).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Forgets every room channel; returns their subscriptions (for close).
    pub(crate) fn take(&self, channels: &ShardedChannels) -> Vec<Subscription> {
        let mut state = self.channels();
        state.confirmed.clear();
        state.pinned.clear();
        state.subscribed.drain().map(|room| Subscription::Shard(channels.room(&room))).collect()
    }

    /// Waits until Redis confirmed the channel of every room in `rooms`,
    /// at most `timeout`. The rooms stay subscribed for `timeout` even if
    /// no local socket is in them yet, so a socket still connecting can
    /// wait for its own channels. Returns whether they all are confirmed.
    pub(crate) async fn ready(&self, rooms: &[String], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        {
            let mut state = self.channels();
            for room in rooms {
                let until = state.pinned.entry(room.clone()).or_insert(deadline);
                *until = (*until).max(deadline);
            }
        }
        let mut passes = self.passes.subscribe();
        loop {
            if rooms.iter().all(|room| self.channels().confirmed.contains(room)) {
                return true;
            }
            // A pass may have started before the rooms were pinned: ask for
            // another until one covers them.
            self.wake();
            match tokio::time::timeout_at(deadline.into(), passes.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the namespace closed.
                Ok(Err(_)) | Err(_) => {
                    return rooms.iter().all(|room| self.channels().confirmed.contains(room));
                }
            }
        }
    }
}

impl<E: SocketEmitter, D: Driver> ClusterAdapter<E, D> {
    /// Rooms whose channel this server must hear in a dynamic mode: every
    /// room with a local socket, and every local socket id, since Node
    /// publishes to a Roomcast socket (16-character id) on its own room
    /// channel (its `looksLikeASocketId` only knows 20-character ids).
    fn wanted_rooms(&self) -> HashSet<String> {
        let mut all = BroadcastOptions::default();
        all.add_flag(BroadcastFlags::Broadcast);
        let mut rooms: HashSet<String> =
            self.local.rooms(all.clone()).into_iter().map(|r| r.into_owned()).collect();
        rooms.extend(self.local.sockets(all).into_iter().map(|sid| sid.to_string()));
        rooms
    }

    /// One reconciliation pass of the room channels.
    pub(crate) async fn sync_rooms(&self, sink: &MessageSink) {
        let Some(channels) = self.core.mode.room_channels() else {
            return;
        };
        let _pass = self.rooms.pass.lock().await;
        let mut wanted = self.wanted_rooms();
        let (added, removed): (Vec<String>, Vec<String>) = {
            let state = &mut *self.rooms.channels();
            let now = Instant::now();
            state.pinned.retain(|_, until| *until > now);
            wanted.extend(state.pinned.keys().cloned());
            let added: Vec<String> = wanted.difference(&state.subscribed).cloned().collect();
            let removed: Vec<String> = state.subscribed.difference(&wanted).cloned().collect();
            // The driver keeps its routes whatever Redis answers and
            // subscribes again after a reconnection: the set follows the
            // routes, not the replies.
            state.subscribed.retain(|room| wanted.contains(room));
            state.confirmed.retain(|room| wanted.contains(room));
            // A subscription Redis did not confirm (it was away) is sent
            // again while someone waits for it; SSUBSCRIBE twice is harmless.
            let unconfirmed = state
                .pinned
                .keys()
                .filter(|room| state.subscribed.contains(*room) && !state.confirmed.contains(*room))
                .cloned()
                .collect::<Vec<_>>();
            state.subscribed.extend(added.iter().cloned());
            let mut added = added;
            added.extend(unconfirmed);
            (added, removed)
        };
        let channel = |room: &String| Subscription::Shard(channels.room(room));
        let driver = self.core.cluster.driver();
        if !added.is_empty() {
            let subs = added.iter().map(channel).collect();
            match driver.subscribe(subs, sink.clone()).await {
                // Passes are serialized: nothing unsubscribed them meanwhile.
                Ok(()) => self.rooms.channels().confirmed.extend(added.iter().cloned()),
                Err(e) => {
                    tracing::warn!(nsp = %self.core.nsp, error = %e, count = added.len(), "room channels not subscribed yet");
                }
            }
        }
        if !removed.is_empty() {
            let subs = removed.iter().map(channel).collect();
            if let Err(e) = driver.unsubscribe(subs).await {
                tracing::warn!(nsp = %self.core.nsp, error = %e, count = removed.len(), "room channels not unsubscribed");
            }
        }
        self.rooms.passes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Keeps the room channels of one namespace in step until it closes.
pub(crate) async fn room_sync_task<E: SocketEmitter, D: Driver>(
    adapter: Weak<ClusterAdapter<E, D>>,
    rooms: Arc<RoomSync>,
    sink: MessageSink,
    interval: std::time::Duration,
) {
    let mut tick = tokio::time::interval(interval.max(std::time::Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = rooms.wake.notified() => {}
        }
        let Some(adapter) = adapter.upgrade() else { return };
        if adapter.core.is_closed() {
            return;
        }
        adapter.sync_rooms(&sink).await;
    }
}
