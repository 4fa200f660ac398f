//! Which protocol a namespace speaks: classic pub/sub (Node's
//! `createAdapter`) or sharded pub/sub (`createShardedAdapter`). What differs
//! between the two lives here (the channels, the uid's shape, how a message
//! is encoded, published and read back, how servers are counted) so the rest
//! of the adapter asks the mode instead of branching on it.

use std::hash::{BuildHasher, Hasher, RandomState};

use rmpv::Value as Mp;
use socketioxide_core::Uid;

use crate::{
    AdapterConfig, AdapterMode,
    driver::{Driver, DriverError, Subscription},
    namespace::random_id,
    proto::{
        Broadcast, Channels, DecodeError, EncodeError, EventPacket, Incoming, Request, RequestMsg,
        ResponseMsg, ShardedBody, ShardedChannels, ShardedMessage, SubscriptionMode, Target,
        WireOpts,
    },
};

/// Node's `randomId()` shape: 16 hex characters.
fn hex_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write(Uid::new().to_string().as_bytes());
    format!("{:016x}", hasher.finish())
}

/// `body` in the sharded envelope of the adapter `uid` of `nsp`. Fails if
/// Node could not read it.
fn envelope(uid: &str, nsp: &str, body: ShardedBody) -> Result<Vec<u8>, EncodeError> {
    ShardedMessage { uid: Some(uid.to_owned()), nsp: Some(nsp.to_owned()), body }.encode()
}

/// A message ready for the bus: its channel and its bytes.
pub(crate) type Outbound = (String, Vec<u8>);

/// A received message this namespace must act on.
#[derive(Debug, PartialEq)]
pub(crate) struct Inbound {
    /// The sender's uid, where answers go (the emitter sends none).
    pub(crate) from: Option<String>,
    /// The operation to apply, or an answer to one of ours.
    pub(crate) incoming: Incoming,
}

/// A namespace's protocol and its channels.
#[derive(Debug)]
pub(crate) enum Mode {
    /// PUBLISH/(P)SUBSCRIBE on `key#nsp#…`, `key-request#nsp#` and
    /// `key-response#nsp#…`.
    Classic {
        /// The namespace's channels.
        channels: Channels,
        /// Answer on the asker's own response channel when it gave its uid.
        reply_on_own_channel: bool,
    },
    /// SPUBLISH/SSUBSCRIBE on `key#nsp#…` only.
    Sharded {
        /// The namespace's channels.
        channels: ShardedChannels,
        /// Whether single rooms have channels of their own.
        subscription_mode: SubscriptionMode,
    },
}

impl Mode {
    /// The mode `config` gives namespace `nsp`.
    pub(crate) fn new(config: &AdapterConfig, nsp: &str) -> Self {
        match config.mode {
            AdapterMode::Classic => Self::Classic {
                channels: Channels::new(&config.key, nsp),
                reply_on_own_channel: config.reply_on_own_channel,
            },
            AdapterMode::Sharded { subscription_mode } => Self::Sharded {
                channels: ShardedChannels::new(&config.key, nsp),
                subscription_mode,
            },
        }
    }

    /// A fresh adapter uid. Sharded uids take Node's shape (16 hex
    /// characters): a response channel named like that cannot be mistaken
    /// for the room of a Roomcast socket.
    pub(crate) fn new_uid(&self) -> String {
        match self {
            Self::Classic { .. } => random_id(),
            Self::Sharded { .. } => hex_id(),
        }
    }

    /// What the adapter `uid` listens to as long as its namespace lives. In
    /// classic mode every server subscribes the request channel on exactly
    /// one connection, which makes its NUMSUB the server count.
    pub(crate) fn base_subscriptions(&self, uid: &str) -> Vec<Subscription> {
        match self {
            Self::Classic { channels, .. } => vec![
                Subscription::Pattern(channels.broadcast_pattern()),
                Subscription::Channel(channels.request.clone()),
                Subscription::Channel(channels.response.clone()),
                Subscription::Channel(channels.response_for(uid)),
            ],
            Self::Sharded { channels, .. } => vec![
                Subscription::Shard(channels.main.clone()),
                Subscription::Shard(channels.response_for(uid)),
            ],
        }
    }

    /// The channels of single rooms, in the dynamic sharded modes only:
    /// there a server must subscribe the channel of each room it has.
    pub(crate) fn room_channels(&self) -> Option<&ShardedChannels> {
        match self {
            Self::Sharded { channels, subscription_mode }
                if *subscription_mode != SubscriptionMode::Static =>
            {
                Some(channels)
            }
            _ => None,
        }
    }

    /// PUBLISH, or SPUBLISH in sharded mode.
    pub(crate) async fn publish<D: Driver>(
        &self,
        driver: &D,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), DriverError> {
        match self {
            Self::Classic { .. } => driver.publish(channel, payload).await,
            Self::Sharded { .. } => driver.spublish(channel, payload).await,
        }
    }

    /// The servers serving the namespace: PUBSUB NUMSUB of the request
    /// channel, or SHARDNUMSUB of the main channel.
    pub(crate) async fn server_count<D: Driver>(&self, driver: &D) -> Result<u64, DriverError> {
        match self {
            Self::Classic { channels, .. } => driver.numsub(channels.request.clone()).await,
            Self::Sharded { channels, .. } => driver.shard_numsub(channels.main.clone()).await,
        }
    }

    /// The request that lists the rooms of `target` on the other servers:
    /// ALL_ROOMS when nothing is filtered (it cannot be), in classic mode
    /// (the sharded protocol has none); otherwise a fetch, whose sockets'
    /// rooms are read.
    pub(crate) fn rooms_request(&self, target: Target) -> Request {
        let everything = target.rooms.is_empty() && target.except.is_empty();
        match self {
            Self::Classic { .. } if everything => Request::AllRooms,
            _ => Request::Fetch { target },
        }
    }

    /// A broadcast without ack from the adapter `uid` of `nsp`, on the
    /// channel Node would put it on. Fails, publishing nothing, if Node
    /// could not read it.
    pub(crate) fn encode_broadcast(
        &self,
        uid: &str,
        nsp: &str,
        data: Vec<Mp>,
        opts: WireOpts,
    ) -> Result<Outbound, EncodeError> {
        match self {
            Self::Classic { channels, .. } => {
                let packet = EventPacket { nsp: nsp.to_owned(), data };
                let msg = Broadcast { uid: uid.to_owned(), packet, opts };
                Ok((channels.broadcast_channel(&msg.opts.rooms), msg.encode()?))
            }
            Self::Sharded { channels, subscription_mode } => {
                let body = ShardedBody::Broadcast { data, request_id: None, opts };
                Ok((channels.publish_channel(&body, *subscription_mode), envelope(uid, nsp, body)?))
            }
        }
    }

    /// A request from the adapter `uid` of `nsp`, on the channel every
    /// server listens to.
    pub(crate) fn encode_request(
        &self,
        uid: &str,
        nsp: &str,
        request: Request,
        request_id: Option<String>,
    ) -> Result<Outbound, EncodeError> {
        match self {
            Self::Classic { channels, .. } => {
                let msg = RequestMsg { uid: Some(uid.to_owned()), request_id, request };
                Ok((channels.request.clone(), msg.encode()?))
            }
            Self::Sharded { channels, subscription_mode } => {
                let body = ShardedBody::from_request(request, request_id)?;
                Ok((channels.publish_channel(&body, *subscription_mode), envelope(uid, nsp, body)?))
            }
        }
    }

    /// The answer of the adapter `uid` of `nsp` to a request of the adapter
    /// `to_uid`. `None` when it cannot be answered: the sharded protocol
    /// answers on the asker's own channel only, so an asker without uid
    /// gets nothing.
    pub(crate) fn encode_response(
        &self,
        uid: &str,
        nsp: &str,
        to_uid: Option<&str>,
        msg: ResponseMsg,
    ) -> Result<Option<Outbound>, EncodeError> {
        match self {
            Self::Classic { channels, reply_on_own_channel } => {
                let channel = match to_uid {
                    Some(to_uid) if *reply_on_own_channel => channels.response_for(to_uid),
                    _ => channels.response.clone(),
                };
                Ok(Some((channel, msg.encode()?)))
            }
            Self::Sharded { channels, .. } => {
                let Some(to_uid) = to_uid else { return Ok(None) };
                let body = ShardedBody::from_response(msg)?;
                Ok(Some((channels.response_for(to_uid), envelope(uid, nsp, body)?)))
            }
        }
    }

    /// Reads what arrived on `channel` for the adapter `uid` of `nsp`.
    /// `None` for what it must ignore: its own messages (their local part
    /// already ran), other namespaces' broadcasts, unknown channels. In
    /// sharded mode responses are taken whatever their `nsp`, other
    /// messages only with this one, as Node does.
    pub(crate) fn decode(
        &self,
        uid: &str,
        nsp: &str,
        channel: &str,
        payload: &[u8],
    ) -> Result<Option<Inbound>, DecodeError> {
        let own = |from: Option<&str>| from == Some(uid);
        match self {
            Self::Classic { channels, .. } => {
                if channel == channels.request {
                    let RequestMsg { uid: from, request_id, request } =
                        RequestMsg::decode(payload)?;
                    if own(from.as_deref()) {
                        return Ok(None);
                    }
                    let incoming = Incoming::Request { request_id, request };
                    Ok(Some(Inbound { from, incoming }))
                } else if channel.starts_with(&channels.response) {
                    let incoming = Incoming::Response(ResponseMsg::decode(payload)?);
                    Ok(Some(Inbound { from: None, incoming }))
                } else if channel.starts_with(&channels.broadcast) {
                    let Broadcast { uid: from, packet, opts } = Broadcast::decode(payload)?;
                    if own(Some(&from)) {
                        return Ok(None);
                    }
                    // Handled as a broadcast request without ack.
                    let request = Request::Broadcast { packet, opts };
                    let incoming = Incoming::Request { request_id: None, request };
                    Ok(Some(Inbound { from: Some(from), incoming }))
                } else {
                    Ok(None)
                }
            }
            Self::Sharded { .. } => {
                let ShardedMessage { uid: from, nsp: to, body } = ShardedMessage::decode(payload)?;
                if own(from.as_deref()) || (!body.is_response() && to.as_deref() != Some(nsp)) {
                    return Ok(None);
                }
                Ok(Some(Inbound { from, incoming: body.into_incoming(nsp) }))
            }
        }
    }
}

#[cfg(test)]
#[path = "mode_tests.rs"]
mod tests;
