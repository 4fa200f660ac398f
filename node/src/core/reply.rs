//! How handlers answer: one reply shape for acks, and the `error` event when the
//! client asked for no ack; plus the counted emits every namespace uses.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::{FromMessageParts, Value as PacketValue};
use socketioxide::socket::Socket;
use socketioxide::{BroadcastError, SendError, SocketError};

use crate::core::metrics::{ErrorKind, Metrics};
use crate::core::state::AppState;
pub use crate::protocol::error::{ClientError, Code, Outcome};

/// Counts an event received on the socket's namespace.
pub fn count_in<A: Adapter>(s: &SocketRef<A>, app: &AppState, event: &str) {
    app.metrics.events_in.with_label_values(&[s.ns(), event]).inc();
}

/// Counts an event sent on the socket's namespace (once per emit, however many get it).
pub fn count_out<A: Adapter>(s: &SocketRef<A>, app: &AppState, event: &str) {
    app.metrics.events_out.with_label_values(&[s.ns(), event]).inc();
}

/// Emits to this socket only, counted.
pub fn emit<A: Adapter>(s: &SocketRef<A>, app: &AppState, event: &str, data: &Value) {
    count_out(s, app, event);
    check_sent(&app.metrics, s.ns(), Packet::Event, event, s.emit(event, data));
}

/// What failed to reach a client: the `kind` of `roomcast_undelivered_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// The acknowledgement of a client's event.
    Ack,
    /// An event emitted to one socket.
    Event,
    /// A socket of this node missed by a room or namespace broadcast.
    Broadcast,
}

impl Packet {
    /// Every kind, so each series can be shown from the start.
    pub const ALL: [Packet; 3] = [Packet::Ack, Packet::Event, Packet::Broadcast];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Packet::Ack => "ack",
            Packet::Event => "event",
            Packet::Broadcast => "broadcast",
        }
    }
}

/// The one place a packet that cannot reach its client ends: counted in
/// `roomcast_undelivered_total{nsp,kind}` (and `roomcast_emits_dropped_total{nsp}` when
/// the client's buffer was full) and logged, so no loss goes unseen.
fn undelivered(
    metrics: &Metrics,
    nsp: &str,
    kind: Packet,
    event: &str,
    error: &dyn std::fmt::Display,
    full: bool,
) {
    metrics.undelivered.with_label_values(&[nsp, kind.as_str()]).inc();
    if full {
        metrics.emits_dropped.with_label_values(&[nsp]).inc();
    }
    tracing::warn!(nsp, kind = kind.as_str(), event, %error, "packet not delivered to a client");
}

/// Accounts for a send to one socket (an emit or an ack) that failed.
pub fn check_sent(
    metrics: &Metrics,
    nsp: &str,
    kind: Packet,
    event: &str,
    sent: Result<(), SendError>,
) {
    if let Err(e) = sent {
        let full = matches!(e, SendError::Socket(SocketError::InternalChannelFull));
        undelivered(metrics, nsp, kind, event, &e, full);
    }
}

/// How far a broadcast went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// To every node (or the only one).
    Cluster,
    /// To this node's sockets only: the adapter could not publish it.
    Local,
}

/// Accounts for the sockets a broadcast missed on this node, and tells whether it left
/// the node. The adapter counts and logs its own publish failures.
pub fn check_broadcast(
    metrics: &Metrics,
    nsp: &str,
    event: &str,
    sent: Result<(), BroadcastError>,
) -> Reach {
    match sent {
        Ok(()) => Reach::Cluster,
        Err(BroadcastError::Socket(errors)) => {
            for e in &errors {
                let full = matches!(e, SocketError::InternalChannelFull);
                undelivered(metrics, nsp, Packet::Broadcast, event, e, full);
            }
            Reach::Cluster
        }
        Err(e @ BroadcastError::Serialize(_)) => {
            undelivered(metrics, nsp, Packet::Broadcast, event, &e, false);
            Reach::Cluster
        }
        Err(BroadcastError::Adapter(e)) => {
            tracing::warn!(nsp, event, error = %e, "broadcast delivered on this node only");
            Reach::Local
        }
    }
}

/// The `error {message}` event of the example protocols (seeds 001 and 002), counted
/// as an error of the namespace.
pub fn fail<A: Adapter>(s: &SocketRef<A>, app: &AppState, message: &str) {
    app.metrics.error(ErrorKind::AppEvent(s.ns())).inc();
    emit(s, app, "error", &json!({ "message": message }));
}

/// Extractor that answers an event: through the ack when the client asked for one,
/// otherwise errors go out as the `error` event and successes say nothing.
pub struct Reply<A: Adapter> {
    ack: AckSender<A>,
    wants_ack: bool,
    socket: Arc<Socket<A>>,
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut PacketValue,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let ack = AckSender::from_message_parts(s, v, ack_id)?;
        Ok(Self { ack, wants_ack: ack_id.is_some(), socket: s.clone() })
    }
}

impl<A: Adapter> Reply<A> {
    /// Sends `body` as the ack of `event`, if the client asked for one.
    pub fn ack(self, event: &str, body: &Value, metrics: &Metrics) {
        check_sent(metrics, self.socket.ns(), Packet::Ack, event, self.ack.send(body));
    }

    /// Sends `{ok: true, ..fields}` or `{ok: false, error}` in the ack, or the error as
    /// the `error` event `{event, code, message}` when there is no ack.
    pub fn send(self, event: &str, outcome: Outcome, metrics: &Metrics) {
        if let Err(e) = &outcome {
            metrics.error(ErrorKind::of(&e.code)).inc();
        }
        let ns = self.socket.ns();
        match (outcome, self.wants_ack) {
            (Ok(mut fields), true) => {
                fields.insert("ok".into(), Value::Bool(true));
                check_sent(metrics, ns, Packet::Ack, event, self.ack.send(&fields));
            }
            (Err(e), true) => {
                let body = json!({ "ok": false, "error": e.to_json() });
                check_sent(metrics, ns, Packet::Ack, event, self.ack.send(&body));
            }
            (Ok(_), false) => {}
            (Err(e), false) => {
                metrics.events_out.with_label_values(&[ns, "error"]).inc();
                let body = json!({ "event": event, "code": e.code.as_str(), "message": e.message });
                check_sent(metrics, ns, Packet::Event, "error", self.socket.emit("error", &body));
            }
        }
    }
}
