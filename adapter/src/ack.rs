//! The stream of acknowledgements of a cluster-wide broadcast.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::{
    Stream, StreamExt,
    stream::{FusedStream, SelectAll},
};
use socketioxide_core::{Sid, Str, Value, adapter::AckStreamItem};
use tokio::{sync::mpsc, time::Sleep};

use crate::{
    namespace::PendingGuard,
    proto::{ResponseBody, msgpack_to_json},
};

/// Local acks (socketioxide's own streams) merged with the acks other
/// servers forward. Remote acks carry no socket id on the wire (Node sends
/// only the value), so they are yielded with [`Sid::ZERO`].
pub struct AckStream<S> {
    local: SelectAll<Pin<Box<S>>>,
    remote: Option<RemoteAcks>,
}

/// Acks of the other servers for one BROADCAST request.
pub(crate) struct RemoteAcks {
    rx: mpsc::Receiver<ResponseBody>,
    _guard: PendingGuard,
    deadline: Pin<Box<Sleep>>,
    /// Other servers expected to report a client count.
    servers: u64,
    counts: u64,
    expected_acks: u64,
    acks: u64,
    done: bool,
}

impl RemoteAcks {
    pub(crate) fn new(
        rx: mpsc::Receiver<ResponseBody>,
        guard: PendingGuard,
        servers: u64,
        timeout: std::time::Duration,
    ) -> Self {
        Self {
            rx,
            _guard: guard,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            servers,
            counts: 0,
            expected_acks: 0,
            acks: 0,
            done: false,
        }
    }

    /// Complete, as Node's `checkCompleteness`: every server reported its
    /// client count and every counted client answered.
    fn complete(&self) -> bool {
        self.counts >= self.servers && self.acks >= self.expected_acks
    }

    fn poll_ack(&mut self, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        loop {
            if self.done || self.complete() || self.deadline.as_mut().poll(cx).is_ready() {
                self.done = true;
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(ResponseBody::ClientCount(n))) => {
                    self.counts += 1;
                    self.expected_acks = self.expected_acks.saturating_add(n);
                }
                Poll::Ready(Some(ResponseBody::BroadcastAck(packet))) => {
                    self.acks += 1;
                    // socketioxide reads ack values as the array of arguments.
                    let args: Vec<_> = packet.into_iter().collect();
                    match msgpack_to_json(&args) {
                        Ok((text, bins)) => {
                            let bins = (!bins.is_empty()).then_some(bins);
                            return Poll::Ready(Some(Value::Str(Str::from(text), bins)));
                        }
                        Err(e) => tracing::debug!(error = %e, "remote ack dropped"),
                    }
                }
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S> AckStream<S> {
    pub(crate) fn new(local: Vec<S>, remote: Option<RemoteAcks>) -> Self
    where
        S: Stream,
    {
        Self { local: local.into_iter().map(Box::pin).collect(), remote }
    }
}

impl<S, E> Stream for AckStream<S>
where
    S: Stream<Item = AckStreamItem<E>>,
{
    type Item = AckStreamItem<E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.local.is_terminated()
            && let Poll::Ready(Some(item)) = this.local.poll_next_unpin(cx)
        {
            return Poll::Ready(Some(item));
        }
        if let Some(remote) = &mut this.remote
            && let Poll::Ready(Some(value)) = remote.poll_ack(cx)
        {
            return Poll::Ready(Some((Sid::ZERO, Ok(value))));
        }
        if this.is_terminated() { Poll::Ready(None) } else { Poll::Pending }
    }
}

impl<S, E> FusedStream for AckStream<S>
where
    S: Stream<Item = AckStreamItem<E>>,
{
    fn is_terminated(&self) -> bool {
        self.local.is_terminated() && self.remote.as_ref().is_none_or(|r| r.done)
    }
}
