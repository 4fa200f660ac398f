// Session rows in `express_sessions`: present while a socket is connected (user, node,
// socket, namespace, rooms following joins and leaves, via, connectedAt, cookie, expire),
// one per socket, gone after disconnect.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.notePgSkip();

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const sorted = (xs) => [...xs].sort();

for (const backend of h.backends()) {
  describe(`session rows [${backend.name}]`, { skip: backend.skip }, () => {
    let s;
    let token;

    before(async () => {
      s = await h.setupNode(backend.name, { env: { ROOMCAST_SESSION_TTL: '2h' } });
      token = await h.mintToken(s.db, 'alice');
    });
    after(async () => {
      await s?.teardown();
    });

    for (const kind of h.CLIENT_KINDS) {
      describe(kind, () => {
        it('the row is written on connect, follows the rooms, and is deleted on disconnect', async () => {
          const t0 = Date.now();
          const a = await h.connectClient(kind, s.url, h.passwordOf('alice'));
          try {
            assert.equal(typeof a.id, 'string');
            const row = await h.waitUntil(() => s.db.getSession(a.sid), `row ${a.sid}`);
            const { sess } = row;
            assert.equal(row.sid, `roomcast:${a.id}`);
            assert.equal(sess.user, 'alice');
            assert.equal(sess.node, s.node.nodeId);
            assert.equal(sess.socket, a.id);
            assert.equal(sess.namespace, '/');
            assert.deepEqual(sess.rooms, []);
            assert.equal(sess.via, 'password');
            assert.match(sess.connectedAt, RFC3339_RE);
            const connectedAt = Date.parse(sess.connectedAt);
            assert.ok(connectedAt >= t0 - 2000 && connectedAt <= Date.now() + 2000, 'connectedAt is now');
            assert.equal(typeof sess.cookie, 'object', 'sess.cookie (connect-pg-simple shape)');
            assert.ok(sess.cookie !== null);
            // expire = now + session_ttl (2 h here).
            const ttl = row.expire.getTime() - Date.now();
            assert.ok(ttl > 2 * 3600e3 - 120e3 && ttl <= 2 * 3600e3 + 5e3, `expire ≈ now + 2h (is now + ${ttl} ms)`);
            if (backend.name === 'postgres') {
              assert.equal(row.sessType, 'json');
              assert.match(row.expireType, /^timestamp/);
            }

            const r1 = h.roomName('r1');
            const r2 = h.roomName('r2');
            await h.joinRoom(a, r1);
            await h.joinRoom(a, r2);
            await h.waitUntil(
              async () => JSON.stringify(sorted((await s.db.getSession(a.sid)).sess.rooms)) === JSON.stringify(sorted([r1, r2])),
              'rooms [r1, r2] in the row',
            );
            assert.deepEqual(await a.ack('leave room', r1), { ok: true, room: r1 });
            await h.waitUntil(
              async () => JSON.stringify((await s.db.getSession(a.sid)).sess.rooms) === JSON.stringify([r2]),
              'rooms [r2] in the row',
            );
            const later = await s.db.getSession(a.sid);
            assert.equal(later.sess.user, 'alice');
            assert.equal(later.sess.socket, a.id);
            assert.equal(later.sess.connectedAt, sess.connectedAt, 'connectedAt stays');
          } finally {
            a.close();
          }
          await h.waitUntil(async () => (await s.db.getSession(a.sid)) === null, `row ${a.sid} deleted after disconnect`);
        });

        it('sockets closed right after `connect` leave no row behind (30 in a row)', async () => {
          const ids = [];
          for (let i = 0; i < 30; i++) {
            const c = await h.connectClient(kind, s.url, { token });
            ids.push(c.id);
            c.close();
          }
          const left = async () => {
            const out = [];
            for (const id of ids) if (await s.db.getSession(`roomcast:${id}`)) out.push(id);
            return out;
          };
          await h.waitUntil(async () => (await left()).length === 0, 'the 30 rows to be deleted').catch(async (e) => {
            throw new Error(`${e.message}; still present: ${(await left()).length}/30`);
          });
        });

        it('one row per socket; closing one socket leaves the other’s row', async () => {
          const a1 = await h.connectClient(kind, s.url, { token });
          const a2 = await h.connectClient(kind, s.url, { token });
          try {
            assert.notEqual(a1.id, a2.id);
            const [r1, r2] = await Promise.all([
              h.waitUntil(() => s.db.getSession(a1.sid), 'row 1'),
              h.waitUntil(() => s.db.getSession(a2.sid), 'row 2'),
            ]);
            assert.equal(r1.sess.via, 'token');
            assert.equal(r2.sess.via, 'token');
            assert.equal(r1.sess.socket, a1.id);
            assert.equal(r2.sess.socket, a2.id);
            await h.joinRoom(a1, 'only-first');
            a1.close();
            await h.waitUntil(async () => (await s.db.getSession(a1.sid)) === null, 'row 1 deleted');
            const still = await s.db.getSession(a2.sid);
            assert.ok(still, 'row 2 kept');
            assert.deepEqual(still.sess.rooms, [], 'row 2 did not get the rooms of socket 1');
          } finally {
            a1.close();
            a2.close();
          }
          await h.waitUntil(async () => (await s.db.getSession(a2.sid)) === null, 'row 2 deleted');
        });
      });
    }

    it('a disconnect initiated by the client after traffic leaves no row behind', async () => {
      const cs = await Promise.all(h.CLIENT_KINDS.map((k) => h.connectClient(k, s.url, { token })));
      const sids = cs.map((c) => c.sid);
      const present = async () => (await Promise.all(sids.map((sid) => s.db.getSession(sid)))).filter(Boolean);
      try {
        for (const c of cs) await h.joinRoom(c, 'busy');
        await h.waitUntil(async () => (await present()).length === cs.length, 'one row per socket');
      } finally {
        for (const c of cs) c.close();
      }
      await h.waitUntil(async () => (await present()).length === 0, 'no row of these sockets left');
    });
  });
}
