// The client helper the node serves (`<path>/roomcast.mjs`), imported over HTTP from the
// running node and wrapped around the official socket.io-client v4: after a transport
// drop (`socket.io.engine.close()`) the app gets exactly the messages it missed, in
// order, once; also when it drops again right after a recovery (socket.io#4880), when it
// had received nothing yet (socket.io#5538), and on another node of a cluster. The app's
// own auth goes out unchanged, and a stale duplicate (here from the Redis emitter) never
// reaches the app.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { Emitter } from '@socket.io/redis-emitter';
import { createClient } from 'redis';
import * as h from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

/** Imports the helper as the node serves it: the module has no imports of its own. */
async function importHelper(url) {
  const r = await h.httpGet(url, '/socket.io/roomcast.mjs');
  assert.equal(r.status, 200, 'roomcast.mjs is served');
  return import(`data:text/javascript;base64,${Buffer.from(r.body).toString('base64')}`);
}

/**
 * A recoverable socket that reconnects by itself after a fixed delay (long enough for
 * the other side to send while it is away), and what its app saw.
 */
function recoverableClient(recoverable, url, auth, room) {
  const socket = recoverable(
    io(url, {
      forceNew: true,
      transports: ['websocket'],
      reconnectionDelay: 1000,
      reconnectionDelayMax: 1000,
      randomizationFactor: 0,
      timeout: h.WAIT_MS,
      auth,
    }),
  );
  const app = { socket, messages: [], recoveries: [], errors: [] };
  socket.on('incomingMessage', (m) => {
    if (m.room === room) app.messages.push(m);
  });
  socket.on('recovery', (report) => app.recoveries.push(report));
  socket.on('connect_error', (err) => app.errors.push(err.message));
  return app;
}

/** Resolves with the n-th `recovery` report (1-based) the app got. */
function nthRecovery(app, n) {
  return h.waitUntil(() => app.recoveries[n - 1], `recovery report #${n}`, 10000);
}

async function join(socket, room) {
  const ack = await socket.timeout(h.WAIT_MS).emitWithAck('join room', room);
  assert.equal(ack.ok, true, `join ${room}: ${JSON.stringify(ack)}`);
  return ack;
}

/** `count` messages from `sender`, each acknowledged; resolves with their ids. */
async function send(sender, room, count, label) {
  const ids = [];
  for (let i = 0; i < count; i++) {
    const ack = await sender.ack('sendMessage', { room, message: `${label} ${i}` });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    ids.push(ack.id);
  }
  return ids;
}

/**
 * Drops the app's transport, lets `whileAway` run while it is disconnected, and resolves
 * with the report of the reconnect that follows.
 */
async function dropAndReturn(app, whileAway = async () => {}) {
  const reports = app.recoveries.length;
  app.socket.io.engine.close();
  assert.equal(app.socket.connected, false);
  await whileAway();
  assert.equal(app.socket.connected, false, 'still away while the others sent');
  return nthRecovery(app, reports + 1);
}

/** Asserts the app saw exactly `ids`, in that order, each once. */
function assertSawExactly(app, ids, what) {
  assert.deepEqual(app.messages.map((m) => m.id), ids, what);
}

describe('client helper roomcast.mjs', { timeout: 120000 }, () => {
  let env, recoverable;
  const apps = [];
  const track = (app) => {
    apps.push(app);
    return app;
  };

  before(async () => {
    env = await h.setupNode('sqlite');
    ({ recoverable } = await importHelper(env.url));
  });

  after(async () => {
    for (const app of apps) app.socket.close();
    await env?.teardown();
  });

  it('is served under the Socket.IO path and /assets, as JavaScript, revalidated by a build ETag', async () => {
    const version = (await (await fetch(`${env.url}/version`)).json()).version;
    for (const path of ['/socket.io/roomcast.mjs', '/assets/roomcast.mjs']) {
      const r = await h.httpGet(env.url, path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('content-type'), 'application/javascript; charset=utf-8');
      assert.equal(r.headers.get('cache-control'), 'public, max-age=0');
      const etag = r.headers.get('etag');
      assert.ok(etag.startsWith(`"roomcast-${version}-`), `${path} ETag ${etag} names the server version`);
      assert.match(r.body, /export function recoverable\(socket\)/);
      const again = await fetch(`${env.url}${path}`, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304, `${path} revalidated`);
      const bundleTag = (await fetch(`${env.url}/socket.io/socket.io.min.js`)).headers.get('etag');
      const stale = await fetch(`${env.url}${path}`, { headers: { 'If-None-Match': bundleTag } });
      assert.equal(stale.status, 200, 'the bundle version is not the helper ETag');
    }
    const node = await h.startNode({ db: env.db, env: { ROOMCAST_PATH: '/rt' } });
    try {
      assert.equal((await h.httpGet(node.url, '/rt/roomcast.mjs')).status, 200, 'next to the bundle on a custom path');
      assert.equal((await h.httpGet(node.url, '/socket.io/roomcast.mjs')).status, 404);
    } finally {
      await node.stop();
    }
  });

  it('gets exactly the missed messages after a transport drop, in order, then live ones', async () => {
    const room = h.roomName('drop');
    const bob = await env.connect('v4-websocket', h.passwordOf('bob'));
    await h.joinRoom(bob, room);
    const alice = track(recoverableClient(recoverable, env.url, h.passwordOf('alice'), room));
    await nthRecovery(alice, 1);
    const joined = await join(alice.socket, room);
    assert.deepEqual(alice.socket.roomcast.position(room), { offset: joined.offset, epoch: joined.epoch });

    const seen = await send(bob, room, 2, 'before');
    await h.waitUntil(() => alice.messages.length === 2, 'the first two messages');
    let missed;
    const report = await dropAndReturn(alice, async () => {
      missed = await send(bob, room, 3, 'missed');
    });
    assert.equal(report.recovered, true, JSON.stringify(report));
    assert.equal(report.reason, undefined);
    assert.equal(report.rooms[room].recovered, true);
    assert.equal(report.rooms[room].replayed, 3);
    const live = await send(bob, room, 1, 'live');
    await h.waitUntil(() => alice.messages.length === 6, 'every message');
    await h.delay(200);
    assertSawExactly(alice, [...seen, ...missed, ...live], 'seen, missed, live; each once');
    const last = alice.messages.at(-1);
    assert.deepEqual(alice.socket.roomcast.position(room), { offset: last.offset, epoch: last.epoch });
    assert.deepEqual(alice.socket.roomcast.rooms(), [room]);
  });

  it('recovers twice and three times in a row, also with nothing in between (socket.io#4880)', async () => {
    const room = h.roomName('again');
    const bob = await env.connect('v4-websocket', h.passwordOf('bob'));
    await h.joinRoom(bob, room);
    const alice = track(recoverableClient(recoverable, env.url, h.passwordOf('alice'), room));
    await nthRecovery(alice, 1);
    await join(alice.socket, room);
    const expected = await send(bob, room, 1, 'first');
    await h.waitUntil(() => alice.messages.length === 1, 'the first message');

    for (const round of [1, 2, 3]) {
      let missed;
      const report = await dropAndReturn(alice, async () => {
        missed = await send(bob, room, round, `round ${round}`);
      });
      assert.equal(report.rooms[room].recovered, true, `round ${round}: ${JSON.stringify(report)}`);
      assert.equal(report.rooms[room].replayed, round);
      expected.push(...missed);
      await h.waitUntil(() => alice.messages.length === expected.length, `round ${round} replayed`);
      // Dropped again before any new event: the token of this recovery must carry it.
      const quiet = await dropAndReturn(alice);
      assert.equal(quiet.recovered, true, `round ${round}, quiet drop: ${JSON.stringify(quiet)}`);
      assert.equal(quiet.rooms[room].replayed, 0);
    }
    expected.push(...(await send(bob, room, 1, 'live')));
    await h.waitUntil(() => alice.messages.length === expected.length, 'the live message');
    await h.delay(200);
    assertSawExactly(alice, expected, 'every message once, in order, over six reconnects');
  });

  it('recovers a socket that had received no event yet, from its join ack (socket.io#5538)', async () => {
    const room = h.roomName('fresh');
    const alice = track(recoverableClient(recoverable, env.url, h.passwordOf('alice'), room));
    await nthRecovery(alice, 1);
    const joined = await join(alice.socket, room);
    assert.equal(joined.offset, 0, 'a room nobody wrote to yet');
    const bob = await env.connect('v4-websocket', h.passwordOf('bob'));
    await h.joinRoom(bob, room);
    let missed;
    const report = await dropAndReturn(alice, async () => {
      missed = await send(bob, room, 2, 'first ever');
    });
    assert.equal(report.rooms[room].recovered, true, JSON.stringify(report));
    await h.waitUntil(() => alice.messages.length === 2, 'both messages');
    await h.delay(200);
    assertSawExactly(alice, missed, 'the two first messages of the room');
  });

  it("sends the app's auth unchanged, a function's on every connect, and a later one it assigns", async () => {
    const room = h.roomName('auth');
    let calls = 0;
    const credentials = h.passwordOf('carol');
    const alice = track(
      recoverableClient(recoverable, env.url, (cb) => { calls += 1; cb(credentials); }, room),
    );
    await nthRecovery(alice, 1);
    await join(alice.socket, room);
    assert.equal((await dropAndReturn(alice)).recovered, true, 'the same login recovers');
    assert.equal(calls, 2, "the app's auth function is asked on each connect");
    assert.deepEqual(credentials, h.passwordOf('carol'), "the app's object is not changed");

    // Assigned later: a wrong password is what the server sees, and refuses.
    alice.socket.auth = { login: 'carol', password: 'not carol-pw' };
    alice.socket.io.engine.close();
    await h.waitUntil(() => alice.errors.length === 1, 'the refusal');
    assert.match(alice.errors[0], /^unauthorized/);
    // Put right, a manual connect still carries the credential of the last connection.
    alice.socket.auth = h.passwordOf('carol');
    alice.socket.connect();
    const report = await nthRecovery(alice, 3);
    assert.equal(report.recovered, true, JSON.stringify(report));
    assert.deepEqual(alice.socket.roomcast.rooms(), [room]);
    assert.equal(calls, 2, 'the replaced function is no longer asked');
  });

  it('passes on the summary of missed invalidations, which carries the room position', async () => {
    const room = h.roomName('inval');
    const bob = await env.connect('v4-websocket', h.passwordOf('bob'));
    await h.joinRoom(bob, room);
    const alice = track(recoverableClient(recoverable, env.url, h.passwordOf('alice'), room));
    const invalidations = [];
    alice.socket.on('ds invalidate', (data) => invalidations.push(data));
    await nthRecovery(alice, 1);
    await join(alice.socket, room);
    let missed;
    const report = await dropAndReturn(alice, async () => {
      assert.equal((await bob.ack('invalidate', { room, ds: 'tasks' })).ok, true);
      missed = await send(bob, room, 1, 'after the invalidation');
    });
    assert.equal(report.rooms[room].recovered, true, JSON.stringify(report));
    await h.waitUntil(() => invalidations.length === 1, 'the summary of missed invalidations');
    const [summary] = invalidations;
    assert.equal(summary.missed, 1, JSON.stringify(summary));
    assert.equal(summary.offset, report.rooms[room].offset, "the summary carries the room's position");
    assert.ok(summary.offset >= alice.messages.at(-1).offset, 'not older than the message before it');
    assertSawExactly(alice, missed, 'the missed message');
    assert.deepEqual(alice.socket.roomcast.position(room), { offset: report.rooms[room].offset, epoch: report.rooms[room].epoch });
  });

  it('forgets a room it left and sends no position for it', async () => {
    const [kept, left] = [h.roomName('kept'), h.roomName('left')];
    const alice = track(recoverableClient(recoverable, env.url, h.passwordOf('alice'), kept));
    await nthRecovery(alice, 1);
    await join(alice.socket, kept);
    await join(alice.socket, left);
    assert.deepEqual(alice.socket.roomcast.rooms().sort(), [kept, left].sort());
    const ack = await new Promise((res) => alice.socket.emit('leave room', left, res));
    assert.equal(ack.ok, true);
    assert.deepEqual(alice.socket.roomcast.rooms(), [kept]);
    assert.equal(alice.socket.roomcast.position(left), null);
    const report = await dropAndReturn(alice);
    assert.deepEqual(Object.keys(report.rooms), [kept], JSON.stringify(report));
    assert.deepEqual(alice.socket.roomcast.rooms(), [kept]);
  });
});

describe('client helper roomcast.mjs in a cluster', { timeout: 120000 }, () => {
  let cluster, nodes, recoverable, publisher;
  const sockets = [];

  before(async () => {
    cluster = await startCluster({ users: ['alice', 'bob'] });
    ({ nodes } = cluster);
    ({ recoverable } = await importHelper(nodes[0].url));
    publisher = createClient({ url: cluster.redis.url });
    await publisher.connect();
  });

  after(async () => {
    for (const socket of sockets) socket.close();
    await publisher?.quit().catch(() => {});
    await cluster?.stop();
  });

  it('recovers on another node what was sent on a third one while away', async () => {
    const [a, b] = nodes;
    const room = h.roomName('move');
    const bob = await h.connectClient('v4-websocket', b.url, h.passwordOf('bob'));
    sockets.push(bob.socket);
    await h.joinRoom(bob, room);
    const alice = recoverableClient(recoverable, a.url, h.passwordOf('alice'), room);
    sockets.push(alice.socket);
    await nthRecovery(alice, 1);
    await join(alice.socket, room);
    const seen = await send(bob, room, 1, 'on a');
    await h.waitUntil(() => alice.messages.length === 1, 'the first message');
    // The load balancer sends the reconnect elsewhere.
    alice.socket.io.uri = b.url;
    let missed;
    const report = await dropAndReturn(alice, async () => {
      missed = await send(bob, room, 2, 'while moving');
    });
    assert.equal(report.rooms[room].recovered, true, JSON.stringify(report));
    await h.waitUntil(() => alice.messages.length === 3, 'the missed messages');
    const live = await send(bob, room, 1, 'on b');
    await h.waitUntil(() => alice.messages.length === 4, 'the live one');
    await h.delay(200);
    assertSawExactly(alice, [...seen, ...missed, ...live], 'across nodes, each once');
  });

  it('drops an event it already passed on; the same bytes reach a plain client', async () => {
    const [a] = nodes;
    const room = h.roomName('dup');
    const plain = await h.connectClient('v4-websocket', a.url, h.passwordOf('bob'));
    sockets.push(plain.socket);
    await h.joinRoom(plain, room);
    const alice = recoverableClient(recoverable, a.url, h.passwordOf('alice'), room);
    sockets.push(alice.socket);
    await nthRecovery(alice, 1);
    await join(alice.socket, room);
    const [id] = await send(plain, room, 1, 'original');
    await h.waitUntil(() => alice.messages.length === 1, 'the original');
    const original = alice.messages[0];
    assert.equal(original.id, id);

    // The app's own Node servers relay the stored message once more, then a new one
    // without a position (the emitter's messages are not stored).
    const emitter = new Emitter(publisher);
    emitter.to(room).emit('incomingMessage', original);
    const unstored = { id: 'from-emitter', from: 'ops', room, message: 'unstored', ts: Date.now() };
    emitter.to(room).emit('incomingMessage', unstored);
    await plain.waitFor('incomingMessage', (m) => m.id === 'from-emitter');
    await h.waitUntil(() => alice.messages.length === 2, 'the unstored message');
    assert.deepEqual(alice.messages.map((m) => m.id), [id, 'from-emitter'], 'the duplicate was dropped');
    assert.equal(plain.events.filter((e) => e.name === 'incomingMessage' && e.args[0].id === id).length, 2,
      'the plain client got the duplicate');
    assert.deepEqual(alice.socket.roomcast.position(room), { offset: original.offset, epoch: original.epoch });
  });
});
