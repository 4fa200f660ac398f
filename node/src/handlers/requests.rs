//! The `request` controller: `{uuid, route, params}` dispatched by route.
//!
//! The reply goes to the initiator only, as the event `request <uuid>` (and the ack).
//! Routes here are the built-in ones and run on the node that received the request.

use serde_json::{Value, json};

use super::reply::{ClientError, Code};
use crate::rooms;
use crate::session::Member;
use crate::state::AppState;

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Client-chosen id, 1-64 characters of `[A-Za-z0-9_-]`; names the reply event.
    pub uuid: String,
    /// The handler to run.
    pub route: String,
    /// The handler's input; `null` when absent.
    pub params: Value,
}

fn valid_uuid(uuid: &str) -> bool {
    (1..=64).contains(&uuid.len())
        && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Request {
    /// Reads `{uuid, route, params}`; errors go to the `error` event or the ack, since
    /// without a usable uuid there is no reply event to use.
    pub fn parse(data: Option<Value>) -> Result<Self, ClientError> {
        let bad = |message: &str| ClientError::new(Code::BadPayload, message);
        let Some(Value::Object(mut fields)) = data else {
            return Err(bad("an object {uuid, route, params} is required"));
        };
        let uuid = match fields.remove("uuid") {
            Some(Value::String(uuid)) if valid_uuid(&uuid) => uuid,
            _ => return Err(bad("uuid must be 1-64 characters of [A-Za-z0-9_-]")),
        };
        let route = match fields.remove("route") {
            Some(Value::String(route)) if !route.is_empty() && route.len() <= 128 => route,
            _ => return Err(bad("route must be a non-empty string")),
        };
        let params = fields.remove("params").unwrap_or(Value::Null);
        Ok(Self { uuid, route, params })
    }
}

/// Runs the request's route and returns its result.
pub async fn dispatch(
    app: &AppState,
    member: &Member,
    request: &Request,
) -> Result<Value, ClientError> {
    match request.route.as_str() {
        "echo" => Ok(request.params.clone()),
        "time" => {
            let now = chrono::Utc::now();
            Ok(json!({
                "now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "epochMs": now.timestamp_millis(),
            }))
        }
        "rooms.list" => Ok(json!({ "rooms": member.room_list() })),
        "presence.room" => presence_room(app, member, &request.params).await,
        _ => Err(ClientError::new(Code::UnknownRoute, "no handler for this route")),
    }
}

/// Logins of a room's members across the cluster, from the live session rows.
async fn presence_room(
    app: &AppState,
    member: &Member,
    params: &Value,
) -> Result<Value, ClientError> {
    let room = params
        .get("room")
        .and_then(Value::as_str)
        .filter(|room| rooms::check_name(room).is_ok())
        .ok_or_else(|| {
            ClientError::new(Code::BadParams, "params.room must be a valid room name")
        })?;
    if !member.is_in(room) {
        return Err(ClientError::new(Code::NotMember, "join the room first"));
    }
    let users = app.db.room_users(room).await.map_err(|e| {
        app.metrics.errors.with_label_values(&["database"]).inc();
        tracing::warn!(error = %e, "presence query failed");
        ClientError::new(Code::Unavailable, "presence is unavailable right now")
    })?;
    Ok(json!({ "room": room, "users": users }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        let r = Request::parse(Some(json!({"uuid": "a-1", "route": "echo", "params": [1]})))
            .expect("ok");
        assert_eq!(r, Request { uuid: "a-1".into(), route: "echo".into(), params: json!([1]) });
        let r = Request::parse(Some(json!({"uuid": "u", "route": "time"}))).expect("ok");
        assert_eq!(r.params, Value::Null);
    }

    #[test]
    fn refuses_bad_requests() {
        for data in [
            None,
            Some(json!("x")),
            Some(json!({"route": "echo"})),
            Some(json!({"uuid": 5, "route": "echo"})),
            Some(json!({"uuid": "has space", "route": "echo"})),
            Some(json!({"uuid": "x".repeat(65), "route": "echo"})),
            Some(json!({"uuid": "u"})),
            Some(json!({"uuid": "u", "route": ""})),
        ] {
            let err = Request::parse(data.clone()).expect_err("refused");
            assert_eq!(err.code, Code::BadPayload, "{data:?}");
        }
    }
}
