//! Roomcast's native load generator: Engine.IO 4 / Socket.IO 5 over WebSocket,
//! spoken directly, for loads that k6 cannot drive from a 2-core machine.

pub mod client;
pub mod framing;
pub mod modes;
pub mod stats;
pub mod storm;
