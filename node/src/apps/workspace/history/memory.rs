//! The history of a single node: rooms in a map, behind one lock. Holding the lock while
//! the event goes to the feed gives every socket a room's events in offset order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::{Delivery, Kind, Page, Position, Range, Record, new_epoch, now_ms, oldest_kept};
use crate::config::HistoryConfig;

/// How long a silent room's epoch and last offset outlive its records, as in Redis.
pub const EPOCH_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Appends between two sweeps for rooms silent past their epoch's lifetime.
const SWEEP_EVERY: u64 = 4096;

struct RoomLog {
    epoch: String,
    top: u64,
    records: VecDeque<Record>,
    touched: Instant,
}

#[derive(Default)]
struct Rooms {
    rooms: HashMap<String, RoomLog>,
    appends: u64,
}

/// The in-process store; cheap to clone.
#[derive(Clone)]
pub struct MemoryStore {
    config: HistoryConfig,
    rooms: Arc<Mutex<Rooms>>,
    feed: mpsc::UnboundedSender<Delivery>,
}

impl MemoryStore {
    /// An empty store whose events go to `feed`.
    pub fn new(config: HistoryConfig, feed: mpsc::UnboundedSender<Delivery>) -> Self {
        Self { config, rooms: Arc::default(), feed }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn room<'a>(rooms: &'a mut Rooms, room: &str) -> &'a mut RoomLog {
        let log = rooms.rooms.entry(room.to_owned()).or_insert_with(|| RoomLog {
            epoch: new_epoch(),
            top: 0,
            records: VecDeque::new(),
            touched: Instant::now(),
        });
        log.touched = Instant::now();
        log
    }

    /// Stores the room's next event and queues it on the feed, under one lock.
    pub fn append(&self, room: &str, kind: Kind, data: &Value, skip: Option<String>) -> Position {
        let mut rooms = self.lock();
        rooms.appends += 1;
        if rooms.appends.is_multiple_of(SWEEP_EVERY) {
            let lifetime = self.config.ttl + EPOCH_LIFETIME;
            rooms.rooms.retain(|_, log| log.touched.elapsed() < lifetime);
        }
        let log = Self::room(&mut rooms, room);
        log.top += 1;
        let record = Record { offset: log.top, kind, stored_ms: now_ms(), data: data.clone() };
        log.records.push_back(record.clone());
        while log.records.len() > self.config.size {
            log.records.pop_front();
        }
        let position = Position { epoch: log.epoch.clone(), offset: log.top };
        // The receiver lives as long as the node; after shutdown nobody is listening.
        let epoch = log.epoch.clone();
        let _ = self.feed.send(Delivery { room: room.to_owned(), epoch, record, skip });
        position
    }

    /// Reads part of a room's history.
    pub fn read(&self, room: &str, range: Range) -> Page {
        let oldest = oldest_kept(&self.config);
        let mut rooms = self.lock();
        let log = Self::room(&mut rooms, room);
        while log.records.front().is_some_and(|r| r.stored_ms < oldest) {
            log.records.pop_front();
        }
        let kept = log.records.iter();
        let records: Vec<Record> = match range {
            Range::Latest(n) => {
                let skip = log.records.len().saturating_sub(n);
                kept.skip(skip).cloned().collect()
            }
            Range::After(after, n) => kept.filter(|r| r.offset > after).take(n).cloned().collect(),
            Range::Before(before, n) => {
                let older: Vec<&Record> = kept.filter(|r| r.offset < before).collect();
                older[older.len().saturating_sub(n)..].iter().map(|r| (*r).clone()).collect()
            }
        };
        Page { position: Position { epoch: log.epoch.clone(), offset: log.top }, records }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn store(size: usize) -> (MemoryStore, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = HistoryConfig { size, ..HistoryConfig::default() };
        (MemoryStore::new(config, tx), rx)
    }

    #[test]
    fn offsets_grow_by_one_per_room_and_reach_the_feed_in_order() {
        let (store, mut feed) = store(10);
        let a1 = store.append("a", Kind::Message, &json!({"n": 1}), None);
        let b1 = store.append("b", Kind::Invalidate, &json!({"n": 2}), None);
        let a2 = store.append("a", Kind::Message, &json!({"n": 3}), None);
        assert_eq!((a1.offset, b1.offset, a2.offset), (1, 1, 2));
        assert_eq!(a1.epoch, a2.epoch);
        assert_ne!(a1.epoch, b1.epoch, "each room has its own epoch");
        let seen: Vec<(String, u64)> = std::iter::from_fn(|| feed.try_recv().ok())
            .map(|d| (d.room, d.record.offset))
            .collect();
        assert_eq!(seen, [("a".into(), 1), ("b".into(), 1), ("a".into(), 2)]);
    }

    #[test]
    fn reads_page_by_offset_and_keep_only_the_newest() {
        let (store, _feed) = store(5);
        for n in 1..=8 {
            store.append("r", Kind::Message, &json!({"n": n}), None);
        }
        let offsets = |range| -> Vec<u64> {
            store.read("r", range).records.iter().map(|r| r.offset).collect()
        };
        assert_eq!(offsets(Range::Latest(3)), [6, 7, 8]);
        assert_eq!(offsets(Range::After(5, 2)), [6, 7]);
        assert_eq!(offsets(Range::After(0, 100)), [4, 5, 6, 7, 8], "only `size` are kept");
        assert_eq!(offsets(Range::Before(7, 2)), [5, 6]);
        assert_eq!(offsets(Range::Before(1, 2)), Vec::<u64>::new());
        let page = store.read("r", Range::Latest(0));
        assert_eq!(page.position.offset, 8);
        assert_eq!(page.records[..], []);
    }

    #[test]
    fn a_new_room_has_an_epoch_before_anything_is_stored() {
        let (store, _feed) = store(5);
        let before = store.read("quiet", Range::Latest(10)).position;
        assert_eq!(before.offset, 0);
        let after = store.append("quiet", Kind::Message, &json!({}), None);
        assert_eq!(after, Position { epoch: before.epoch, offset: 1 });
    }

    #[test]
    fn payloads_carry_offset_and_epoch_last() {
        let record = Record {
            offset: 7,
            kind: Kind::Message,
            stored_ms: 0,
            data: json!({"id": "x", "offset": "forged"}),
        };
        let payload = record.payload("e1");
        assert_eq!(payload, json!({"id": "x", "offset": 7, "epoch": "e1"}));
    }
}
