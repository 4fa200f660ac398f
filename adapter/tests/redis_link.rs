//! The driver's link state on a real `redis-server`: while Redis is away a
//! publish fails at once instead of waiting in the client for a reconnection,
//! and the cluster reports itself disconnected until it is back.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{eventually, timed};
use roomcast_adapter::{
    AdapterConfig, AdapterMetrics, Cluster,
    driver::{Driver, DriverError, FredDriver},
};
use roomcast_testkit::Redis;

fn config(redis: &Redis) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        // Long enough that a publish held by the client would be seen waiting.
        request_timeout: Duration::from_secs(5),
        reconnect_max_delay: Duration::from_millis(500),
        ..AdapterConfig::default()
    }
}

#[tokio::test]
async fn publishes_fail_fast_while_redis_is_away() {
    timed(60, async {
        let redis = Redis::start();
        let port = redis.port;
        let driver = FredDriver::connect(&config(&redis), Arc::new(AdapterMetrics::default()))
            .await
            .unwrap();
        assert!(driver.is_connected());
        driver.publish("link-test".into(), b"before".to_vec()).await.unwrap();

        drop(redis);
        eventually(async || !driver.is_connected()).await;
        // Every publish during the outage, not only the first, fails at once.
        for i in 0..10 {
            let started = Instant::now();
            let result = driver.publish("link-test".into(), format!("during {i}").into()).await;
            assert!(matches!(result, Err(DriverError::Unavailable)), "{result:?}");
            let sharded = driver.spublish("link-test".into(), b"during".to_vec()).await;
            assert!(matches!(sharded, Err(DriverError::Unavailable)), "{sharded:?}");
            assert!(started.elapsed() < Duration::from_millis(100), "took {:?}", started.elapsed());
            tokio::time::sleep(Duration::from_millis(150)).await;
        }

        let _redis = Redis::start_on(port);
        eventually(async || driver.is_connected()).await;
        driver.publish("link-test".into(), b"after".to_vec()).await.unwrap();
        driver.close().await;
    })
    .await;
}

#[tokio::test]
async fn the_cluster_reports_the_outage() {
    timed(60, async {
        let redis = Redis::start();
        let port = redis.port;
        let cluster = Cluster::connect(config(&redis)).await.unwrap();
        assert!(cluster.is_connected());
        drop(redis);
        eventually(async || !cluster.is_connected()).await;
        let _redis = Redis::start_on(port);
        eventually(async || cluster.is_connected()).await;
        cluster.close().await;
    })
    .await;
}
