//! Whatever arrives on a channel, decoding answers with a value or an error and never
//! panics: arbitrary bytes, and arbitrary msgpack/JSON documents of the right first
//! byte, for every decoder a subscriber runs.

use proptest::prelude::*;
use roomcast_adapter::proto::{Broadcast, RequestMsg, ResponseMsg, ShardedMessage};

fn decode_all(bytes: &[u8]) {
    let _ = Broadcast::decode(bytes);
    let _ = RequestMsg::decode(bytes);
    let _ = ResponseMsg::decode(bytes);
    let _ = ShardedMessage::decode(bytes);
}

/// Any JSON document, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z#/]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("uid".to_owned()),
                    Just("nsp".to_owned()),
                    Just("data".to_owned()),
                    Just("requestId".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_documents_never_panic(doc in json()) {
        decode_all(&serde_json::to_vec(&doc).expect("json"));
        decode_all(&rmp_serde::to_vec(&doc).expect("msgpack"));
    }
}

#[test]
fn deep_nesting_is_refused_not_followed() {
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    decode_all(deep_json.as_bytes());
    // msgpack: 100 000 nested one-element arrays.
    let deep_msgpack = [0x91u8].repeat(100_000);
    decode_all(&deep_msgpack);
}
