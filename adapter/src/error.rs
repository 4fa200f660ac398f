//! Errors of the adapter's operations.

use serde_json::Value as Json;
use socketioxide_core::adapter::errors::AdapterError;

use crate::{driver::DriverError, proto::EncodeError};

/// A cluster operation (publish, request, query) failed. Local effects, if
/// any, have already happened.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The message could not be built; nothing was published.
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    /// Redis refused or is unreachable.
    #[error("bus error: {0}")]
    Driver(#[from] DriverError),
    /// Not every server answered within the request timeout.
    #[error("timeout: {received} of {expected} servers answered")]
    Timeout {
        /// Servers asked (other than this one).
        expected: u64,
        /// Servers that answered.
        received: u64,
    },
    /// No adapter on this node serves the namespace.
    #[error("unknown namespace {0}")]
    UnknownNamespace(String),
}

impl From<RequestError> for AdapterError {
    fn from(e: RequestError) -> Self {
        AdapterError(Box::new(e))
    }
}

/// A server-side emit with acknowledgements did not fully succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServerSideEmitError {
    /// The request could not be sent.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Some servers did not answer in time; what did arrive is kept.
    #[error("timeout: {} of {expected} servers answered", responses.len())]
    Timeout {
        /// Servers asked (other than this one).
        expected: u64,
        /// The answers received.
        responses: Vec<Json>,
    },
}

/// The namespace's subscriptions could not be sent to Redis now. The
/// namespace is served anyway and the subscriptions are retried after the
/// next reconnection.
#[derive(Debug, thiserror::Error)]
#[error("subscribing namespace {nsp} failed: {source}")]
pub struct InitError {
    /// The namespace.
    pub nsp: String,
    /// The cause.
    #[source]
    pub source: DriverError,
}

/// [`Cluster::rooms_ready`](crate::Cluster::rooms_ready) could not confirm
/// that this server hears every room asked for.
#[derive(Debug, thiserror::Error)]
pub enum RoomsReadyError {
    /// No adapter on this node serves the namespace.
    #[error("unknown namespace {0}")]
    UnknownNamespace(String),
    /// Redis did not confirm every room channel in time (it is unreachable,
    /// or slow); the rooms are subscribed once it answers.
    #[error("room channels not confirmed within {0:?}")]
    Timeout(std::time::Duration),
}
