// Faults under traffic: Redis killed and restarted (nodes stay up, local delivery goes
// on, cross-node delivery resumes, counted in metrics), and Postgres cut off behind a
// TCP proxy (new handshakes refused clearly, live sockets keep working, rows reconciled
// when it returns).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as tcpConnect } from 'node:net';
import {
  PG_URL, backends, notePgSkip, createDb, startNode, addUser, connectClient, connectRefused,
  joinRoom, passwordOf, roomName, randomUUID, waitUntil, metrics, metricSum, delay, untilDelivered,
} from './lib/harness.mjs';
import { startCluster, FAST_HEARTBEATS } from './lib/cluster.mjs';

describe('Redis killed and restarted under traffic', { timeout: 60000 }, () => {
  let cluster, a, b;
  const connect = (...args) => cluster.connect(...args);

  before(async () => {
    cluster = await startCluster({ db: backends()[0].name });
    [a, b] = cluster.nodes;
  });

  after(() => cluster?.stop());

  it('keeps nodes up and local delivery going, then resumes cross-node delivery', async () => {
    const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
    const carol = await connect('v4-polling', a.url, passwordOf('carol'));
    const bob = await connect('v4-websocket', b.url, passwordOf('bob'));
    const room = roomName('redis');
    for (const c of [alice, carol, bob]) await joinRoom(c, room);
    const before = await alice.ack('sendMessage', { room, message: 'before' });
    await bob.waitFor('incomingMessage', (m) => m.id === before.id);

    assert.equal(before.delivered, undefined, 'a send that reached the cluster says nothing more');
    const connected = async (n) => metricSum(await metrics(n.url), 'roomcast_adapter_connected');
    for (const n of [a, b]) assert.equal(await connected(n), 1, 'adapter connected');

    cluster.redis.stop();
    await delay(300);
    for (const n of [a, b]) assert.equal((await fetch(`${n.url}/livez`)).status, 200, 'node up');
    for (const n of [a, b]) assert.equal(await connected(n), 0, 'the outage shows in the gauge');
    // Same-node delivery does not need Redis; every ack says the message stayed on this
    // node, at once (a publish must not wait for Redis to come back).
    const during = [];
    for (let i = 0; i < 10; i++) {
      const sent = Date.now();
      const ack = await alice.ack('sendMessage', { room, message: `during ${i}` });
      assert.ok(Date.now() - sent < 1000, `ack ${i} took ${Date.now() - sent} ms`);
      assert.equal(ack.ok, true);
      assert.equal(ack.delivered, 'local', `ack ${i} tells the message stayed on this node`);
      during.push(ack.id);
      await delay(200);
    }
    for (const id of during) await carol.waitFor('incomingMessage', (m) => m.id === id);
    assert.equal(metricSum(await metrics(a.url), 'roomcast_delivered_local_total', { nsp: '/' }), during.length);
    assert.equal((await alice.ack('request', { uuid: randomUUID(), route: 'echo', params: 1 })).ok, true);

    await cluster.restartRedis();
    // Cross-node delivery comes back once the adapter has reconnected and subscribed.
    // Each node's publisher and subscriber reconnect on their own backoff: both ways.
    await untilDelivered(alice, bob, room, 'cross-node delivery after the restart', 15000);
    await untilDelivered(bob, alice, room, 'and back', 15000);
    for (const n of [a, b]) await waitUntil(async () => (await connected(n)) === 1, 'adapter connected again');
    const after = await alice.ack('sendMessage', { room, message: 'after' });
    assert.equal(after.delivered, undefined, 'back to cluster-wide delivery');
    await bob.waitFor('incomingMessage', (m) => m.id === after.id);
    for (const n of [a, b]) {
      const samples = await metrics(n.url);
      assert.ok(metricSum(samples, 'roomcast_adapter_messages_total', { kind: 'reconnects' }) >= 1, 'reconnect counted');
      assert.ok(metricSum(samples, 'roomcast_adapter_messages_total', { kind: 'redis_errors' }) >= 1, 'outage counted');
    }
  });
});

/** A TCP proxy to Postgres that can cut every connection and refuse new ones. */
async function pgProxy(target) {
  const sockets = new Set();
  let up = true;
  const server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = tcpConnect(target.port, target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    down() { up = false; for (const s of sockets) s.destroy(); },
    up() { up = true; },
    close() { this.down(); server.close(); },
  };
}

describe('Postgres unavailable', { skip: !PG_URL && 'ROOMCAST_TEST_PG_URL is not set', timeout: 60000 }, () => {
  let db, node, proxy;
  const clients = [];
  const connect = async (...args) => { const c = await connectClient(...args); clients.push(c); return c; };

  before(async () => {
    notePgSkip();
    db = await createDb('postgres');
    proxy = await pgProxy(new URL(db.url));
    const url = new URL(db.url);
    url.port = String(proxy.port);
    node = await startNode({
      db,
      env: {
        DATABASE_URL: url.toString(),
        ROOMCAST_DATABASE_ACQUIRE_TIMEOUT: '3s',
        ...FAST_HEARTBEATS,
      },
    });
    await Promise.all(['alice', 'bob', 'carol'].map((u) => addUser(db, u, `${u}-pw`)));
  });

  after(async () => {
    for (const c of clients) c.close();
    await node?.stop();
    proxy?.close();
    await db?.drop().catch(() => {});
  });

  it('refuses new handshakes, keeps live sockets, and reconciles rows when it returns', async () => {
    const alice = await connect('v4-websocket', node.url, passwordOf('alice'));
    const bob = await connect('v4-websocket', node.url, passwordOf('bob'));
    const [r1, r2] = [roomName('pg1'), roomName('pg2')];
    await joinRoom(alice, r1);
    await joinRoom(bob, r1);

    proxy.down();
    await waitUntil(async () => (await fetch(`${node.url}/readyz`)).status === 503, 'not ready without its store');
    assert.equal(await connectRefused('v4-websocket', node.url, passwordOf('carol')), 'service unavailable: session store');
    // Live sockets keep working: rooms, messages, requests.
    assert.equal((await alice.ack('join room', r2)).ok, true);
    const m = await bob.ack('sendMessage', { room: r1, message: 'in the dark' });
    await alice.waitFor('incomingMessage', (x) => x.id === m.id);
    assert.equal((await alice.ack('request', { uuid: randomUUID(), route: 'rooms.list' })).result.rooms.length, 2);
    const bobRow = bob.sid;
    bob.close();
    await delay(300);

    proxy.up();
    await waitUntil(async () => (await fetch(`${node.url}/readyz`)).status === 200, 'ready again', 15000);
    await waitUntil(async () => {
      const row = await db.getSession(alice.sid);
      return row && row.sess.rooms.length === 2;
    }, 'the join made during the outage reached the row', 10000);
    assert.deepEqual((await db.getSession(alice.sid)).sess.rooms, [r1, r2].sort());
    await waitUntil(async () => (await db.getSession(bobRow)) === null, 'the row of the socket that left is gone', 10000);
    (await connect('v4-websocket', node.url, passwordOf('carol'))).close();
  });
});
