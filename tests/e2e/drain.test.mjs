// Graceful drain on SIGTERM: readiness off and new Engine.IO sessions refused with 503
// at once, live sockets served through `server.drain_delay`, then closed with resume
// tickets that give their clients their rooms back on another node (`auth.resume`, or
// `resume` in the query for Engine.IO 3 clients), once and only for the same login.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import {
  backends, notePgSkip, joinRoom, passwordOf, roomName, randomUUID, waitUntil, delay,
} from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

for (const backend of backends()) {
  describe(`graceful drain (${backend.name})`, { skip: backend.skip, timeout: 60000 }, () => {
    let cluster, draining, survivor;
    const connect = (...args) => cluster.connect(...args);
    const rooms = async (client) =>
      (await client.ack('request', { uuid: randomUUID(), route: 'rooms.list' })).result.rooms;

    before(async () => {
      notePgSkip();
      cluster = await startCluster({
        db: backend.name,
        nodeEnv: (i) => (i === 0 ? { ROOMCAST_DRAIN_DELAY: '1500ms', ROOMCAST_SHUTDOWN_TIMEOUT: '10s' } : {}),
      });
      [draining, survivor] = cluster.nodes;
    });

    after(() => cluster?.stop());

    it('serves live sockets through the delay, refuses new ones, then hands rooms over', async () => {
      const [r1, r2, r3] = [roomName('d1'), roomName('d2'), roomName('d3')];
      const alice = await connect('v4-websocket', draining.url, passwordOf('alice'));
      const carol = await connect('v2', draining.url, passwordOf('carol'));
      const bob = await connect('v4-websocket', survivor.url, passwordOf('bob'));
      await joinRoom(alice, r1);
      await joinRoom(alice, r2);
      await joinRoom(carol, r3);
      await joinRoom(bob, r1);
      const [aliceId, carolId] = [alice.id, carol.id];

      const exited = new Promise((r) => draining.child.once('exit', (code) => r(code)));
      const t0 = Date.now();
      draining.child.kill('SIGTERM');
      await waitUntil(async () => (await fetch(`${draining.url}/readyz`)).status === 503, 'not ready');
      const handshake = await fetch(`${draining.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(handshake.status, 503, 'no new Engine.IO session while draining');

      // Still in the delay: the live socket works both ways.
      assert.equal((await alice.ack('request', { uuid: randomUUID(), route: 'echo', params: 1 })).ok, true);
      const during = await bob.ack('sendMessage', { room: r1, message: 'during' });
      await alice.waitFor('incomingMessage', (m) => m.id === during.id);

      assert.equal(await exited, 0, 'exits 0');
      assert.ok(Date.now() - t0 >= 1400, 'kept its sockets through the drain delay');
      await alice.waitDisconnect();
      await carol.waitDisconnect();

      // Another node, the previous socket id as `resume`: the rooms come back.
      const back = await connect('v4-polling', survivor.url, { ...passwordOf('alice'), resume: aliceId });
      assert.deepEqual(await rooms(back), [r1, r2].sort());
      const after = await bob.ack('sendMessage', { room: r1, message: 'after' });
      await back.waitFor('incomingMessage', (m) => m.id === after.id);
      const presence = await bob.ack('request', { uuid: randomUUID(), route: 'presence.room', params: { room: r1 } });
      assert.deepEqual(presence.result.users, ['alice', 'bob']);

      const carolBack = await connect('v2', survivor.url, { ...passwordOf('carol'), resume: carolId });
      assert.deepEqual(await rooms(carolBack), [r3], 'Engine.IO 3 clients resume through the query');
    });

    it('answers requests in flight before it closes their sockets', async () => {
      // An upstream that takes 800 ms to answer.
      const slow = createServer((req, res) => {
        req.resume();
        req.on('end', () => setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"done":true}');
        }, 800));
      });
      await new Promise((r) => slow.listen(0, '127.0.0.1', r));
      try {
        const node = await cluster.startNode({
          ROOMCAST_SHUTDOWN_TIMEOUT: '10s',
          ROOMCAST_REQUEST_ROUTES: `[{prefix="slow.", kind="upstream", url="http://127.0.0.1:${slow.address().port}/"}]`,
        });
        const alice = await connect('v4-websocket', node.url, passwordOf('alice'));
        const uuid = randomUUID();
        alice.send('request', { uuid, route: 'slow.job' });
        await delay(100);
        const exited = new Promise((r) => node.child.once('exit', (code) => r(code)));
        node.child.kill('SIGTERM');
        const reply = await alice.waitFor(`request ${uuid}`, () => true, 5000);
        assert.deepEqual(reply.result, { status: 200, body: { done: true } }, 'answered before the close');
        await alice.waitDisconnect();
        assert.equal(await exited, 0);
      } finally {
        slow.close();
      }
    });

    it('uses a ticket once, and only for its own login', async () => {
      const alice = await connect('v4-websocket', survivor.url, passwordOf('alice'));
      const room = roomName('d4');
      await joinRoom(alice, room);
      const node = await cluster.startNode({ ROOMCAST_SHUTDOWN_TIMEOUT: '5s' });
      const victim = await connect('v4-websocket', node.url, passwordOf('bob'));
      await joinRoom(victim, room);
      const victimId = victim.id;
      assert.equal((await node.stop()).code, 0);

      const thief = await connect('v4-websocket', survivor.url, { ...passwordOf('carol'), resume: victimId });
      assert.deepEqual(await rooms(thief), [], 'another login gets nothing');
      const owner = await connect('v4-websocket', survivor.url, { ...passwordOf('bob'), resume: victimId });
      assert.deepEqual(await rooms(owner), [room]);
      const again = await connect('v4-websocket', survivor.url, { ...passwordOf('bob'), resume: victimId });
      assert.deepEqual(await rooms(again), [], 'a ticket is used once');
      await delay(50);
    });
  });
}
