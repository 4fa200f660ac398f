//! Three socketioxide servers sharing the in-memory bus, with real clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::{str::FromStr, time::Duration};

use common::{
    eventually,
    memory::{cluster3, spy},
    scenarios, start_nodes, timed,
};
use roomcast_adapter::{
    AdapterConfig, Cluster,
    driver::{Driver, MemoryBus, Subscription},
    proto::{Broadcast, Channels},
};
use serde_json::json;
use socketioxide::socket::Sid;

fn config() -> AdapterConfig {
    AdapterConfig { request_timeout: Duration::from_secs(2), ..AdapterConfig::default() }
}

fn sid(id: &str) -> Sid {
    Sid::from_str(id).unwrap()
}

#[tokio::test]
async fn broadcast_reaches_every_node_once() {
    timed(30, async {
        let mut f = cluster3(config()).await;
        let channels = Channels::new("socket.io", "/");
        let (_spy, mut wire) =
            spy(&f.bus, vec![Subscription::Pattern(channels.broadcast_pattern())]).await;

        scenarios::broadcast_reaches_every_client_once(&f.nodes, &mut f.clients).await;
        // One publish, never one per node.
        let msg = wire.recv().await.unwrap();
        assert_eq!(msg.channel, "socket.io#/#");
        let decoded = Broadcast::decode(&msg.payload).unwrap();
        assert!(decoded.opts.rooms.is_empty());
        assert!(wire.try_recv().is_err());

        // local: only node 0's client.
        f.nodes[0].io.local().emit("loc", "x").await.unwrap();
        assert_eq!(f.clients[0].expect("loc").await, vec![json!("x")]);
        f.clients[1].expect_nothing().await;
        assert!(wire.try_recv().is_err());

        // volatile travels as a flag; a single room picks the room channel.
        f.clients[1].join("r").await;
        eventually(async || f.nodes[1].io.within("r").sockets().len() == 1).await;
        f.nodes[0].io.to("r").volatile().emit("vol", "v").await.unwrap();
        assert_eq!(f.clients[1].expect("vol").await, vec![json!("v")]);
        let msg = wire.recv().await.unwrap();
        assert_eq!(msg.channel, "socket.io#/#r#");
        assert_eq!(Broadcast::decode(&msg.payload).unwrap().opts.flags.volatile, Some(true));
    })
    .await;
}

#[tokio::test]
async fn rooms_except_and_socket_ids() {
    timed(30, async {
        let mut f = cluster3(config()).await;
        f.clients[1].join("r").await;
        f.clients[2].join("r").await;
        eventually(async || f.nodes[2].io.within("r").sockets().len() == 1).await;

        f.nodes[0].io.to("r").emit("a", "1").await.unwrap();
        f.clients[1].expect("a").await;
        f.clients[2].expect("a").await;
        f.clients[0].expect_nothing().await;

        // except a room named after a (remote) socket id excludes that socket.
        let c2 = f.clients[2].id.clone();
        f.nodes[0].io.to("r").except(c2.clone()).emit("b", "2").await.unwrap();
        f.clients[1].expect("b").await;
        f.clients[2].expect_nothing().await;

        // a socket id as a room targets exactly that socket, local or remote.
        f.nodes[0].io.to(c2).emit("c", "3").await.unwrap();
        f.clients[2].expect("c").await;
        let c0 = f.clients[0].id.clone();
        f.nodes[1].io.to(c0).emit("d", "4").await.unwrap();
        f.clients[0].expect("d").await;
        f.clients[1].expect_nothing().await;

        // except a local socket id, on the node that owns it.
        let c1 = f.clients[1].id.clone();
        f.nodes[1].io.except(c1).emit("e", "5").await.unwrap();
        f.clients[0].expect("e").await;
        f.clients[2].expect("e").await;
        f.clients[1].expect_nothing().await;

        // a socket broadcasting skips itself everywhere.
        let s0 = f.nodes[0].io.get_socket(sid(&f.clients[0].id)).unwrap();
        s0.broadcast().emit("f", "6").await.unwrap();
        f.clients[1].expect("f").await;
        f.clients[2].expect("f").await;
        f.clients[0].expect_nothing().await;
    })
    .await;
}

#[tokio::test]
async fn join_leave_disconnect_fetch_rooms_across_nodes() {
    timed(30, async {
        let mut f = cluster3(config()).await;
        scenarios::join_fetch_leave_across_nodes(&f.nodes, &mut f.clients, async || {}).await;

        assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 3);

        f.nodes[0].io.to(f.clients[2].id.clone()).disconnect().await.unwrap();
        eventually(async || f.nodes[2].io.sockets().is_empty()).await;
        assert_eq!(f.nodes[1].io.sockets().len(), 1);
        assert_eq!(f.nodes[0].io.sockets().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn server_side_events_with_and_without_ack() {
    timed(30, async {
        let f = cluster3(config()).await;
        scenarios::server_side_emit_reaches_the_others(&f.nodes).await;
        assert!(f.nodes[0].cluster.server_side_emit("/nope", "x", vec![]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn broadcast_with_ack_completes_on_client_counts() {
    timed(30, async {
        let bus = MemoryBus::new();
        let nodes = start_nodes(3, async || Cluster::with_driver(bus.connect(), config())).await;
        // No clients anywhere: every server reports 0 at once.
        scenarios::acks_end_on_client_counts(nodes[0].io.broadcast()).await;
    })
    .await;
}

#[tokio::test]
async fn outage_keeps_local_delivery() {
    timed(30, async {
        let mut f = cluster3(config()).await;
        f.bus.set_down(true);
        let result = f.nodes[0].io.emit("m", "down").await;
        assert!(result.is_err(), "the lost remote part is reported");
        f.clients[0].expect("m").await;
        f.clients[1].expect_nothing().await;
        assert!(f.nodes[0].cluster.metrics_snapshot().publish_errors >= 1);
        assert!(f.nodes[0].io.fetch_sockets().await.is_err());

        f.bus.set_down(false);
        f.nodes[0].io.emit("m", "up").await.unwrap();
        for c in &mut f.clients {
            assert_eq!(c.expect("m").await, vec![json!("up")]);
        }
    })
    .await;
}

#[tokio::test]
async fn hostile_bytes_on_every_channel() {
    timed(30, async {
        let mut f = cluster3(config()).await;
        f.clients[1].join("r").await;
        eventually(async || f.nodes[1].io.within("r").sockets().len() == 1).await;
        let attacker = f.bus.connect();
        let ch = Channels::new("socket.io", "/");
        let channels = [
            ch.broadcast.clone(),
            ch.broadcast_channel(&["r".into()]),
            ch.request.clone(),
            ch.response.clone(),
            ch.response_for("someone"),
        ];
        scenarios::hostile_bytes_are_dropped(
            &f.nodes,
            &mut f.clients,
            &channels,
            &[],
            async |c, p| {
                attacker.publish(c, p).await.unwrap();
            },
        )
        .await;
        assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn raw_remote_sockets_and_the_rooms_changed_hook() {
    timed(30, async {
        let f = cluster3(config()).await;
        let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
        f.nodes[2].cluster.on_rooms_changed(move |nsp, sids| {
            let _ = tx.send((nsp.to_owned(), sids));
        });
        let target = f.clients[2].id.clone();
        let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<Sid>)>| {
            tokio::time::timeout(common::WAIT, rx.recv()).await.unwrap().unwrap()
        };

        // Another server's socketsJoin on the socket's private room.
        f.nodes[0].io.to(target.clone()).join("r1").await.unwrap();
        assert_eq!(next(&mut changed).await, ("/".to_owned(), vec![sid(&target)]));
        let remote = f.nodes[0].cluster.remote_sockets("/", vec!["r1".into()]).await.unwrap();
        assert_eq!(remote.len(), 1);
        assert_eq!(remote[0].id, target);
        assert_eq!(remote[0].rooms, [target.clone(), "r1".to_owned()]);
        assert!(f.nodes[0].cluster.has_socket("/", &target).await.unwrap());
        assert!(!f.nodes[0].cluster.has_socket("/", "AbCdEfGhIjKlMnOp").await.unwrap());
        // Every other server's sockets when no room is named; never this server's own.
        let all = f.nodes[0].cluster.remote_sockets("/", Vec::new()).await.unwrap();
        let mut ids: Vec<_> = all.into_iter().map(|s| s.id).collect();
        ids.sort();
        let mut expected = vec![f.clients[1].id.clone(), target.clone()];
        expected.sort();
        assert_eq!(ids, expected);

        f.nodes[1].io.to(target.clone()).leave("r1").await.unwrap();
        assert_eq!(next(&mut changed).await, ("/".to_owned(), vec![sid(&target)]));
        assert!(
            f.nodes[0].cluster.remote_sockets("/", vec!["r1".into()]).await.unwrap().is_empty()
        );
    })
    .await;
}
