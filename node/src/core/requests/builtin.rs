//! The built-in routes. They see the caller, not the socket, so a node answers them the
//! same way for its own sockets and for jobs it takes from a worker queue.

use serde_json::{Value, json};

use super::Caller;
use crate::core::db::Db;
use crate::core::metrics::{ErrorKind, Metrics};
use crate::protocol::error::{ClientError, Code};
use crate::protocol::room;

/// Runs a built-in route.
pub async fn run(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    route: &str,
    params: &Value,
) -> Result<Value, ClientError> {
    match route {
        "echo" => Ok(params.clone()),
        "time" => {
            let now = chrono::Utc::now();
            Ok(json!({
                "now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "epochMs": now.timestamp_millis(),
            }))
        }
        "rooms.list" => Ok(json!({ "rooms": caller.rooms })),
        "presence.room" => presence_room(db, metrics, caller, params).await,
        _ => Err(ClientError::new(Code::UnknownRoute, "no handler for this route")),
    }
}

/// Logins of a room's members across the cluster, from the live session rows.
async fn presence_room(
    db: &Db,
    metrics: &Metrics,
    caller: &Caller,
    params: &Value,
) -> Result<Value, ClientError> {
    let room = params
        .get("room")
        .and_then(Value::as_str)
        .filter(|room| room::check_name(room).is_ok())
        .ok_or_else(|| {
            ClientError::new(Code::BadParams, "params.room must be a valid room name")
        })?;
    if !caller.rooms.iter().any(|r| r == room) {
        return Err(ClientError::new(Code::NotMember, "join the room first"));
    }
    let users = db.room_users(room).await.map_err(|e| {
        metrics.error(ErrorKind::Database).inc();
        tracing::warn!(error = %e, "presence query failed");
        ClientError::new(Code::Unavailable, "presence is unavailable right now")
    })?;
    Ok(json!({ "room": room, "users": users }))
}
