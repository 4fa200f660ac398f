//! Payload decoding under arbitrary input: every parser a client or a worker can reach
//! answers with a value or a typed error, never a panic.

use proptest::prelude::*;
use roomcast_node::core::auth::Credentials;
use roomcast_node::core::requests::wire::{Job, JobReply};
use roomcast_node::protocol::request::Request;
use roomcast_node::protocol::room;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,80}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("uuid".to_owned()),
                    Just("route".to_owned()),
                    Just("params".to_owned()),
                    Just("login".to_owned()),
                    Just("password".to_owned()),
                    Just("token".to_owned()),
                    Just("resume".to_owned()),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn requests_parse_or_refuse(data in json()) {
        if let Ok(request) = Request::parse(Some(data)) {
            prop_assert!((1..=64).contains(&request.uuid.len()));
            prop_assert!(!request.route.is_empty() && request.route.len() <= 128);
        }
    }

    #[test]
    fn room_names_are_checked_without_panics(name in ".{0,300}") {
        if room::check_name(&name).is_ok() {
            prop_assert!(!name.is_empty() && name.chars().count() <= 100);
            prop_assert!(!name.chars().any(char::is_control));
        }
    }

    #[test]
    fn handshakes_are_read_without_panics(
        auth in json(),
        query in "[a-z=&%0-9A-F.]{0,120}",
        cookie in "[ -~]{0,120}",
    ) {
        let _ = Credentials::from_handshake(Some(&auth), Some(&query), Some(&cookie), "connect.sid");
    }

    #[test]
    fn worker_replies_parse_or_refuse(bytes in prop::collection::vec(any::<u8>(), 0..256), doc in json()) {
        let _ = JobReply::parse(&bytes);
        if let Ok(reply) = JobReply::parse(doc.to_string().as_bytes())
            && let Err(failure) = reply.outcome
        {
            // A worker never puts arbitrary text where clients expect a code.
            prop_assert!(failure.code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'));
        }
    }

    #[test]
    fn jobs_parse_or_refuse(fields in prop::collection::vec((
        prop_oneof![Just("id"), Just("uuid"), Just("route"), Just("params"), Just("user"),
                    Just("rooms"), Just("reply_to"), Just("deadline"), Just("attempt"), Just("x")],
        ".{0,40}",
    ), 0..12)) {
        let _ = Job::from_fields(fields.iter().map(|(k, v)| (*k, v.as_str())));
    }
}

#[test]
fn deep_json_is_refused() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(serde_json::from_str::<Value>(&deep).is_err(), "serde_json stops at its depth limit");
    assert!(JobReply::parse(deep.as_bytes()).is_err());
}
