//! Three in-process servers on a real `redis-server`, with real clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestClient, close_all, connect_clients, eventually, redis_nodes, scenarios, timed};
use roomcast_adapter::{
    AdapterConfig, AdapterMetrics,
    driver::{Driver, FredDriver},
    proto::Channels,
};
use roomcast_testkit::Redis;
use serde_json::json;

fn config(redis: &Redis) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        request_timeout: Duration::from_secs(2),
        reconnect_max_delay: Duration::from_millis(500),
        ..AdapterConfig::default()
    }
}

#[tokio::test]
async fn cluster_over_redis() {
    timed(60, async {
        let redis = Redis::start();
        let nodes = redis_nodes(&config(&redis), 3).await;
        let mut clients = connect_clients(&nodes).await;
        scenarios::three_servers(&nodes, &mut clients, async |room| {
            eventually(async || nodes[2].io.within(room.to_owned()).sockets().len() == 1).await;
        })
        .await;
        let stats = nodes[0].cluster.metrics_snapshot();
        assert!(stats.published > 0 && stats.received > 0);
        close_all(&nodes).await;
    })
    .await;
}

#[tokio::test]
async fn redis_outage_and_reconnect() {
    timed(60, async {
        let redis = Redis::start();
        let port = redis.port;
        let nodes = redis_nodes(&config(&redis), 2).await;
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

        let _redis = Redis::start_on(port);
        eventually(async || nodes[1].cluster.metrics_snapshot().reconnects > 0).await;
        // Subscriptions are back: a broadcast crosses nodes again.
        eventually(async || {
            let _ = nodes[0].io.emit("again", "after").await;
            tokio::time::timeout(Duration::from_millis(200), b.expect("again")).await.is_ok()
        })
        .await;
        assert!(nodes[0].cluster.metrics_snapshot().redis_errors > 0);
        close_all(&nodes).await;
    })
    .await;
}

#[tokio::test]
async fn hostile_bytes_over_redis() {
    timed(60, async {
        let redis = Redis::start();
        let nodes = redis_nodes(&config(&redis), 2).await;
        let mut clients = connect_clients(&nodes).await;
        let metrics = Arc::new(AdapterMetrics::default());
        let attacker = FredDriver::connect(&config(&redis), metrics).await.unwrap();
        let ch = Channels::new("socket.io", "/");
        let channels = [
            ch.broadcast.clone(),
            ch.broadcast_channel(&["r".into()]),
            ch.request.clone(),
            ch.response.clone(),
        ];
        scenarios::hostile_bytes_are_dropped(&nodes, &mut clients, &channels, &[], async |c, p| {
            attacker.publish(c, p).await.unwrap();
        })
        .await;
        attacker.close().await;
        close_all(&nodes).await;
    })
    .await;
}
