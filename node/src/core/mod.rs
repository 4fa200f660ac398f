//! What every app stands on, knowing none of them: shared state, credentials, session
//! rows and the SQL store, request routing, metrics, and the connect middleware's
//! common steps.

pub mod auth;
pub mod build;
pub mod connect;
pub mod db;
pub mod guard;
pub mod handshake;
pub mod metrics;
pub mod nickname;
pub mod process;
pub mod reaper;
pub mod reply;
pub mod requests;
pub mod session;
pub mod state;
pub mod telemetry;
