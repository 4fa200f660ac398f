// A Postgres outage longer than `node.dead_after` stops every node's heartbeat at once.
// When the store comes back, the first node to beat again must not take its live peers
// for dead: every node's session rows and the lobby sessions it hosts survive, and
// nothing is swept. A node that really dies afterwards is still swept in time.
// The Postgres here is this test's own (scripts/services), taken down and up again.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
  joinRoom, passwordOf, roomName, randomUUID, waitUntil, metrics, metricSum, lobbySession, delay,
} from './lib/harness.mjs';
import { startCluster, FAST_HEARTBEATS } from './lib/cluster.mjs';
import { startService } from './lib/services.mjs';

const LIVENESS = { ...FAST_HEARTBEATS, ROOMCAST_DATABASE_ACQUIRE_TIMEOUT: '500ms' };
const OUTAGE_MS = 3000;

describe('a Postgres outage longer than dead_after', { timeout: 90000 }, () => {
  let postgres, cluster, db, a, b;
  const connect = (...args) => cluster.connect(...args);
  const query = async (sql, params = []) => {
    const client = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  };

  before(async () => {
    postgres = await startService('postgres');
    cluster = await startCluster({ db: { kind: 'postgres', url: postgres.url }, env: LIVENESS, users: ['alice', 'bob'] });
    ({ db, nodes: [a, b] } = cluster);
  });

  after(async () => {
    await cluster?.stop();
    postgres?.stop();
  });

  it('sweeps no live node, and still sweeps a dead one', async () => {
    const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
    const bob = await connect('v4-websocket', b.url, passwordOf('bob'));
    const room = roomName('outage');
    await joinRoom(alice, room);
    await joinRoom(bob, room);
    // A lobby session hosted on each node, each with a guest on the other.
    const hostA = await connect('v4-websocket', `${a.url}/lobby`, {});
    const guestB = await connect('v4-websocket', `${b.url}/lobby`, {});
    const keyA = await lobbySession(hostA, guestB, 'Ann', 'Gus');
    const hostB = await connect('v4-websocket', `${b.url}/lobby`, {});
    const guestA = await connect('v4-websocket', `${a.url}/lobby`, {});
    const keyB = await lobbySession(hostB, guestA, 'Ben', 'Gia');
    const rowsOf = async (node) =>
      (await query("SELECT sid FROM express_sessions WHERE sess::jsonb->>'node' = $1", [node.nodeId])).length;
    assert.equal(await rowsOf(a), 1);
    assert.equal(await rowsOf(b), 1);

    postgres.down();
    await delay(OUTAGE_MS);
    postgres.up();

    // Both nodes beat again, then long enough for either to have swept the other.
    await waitUntil(async () => {
      const beats = await query('SELECT id FROM nodes WHERE heartbeat_at > now()::timestamp - interval \'500 milliseconds\'');
      return beats.length === 2;
    }, 'both nodes beating again', 10000);
    await delay(2500);

    for (const n of [a, b]) assert.equal(metricSum(await metrics(n.url), 'roomcast_swept_nodes_total'), 0, `${n.nodeId} swept nobody`);
    assert.equal(await rowsOf(a), 1, "a's session row survives");
    assert.equal(await rowsOf(b), 1, "b's session row survives");
    const sessions = (await query('SELECT session_key FROM lobby_sessions ORDER BY session_key')).map((r) => r.session_key);
    assert.deepEqual(sessions, [keyA, keyB].sort(), 'both lobby sessions survive');
    for (const c of [hostA, hostB, guestA, guestB]) c.assertNothing('no session_closed');
    const presence = await alice.ack('request', { uuid: randomUUID(), route: 'presence.room', params: { room } });
    assert.deepEqual(presence.result.users, ['alice', 'bob']);

    // A node that really dies is still swept, with its rows and hosted session.
    b.child.kill('SIGKILL');
    assert.deepEqual(await guestA.waitFor('session_closed', () => true, 5000), { message: 'Session closed!', session_key: keyB });
    await waitUntil(async () => (await rowsOf(b)) === 0, "b's rows swept", 5000);
    assert.equal(metricSum(await metrics(a.url), 'roomcast_swept_nodes_total'), 1);
    assert.equal(await rowsOf(a), 1, "a's rows stay");
  });
});
