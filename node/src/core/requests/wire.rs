//! The worker protocol's messages, as pure types: a job is one entry of a Redis stream
//! (flat string fields, so a worker in any language reads it with XREADGROUP), and a
//! reply is one JSON document PUBLISHed on the job's `reply_to` channel.
//!
//! `docs/workers.md` is the contract for worker authors; the tests here pin it.

use serde_json::{Map, Value, json};

use crate::protocol::error::{ClientError, ErrorCode};

/// A request queued for a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Correlation id chosen by the origin node, unique across the cluster; the reply
    /// must carry it.
    pub id: String,
    /// The client's request uuid, for logs and for handlers that want it.
    pub uuid: String,
    /// The route the client asked for.
    pub route: String,
    /// The client's params.
    pub params: Value,
    /// The caller's login.
    pub user: String,
    /// The caller's rooms when the request was made.
    pub rooms: Vec<String>,
    /// The channel of the origin node, where the reply is published.
    pub reply_to: String,
    /// Milliseconds since the Unix epoch after which nobody waits for the reply.
    pub deadline_ms: i64,
    /// 1 for the first delivery, one more each time the job is taken back from a worker
    /// that did not acknowledge it.
    pub attempt: u32,
    /// W3C trace context of the origin's span, when tracing is on.
    pub traceparent: Option<String>,
}

/// A stream entry that is not a job; it is acknowledged and dropped.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("malformed job: field {0}")]
pub struct JobError(&'static str);

impl Job {
    /// The stream entry's fields, in a fixed order.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", self.id.clone()),
            ("uuid", self.uuid.clone()),
            ("route", self.route.clone()),
            ("params", self.params.to_string()),
            ("user", self.user.clone()),
            ("rooms", Value::from(self.rooms.clone()).to_string()),
            ("reply_to", self.reply_to.clone()),
            ("deadline", self.deadline_ms.to_string()),
            ("attempt", self.attempt.to_string()),
        ];
        if let Some(tp) = &self.traceparent {
            fields.push(("traceparent", tp.clone()));
        }
        fields
    }

    /// Reads a stream entry's fields back.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, JobError> {
        let map: std::collections::HashMap<&str, &str> = fields.into_iter().collect();
        let text = |name: &'static str| {
            map.get(name).map(|v| (*v).to_owned()).filter(|v| !v.is_empty()).ok_or(JobError(name))
        };
        let json = |name: &'static str| {
            map.get(name).and_then(|v| serde_json::from_str::<Value>(v).ok()).ok_or(JobError(name))
        };
        let rooms = match json("rooms")? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(JobError("rooms"))?,
            _ => return Err(JobError("rooms")),
        };
        Ok(Self {
            id: text("id")?,
            uuid: text("uuid")?,
            route: text("route")?,
            params: json("params")?,
            user: text("user")?,
            rooms,
            reply_to: text("reply_to")?,
            deadline_ms: text("deadline")?.parse().map_err(|_| JobError("deadline"))?,
            attempt: text("attempt")?.parse().map_err(|_| JobError("attempt"))?,
            traceparent: map.get("traceparent").map(|v| (*v).to_owned()),
        })
    }
}

/// A worker's answer to one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReply {
    /// The job's `id`.
    pub id: String,
    /// The result, or why there is none.
    pub outcome: Result<Value, ClientError>,
}

/// A published reply that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplyError {
    /// Not a JSON object.
    #[error("reply is not a JSON object")]
    NotAnObject,
    /// `id` missing or not a string.
    #[error("reply has no string id")]
    NoId,
    /// `ok` missing or not a boolean.
    #[error("reply has no boolean ok")]
    NoOk,
}

impl JobReply {
    /// The JSON document a worker publishes.
    pub fn to_json(&self) -> String {
        match &self.outcome {
            Ok(result) => json!({ "id": self.id, "ok": true, "result": result }),
            Err(failure) => json!({ "id": self.id, "ok": false, "error": failure.to_json() }),
        }
        .to_string()
    }

    /// Reads a published reply.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReplyError> {
        let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(bytes) else {
            return Err(ReplyError::NotAnObject);
        };
        let id = match doc.remove("id") {
            Some(Value::String(id)) => id,
            _ => return Err(ReplyError::NoId),
        };
        let outcome = match doc.remove("ok") {
            Some(Value::Bool(true)) => Ok(doc.remove("result").unwrap_or(Value::Null)),
            Some(Value::Bool(false)) => {
                let mut error = match doc.remove("error") {
                    Some(Value::Object(error)) => error,
                    _ => Map::new(),
                };
                let code = error.remove("code");
                let code = ErrorCode::from_handler(code.as_ref().and_then(Value::as_str));
                let message = match error.remove("message") {
                    Some(Value::String(m)) => m,
                    _ => "the handler failed".to_owned(),
                };
                Err(ClientError::with_details(code, message, error))
            }
            _ => return Err(ReplyError::NoOk),
        };
        Ok(Self { id, outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::Code;

    fn job() -> Job {
        Job {
            id: "c0ffee".into(),
            uuid: "u-1".into(),
            route: "jobs.add".into(),
            params: json!({"a": 1}),
            user: "alice".into(),
            rooms: vec!["r1".into()],
            reply_to: "roomcast:replies:n1".into(),
            deadline_ms: 1_700_000_000_000,
            attempt: 1,
            traceparent: None,
        }
    }

    #[test]
    fn jobs_round_trip_through_stream_fields() {
        let job = job();
        let fields = job.to_fields();
        assert_eq!(fields[3], ("params", r#"{"a":1}"#.to_owned()));
        assert_eq!(fields[5], ("rooms", r#"["r1"]"#.to_owned()));
        let back = Job::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).expect("job");
        assert_eq!(back, job);
    }

    #[test]
    fn malformed_jobs_name_the_field() {
        let mut fields = job().to_fields();
        fields.retain(|(k, _)| *k != "reply_to");
        let err = Job::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).expect_err("x");
        assert_eq!(err, JobError("reply_to"));
        let mut fields = job().to_fields();
        fields[5].1 = "[1]".into();
        let err = Job::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).expect_err("x");
        assert_eq!(err, JobError("rooms"));
    }

    #[test]
    fn replies_parse_and_sanitise_codes() {
        let ok = JobReply::parse(br#"{"id":"x","ok":true,"result":{"n":2}}"#).expect("ok");
        assert_eq!(ok.outcome, Ok(json!({"n": 2})));
        let err = JobReply::parse(
            br#"{"id":"x","ok":false,"error":{"code":"no_stock","message":"m","left":0}}"#,
        )
        .expect("err");
        let failure = err.outcome.expect_err("failure");
        assert_eq!(failure.to_json(), json!({"code": "no_stock", "message": "m", "left": 0}));
        let err = JobReply::parse(br#"{"id":"x","ok":false,"error":{"code":"<b>Bad Code</b>"}}"#)
            .expect("err");
        assert_eq!(err.outcome.expect_err("failure").code, Code::HandlerError);
        assert_eq!(JobReply::parse(b"[1]"), Err(ReplyError::NotAnObject));
        assert_eq!(JobReply::parse(b"\xff"), Err(ReplyError::NotAnObject));
        assert_eq!(JobReply::parse(br#"{"ok":true}"#), Err(ReplyError::NoId));
        assert_eq!(JobReply::parse(br#"{"id":"x"}"#), Err(ReplyError::NoOk));
    }

    #[test]
    fn replies_round_trip() {
        let reply = JobReply { id: "x".into(), outcome: Ok(json!([1])) };
        assert_eq!(JobReply::parse(reply.to_json().as_bytes()), Ok(reply));
    }
}
