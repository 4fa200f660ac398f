//! A connected socket's server-side state and its row in `express_sessions`.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::auth::Identity;
use crate::db::sessions::socket_row_sid;
use crate::db::{Db, DbError};

/// Why a room could not be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Joined now.
    Joined,
    /// Was a member already; nothing changed.
    AlreadyMember,
    /// The socket is in as many rooms as it may be.
    TooMany,
}

/// Whether a request may start on a socket.
#[derive(Debug)]
pub enum RequestAdmission {
    /// It may; the slot is held until the guard is dropped.
    Admitted(RequestSlot),
    /// Its uuid is already in flight on this socket.
    Duplicate,
    /// The socket has as many requests in flight as it may.
    TooMany,
}

/// A request's place among its socket's requests in flight. Dropping it frees the
/// place, whichever way the request ends (answer, timeout, failure, or its task
/// dropped), so a socket can never leak its quota.
#[derive(Debug)]
pub struct RequestSlot {
    member: Arc<Member>,
    uuid: String,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.member.requests().remove(&self.uuid);
    }
}

/// One authenticated socket: who it is, its rooms and its requests in flight.
///
/// The room set here is what the session row shows; the socket's rooms in the adapter
/// follow it. Row writes are serialized by `row_lock` and each writes the state as it
/// is when the lock is taken, so the last write always carries the latest rooms.
#[derive(Debug)]
pub struct Member {
    /// The authenticated user.
    pub identity: Identity,
    socket_id: String,
    node_id: String,
    namespace: String,
    connected_at: DateTime<Utc>,
    rooms: Mutex<BTreeSet<String>>,
    requests: Mutex<HashSet<String>>,
    row_lock: tokio::sync::Mutex<()>,
}

impl Member {
    /// A member with no rooms, connected now.
    pub fn new(identity: Identity, socket_id: String, node_id: String, namespace: &str) -> Self {
        Self {
            identity,
            socket_id,
            node_id,
            namespace: namespace.to_owned(),
            connected_at: Utc::now(),
            rooms: Mutex::default(),
            requests: Mutex::default(),
            row_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Key of this socket's session row.
    pub fn row_sid(&self) -> String {
        socket_row_sid(&self.socket_id, &self.namespace)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic while holding the lock leaves a set that is still consistent.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rooms, sorted.
    pub fn room_list(&self) -> Vec<String> {
        self.rooms().iter().cloned().collect()
    }

    /// Whether the socket is in `room`.
    pub fn is_in(&self, room: &str) -> bool {
        self.rooms().contains(room)
    }

    /// Records a join unless the limit forbids it.
    pub fn add_room(&self, room: &str, max: usize) -> JoinOutcome {
        let mut rooms = self.rooms();
        if rooms.contains(room) {
            JoinOutcome::AlreadyMember
        } else if rooms.len() >= max {
            JoinOutcome::TooMany
        } else {
            rooms.insert(room.to_owned());
            JoinOutcome::Joined
        }
    }

    /// Records a leave; false when the socket was not in the room.
    pub fn remove_room(&self, room: &str) -> bool {
        self.rooms().remove(room)
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a request uuid as in flight unless it already is, or `max` requests are.
    pub fn begin_request(self: &Arc<Self>, uuid: &str, max: usize) -> RequestAdmission {
        let mut requests = self.requests();
        if requests.contains(uuid) {
            RequestAdmission::Duplicate
        } else if requests.len() >= max {
            RequestAdmission::TooMany
        } else {
            requests.insert(uuid.to_owned());
            RequestAdmission::Admitted(RequestSlot { member: self.clone(), uuid: uuid.to_owned() })
        }
    }

    /// The `sess` JSON of the row, in the shape express-session stores.
    pub fn sess(&self, ttl: std::time::Duration) -> Value {
        let expires = self.connected_at + ttl;
        json!({
            "cookie": {
                "originalMaxAge": ttl.as_millis() as u64,
                "expires": expires.to_rfc3339_opts(SecondsFormat::Millis, true),
                "httpOnly": true,
                "path": "/",
            },
            "user": self.identity.user,
            "via": self.identity.via.as_str(),
            "node": self.node_id,
            "socket": self.socket_id,
            "namespace": self.namespace,
            "rooms": self.room_list(),
            "connectedAt": self.connected_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
    }

    /// Writes the row for the first time.
    pub async fn insert_row(&self, db: &Db, ttl: std::time::Duration) -> Result<(), DbError> {
        let _guard = self.row_lock.lock().await;
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        db.put_session(&self.row_sid(), &self.sess(ttl), ttl_secs).await
    }

    /// Rewrites the row's `sess` with the current rooms.
    pub async fn update_row(&self, db: &Db, ttl: std::time::Duration) -> Result<(), DbError> {
        let _guard = self.row_lock.lock().await;
        db.update_session(&self.row_sid(), &self.sess(ttl)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn member() -> Member {
        let identity = Identity { user: "alice".into(), via: AuthMethod::Password };
        Member::new(identity, "sock1".into(), "node-a".into(), "/")
    }

    #[test]
    fn rooms_are_bounded_and_sorted() {
        let m = member();
        assert_eq!(m.add_room("b", 2), JoinOutcome::Joined);
        assert_eq!(m.add_room("a", 2), JoinOutcome::Joined);
        assert_eq!(m.add_room("a", 2), JoinOutcome::AlreadyMember);
        assert_eq!(m.add_room("c", 2), JoinOutcome::TooMany);
        assert_eq!(m.room_list(), ["a", "b"]);
        assert!(m.remove_room("a"));
        assert!(!m.remove_room("a"));
        assert!(!m.is_in("a"));
    }

    #[test]
    fn sess_names_user_node_socket_and_rooms() {
        let m = member();
        m.add_room("r", 10);
        let sess = m.sess(std::time::Duration::from_secs(60));
        assert_eq!(sess["user"], "alice");
        assert_eq!(sess["node"], "node-a");
        assert_eq!(sess["socket"], "sock1");
        assert_eq!(sess["rooms"], json!(["r"]));
        assert_eq!(sess["via"], "password");
        assert!(sess["connectedAt"].is_string());
    }

    #[test]
    fn request_uuids_are_unique_in_flight() {
        let m = Arc::new(member());
        let slot = m.begin_request("u1", 10);
        assert!(matches!(slot, RequestAdmission::Admitted(_)));
        assert!(matches!(m.begin_request("u1", 10), RequestAdmission::Duplicate));
        drop(slot);
        assert!(matches!(m.begin_request("u1", 10), RequestAdmission::Admitted(_)));
    }

    #[test]
    fn requests_in_flight_are_capped_until_a_slot_is_freed() {
        let m = Arc::new(member());
        let first = m.begin_request("a", 2);
        let _second = m.begin_request("b", 2);
        assert!(matches!(m.begin_request("c", 2), RequestAdmission::TooMany));
        // A uuid in flight is a duplicate, whatever the count.
        assert!(matches!(m.begin_request("a", 2), RequestAdmission::Duplicate));
        drop(first);
        assert!(matches!(m.begin_request("c", 2), RequestAdmission::Admitted(_)));
    }
}
