//! Three in-process servers on a real `redis-server`, with real clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestClient, eventually, redis::RedisServer, start_node};
use roomcast_adapter::{
    AdapterConfig, AdapterMetrics, Cluster,
    driver::{Driver, FredDriver},
    proto::Channels,
};
use serde_json::json;
use tokio::sync::mpsc;

fn config(redis: &RedisServer) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        request_timeout: Duration::from_secs(2),
        reconnect_max_delay: Duration::from_millis(500),
        ..AdapterConfig::default()
    }
}

async fn timed<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("test took too long")
}

#[tokio::test]
async fn cluster_over_redis() {
    timed(async {
        let redis = RedisServer::start();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(start_node(Cluster::connect(config(&redis)).await.unwrap()).await);
        }
        let mut clients = Vec::new();
        for node in &nodes {
            clients.push(TestClient::connect(node.addr).await);
        }
        assert_eq!(nodes[0].cluster.server_count("/").await.unwrap(), 3);

        nodes[1].io.emit("all", "x").await.unwrap();
        for c in &mut clients {
            assert_eq!(c.expect("all").await, vec![json!("x")]);
        }

        clients[2].join("room").await;
        eventually(async || nodes[2].io.within("room").sockets().len() == 1).await;
        nodes[0].io.to("room").emit("r", "y").await.unwrap();
        clients[2].expect("r").await;
        clients[0].expect_nothing().await;
        clients[1].expect_nothing().await;

        nodes[0].io.to(clients[1].id.clone()).emit("direct", "z").await.unwrap();
        clients[1].expect("direct").await;

        let fetched = nodes[0].io.fetch_sockets().await.unwrap();
        assert_eq!(fetched.len(), 3);

        let (tx, mut rx) = mpsc::unbounded_channel();
        nodes[2].cluster.on_server_event("/", move |ev| {
            let _ = tx.send(ev.event.clone());
            if let Some(ack) = ev.ack {
                ack.send(json!("pong"));
            }
        });
        nodes[1].cluster.on_server_event("/", |ev| {
            if let Some(ack) = ev.ack {
                ack.send(json!("pong"));
            }
        });
        let answers =
            nodes[0].cluster.server_side_emit_with_ack("/", "ping", vec![]).await.unwrap();
        assert_eq!(answers, vec![json!("pong"), json!("pong")]);
        assert_eq!(rx.recv().await.unwrap(), "ping");

        let stats = nodes[0].cluster.metrics_snapshot();
        assert!(stats.published > 0 && stats.received > 0);
        for node in &nodes {
            node.cluster.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn redis_outage_and_reconnect() {
    timed(async {
        let redis = RedisServer::start();
        let port = redis.port;
        let nodes = [
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
        ];
        let mut a = TestClient::connect(nodes[0].addr).await;
        let mut b = TestClient::connect(nodes[1].addr).await;
        nodes[0].io.emit("m", "before").await.unwrap();
        a.expect("m").await;
        b.expect("m").await;

        drop(redis);
        // Local delivery goes on; the remote part is reported lost.
        eventually(async || nodes[0].io.emit("m", "during").await.is_err()).await;
        while let Ok(args) = tokio::time::timeout(Duration::from_millis(300), a.expect("m")).await {
            assert_eq!(args, vec![json!("during")]);
        }
        assert!(nodes[0].cluster.metrics_snapshot().publish_errors > 0);

        let _redis = RedisServer::start_on(port);
        eventually(async || nodes[1].cluster.metrics_snapshot().reconnects > 0).await;
        // Subscriptions are back: a broadcast crosses nodes again.
        eventually(async || {
            let _ = nodes[0].io.emit("again", "after").await;
            tokio::time::timeout(Duration::from_millis(200), b.expect("again")).await.is_ok()
        })
        .await;
        assert!(nodes[0].cluster.metrics_snapshot().redis_errors > 0);
        for node in &nodes {
            node.cluster.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn hostile_bytes_over_redis() {
    timed(async {
        let redis = RedisServer::start();
        let nodes = [
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
        ];
        let mut a = TestClient::connect(nodes[0].addr).await;
        let mut b = TestClient::connect(nodes[1].addr).await;
        let metrics = Arc::new(AdapterMetrics::default());
        let attacker = FredDriver::connect(&config(&redis), metrics).await.unwrap();
        let ch = Channels::new("socket.io", "/");
        for channel in [
            ch.broadcast.clone(),
            ch.broadcast_channel(&["r".into()]),
            ch.request.clone(),
            ch.response.clone(),
        ] {
            for payload in common::hostile_payloads() {
                attacker.publish(channel.clone(), payload).await.unwrap();
            }
        }
        a.expect_nothing().await;
        b.expect_nothing().await;
        nodes[1].io.emit("fine", "ok").await.unwrap();
        a.expect("fine").await;
        b.expect("fine").await;
        assert!(nodes[0].cluster.metrics_snapshot().decode_errors > 10);
        attacker.close().await;
        for node in &nodes {
            node.cluster.close().await;
        }
    })
    .await;
}
