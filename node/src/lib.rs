//! # Roomcast node
//!
//! A Socket.IO server node (axum + socketioxide) meant to run as one of many identical,
//! stateless nodes behind a sticky load balancer.
//!
//! The crate is in layers, each importing only from those below it (see
//! `docs/architecture.md`):
//!
//! - [`server`] wires a node: the engine on the configured adapter, the HTTP routes,
//!   the operators' API, and the tasks that run for the node's life (heartbeat and
//!   sweep, drain) under one shutdown.
//! - [`apps`] holds the namespaces, one folder each, plugged in through [`apps::App`].
//! - [`core`] is what every app stands on, knowing none of them: state, credentials,
//!   session rows and the SQL store, request routing, metrics.
//! - [`protocol`] is the wire without I/O: client errors and their codes, the names a
//!   client sends (rooms, logins, nicknames, request uuids), each checked once when
//!   built, and the `request` payload.
//! - [`config`] is the one typed configuration tree.
//!
//! The wire contract clients see is written out in `docs/protocol.md`.

#![warn(missing_docs)]

pub mod apps;
pub mod config;
pub mod core;
pub mod protocol;
pub mod server;

pub use config::Config;
pub use server::Node;
