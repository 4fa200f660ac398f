//! The wire, without I/O: what clients may send and what they are told. Nothing here
//! knows the node's state, its stores or its apps.
//!
//! A name read from a client is a type here ([`room::RoomName`], [`names::Login`],
//! [`names::Nickname`], [`request::RequestUuid`]) built only by its `parse`, so code
//! holding one need not check it again.

/// What every checked name shares: built only through `parse`, which checks its rule;
/// then its text (also through `Deref`), its `Display`, and its JSON form, the plain
/// string. With a rule (a test of the text) and the error that refuses it, `parse` is
/// made here too.
macro_rules! checked_text {
    ($name:ident, $error:ty, $refusal:expr, $rule:expr) => {
        impl $name {
            /// `text`, if it follows the rule.
            pub fn parse(text: impl Into<String>) -> Result<Self, $error> {
                let text = text.into();
                let rule: fn(&str) -> bool = $rule;
                if rule(&text) { Ok(Self(text)) } else { Err($refusal) }
            }
        }

        checked_text!($name);
    };
    ($name:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }
    };
}

pub mod error;
pub mod names;
pub mod request;
pub mod room;
