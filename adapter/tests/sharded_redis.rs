//! Sharded mode and classic mode on a real three-master Redis Cluster, a
//! mixed cluster with Node's `createShardedAdapter`, and resubscription
//! after a master restarts. Each test starts its own cluster (Redis 7+).
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{
    TestClient, close_all, connect_clients, eventually,
    peer::Peer,
    redis_nodes,
    scenarios::{self, Mixed},
    start_node, timed,
};
use roomcast_adapter::{
    AdapterConfig, AdapterMode, Cluster, SubscriptionMode, proto::ShardedChannels,
};
use roomcast_testkit::RedisCluster;

fn sharded(redis: &RedisCluster, mode: SubscriptionMode) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        mode: AdapterMode::Sharded { subscription_mode: mode },
        request_timeout: Duration::from_secs(3),
        reconnect_max_delay: Duration::from_millis(300),
        room_sync_interval: Duration::from_millis(20),
        ..AdapterConfig::default()
    }
}

fn slot_of(channel: &str) -> u16 {
    fred::util::redis_keyslot(channel.as_bytes())
}

#[tokio::test]
async fn sharded_nodes_on_a_redis_cluster() {
    timed(120, async {
        let redis = RedisCluster::start();
        let config = sharded(&redis, SubscriptionMode::Dynamic);
        let nodes = redis_nodes(&config, 3).await;
        let mut clients = connect_clients(&nodes).await;
        // Only the owner of the main channel's slot has subscribers; the
        // count is summed over every master.
        let ch = ShardedChannels::new("socket.io", "/");
        let owner = redis.owner(&ch.main);
        for &port in &redis.ports {
            let expected = if port == owner { 3 } else { 0 };
            assert_eq!(redis.shardnumsub(port, &ch.main), expected, "SHARDNUMSUB on {port}");
        }
        // No classic channel in sharded mode.
        for &port in &redis.ports {
            assert_eq!(redis.calls(port, "subscribe") + redis.calls(port, "psubscribe"), 0);
        }

        scenarios::three_servers(&nodes, &mut clients, async |room| {
            // The room gets its own channel, on the master owning its slot.
            let room = ch.room(room);
            eventually(async || redis.shardnumsub(redis.owner(&room), &room) == 1).await;
        })
        .await;
        // Messages went to the shards, none to the classic channels.
        let spublished: u64 = redis.ports.iter().map(|p| redis.calls(*p, "spublish")).sum();
        let published: u64 = redis.ports.iter().map(|p| redis.calls(*p, "publish")).sum();
        assert!(spublished >= 5 && published == 0, "spublish {spublished}, publish {published}");
        assert_eq!(nodes[0].cluster.metrics_snapshot().decode_errors, 0);
        close_all(&nodes).await;
    })
    .await;
}

#[tokio::test]
async fn classic_mode_on_a_redis_cluster() {
    timed(120, async {
        let redis = RedisCluster::start();
        // A plain URL plus the flag connects as a cluster client too.
        let config = AdapterConfig {
            redis_url: redis.seed(),
            cluster: true,
            request_timeout: Duration::from_secs(3),
            ..AdapterConfig::default()
        };
        let nodes = redis_nodes(&config, 3).await;
        let mut clients = connect_clients(&nodes).await;
        // Each server subscribes on the master of its client id's slot:
        // NUMSUB is only right summed over every master.
        let per_node: Vec<u64> =
            redis.ports.iter().map(|p| redis.numsub(*p, "socket.io-request#/#")).collect();
        assert_eq!(per_node.iter().sum::<u64>(), 3, "{per_node:?}");
        scenarios::three_servers(&nodes, &mut clients, async |room| {
            eventually(async || nodes[2].io.within(room.to_owned()).sockets().len() == 1).await;
        })
        .await;
        close_all(&nodes).await;
    })
    .await;
}

#[tokio::test]
async fn mixed_cluster_with_node_sharded_adapter() {
    timed(120, async {
        let redis = RedisCluster::start();
        let rust = redis_nodes(&sharded(&redis, SubscriptionMode::Dynamic), 2).await;
        let mut peer = Peer::start_sharded(&redis.seed(), "dynamic").await;
        scenarios::node_and_rust_servers(&rust, &mut peer, Mixed::Sharded(&redis)).await;
        close_all(&rust).await;
    })
    .await;
}

/// After a master restarts, each server subscribes again to the channels
/// that master owns, one SSUBSCRIBE per slot, and nothing is sent to the
/// masters that stayed up. With a hash-tagged prefix every channel of a
/// server shares one slot: one SSUBSCRIBE per server, whatever the number
/// of rooms.
#[tokio::test]
async fn restart_resubscribes_in_batches() {
    timed(120, async {
        let mut redis = RedisCluster::start();
        let config =
            AdapterConfig { key: "{rc}".into(), ..sharded(&redis, SubscriptionMode::Dynamic) };
        let nodes = redis_nodes(&config, 2).await;
        let mut a = TestClient::connect(nodes[0].addr).await;
        let mut b = TestClient::connect(nodes[1].addr).await;
        let rooms = ["r1", "r2", "r3", "r4", "r5"];
        for room in rooms {
            b.join(room).await;
        }
        let ch = ShardedChannels::new("{rc}", "/");
        let owner = redis.owner(&ch.main);
        eventually(async || rooms.iter().all(|r| redis.shardnumsub(owner, &ch.room(r)) == 1)).await;
        let others: Vec<u16> = redis.ports.iter().copied().filter(|p| *p != owner).collect();
        let before: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();

        redis.restart(owner);
        eventually(async || nodes.iter().all(|n| n.cluster.metrics_snapshot().reconnects > 0))
            .await;
        // b: main, own response, 5 rooms, its socket: 8 channels, 1 command.
        eventually(async || redis.shardnumsub(owner, &ch.room("r5")) == 1).await;
        eventually(async || redis.shardnumsub(owner, &ch.main) == 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(redis.calls(owner, "ssubscribe"), 2, "one SSUBSCRIBE per server");
        let after: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();
        assert_eq!(before, after, "masters that stayed up are left alone");
        nodes[0].io.to("r3").emit("back", "ok").await.unwrap();
        b.expect("back").await;
        a.expect_nothing().await;
        close_all(&nodes).await;
    })
    .await;
}

/// Default prefix: channels spread over the slots. A restarted master gets
/// one SSUBSCRIBE per slot it owns among the server's channels.
#[tokio::test]
async fn restart_resubscribes_per_slot() {
    timed(120, async {
        let mut redis = RedisCluster::start();
        let config = sharded(&redis, SubscriptionMode::Dynamic);
        let node = start_node(Cluster::connect(config).await.unwrap()).await;
        let c = TestClient::connect(node.addr).await;
        let rooms: Vec<String> = (0..24).map(|i| format!("room-{i}")).collect();
        for room in &rooms {
            c.join(room).await;
        }
        let ch = ShardedChannels::new("socket.io", "/");
        eventually(async || {
            rooms.iter().all(|r| redis.shardnumsub(redis.owner(&ch.room(r)), &ch.room(r)) == 1)
        })
        .await;
        // The master owning the most of these channels is restarted.
        let mut channels: Vec<String> = rooms.iter().map(|r| ch.room(r)).collect();
        channels.push(ch.main.clone());
        channels.push(ch.room(&c.id));
        let victim = *redis
            .ports
            .iter()
            .max_by_key(|p| channels.iter().filter(|c| redis.owner(c) == **p).count())
            .unwrap();
        let owned: Vec<&String> = channels.iter().filter(|c| redis.owner(c) == victim).collect();
        let slots: BTreeSet<u16> = owned.iter().map(|c| slot_of(c)).collect();
        let others: Vec<u16> = redis.ports.iter().copied().filter(|p| *p != victim).collect();
        let before: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();

        redis.restart(victim);
        eventually(async || node.cluster.metrics_snapshot().reconnects > 0).await;
        eventually(async || owned.iter().all(|c| redis.shardnumsub(victim, c) == 1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The own response channel may live there too: at most one more.
        let calls = redis.calls(victim, "ssubscribe");
        let slots = slots.len() as u64;
        assert!(calls == slots || calls == slots + 1, "{calls} SSUBSCRIBE for {slots} slots");
        let after: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();
        assert_eq!(before, after, "masters that stayed up are left alone");
        node.cluster.close().await;
    })
    .await;
}

/// `rooms_ready` returns once Redis confirmed the room channels: a message
/// published right after reaches the socket, even when the periodic sync
/// is far away; a room awaited with no local socket (a socket still
/// connecting) is held for the timeout, then let go.
#[tokio::test]
async fn rooms_ready_means_the_channels_are_subscribed() {
    timed(120, async {
        let redis = RedisCluster::start();
        for mode in [SubscriptionMode::Dynamic, SubscriptionMode::DynamicPrivate] {
            let config = AdapterConfig {
                room_sync_interval: Duration::from_secs(30),
                ..sharded(&redis, mode)
            };
            let nodes = redis_nodes(&config, 2).await;
            let ch = ShardedChannels::new("socket.io", "/");
            let (a, b) = (&nodes[0], &nodes[1]);
            let wait = Duration::from_secs(3);

            // A socket's own channel (Node publishes to a socket id there).
            let mut client = TestClient::connect(b.addr).await;
            b.cluster.rooms_ready("/", std::slice::from_ref(&client.id), wait).await.unwrap();
            a.io.to(client.id.clone()).emit("direct", &0).await.unwrap();
            client.expect("direct").await;

            // A room joined by the socket itself, which the adapter is not told of.
            client.join("late").await;
            eventually(async || b.io.within("late").sockets().len() == 1).await;
            b.cluster.rooms_ready("/", &["late".to_owned()], wait).await.unwrap();
            for i in 0..50 {
                a.io.to("late").emit("m", &i).await.unwrap();
            }
            for i in 0..50 {
                assert_eq!(client.expect("m").await, vec![serde_json::json!(i)], "{mode:?}");
            }

            // No local socket: subscribed for the wait, then let go.
            let pinned = ch.room("pinned");
            let short = Duration::from_millis(300);
            b.cluster.rooms_ready("/", &["pinned".to_owned()], short).await.unwrap();
            assert_eq!(redis.shardnumsub(redis.owner(&pinned), &pinned), 1);
            tokio::time::sleep(short).await;
            client.join("poke").await;
            b.cluster.rooms_ready("/", &["poke".to_owned()], wait).await.unwrap();
            eventually(async || redis.shardnumsub(redis.owner(&pinned), &pinned) == 0).await;

            assert!(matches!(
                b.cluster.rooms_ready("/nope", &["x".to_owned()], wait).await,
                Err(roomcast_adapter::RoomsReadyError::UnknownNamespace(_))
            ));
            close_all(&nodes).await;
        }
    })
    .await;
}
