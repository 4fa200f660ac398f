// Mixed clusters: two Roomcast nodes and a Node.js socket.io 4.8 server with
// @socket.io/redis-adapter 8.3 (classic and sharded) on one Redis, and
// @socket.io/redis-emitter. Private rooms, membership, inter-server events and socket
// counts must be one truth whichever implementation holds a socket or makes a change.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { joinRoom, passwordOf, assertFailure, roomName, waitUntil, randomUUID } from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

// The Node peer runs the same adapter as the Roomcast nodes, sharded ones in `dynamic` mode.
const MODES = [
  { name: 'classic', redis: 'single', mode: 'classic' },
  { name: 'sharded', redis: 'single', mode: 'sharded' },
  { name: 'sharded on a Redis Cluster', redis: 'cluster', mode: 'sharded' },
];

for (const mode of MODES) {
  describe(`mixed cluster with a Node.js peer (${mode.name})`, { timeout: 120000 }, () => {
    let cluster, db, nodes, peer;
    const connect = (...args) => cluster.connect(...args);
    const row = (socket) => db.getSession(`roomcast:${socket.id}`);
    const rowRooms = async (socket) => (await row(socket))?.sess.rooms;

    before(async () => {
      cluster = await startCluster({
        redis: mode.redis,
        mode: mode.mode,
        // Cluster queries give up after 2 s, well within a client's ack wait.
        env: { ROOMCAST_REQUEST_SERVER_EVENTS: 'echo', ROOMCAST_REDIS_REQUEST_TIMEOUT: '2s' },
        peer: {},
      });
      ({ db, nodes, peer } = cluster);
      // Every server of `/` is subscribed: two Roomcast nodes and the peer.
      await waitUntil(async () => (await peer.call('serverCount')) === 3, 'three servers on /');
    });

    after(() => cluster?.stop());

    it("refuses to join any connected socket's private room, whatever holds it", async () => {
      const [a, b] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const bob = await connect('v4-websocket', b.url, passwordOf('bob'));
      const nodeSocket = await connect('v4-websocket', peer.url, {});
      assert.equal(nodeSocket.id.length, 20, 'a Node socket id is 20 characters');
      assertFailure(await alice.ack('join room', nodeSocket.id), 'room_forbidden', "a Node socket's id");
      assertFailure(await alice.ack('join room', bob.id), 'room_forbidden', "another node's socket id");

      // Guests of /lobby, on this node and on another: their ids are reserved on / too.
      const localGuest = await connect('v4-websocket', `${a.url}/lobby`, {});
      const remoteGuest = await connect('v4-polling', `${b.url}/lobby`, {});
      assertFailure(await alice.ack('join room', localGuest.id), 'room_forbidden', 'a local lobby guest');
      assertFailure(await alice.ack('join room', remoteGuest.id), 'room_forbidden', 'a remote lobby guest');

      // Nothing reached the refused rooms' owners, and names of that shape that are no
      // socket's stay usable.
      assert.deepEqual(await rowRooms(alice), []);
      const free = 'AbCdEfGhIjKlMnOpQrSt';
      await joinRoom(alice, free);
      assert.deepEqual(await rowRooms(alice), [free]);
    });

    it("follows a peer's socketsJoin / socketsLeave / disconnectSockets in membership and rows", async () => {
      const [a, b] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const carol = await connect('v4-websocket', b.url, passwordOf('carol'));
      const room = roomName('remote');

      await peer.call('socketsJoin', { rooms: [alice.id], room });
      await waitUntil(async () => (await rowRooms(alice))?.includes(room), "alice's row lists the room");
      const sent = await alice.ack('sendMessage', { room, message: 'joined remotely' });
      assert.equal(sent.ok, true, `member after a remote join: ${JSON.stringify(sent)}`);
      await alice.waitFor('incomingMessage', (m) => m.id === sent.id);
      const uuid = randomUUID();
      const presence = await alice.ack('request', { uuid, route: 'presence.room', params: { room } });
      assert.deepEqual(presence.result, { room, users: ['alice'] });

      await peer.call('socketsLeave', { rooms: [alice.id], room });
      await waitUntil(async () => !(await rowRooms(alice))?.includes(room), "the room gone from alice's row");
      assertFailure(await alice.ack('sendMessage', { room, message: 'x' }), 'not_member', 'after a remote leave');
      assertFailure(await alice.ack('invalidate', { room }), 'not_member', 'invalidate after a remote leave');

      if (mode.name === 'classic') {
        const other = roomName('emitted');
        await peer.call('emitter', { op: 'socketsJoin', rooms: [carol.id], room: other });
        await waitUntil(async () => (await rowRooms(carol))?.includes(other), "carol's row lists the emitter's room");
        assert.equal((await carol.ack('sendMessage', { room: other, message: 'hi' })).ok, true);
        await peer.call('emitter', { op: 'socketsLeave', rooms: [carol.id], room: other });
        await waitUntil(async () => !(await rowRooms(carol))?.includes(other), "the emitter's room gone from the row");
        assertFailure(await carol.ack('sendMessage', { room: other, message: 'x' }), 'not_member', 'after the emitter left');
      }

      await peer.call('disconnectSockets', { rooms: [carol.id] });
      await carol.waitDisconnect();
      await waitUntil(async () => (await row(carol)) === null, "carol's row deleted");
      assert.ok(await row(alice), "alice's row stays");
    });

    it('delivers room messages to Node sockets in the room once, and to Roomcast sockets once, in order', async () => {
      const [a, b] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const carol = await connect('v4-websocket', b.url, passwordOf('carol'));
      const nodeSocket = await connect('v4-websocket', peer.url, {});
      const room = roomName('mixed-history');
      await joinRoom(alice, room);
      await joinRoom(carol, room);
      await peer.call('socketsJoin', { rooms: [nodeSocket.id], room });
      await waitUntil(async () => (await peer.call('fetchSockets', { rooms: [room] }))?.length === 3, 'three members');

      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await alice.ack('sendMessage', { room, message: `m${i}` })).id);
      const members = { alice, carol, 'the Node socket': nodeSocket };
      for (const [who, member] of Object.entries(members)) {
        const got = [];
        for (let i = 0; i < ids.length; i++) got.push(await member.waitFor('incomingMessage'));
        assert.deepEqual(got.map((m) => m.id), ids, `${who}: each once, in order`);
        const offsets = got.map((m) => m.offset);
        assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), `${who}: offsets one apart`);
      }
      // A barrier, then nothing more: the copy for Node servers is not delivered twice.
      const last = await carol.ack('sendMessage', { room, message: 'barrier' });
      for (const member of [alice, carol, nodeSocket]) {
        await member.waitFor('incomingMessage', (m) => m.id === last.id);
        member.assertNothing('each message once');
      }
    });

    it("answers a Node server's serverSideEmitWithAck with the configured route", async () => {
      const params = { n: 42, text: 'ping' };
      const echo = await peer.call('serverSideEmitWithAck', { event: 'echo', args: [params] });
      assert.equal(echo.error, null, `every Roomcast node answered: ${JSON.stringify(echo)}`);
      assert.deepEqual(echo.responses, [{ ok: true, result: params }, { ok: true, result: params }]);

      // Not in requests.server_events: no answer, as from a Node server without a listener.
      const silent = await peer.call('serverSideEmitWithAck', { event: 'time', args: [] });
      assert.match(String(silent.error), /timeout/i, JSON.stringify(silent));
      assert.deepEqual(silent.responses, []);
    });

    it("counts a Node peer's sockets in the chat's user count", async () => {
      const nodeChat = await connect('v4-websocket', `${peer.url}/chat`, {});
      await peer.call('socketsJoin', { nsp: '/chat', rooms: [nodeChat.id], room: '$chat:users' });
      const ann = await connect('v4-websocket', `${nodes[0].url}/chat`, {});
      ann.send('add user', 'ann');
      assert.deepEqual(await ann.waitFor('login'), { numUsers: 2 });
    });

    if (mode.name === 'classic') {
      it('refuses an id-shaped room name when the cluster cannot answer (fails closed)', async () => {
        const alice = await connect('v4-websocket', nodes[0].url, passwordOf('alice'));
        cluster.redis.stop();
        // The node notices the loss at once or on its first command; a name that cannot
        // be an id needs no cluster query and still works (without a history position:
        // the store is Redis too).
        await joinRoom(alice, 'plain room name', { history: false });
        const reply = await alice.ack('join room', 'ZyXwVuTsRqPoNmLkJiHg');
        assertFailure(reply, 'unavailable', 'no cluster answer');
        assert.deepEqual(await rowRooms(alice), ['plain room name']);
      });
    }
  });
}
