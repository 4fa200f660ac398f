//! Event payloads: socketioxide keeps them as JSON text with binary
//! attachments (`{"_placeholder":true,"num":n}`), the wire carries msgpack.

use std::collections::VecDeque;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use rmpv::Value as Mp;
use serde_json::{Map, Number, Value as Json};

use super::{DecodeError, EncodeError};

/// JS numbers beyond this lose integer precision; notepack writes integral
/// doubles below it as msgpack integers, and so do we.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Converts socketioxide's JSON text and attachments into msgpack values.
/// The text must hold a JSON array (`[event, ...args]` or ack arguments).
pub fn json_to_msgpack(text: &str, bins: &[Bytes]) -> Result<Vec<Mp>, EncodeError> {
    let json: Json = serde_json::from_str(text).map_err(|_| EncodeError::InvalidPayload)?;
    match &json {
        Json::Array(items) => items.iter().map(|v| to_mp(v, bins)).collect(),
        _ => Err(EncodeError::InvalidPayload),
    }
}

/// Converts a JSON value that has no attachments (a JSON-encoded request)
/// into msgpack.
pub(super) fn json_value_to_mp(json: &Json) -> Result<Mp, DecodeError> {
    to_mp(json, &[]).map_err(|_| DecodeError::InvalidPayload)
}

/// Whether `value` holds binary (or an extension type, which only msgpack
/// can carry): Node's `hasBinary`, which picks msgpack over JSON.
pub(super) fn has_binary(value: &Mp) -> bool {
    match value {
        Mp::Binary(_) | Mp::Ext(..) => true,
        Mp::Array(items) => items.iter().any(has_binary),
        Mp::Map(entries) => entries.iter().any(|(k, v)| has_binary(k) || has_binary(v)),
        _ => false,
    }
}

/// A msgpack value as JSON, binary as socket.io placeholders (for the
/// fields read as JSON: fetched sockets, server-side events).
pub(super) fn mp_to_json_value(value: &Mp) -> Json {
    to_json(value, &mut VecDeque::new())
}

/// Serializes a msgpack value as JSON.stringify would: map keys in their
/// order, integral doubles without a fraction, non-finite numbers as null.
/// Binary has no JSON form and fails.
pub(super) struct JsonText<'a>(pub(super) &'a Mp);

impl serde::Serialize for JsonText<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap, SerializeSeq};
        let float = |f: f64, ser: S| {
            if !f.is_finite() {
                ser.serialize_unit()
            } else if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
                ser.serialize_i64(f as i64)
            } else {
                ser.serialize_f64(f)
            }
        };
        match self.0 {
            Mp::Nil => ser.serialize_unit(),
            Mp::Boolean(b) => ser.serialize_bool(*b),
            Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => ser.serialize_u64(u),
                (_, Some(i)) => ser.serialize_i64(i),
                _ => ser.serialize_unit(),
            },
            Mp::F32(f) => float(f64::from(*f), ser),
            Mp::F64(f) => float(*f, ser),
            Mp::String(s) => ser.serialize_str(&String::from_utf8_lossy(s.as_bytes())),
            Mp::Array(items) => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonText(item))?;
                }
                seq.end()
            }
            Mp::Map(entries) => {
                let mut map = ser.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(&key_to_string(k), &JsonText(v))?;
                }
                map.end()
            }
            Mp::Binary(_) | Mp::Ext(..) => Err(S::Error::custom("binary has no JSON form")),
        }
    }
}

fn to_mp(json: &Json, bins: &[Bytes]) -> Result<Mp, EncodeError> {
    Ok(match json {
        Json::Null => Mp::Nil,
        Json::Bool(b) => Mp::Boolean(*b),
        Json::Number(n) => number_to_mp(n),
        Json::String(s) => Mp::from(s.as_str()),
        Json::Array(items) => {
            Mp::Array(items.iter().map(|v| to_mp(v, bins)).collect::<Result<_, _>>()?)
        }
        Json::Object(map) => {
            if let Some(num) = placeholder(map) {
                let bin = bins.get(num).ok_or(EncodeError::MissingAttachment(num))?;
                return Ok(Mp::Binary(bin.to_vec()));
            }
            Mp::Map(
                map.iter()
                    .map(|(k, v)| Ok((Mp::from(k.as_str()), to_mp(v, bins)?)))
                    .collect::<Result<_, EncodeError>>()?,
            )
        }
    })
}

fn number_to_mp(n: &Number) -> Mp {
    if let Some(u) = n.as_u64() {
        Mp::from(u)
    } else if let Some(i) = n.as_i64() {
        Mp::from(i)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
            // Exact: |f| is an integer below 2^53.
            Mp::from(f as i64)
        } else {
            Mp::F64(f)
        }
    }
}

/// The attachment index if `map` is a socket.io binary placeholder.
fn placeholder(map: &Map<String, Json>) -> Option<usize> {
    if map.len() != 2 || map.get("_placeholder") != Some(&Json::Bool(true)) {
        return None;
    }
    map.get("num")?.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// Converts msgpack values into JSON text (an array of `items`) and the
/// binary attachments it references, as socketioxide's common parser wants.
pub fn msgpack_to_json(items: &[Mp]) -> Result<(String, VecDeque<Bytes>), DecodeError> {
    let mut bins = VecDeque::new();
    let json = Json::Array(items.iter().map(|v| to_json(v, &mut bins)).collect());
    let text = serde_json::to_string(&json).map_err(|_| DecodeError::InvalidPayload)?;
    Ok((text, bins))
}

fn to_json(value: &Mp, bins: &mut VecDeque<Bytes>) -> Json {
    match value {
        Mp::Nil => Json::Null,
        Mp::Boolean(b) => Json::Bool(*b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::from(u),
            (_, Some(i)) => Json::from(i),
            _ => Json::Null,
        },
        Mp::F32(f) => float_to_json(f64::from(*f)),
        Mp::F64(f) => float_to_json(*f),
        Mp::String(s) => Json::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Mp::Binary(b) => binary(b, bins),
        Mp::Array(items) => Json::Array(items.iter().map(|v| to_json(v, bins)).collect()),
        Mp::Map(entries) => Json::Object(
            entries.iter().map(|(k, v)| (key_to_string(k), to_json(v, bins))).collect(),
        ),
        Mp::Ext(kind, data) => ext_to_json(*kind, data, bins),
    }
}

fn binary(data: &[u8], bins: &mut VecDeque<Bytes>) -> Json {
    let mut map = Map::new();
    map.insert("_placeholder".into(), Json::Bool(true));
    map.insert("num".into(), Json::from(bins.len()));
    bins.push_back(Bytes::copy_from_slice(data));
    Json::Object(map)
}

/// JSON.stringify turns non-finite numbers into null and prints integral
/// doubles without a fraction.
fn float_to_json(f: f64) -> Json {
    if !f.is_finite() {
        Json::Null
    } else if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
        Json::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}

/// JS object keys are strings: notepack's decoder stringifies other keys.
fn key_to_string(key: &Mp) -> String {
    match key {
        Mp::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Mp::Integer(i) => i.to_string(),
        Mp::F32(f) => js_number(f64::from(*f)),
        Mp::F64(f) => js_number(*f),
        Mp::Boolean(b) => b.to_string(),
        Mp::Nil => "null".into(),
        other => other.to_string(),
    }
}

/// A number printed as JS's `String(n)` would for the common cases.
pub(crate) fn js_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
        let i = f as i64;
        i.to_string()
    } else {
        f.to_string()
    }
}

/// notepack's extension types: -1 is a msgpack timestamp (JS Date), type 0
/// is its legacy `undefined` (1 byte), Date in ms (8 bytes) or ArrayBuffer;
/// anything else decodes to `[type, Buffer]`.
fn ext_to_json(kind: i8, data: &[u8], bins: &mut VecDeque<Bytes>) -> Json {
    match (kind, data.len()) {
        (-1, _) => timestamp(data).map_or(Json::Null, Json::String),
        (0, 1) => Json::Null,
        (0, 8) => legacy_date(data).map_or(Json::Null, Json::String),
        (0, _) => binary(data, bins),
        _ => Json::Array(vec![Json::from(kind), binary(data, bins)]),
    }
}

/// notepack 2's Date: milliseconds since the epoch, big-endian i64.
fn legacy_date(data: &[u8]) -> Option<String> {
    let ms = i64::from_be_bytes(data.try_into().ok()?);
    let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?;
    iso(ms.div_euclid(1000), nanos)
}

/// Decodes a msgpack timestamp (32, 64 or 96 bit) into an ISO 8601 string
/// with millisecond precision, like JS `Date.prototype.toISOString`.
fn timestamp(data: &[u8]) -> Option<String> {
    let (secs, nanos) = match data.len() {
        4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            let nanos = u32::try_from(v >> 34).ok()?;
            (i64::try_from(v & 0x3_ffff_ffff).ok()?, nanos)
        }
        12 => {
            let nanos = u32::from_be_bytes(data[..4].try_into().ok()?);
            (i64::from_be_bytes(data[4..].try_into().ok()?), nanos)
        }
        _ => return None,
    };
    // JS dates have millisecond precision.
    iso(secs, nanos / 1_000_000 * 1_000_000)
}

fn iso(secs: i64, nanos: u32) -> Option<String> {
    DateTime::from_timestamp(secs, nanos).map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_binary_and_back() {
        let bins = [Bytes::from_static(&[1, 2, 3])];
        let mp = json_to_msgpack(r#"["ev",{"a":{"_placeholder":true,"num":0}},1.5,-3,7.0]"#, &bins)
            .unwrap();
        assert_eq!(mp[0], Mp::from("ev"));
        assert_eq!(mp[1], Mp::Map(vec![(Mp::from("a"), Mp::Binary(vec![1, 2, 3]))]));
        assert_eq!(mp[2], Mp::F64(1.5));
        assert_eq!(mp[3], Mp::from(-3));
        assert_eq!(mp[4], Mp::from(7));
        let (text, back) = msgpack_to_json(&mp).unwrap();
        assert_eq!(text, r#"["ev",{"a":{"_placeholder":true,"num":0}},1.5,-3,7]"#);
        assert_eq!(back, vec![Bytes::from_static(&[1, 2, 3])]);
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert!(json_to_msgpack("{}", &[]).is_err());
        assert!(json_to_msgpack("not json", &[]).is_err());
        assert!(matches!(
            json_to_msgpack(r#"[{"_placeholder":true,"num":3}]"#, &[]),
            Err(EncodeError::MissingAttachment(3))
        ));
    }

    #[test]
    fn dates_become_iso_strings() {
        // timestamp 32: 2021-01-01T00:00:00Z
        let t32 = Mp::Ext(-1, 1_609_459_200u32.to_be_bytes().to_vec());
        // timestamp 64: same second + 123 ms
        let v: u64 = (123_000_000u64 << 34) | 1_609_459_200;
        let t64 = Mp::Ext(-1, v.to_be_bytes().to_vec());
        // timestamp 96: a negative second (1969-12-31T23:59:59Z)
        let mut t96 = 0u32.to_be_bytes().to_vec();
        t96.extend_from_slice(&(-1i64).to_be_bytes());
        let (text, _) =
            msgpack_to_json(&[t32, t64, Mp::Ext(-1, t96), Mp::Ext(-1, vec![1])]).unwrap();
        assert_eq!(
            text,
            r#"["2021-01-01T00:00:00.000Z","2021-01-01T00:00:00.123Z","1969-12-31T23:59:59.000Z",null]"#
        );
    }

    #[test]
    fn odd_values_map_like_js() {
        let items = [
            Mp::F64(f64::NAN),
            Mp::Map(vec![(Mp::from(1), Mp::Nil), (Mp::Boolean(true), Mp::from(2))]),
            Mp::Ext(5, vec![9]),
            Mp::Ext(0, vec![0]),
        ];
        let (text, bins) = msgpack_to_json(&items).unwrap();
        assert_eq!(text, r#"[null,{"1":null,"true":2},[5,{"_placeholder":true,"num":0}],null]"#);
        assert_eq!(bins.len(), 1);
    }
}
