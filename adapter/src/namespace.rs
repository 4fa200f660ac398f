//! The part of a namespace adapter that does not depend on socketioxide's
//! socket types: identity, channels, publishing, and requests in flight.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use socketioxide_core::Uid;
use tokio::sync::mpsc;

use crate::{
    Cluster,
    driver::{Driver, DriverError},
    error::RequestError,
    metrics::incr,
    mode::{Mode, Outbound},
    proto::{EncodeError, Request, ResponseBody, ResponseMsg, WireOpts},
    room_sync::RoomSync,
};

/// A random id: 16 URL-safe characters (Node uses 6; the length is free).
pub(crate) fn random_id() -> String {
    Uid::new().to_string()
}

/// Requests of this adapter waiting for responses, by request id.
#[derive(Debug)]
pub(crate) struct Pending {
    map: Mutex<HashMap<String, mpsc::Sender<ResponseBody>>>,
    capacity: usize,
}

/// Removes its request from [`Pending`] when dropped, however the wait ends.
#[derive(Debug)]
pub(crate) struct PendingGuard {
    pending: Arc<Pending>,
    id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<ResponseBody>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a request: its id, the queue of its responses and its guard.
    fn open(self: &Arc<Self>) -> (String, mpsc::Receiver<ResponseBody>, PendingGuard) {
        let id = random_id();
        let (tx, rx) = mpsc::channel(self.capacity);
        self.lock().insert(id.clone(), tx);
        (id.clone(), rx, PendingGuard { pending: self.clone(), id })
    }

    /// Hands a response to its request. Responses to requests of other
    /// servers (the shared response channel) or that came too late are
    /// ignored; so are extra ones beyond the queue's bound.
    fn dispatch(&self, msg: ResponseMsg) {
        if let Some(tx) = self.lock().get(&msg.request_id) {
            // Full means far more answers than servers: drop the excess.
            let _ = tx.try_send(msg.body);
        }
    }
}

/// One namespace's identity on the bus.
pub(crate) struct NsCore<D: Driver> {
    pub(crate) cluster: Cluster<D>,
    pub(crate) nsp: String,
    /// This adapter's uid, in every message it sends.
    pub(crate) uid: String,
    /// The protocol it speaks, with its channels.
    pub(crate) mode: Mode,
    pending: Arc<Pending>,
    closed: AtomicBool,
    /// Room channels of the dynamic sharded modes.
    pub(crate) rooms: Arc<RoomSync>,
}

impl<D: Driver> NsCore<D> {
    pub(crate) fn new(cluster: Cluster<D>, nsp: String) -> Self {
        let config = cluster.config();
        let pending =
            Arc::new(Pending { map: Mutex::default(), capacity: config.queue_capacity.max(1) });
        let mode = Mode::new(config, &nsp);
        let uid = mode.new_uid();
        Self {
            cluster,
            nsp,
            uid,
            mode,
            pending,
            closed: AtomicBool::new(false),
            rooms: Arc::default(),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// A broadcast without ack of this adapter. Fails, publishing nothing,
    /// if Node could not read it.
    pub(crate) fn encode_broadcast(
        &self,
        data: Vec<rmpv::Value>,
        opts: WireOpts,
    ) -> Result<Outbound, EncodeError> {
        self.mode.encode_broadcast(&self.uid, &self.nsp, data, opts)
    }

    /// Waits until this server hears the channels of `rooms` (dynamic
    /// sharded modes; at once otherwise). See [`RoomSync::ready`].
    pub(crate) async fn rooms_ready(&self, rooms: &[String], timeout: Duration) -> bool {
        self.mode.room_channels().is_none() || self.rooms.ready(rooms, timeout).await
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.cluster.config().request_timeout
    }

    /// Publishes as the mode wants, counting and logging the outcome.
    pub(crate) async fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), DriverError> {
        let metrics = self.cluster.metrics();
        match self.mode.publish(self.cluster.driver(), channel, payload).await {
            Ok(()) => {
                incr(&metrics.published);
                Ok(())
            }
            Err(e) => {
                incr(&metrics.publish_errors);
                tracing::warn!(nsp = %self.nsp, error = %e, "publish failed, remote servers miss this message");
                Err(e)
            }
        }
    }

    /// Publishes a request of this adapter.
    pub(crate) async fn send_request(
        &self,
        request: Request,
        request_id: Option<String>,
    ) -> Result<(), RequestError> {
        let (channel, payload) =
            self.mode.encode_request(&self.uid, &self.nsp, request, request_id)?;
        self.publish(channel, payload).await?;
        Ok(())
    }

    /// Answers a peer's request, on its own response channel when allowed.
    pub(crate) async fn reply(&self, to_uid: Option<&str>, msg: ResponseMsg) {
        match self.mode.encode_response(&self.uid, &self.nsp, to_uid, msg) {
            // Failures are logged and counted by `publish`.
            Ok(Some((channel, payload))) => {
                let _ = self.publish(channel, payload).await;
            }
            Ok(None) => tracing::debug!(nsp = %self.nsp, "request without uid cannot be answered"),
            Err(e) => tracing::warn!(nsp = %self.nsp, error = %e, "response not sent"),
        }
    }

    pub(crate) fn on_response(&self, msg: ResponseMsg) {
        self.pending.dispatch(msg);
    }

    /// The servers serving this namespace, this one included: PUBSUB
    /// NUMSUB of the request channel, or SHARDNUMSUB of the main channel.
    pub(crate) async fn server_count(&self) -> Result<u64, DriverError> {
        self.mode.server_count(self.cluster.driver()).await
    }

    /// Requests of this namespace still waiting for answers.
    pub(crate) fn pending_requests(&self) -> usize {
        self.pending.lock().len()
    }

    /// Opens a request whose responses arrive on the returned queue.
    pub(crate) fn open_request(&self) -> (String, mpsc::Receiver<ResponseBody>, PendingGuard) {
        self.pending.open()
    }

    /// Sends `request` to every other server and collects one response from
    /// each, as Node does: the count comes from NUMSUB, minus this server.
    /// On timeout the responses received so far come with the error.
    pub(crate) async fn request_all(
        &self,
        request: Request,
    ) -> Result<Vec<ResponseBody>, (RequestError, Vec<ResponseBody>)> {
        let expected =
            self.server_count().await.map_err(|e| (e.into(), Vec::new()))?.saturating_sub(1);
        if expected == 0 {
            return Ok(Vec::new());
        }
        let (id, mut rx, _guard) = self.open_request();
        self.send_request(request, Some(id)).await.map_err(|e| (e, Vec::new()))?;
        let mut responses = Vec::new();
        let deadline = tokio::time::sleep(self.request_timeout());
        tokio::pin!(deadline);
        while (responses.len() as u64) < expected {
            tokio::select! {
                Some(body) = rx.recv() => responses.push(body),
                () = &mut deadline => {
                    incr(&self.cluster.metrics().request_timeouts);
                    tracing::warn!(nsp = %self.nsp, expected, received = responses.len(), "cluster request timed out");
                    let received = responses.len() as u64;
                    return Err((RequestError::Timeout { expected, received }, responses));
                }
            }
        }
        Ok(responses)
    }
}
