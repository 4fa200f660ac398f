//! One Socket.IO client connection: TCP from a chosen 127.0.0.x source address,
//! the WebSocket upgrade, the Engine.IO open packet and the Socket.IO CONNECT with
//! credentials.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::framing::{self, EnginePacket, SioKind};

/// An established, authenticated connection.
pub type Ws = WebSocketStream<TcpStream>;

/// A server to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved address.
    pub addr: SocketAddr,
    /// `ws://host:port/path/?EIO=4&transport=websocket`.
    pub url: String,
}

impl Target {
    /// Parses `http://host:port` (or `ws://`), with the Socket.IO path appended.
    pub fn parse(target: &str, path: &str) -> anyhow::Result<Self> {
        let rest =
            target.strip_prefix("http://").or_else(|| target.strip_prefix("ws://")).ok_or_else(
                || anyhow::anyhow!("target {target:?}: only http:// or ws:// (loopback load)"),
            )?;
        let hostport = rest.trim_end_matches('/');
        let addr: SocketAddr = hostport
            .parse()
            .map_err(|e| anyhow::anyhow!("target {target:?}: need an IP:port ({e})"))?;
        let path = format!("/{}/", path.trim_matches('/'));
        Ok(Self { addr, url: format!("ws://{hostport}{path}?EIO=4&transport=websocket") })
    }
}

/// Source addresses 127.0.0.2 .. 127.0.0.(n+1), handed out round-robin. Each source
/// address has its own ephemeral port range, so n of them carry n x ~28k connections
/// to one server port instead of ~28k.
#[derive(Debug)]
pub struct Sources {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Sources {
    /// `n` loopback source addresses; 0 lets the kernel choose.
    pub fn loopback(n: u8) -> Self {
        let addrs = (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i))).collect();
        Self { addrs, next: AtomicUsize::new(0) }
    }

    fn pick(&self) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        Some(self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()])
    }
}

/// Why a connection attempt failed; the label groups failures in the result.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or bind failed.
    #[error("tcp: {0}")]
    Tcp(std::io::Error),
    /// The WebSocket upgrade failed.
    #[error("websocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// The server refused the namespace (e.g. `unauthorized: ...`).
    #[error("connect_error: {0}")]
    Refused(String),
    /// Something other than the expected packet arrived, or the stream ended.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The whole handshake took longer than allowed.
    #[error("timeout")]
    Timeout,
}

impl ConnectError {
    /// A short, low-cardinality label.
    pub fn label(&self) -> String {
        match self {
            ConnectError::Tcp(e) => format!("tcp: {}", e.kind()),
            ConnectError::WebSocket(_) => "websocket".into(),
            ConnectError::Refused(m) => format!("refused: {m}"),
            ConnectError::Protocol(_) => "protocol".into(),
            ConnectError::Timeout => "timeout".into(),
        }
    }
}

/// Small buffers: the generator holds tens of thousands of sockets that carry small
/// frames, and tungstenite's 128 KiB default read buffer would cost gigabytes.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0)
}

/// A connected socket and what it cost to get it.
pub struct Connected {
    /// The stream, past CONNECT.
    pub ws: Ws,
    /// Time from TCP connect to the CONNECT reply.
    pub elapsed: Duration,
}

/// Connects, upgrades and authenticates, all within `timeout`.
pub async fn connect(
    target: &Target,
    sources: &Sources,
    nsp: &str,
    auth: &Value,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    let started = Instant::now();
    let ws = tokio::time::timeout(timeout, handshake(target, sources, nsp, auth))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    Ok(Connected { ws, elapsed: started.elapsed() })
}

async fn handshake(
    target: &Target,
    sources: &Sources,
    nsp: &str,
    auth: &Value,
) -> Result<Ws, ConnectError> {
    let socket = TcpSocket::new_v4().map_err(ConnectError::Tcp)?;
    if let Some(ip) = sources.pick() {
        socket.bind(SocketAddr::new(ip, 0)).map_err(ConnectError::Tcp)?;
    }
    let stream = socket.connect(target.addr).await.map_err(ConnectError::Tcp)?;
    stream.set_nodelay(true).map_err(ConnectError::Tcp)?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(target.url.as_str(), stream, Some(ws_config()))
            .await
            .map_err(|e| ConnectError::WebSocket(Box::new(e)))?;

    // The server speaks first with the Engine.IO open packet.
    let open = next_text(&mut ws).await?;
    if !matches!(framing::decode(&open), Ok(EnginePacket::Open(_))) {
        return Err(ConnectError::Protocol(format!("expected open packet, got {open:.40}")));
    }
    send(&mut ws, framing::connect(nsp, auth)).await?;
    loop {
        let text = next_text(&mut ws).await?;
        match framing::decode(&text) {
            Ok(EnginePacket::Ping) => send(&mut ws, "3".into()).await?,
            Ok(EnginePacket::Message(p)) if p.kind == SioKind::Connect && p.nsp == nsp => {
                return Ok(ws);
            }
            Ok(EnginePacket::Message(p)) if p.kind == SioKind::ConnectError && p.nsp == nsp => {
                let message = serde_json::from_str::<Value>(p.data)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| p.data.to_owned());
                return Err(ConnectError::Refused(message));
            }
            _ => return Err(ConnectError::Protocol(format!("unexpected {text:.40}"))),
        }
    }
}

async fn send(ws: &mut Ws, text: String) -> Result<(), ConnectError> {
    ws.send(Message::text(text)).await.map_err(|e| ConnectError::WebSocket(Box::new(e)))
}

async fn next_text(ws: &mut Ws) -> Result<String, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => {
                return Err(ConnectError::Protocol("closed during handshake".into()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnectError::WebSocket(Box::new(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:3000", "/socket.io").expect("parse");
        assert_eq!(t.addr, "127.0.0.1:3000".parse::<SocketAddr>().expect("addr"));
        assert_eq!(t.url, "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket");
        assert!(Target::parse("https://127.0.0.1:1", "/socket.io").is_err());
        assert!(Target::parse("http://localhost:1", "/socket.io").is_err());
    }

    #[test]
    fn sources_rotate() {
        let s = Sources::loopback(2);
        let picks: Vec<_> = (0..3).filter_map(|_| s.pick()).collect();
        assert_eq!(picks[0].to_string(), "127.0.0.2");
        assert_eq!(picks[1].to_string(), "127.0.0.3");
        assert_eq!(picks[2], picks[0]);
        assert_eq!(Sources::loopback(0).pick(), None);
    }
}
