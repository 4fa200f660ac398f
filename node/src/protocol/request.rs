//! The `request` event's payload `{uuid, route, params}`.

use serde_json::Value;

use super::error::{ClientError, Code};

/// A client-chosen request id: 1-64 characters of `[A-Za-z0-9_-]`. It names the reply
/// event `request <uuid>`, so it must be safe in an event name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestUuid(String);

checked_text!(RequestUuid, ClientError, invalid_uuid(), |uuid| {
    (1..=64).contains(&uuid.len())
        && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
});

impl RequestUuid {
    /// A fresh id, for requests the server makes itself (a UUID v4 has the form).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// The `request` event's refusal of a uuid.
fn invalid_uuid() -> ClientError {
    ClientError::new(Code::BadPayload, "uuid must be 1-64 characters of [A-Za-z0-9_-]")
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Names the reply event.
    pub uuid: RequestUuid,
    /// The handler to run.
    pub route: String,
    /// The handler's input; `null` when absent.
    pub params: Value,
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
            Some(Value::String(uuid)) => RequestUuid::parse(uuid)?,
            _ => return Err(invalid_uuid()),
        };
        let route = match fields.remove("route") {
            Some(Value::String(route)) if !route.is_empty() && route.len() <= 128 => route,
            _ => return Err(bad("route must be a non-empty string")),
        };
        let params = fields.remove("params").unwrap_or(Value::Null);
        Ok(Self { uuid, route, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_requests() {
        let r = Request::parse(Some(json!({"uuid": "a-1", "route": "echo", "params": [1]})))
            .expect("ok");
        let uuid = RequestUuid::parse("a-1").expect("uuid");
        assert_eq!(r, Request { uuid, route: "echo".into(), params: json!([1]) });
        let r = Request::parse(Some(json!({"uuid": "u", "route": "time"}))).expect("ok");
        assert_eq!(r.params, Value::Null);
    }

    #[test]
    fn refuses_bad_requests() {
        let uuid_rule = "uuid must be 1-64 characters of [A-Za-z0-9_-]";
        for (data, message) in [
            (None, "an object {uuid, route, params} is required"),
            (Some(json!("x")), "an object {uuid, route, params} is required"),
            (Some(json!({"route": "echo"})), uuid_rule),
            (Some(json!({"uuid": 5, "route": "echo"})), uuid_rule),
            (Some(json!({"uuid": "has space", "route": "echo"})), uuid_rule),
            (Some(json!({"uuid": "x".repeat(65), "route": "echo"})), uuid_rule),
            (Some(json!({"uuid": "u"})), "route must be a non-empty string"),
            (Some(json!({"uuid": "u", "route": ""})), "route must be a non-empty string"),
            (
                Some(json!({"uuid": "u", "route": "r".repeat(129)})),
                "route must be a non-empty string",
            ),
        ] {
            let err = Request::parse(data.clone()).expect_err("refused");
            assert_eq!(err, ClientError::new(Code::BadPayload, message), "{data:?}");
        }
    }

    #[test]
    fn uuids_name_reply_events() {
        for good in ["u", "A-z_09", &"x".repeat(64)] {
            assert_eq!(RequestUuid::parse(good).as_deref(), Ok(good));
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(RequestUuid::parse(bad).is_err(), "{bad:?}");
        }
        let uuid = RequestUuid::parse("a-1").expect("uuid");
        assert_eq!(format!("request {uuid}"), "request a-1");
        assert_eq!(serde_json::to_value(&uuid).expect("json"), json!("a-1"));
        let random = RequestUuid::random();
        assert_eq!(RequestUuid::parse(random.as_str()), Ok(random));
    }
}
