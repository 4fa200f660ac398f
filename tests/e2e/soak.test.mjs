// Soak with churn: clients of every kind connect, join rooms, talk, request and leave,
// over and over, on two nodes sharing Redis. Afterwards each node's open file
// descriptors and memory are back near where they were after a warm-up round, and no
// session row is left. ROOMCAST_SOAK_SECONDS sets the length (default 60).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import {
  connectClient, joinRoom, passwordOf, roomName, randomUUID, waitUntil, delay, CLIENT_KINDS,
} from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

const SECONDS = Number(process.env.ROOMCAST_SOAK_SECONDS || 60);
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hugo'];

const fds = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

describe('soak with churn', { timeout: (SECONDS + 120) * 1000 }, () => {
  let cluster, db, nodes;

  before(async () => {
    // A small pool: it fills during the warm-up, so descriptors that appear later are
    // not the pool growing.
    cluster = await startCluster({ env: { ROOMCAST_DATABASE_MAX_CONNECTIONS: '2' }, users: USERS });
    ({ db, nodes } = cluster);
  });

  after(() => cluster?.stop());

  /** One client's life: connect, join, talk, ask, leave. */
  async function life(i) {
    const node = nodes[i % nodes.length];
    const kind = CLIENT_KINDS[i % CLIENT_KINDS.length];
    const c = await connectClient(kind, node.url, passwordOf(USERS[i % USERS.length]));
    try {
      const rooms = [roomName('soak'), `shared-${i % 5}`, `shared-${(i + 1) % 5}`];
      for (const r of rooms) await joinRoom(c, r);
      const sent = await c.ack('sendMessage', { room: rooms[1], message: `m${i}` });
      assert.equal(sent.ok, true);
      await c.waitFor('incomingMessage', (m) => m.id === sent.id);
      const reply = await c.ack('request', { uuid: randomUUID(), route: 'rooms.list' });
      assert.equal(reply.result.rooms.length, 3);
    } finally {
      c.close();
    }
  }

  async function churn(ms, width = 12) {
    const end = Date.now() + ms;
    let n = 0;
    await Promise.all(Array.from({ length: width }, async (_, lane) => {
      while (Date.now() < end) await life(lane + width * n++);
    }));
    return n;
  }

  const settled = async () => {
    await waitUntil(async () => (await db.listSessionIds('roomcast:')).length === 0, 'every session row removed', 10000);
    await delay(2000);
    return nodes.map((n) => ({ fds: fds(n.child.pid), rss: rss(n.child.pid) }));
  };

  it(`returns to its baseline after ${SECONDS} s of churn`, async () => {
    await churn(5000);
    const base = await settled();
    const lives = await churn(SECONDS * 1000);
    const end = await settled();
    for (const [i, b] of base.entries()) {
      const e = end[i];
      process.stdout.write(`# node ${i}: ${lives} lives in all; fds ${b.fds} -> ${e.fds}; rss ${(b.rss / 1048576).toFixed(1)} -> ${(e.rss / 1048576).toFixed(1)} MiB\n`);
      assert.ok(e.fds <= b.fds + 4, `node ${i}: descriptors back to baseline (${b.fds} -> ${e.fds})`);
      assert.ok(e.rss <= b.rss + 24 * 1048576, `node ${i}: memory back near baseline (${b.rss} -> ${e.rss})`);
    }
  });
});
