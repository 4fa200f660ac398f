//! # Roomcast node
//!
//! A Socket.IO server node (axum + socketioxide) meant to run as one of many identical,
//! stateless nodes behind a sticky load balancer.
//!
//! The layers, from the outside in:
//!
//! - [`server`] wires a node: the SQL store, credential checks, the Socket.IO layer,
//!   the HTTP routes, and a graceful shutdown with a deadline; [`accept`] is its accept
//!   loop (deadlines on request heads, a cap on slow connections per address) and
//!   [`guard`] binds sessions to client addresses.
//! - [`handlers`] holds the namespaces, one file per protocol, and the connect
//!   middleware every authenticated namespace goes through.
//! - [`auth`] checks credentials (password, JWT, express-session cookie); [`session`]
//!   keeps a socket's state and its row in `express_sessions`, and [`reaper`] deletes
//!   the rows of departed sockets in batches; [`rooms`] holds the rules for user-named
//!   rooms; [`handshake`] shows a socket to Node.js peers' `fetchSockets()`.
//! - [`db`] speaks to SQLite or Postgres with the same behaviour on both.
//! - [`admin`] is the operators' API on the ops port (and its client for the CLI).
//! - [`config`] is the one typed configuration tree; [`metrics`] the Prometheus
//!   registry.
//!
//! The wire contract clients see is written out in `docs/protocol.md`.

pub mod accept;
pub mod admin;
pub mod auth;
pub mod build;
pub mod config;
pub mod db;
pub mod guard;
pub mod handlers;
pub mod handshake;
pub mod history;
pub mod http;
pub mod metrics;
pub mod process;
pub mod reaper;
pub mod recovery;
pub mod requests;
pub mod rooms;
pub mod server;
pub mod session;
pub mod state;
pub mod telemetry;

pub use config::Config;
pub use server::Node;
