// End-to-end harness: runs the real `roomcast` binary against a fresh database and drives
// it with the official Socket.IO clients (v4 over WebSocket or long-polling, v2 over
// Engine.IO 3). Every wait is bounded; every child process is killed at the end.
//
// The helpers live by topic in this folder (env, db, nodes, credentials, clients,
// observe); this module gathers them, with the node fixture and the scenario helpers,
// so a test imports from one place.

import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';

import { startService } from './services.mjs';
import { WAIT_MS, rand } from './env.mjs';
import { createDb } from './db.mjs';
import { startNode, addUser } from './nodes.mjs';
import { connectClient } from './clients.mjs';
import { waitUntil } from './observe.mjs';

export * from './env.mjs';
export * from './db.mjs';
export * from './nodes.mjs';
export * from './credentials.mjs';
export * from './clients.mjs';
export * from './observe.mjs';

// ---------------------------------------------------------------------------------------
// The node fixture

/**
 * A node on a fresh database with users alice/bob/carol (passwords `<login>-pw`).
 * Call `teardown()` in `after()`.
 */
export async function setupNode(kind, { env = {}, users = ['alice', 'bob', 'carol', 'dave'] } = {}) {
  const db = await createDb(kind);
  let node;
  try {
    node = await startNode({ db, env });
    await Promise.all(users.map((u) => addUser(db, u, `${u}-pw`)));
  } catch (e) {
    if (node) await node.stop();
    await db.drop().catch(() => {});
    throw e;
  }
  const clients = new Set();
  return {
    db,
    node,
    url: node.url,
    clients,
    /** Connects and remembers the client so `teardown()` closes it. */
    async connect(kindOfClient, creds, opts) {
      const c = await connectClient(kindOfClient, node.url, creds, opts);
      clients.add(c);
      return c;
    },
    async teardown() {
      for (const c of clients) c.close();
      clients.clear();
      const r = await node.stop();
      await db.drop().catch((e) => process.stderr.write(`# dropping database failed: ${e}\n`));
      return r;
    },
  };
}

// ---------------------------------------------------------------------------------------
// Scenario helpers

export function roomName(prefix = 'room') {
  return `${prefix}-${rand(4)}`;
}

/** Asserts a failure reply `{ok: false, error: {code, message}}`. */
export function assertFailure(reply, code, what = '') {
  assert.ok(reply && typeof reply === 'object', `${what}: reply should be an object, got ${JSON.stringify(reply)}`);
  assert.equal(reply.ok, false, `${what}: reply.ok should be false in ${JSON.stringify(reply)}`);
  assert.ok(reply.error && typeof reply.error === 'object', `${what}: reply.error missing in ${JSON.stringify(reply)}`);
  assert.equal(reply.error.code, code, `${what}: error code in ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.error.message, 'string', `${what}: error.message should be a string`);
}

/**
 * Checks a `join room` ack: `{ok, room}`, plus the room's position `{offset, epoch}`
 * when it keeps history (pass `history: false` for nodes or rooms without).
 */
export function assertJoined(reply, room, { history = true } = {}) {
  const { offset, epoch, ...rest } = reply;
  assert.deepEqual(rest, { ok: true, room }, `join room ${room}`);
  if (history) {
    assert.ok(Number.isSafeInteger(offset) && offset >= 0, `join room ${room}: offset in ${JSON.stringify(reply)}`);
    assert.equal(typeof epoch, 'string', `join room ${room}: epoch in ${JSON.stringify(reply)}`);
  } else {
    assert.equal(offset, undefined, `join room ${room}: no history, no offset`);
  }
  return reply;
}

/**
 * A room event as sent, without the `offset` and `epoch` a room with history adds (both
 * checked for type).
 */
export function withoutPosition(payload) {
  const { offset, epoch, ...rest } = payload ?? {};
  assert.ok(Number.isSafeInteger(offset) && offset > 0, `offset in ${JSON.stringify(payload)}`);
  assert.equal(typeof epoch, 'string', `epoch in ${JSON.stringify(payload)}`);
  return rest;
}

export async function joinRoom(client, room, opts) {
  return assertJoined(await client.ack('join room', room), room, opts);
}

/**
 * A barrier: `sender` sends a message to `syncRoom`, which `sender` and every observer
 * have joined; resolves once all of them received it. Anything the server sent an
 * observer before it has then arrived (one connection delivers in order).
 */
export async function settle(sender, observers, syncRoom) {
  const token = randomUUID();
  const waits = [sender, ...observers].map((c) =>
    c.waitFor('incomingMessage', (m) => m && m.room === syncRoom && m.message && m.message.sync === token),
  );
  const ack = await sender.ack('sendMessage', { room: syncRoom, message: { sync: token } });
  assert.equal(ack && ack.ok, true, `barrier message should be accepted: ${JSON.stringify(ack)}`);
  await Promise.all(waits);
  // A short grace period on top of the ordering guarantee.
  await delay(50);
}

/**
 * A lobby session: `host` (logged in as `hostName`) creates it and `guest` (as
 * `guestName`) joins it; resolves with the key once both got `user_connected`.
 */
export async function lobbySession(host, guest, hostName = 'Hana', guestName = 'Carl') {
  host.send('login', { name: hostName });
  guest.send('login', { name: guestName });
  await Promise.all([host.waitFor('login_success'), guest.waitFor('login_success')]);
  host.send('create_session', { type: 'default', ph_users: 0 });
  const { session_key } = await host.waitFor('send_session_key');
  guest.send('join_session', session_key);
  for (const client of [host, guest]) {
    assert.deepEqual(await client.waitFor('user_connected'), { message: 'User connected!', name: guestName });
  }
  return session_key;
}

// ---------------------------------------------------------------------------------------
// Redis for cluster tests

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * Sends to `room` from `sender` until `receiver` gets one of the messages: for links that
 * come up after a while (a room channel subscribed, a reconnected adapter). An ack that
 * times out meanwhile (a publish waiting out its timeout) counts as a miss.
 */
export async function untilDelivered(sender, receiver, room, what, timeout = WAIT_MS) {
  await waitUntil(async () => {
    const m = await sender.ack('sendMessage', { room, message: 'probe' }).catch(() => null);
    if (!m?.ok) return false;
    try {
      await receiver.waitFor('incomingMessage', (x) => x.id === m.id, 300);
      return true;
    } catch {
      return false;
    }
  }, what, timeout, 50);
}

/** A throw-away redis-server on loopback, without persistence (on `port`, to restart one). */
export async function startRedis({ port } = {}) {
  const redis = await startService('redis', port ? ['--port', String(port)] : []);
  return { url: redis.url, port: redis.ports[0], stop: redis.stop };
}

export { delay, randomUUID };
