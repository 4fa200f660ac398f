//! Three servers on one in-memory bus, each with a client, and bare bus
//! connections to watch the wire.

use std::sync::Arc;

use roomcast_adapter::{
    AdapterConfig, AdapterMetrics, Cluster,
    driver::{Driver, MemoryBus, MemoryDriver, Message, MessageSink, Subscription},
};
use tokio::sync::mpsc;

use super::{Node, TestClient, connect_clients, start_nodes};

pub struct Fixture {
    pub bus: MemoryBus,
    pub nodes: Vec<Node<MemoryDriver>>,
    pub clients: Vec<TestClient>,
}

/// Three servers with `config`, one client each.
pub async fn cluster3(config: AdapterConfig) -> Fixture {
    let bus = MemoryBus::new();
    let nodes = start_nodes(3, async || Cluster::with_driver(bus.connect(), config.clone())).await;
    let clients = connect_clients(&nodes).await;
    Fixture { bus, nodes, clients }
}

/// A bare bus connection listening to `subs`, like another Redis client.
pub async fn spy(
    bus: &MemoryBus,
    subs: Vec<Subscription>,
) -> (MemoryDriver, mpsc::Receiver<Message>) {
    let conn = bus.connect();
    let (tx, rx) = mpsc::channel(1024);
    conn.subscribe(subs, MessageSink::new(tx, Arc::new(AdapterMetrics::default())))
        .await
        .expect("spy subscribes");
    (conn, rx)
}
