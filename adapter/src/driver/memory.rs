//! An in-process bus with Redis pub/sub semantics, for tests and single
//! process clusters: each [`MemoryDriver`] is one "connection".

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;

use super::{Driver, DriverError, Message, MessageSink, Subscription};

/// The shared bus. Clone it to hand it to several drivers.
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    state: Arc<Mutex<BusState>>,
}

#[derive(Debug, Default)]
struct BusState {
    next_id: u64,
    conns: HashMap<u64, HashMap<Subscription, MessageSink>>,
    down: bool,
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a new connection to the bus.
    pub fn connect(&self) -> MemoryDriver {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.conns.insert(id, HashMap::new());
        MemoryDriver { bus: self.clone(), id }
    }

    /// Simulates an outage: while down, every command fails and nothing is
    /// delivered. Subscriptions survive, as after a Redis reconnection.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    fn lock(&self) -> MutexGuard<'_, BusState> {
        // The state stays consistent across a panic in a test thread.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection to a [`MemoryBus`]; closes when dropped.
#[derive(Debug)]
pub struct MemoryDriver {
    bus: MemoryBus,
    id: u64,
}

impl Drop for MemoryDriver {
    fn drop(&mut self) {
        self.bus.lock().conns.remove(&self.id);
    }
}

impl MemoryDriver {
    fn check_up(&self) -> Result<(), DriverError> {
        if self.bus.lock().down { Err(DriverError::Unavailable) } else { Ok(()) }
    }

    fn send(&self, channel: String, payload: Vec<u8>, sharded: bool) -> Result<(), DriverError> {
        let targets: Vec<MessageSink> = {
            let state = self.bus.lock();
            if state.down {
                return Err(DriverError::Unavailable);
            }
            // Like Redis: one delivery per matching subscription; shard and
            // classic channels are apart.
            state
                .conns
                .values()
                .flat_map(|subs| subs.iter())
                .filter(|(sub, _)| matches!(sub, Subscription::Shard(_)) == sharded)
                .filter(|(sub, _)| sub.matches(&channel))
                .map(|(_, sink)| sink.clone())
                .collect()
        };
        let payload = Bytes::from(payload);
        for sink in targets {
            sink.deliver(Message { channel: channel.clone(), payload: payload.clone() });
        }
        Ok(())
    }
}

impl Driver for MemoryDriver {
    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), DriverError> {
        self.send(channel, payload, false)
    }

    async fn spublish(&self, channel: String, payload: Vec<u8>) -> Result<(), DriverError> {
        self.send(channel, payload, true)
    }

    async fn subscribe(
        &self,
        subs: Vec<Subscription>,
        sink: MessageSink,
    ) -> Result<(), DriverError> {
        let mut state = self.bus.lock();
        if let Some(conn) = state.conns.get_mut(&self.id) {
            for sub in subs {
                conn.insert(sub, sink.clone());
            }
        }
        if state.down { Err(DriverError::Unavailable) } else { Ok(()) }
    }

    async fn unsubscribe(&self, subs: Vec<Subscription>) -> Result<(), DriverError> {
        if let Some(conn) = self.bus.lock().conns.get_mut(&self.id) {
            for sub in &subs {
                conn.remove(sub);
            }
        }
        self.check_up()
    }

    async fn numsub(&self, channel: String) -> Result<u64, DriverError> {
        self.check_up()?;
        let state = self.bus.lock();
        let sub = Subscription::Channel(channel);
        Ok(state.conns.values().filter(|subs| subs.contains_key(&sub)).count() as u64)
    }

    async fn shard_numsub(&self, channel: String) -> Result<u64, DriverError> {
        self.check_up()?;
        let state = self.bus.lock();
        let sub = Subscription::Shard(channel);
        Ok(state.conns.values().filter(|subs| subs.contains_key(&sub)).count() as u64)
    }

    fn is_connected(&self) -> bool {
        self.check_up().is_ok()
    }

    async fn close(&self) {
        if let Some(conn) = self.bus.lock().conns.get_mut(&self.id) {
            conn.clear();
        }
    }
}
