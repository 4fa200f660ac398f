//! The wire, without I/O: what clients may send and what they are told. Nothing here
//! knows the node's state, its stores or its apps.

pub mod error;
pub mod room;
