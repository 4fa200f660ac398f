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
    AdapterMode, Cluster,
    driver::{Driver, DriverError},
    error::RequestError,
    metrics::incr,
    proto::{
        Channels, EncodeError, Request, RequestMsg, ResponseBody, ResponseMsg, ShardedBody,
        ShardedChannels, ShardedMessage,
    },
    sharded::{RoomSync, ShardedNs, hex_id},
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
    pub(crate) channels: Channels,
    /// Present in sharded mode, which replaces the classic channels.
    pub(crate) sharded: Option<ShardedNs>,
    pending: Arc<Pending>,
    closed: AtomicBool,
    /// Room channels of the dynamic sharded modes.
    pub(crate) rooms: Arc<RoomSync>,
}

impl<D: Driver> NsCore<D> {
    pub(crate) fn new(cluster: Cluster<D>, nsp: String) -> Self {
        let config = cluster.config();
        let channels = Channels::new(&config.key, &nsp);
        let pending =
            Arc::new(Pending { map: Mutex::default(), capacity: config.queue_capacity.max(1) });
        let (sharded, uid) = match config.mode {
            AdapterMode::Classic => (None, random_id()),
            AdapterMode::Sharded { subscription_mode } => {
                let channels = ShardedChannels::new(&config.key, &nsp);
                // Node's uids are 16 hex characters; a response channel
                // named like that cannot be mistaken for a Roomcast socket.
                (Some(ShardedNs { channels, mode: subscription_mode }), hex_id())
            }
        };
        Self {
            cluster,
            nsp,
            uid,
            channels,
            sharded,
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

    /// A sharded message of this adapter and the channel Node would put it
    /// on. Fails, publishing nothing, if Node could not read it.
    pub(crate) fn sharded_message(
        &self,
        sharded: &ShardedNs,
        body: ShardedBody,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        let channel = sharded.channels.publish_channel(&body, sharded.mode);
        let msg = ShardedMessage { uid: Some(self.uid.clone()), nsp: Some(self.nsp.clone()), body };
        Ok((channel, msg.encode()?))
    }

    /// Waits until this server hears the channels of `rooms` (dynamic
    /// sharded modes; at once otherwise). See [`RoomSync::ready`].
    pub(crate) async fn rooms_ready(&self, rooms: &[String], timeout: Duration) -> bool {
        let dynamic = self.sharded.as_ref().is_some_and(ShardedNs::dynamic);
        !dynamic || self.rooms.ready(rooms, timeout).await
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.cluster.config().request_timeout
    }

    /// Publishes, counting and logging the outcome.
    /// (S)PUBLISH as the mode wants.
    pub(crate) async fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), DriverError> {
        let metrics = self.cluster.metrics();
        let driver = self.cluster.driver();
        let result = if self.sharded.is_some() {
            driver.spublish(channel, payload).await
        } else {
            driver.publish(channel, payload).await
        };
        match result {
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

    /// Encodes a request of this adapter: on the request channel in
    /// classic mode, as a sharded message on its channel otherwise.
    pub(crate) fn encode_request(
        &self,
        request: Request,
        request_id: Option<String>,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        match &self.sharded {
            Some(sharded) => {
                self.sharded_message(sharded, ShardedBody::from_request(request, request_id)?)
            }
            None => {
                let msg = RequestMsg { uid: Some(self.uid.clone()), request_id, request };
                Ok((self.channels.request.clone(), msg.encode()?))
            }
        }
    }

    /// Publishes a request of this adapter.
    pub(crate) async fn send_request(
        &self,
        request: Request,
        request_id: Option<String>,
    ) -> Result<(), RequestError> {
        let (channel, payload) = self.encode_request(request, request_id)?;
        self.publish(channel, payload).await?;
        Ok(())
    }

    /// Answers a peer's request, on its own response channel when allowed.
    pub(crate) async fn reply(&self, to_uid: Option<&str>, msg: ResponseMsg) {
        if let Some(sharded) = &self.sharded {
            // Node answers on the asker's own channel only.
            let Some(uid) = to_uid else {
                tracing::debug!(nsp = %self.nsp, "request without uid cannot be answered");
                return;
            };
            let encoded = ShardedBody::from_response(msg).and_then(|body| {
                let msg = ShardedMessage {
                    uid: Some(self.uid.clone()),
                    nsp: Some(self.nsp.clone()),
                    body,
                };
                msg.encode()
            });
            match encoded {
                Ok(payload) => {
                    let _ = self.publish(sharded.channels.response_for(uid), payload).await;
                }
                Err(e) => tracing::warn!(nsp = %self.nsp, error = %e, "response not sent"),
            }
            return;
        }
        let channel = match to_uid {
            Some(uid) if self.cluster.config().reply_on_own_channel => {
                self.channels.response_for(uid)
            }
            _ => self.channels.response.clone(),
        };
        match msg.encode() {
            // Failures are logged and counted by `publish`.
            Ok(payload) => {
                let _ = self.publish(channel, payload).await;
            }
            Err(e) => tracing::warn!(nsp = %self.nsp, error = %e, "response not sent"),
        }
    }

    pub(crate) fn on_response(&self, msg: ResponseMsg) {
        self.pending.dispatch(msg);
    }

    /// The servers serving this namespace, this one included: PUBSUB
    /// NUMSUB of the request channel, or SHARDNUMSUB of the main channel.
    pub(crate) async fn server_count(&self) -> Result<u64, DriverError> {
        match &self.sharded {
            Some(sharded) => {
                self.cluster.driver().shard_numsub(sharded.channels.main.clone()).await
            }
            None => self.cluster.driver().numsub(self.channels.request.clone()).await,
        }
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
