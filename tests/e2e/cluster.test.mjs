// Three Roomcast nodes sharing one Redis (the cluster adapter) and one database, with
// official clients of every kind spread over them: the seed 000 protocol, the lobby and
// the chat count must behave as on one node.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  backends, notePgSkip, joinRoom, passwordOf, assertFailure, roomName, metrics, metricSum, delay, randomUUID,
  lobbySession, untilDelivered, withoutPosition,
} from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

for (const backend of backends()) {
  describe(`cluster of three nodes (${backend.name})`, { skip: backend.skip, timeout: 120000 }, () => {
    let cluster, nodes;
    const connect = (...args) => cluster.connect(...args);

    before(async () => {
      notePgSkip();
      cluster = await startCluster({ nodes: 3, db: backend.name });
      ({ nodes } = cluster);
    });

    after(() => cluster?.stop());

    it('relays room events across nodes and keeps presence cluster-wide', async () => {
      const [a, b, c] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const bob = await connect('v4-polling', b.url, passwordOf('bob'));
      const carol = await connect('v2', c.url, passwordOf('carol'));
      const room = roomName('cluster');
      for (const client of [alice, bob, carol]) await joinRoom(client, room);

      const sent = await alice.ack('sendMessage', { room, message: 'across' });
      assert.equal(sent.ok, true);
      for (const client of [alice, bob, carol]) {
        const m = await client.waitFor('incomingMessage', (m) => m.id === sent.id);
        assert.deepEqual([m.from, m.room, m.message], ['alice', room, 'across']);
      }

      await bob.ack('invalidate', { room, ds: 'tasks' });
      for (const client of [alice, carol]) {
        assert.deepEqual(withoutPosition(await client.waitFor('ds invalidate')), { room, ds: 'tasks' });
      }

      const uuid = randomUUID();
      const reply = await carol.ack('request', { uuid, route: 'presence.room', params: { room } });
      assert.deepEqual(reply.result, { room, users: ['alice', 'bob', 'carol'] });
      await carol.waitFor(`request ${uuid}`);

      // Another node's socket id is that socket's private room.
      assertFailure(await alice.ack('join room', bob.id), 'room_forbidden', 'remote private room');

      await delay(200);
      bob.assertNothing('no echo of its own invalidate', 'ds invalidate');
      const published = metricSum(await metrics(a.url), 'roomcast_adapter_messages_total', { kind: 'published' });
      assert.ok(published > 0, `node A published through Redis: ${published}`);
    });

    it('shares lobby sessions and the chat count between nodes', async () => {
      const [a, , c] = nodes;
      const host = await connect('v4-websocket', `${a.url}/lobby`, {});
      const guest = await connect('v4-polling', `${c.url}/lobby`, {});
      const session_key = await lobbySession(host, guest);
      host.send('proccess_check');
      for (const client of [host, guest]) {
        assert.equal((await client.waitFor('session_started')).session_key, session_key);
      }
      host.close();
      assert.equal((await guest.waitFor('session_closed')).session_key, session_key);

      const ann = await connect('v4-websocket', `${a.url}/chat`, {});
      const ben = await connect('v4-websocket', `${c.url}/chat`, {});
      ann.send('add user', 'ann');
      assert.deepEqual(await ann.waitFor('login'), { numUsers: 1 });
      ben.send('add user', 'ben');
      assert.deepEqual(await ben.waitFor('login'), { numUsers: 2 });
      assert.deepEqual(await ann.waitFor('user joined'), { username: 'ben', numUsers: 2 });
    });
  });
}

// The same relays over Redis 7 sharded pub/sub (SPUBLISH), as Node's createShardedAdapter.
for (const subscriptionMode of ['static', 'dynamic', 'dynamic-private']) {
  describe(`sharded pub/sub, ${subscriptionMode} (sqlite)`, { timeout: 60000 }, () => {
    let cluster, nodes;
    const connect = (...args) => cluster.connect(...args);

    before(async () => {
      cluster = await startCluster({ mode: 'sharded', subscriptionMode, users: ['alice', 'bob'] });
      ({ nodes } = cluster);
    });

    after(() => cluster?.stop());

    it('relays room messages and keeps private rooms private across nodes', async () => {
      const alice = await connect('v4-websocket', nodes[0].url, passwordOf('alice'));
      const bob = await connect('v4-polling', nodes[1].url, passwordOf('bob'));
      const room = roomName('sharded');
      await joinRoom(alice, room);
      await joinRoom(bob, room);
      // Dynamic modes subscribe a room's channel shortly after it appears on a node.
      await untilDelivered(alice, bob, room, 'delivery across nodes');
      const back = await bob.ack('sendMessage', { room, message: 'back' });
      const got = await alice.waitFor('incomingMessage', (m) => m.id === back.id);
      assert.equal(got.message, 'back');
      assertFailure(await alice.ack('join room', bob.id), 'room_forbidden', 'remote private room');
    });
  });
}
