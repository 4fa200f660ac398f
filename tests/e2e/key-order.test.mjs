// Object keys keep the order their sender gave them, end to end: a relayed message
// (across two nodes, through the Redis adapter's msgpack), a request's reply, an ack,
// and the JSON the node stores in session rows.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

// Neither sorted nor reverse-sorted, nested, and in an array.
const PAYLOAD = { z: 1, a: { y: true, b: [{ q: 1, c: 2 }] }, m: 'x', b: null };

/** Every object's keys, depth first, as they come. */
const keyPaths = (value, path = '') => {
  if (Array.isArray(value)) return value.flatMap((v, i) => keyPaths(v, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return [`${path}{${Object.keys(value).join(',')}}`, ...Object.entries(value).flatMap(([k, v]) => keyPaths(v, `${path}.${k}`))];
  }
  return [];
};

describe('object keys keep their order', { timeout: 60000 }, () => {
  let cluster, db, nodes;
  const connect = (url, creds) => cluster.connect('v4-websocket', url, creds);

  before(async () => {
    cluster = await startCluster({ users: ['alice', 'bob'] });
    ({ db, nodes } = cluster);
  });

  after(() => cluster?.stop());

  it('in a message relayed to another node, in a request reply and in the stored row', async () => {
    const alice = await connect(nodes[0].url, h.passwordOf('alice'));
    const bob = await connect(nodes[1].url, h.passwordOf('bob'));
    const room = h.roomName('order');
    await h.joinRoom(alice, room);
    await h.joinRoom(bob, room);
    await h.untilDelivered(alice, bob, room, 'relay across nodes');

    const sent = await alice.ack('sendMessage', { room, message: PAYLOAD });
    assert.equal(sent.ok, true);
    const there = await bob.waitFor('incomingMessage', (m) => m.id === sent.id);
    assert.deepEqual(keyPaths(there.message), keyPaths(PAYLOAD), 'on the other node');
    const here = await alice.waitFor('incomingMessage', (m) => m.id === sent.id);
    assert.deepEqual(keyPaths(here.message), keyPaths(PAYLOAD), 'on the sender');

    const uuid = h.randomUUID();
    const reply = await alice.ack('request', { uuid, route: 'echo', params: PAYLOAD });
    assert.equal(reply.ok, true);
    assert.deepEqual(keyPaths(reply.result), keyPaths(PAYLOAD), 'request reply');

    // connect-pg-simple's shape: cookie first, as express-session writes it.
    const row = await h.waitUntil(() => db.getSession(alice.sid), 'row');
    assert.deepEqual(Object.keys(row.sess), ['cookie', 'user', 'via', 'node', 'socket', 'namespace', 'rooms', 'connectedAt', 'recovery']);
    assert.deepEqual(Object.keys(row.sess.cookie), ['originalMaxAge', 'expires', 'httpOnly', 'path']);
  });
});
