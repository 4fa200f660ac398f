// A node killed with SIGKILL cleans up nothing itself: the surviving node must notice
// its silence (heartbeats) and remove its session rows and lobby memberships within
// the configured bound, telling the lobby members.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  backends, notePgSkip, joinRoom, passwordOf, roomName, randomUUID, waitUntil, metrics, metricSum, lobbySession,
} from './lib/harness.mjs';
import { startCluster, FAST_HEARTBEATS } from './lib/cluster.mjs';

for (const backend of backends()) {
  describe(`a node killed with SIGKILL (${backend.name})`, { skip: backend.skip, timeout: 60000 }, () => {
    let cluster, db, survivor, victim;
    const connect = (...args) => cluster.connect(...args);

    before(async () => {
      notePgSkip();
      // Fast heartbeats so that the bound (1 s of silence) is tested in seconds.
      cluster = await startCluster({ db: backend.name, env: FAST_HEARTBEATS, users: ['alice', 'bob'] });
      ({ db, nodes: [survivor, victim] } = cluster);
    });

    after(() => cluster?.stop());

    it('loses its rows, presence and lobby sessions within the bound', async () => {
      const alice = await connect('v4-websocket', survivor.url, passwordOf('alice'));
      const bob = await connect('v4-websocket', victim.url, passwordOf('bob'));
      const room = roomName('failover');
      await joinRoom(alice, room);
      await joinRoom(bob, room);
      const presence = async () =>
        (await alice.ack('request', { uuid: randomUUID(), route: 'presence.room', params: { room } })).result.users;
      await waitUntil(async () => (await presence()).length === 2, 'both present');

      const host = await connect('v4-websocket', `${victim.url}/lobby`, {});
      const guest = await connect('v4-polling', `${survivor.url}/lobby`, {});
      const session_key = await lobbySession(host, guest);

      const bobRow = bob.sid;
      assert.ok(await db.getSession(bobRow), 'bob has a row while his node lives');
      victim.child.kill('SIGKILL');
      const killedAt = Date.now();

      assert.deepEqual(await guest.waitFor('session_closed', () => true, 5000), { message: 'Session closed!', session_key });
      await waitUntil(async () => (await db.getSession(bobRow)) === null, "bob's row swept", 5000);
      assert.deepEqual(await presence(), ['alice']);
      const elapsed = Date.now() - killedAt;
      assert.ok(elapsed < 5000, `swept in ${elapsed} ms`);
      assert.equal(metricSum(await metrics(survivor.url), 'roomcast_swept_nodes_total'), 1);
      assert.ok(await db.getSession(alice.sid), "the survivor's rows stay");
    });
  });
}
