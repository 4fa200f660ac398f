//! A connected socket's server-side state and its row in `express_sessions`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use socketioxide::adapter::Adapter;
use socketioxide::socket::Socket;

use crate::core::auth::Identity;
use crate::core::db::sessions::socket_row_sid;
use crate::core::db::{Db, DbError};
use crate::core::metrics::ErrorKind;
use crate::core::state::AppState;

/// A room of the node's own, never the client's: a socket is in it while missed events
/// are being sent to it, and room broadcasts leave it out until they are. `roomcast:`
/// names are reserved, so no client can join it, and it is no room of the session row.
pub const REPLAYING: &str = "roomcast:replaying";

/// What a `join room` did.
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

/// One authenticated socket: who it is and its requests in flight.
///
/// Its rooms are not kept here: socketioxide's room table is the one record of them,
/// whoever changed it (this node's handlers, or a peer's `socketsJoin` through the
/// adapter), and the session row is written from it. Row writes are serialized by
/// `row_lock` and each reads the rooms once the lock is taken, so the last write always
/// carries the latest rooms.
#[derive(Debug)]
pub struct Member {
    /// The authenticated user.
    pub identity: Identity,
    socket_id: String,
    node_id: String,
    namespace: String,
    connected_at: DateTime<Utc>,
    joins: Mutex<()>,
    requests: Mutex<HashSet<String>>,
    row_lock: tokio::sync::Mutex<()>,
    recovery: Option<String>,
}

impl Member {
    /// A member connected now.
    pub fn new(identity: Identity, socket_id: String, node_id: String, namespace: &str) -> Self {
        Self {
            identity,
            socket_id,
            node_id,
            namespace: namespace.to_owned(),
            connected_at: Utc::now(),
            joins: Mutex::default(),
            requests: Mutex::default(),
            row_lock: tokio::sync::Mutex::new(()),
            recovery: None,
        }
    }

    /// The member with the hash of its recovery credential's secret, kept in its row
    /// so any node can check the credential while the socket lives, and after it.
    pub fn with_recovery(self, secret_hash: String) -> Self {
        Self { recovery: Some(secret_hash), ..self }
    }

    /// The hash of its recovery credential's secret, on `/`.
    pub fn recovery_hash(&self) -> Option<&str> {
        self.recovery.as_deref()
    }

    /// Key of this socket's session row.
    pub fn row_sid(&self) -> String {
        socket_row_sid(&self.socket_id, &self.namespace)
    }

    /// Joins `room` unless the socket is in `max` rooms already. `rooms` reads the
    /// socket's rooms and `join` adds it; both run under one lock, so concurrent joins
    /// of one socket cannot pass the limit together.
    pub fn join_room(
        &self,
        room: &str,
        max: usize,
        rooms: impl FnOnce() -> Vec<String>,
        join: impl FnOnce(),
    ) -> JoinOutcome {
        let _serial = self.joins.lock().unwrap_or_else(|e| e.into_inner());
        let current = rooms();
        if current.iter().any(|r| r == room) {
            JoinOutcome::AlreadyMember
        } else if current.len() >= max {
            JoinOutcome::TooMany
        } else {
            join();
            JoinOutcome::Joined
        }
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
    pub fn sess(&self, ttl: std::time::Duration, rooms: Vec<String>) -> Value {
        let expires = self.connected_at + ttl;
        let mut sess = json!({
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
            "rooms": rooms,
            "connectedAt": self.connected_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Some(hash) = &self.recovery {
            sess["recovery"] = hash.as_str().into();
        }
        sess
    }

    /// Writes the row for the first time (or again, after the store was away), with
    /// the rooms `rooms` reads once the row lock is held.
    pub async fn insert_row(
        &self,
        db: &Db,
        ttl: std::time::Duration,
        rooms: impl FnOnce() -> Vec<String>,
    ) -> Result<(), DbError> {
        let _guard = self.row_lock.lock().await;
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        db.put_session(&self.row_sid(), &self.sess(ttl, rooms()), ttl_secs).await
    }

    /// Rewrites the row's `sess` with the rooms `rooms` reads once the row lock is held.
    pub async fn update_row(
        &self,
        db: &Db,
        ttl: std::time::Duration,
        rooms: impl FnOnce() -> Vec<String>,
    ) -> Result<(), DbError> {
        let _guard = self.row_lock.lock().await;
        db.update_session(&self.row_sid(), &self.sess(ttl, rooms())).await.map(drop)
    }
}

/// The socket's rooms, sorted, as socketioxide records them: the one record of
/// membership, which a peer's `socketsJoin` / `socketsLeave` changes too.
pub fn socket_rooms<A: Adapter>(s: &Socket<A>) -> Vec<String> {
    let mut rooms: Vec<String> =
        s.rooms().into_iter().filter(|r| r != REPLAYING).map(|r| r.into_owned()).collect();
    rooms.sort();
    rooms
}

/// Rewrites the socket's session row with its current rooms.
pub async fn persist_rooms<A: Adapter>(app: &AppState, s: &Socket<A>, member: &Member) {
    let ttl = app.config.database.session_ttl;
    if let Err(e) = member.update_row(&app.db, ttl, || socket_rooms(s)).await {
        app.metrics.error(ErrorKind::Database).inc();
        tracing::warn!(error = %e, user = %member.identity.user, "session row not updated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::AuthMethod;

    fn member() -> Member {
        let identity = Identity { user: "alice".into(), via: AuthMethod::Password };
        Member::new(identity, "sock1".into(), "node-a".into(), "/")
    }

    #[test]
    fn joins_are_bounded() {
        let m = member();
        let rooms = std::cell::RefCell::new(vec!["a".to_owned()]);
        let join = |room: &str| {
            m.join_room(room, 2, || rooms.borrow().clone(), || rooms.borrow_mut().push(room.into()))
        };
        assert_eq!(join("a"), JoinOutcome::AlreadyMember);
        assert_eq!(join("b"), JoinOutcome::Joined);
        assert_eq!(join("c"), JoinOutcome::TooMany);
        assert_eq!(*rooms.borrow(), ["a", "b"]);
    }

    #[test]
    fn sess_names_user_node_socket_and_rooms() {
        let m = member();
        let sess = m.sess(std::time::Duration::from_secs(60), vec!["b".into(), "r".into()]);
        assert_eq!(sess["user"], "alice");
        assert_eq!(sess["node"], "node-a");
        assert_eq!(sess["socket"], "sock1");
        assert_eq!(sess["rooms"], json!(["b", "r"]));
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
