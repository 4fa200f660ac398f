// express-session interop. On Postgres: a real Express app with express-session and
// connect-pg-simple shares the database, the `express_sessions` table and the secret with
// the node; its login cookie opens Roomcast sockets. On SQLite (no connect-pg-simple
// there): the same cookie path with a row written directly and the cookie signed the way
// cookie-signature does.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as h from './lib/harness.mjs';

h.notePgSkip();

const require = createRequire(import.meta.url);

/** Starts the Express app on port 0. Resolves {url, close()}. */
async function startExpress(conString) {
  const express = require('express');
  const session = require('express-session');
  const connectPgSimple = require('connect-pg-simple');
  const PgStore = connectPgSimple(session);
  const store = new PgStore({ conString, tableName: 'express_sessions', pruneSessionInterval: false });
  const app = express();
  app.use(
    session({ store, secret: h.SECRETS.session, resave: false, saveUninitialized: false, cookie: { maxAge: 3600e3 } }),
  );
  app.post('/login', (req, res) => {
    req.session.user = String(req.query.user || 'alice');
    req.session.save((err) => (err ? res.status(500).send(String(err)) : res.json({ ok: true })));
  });
  app.post('/login-passport', (req, res) => {
    req.session.passport = { user: String(req.query.user || 'bob') };
    req.session.save((err) => (err ? res.status(500).send(String(err)) : res.json({ ok: true })));
  });
  app.get('/whoami', (req, res) => res.json({ user: req.session.user ?? req.session.passport?.user ?? null }));
  app.post('/logout', (req, res) => req.session.destroy((err) => (err ? res.status(500).send(String(err)) : res.json({ ok: true }))));
  const server = await new Promise((res) => {
    const srv = app.listen(0, '127.0.0.1', () => res(srv));
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    async close() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(() => r()));
      await store.close();
    },
  };
}

async function post(url, path, cookie) {
  const r = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: cookie ? { cookie } : {},
    signal: AbortSignal.timeout(h.WAIT_MS),
  });
  assert.equal(r.status, 200, `${path}: ${await r.clone().text()}`);
  return r;
}

async function whoami(url, cookie) {
  const r = await fetch(`${url}/whoami`, { headers: { cookie }, signal: AbortSignal.timeout(h.WAIT_MS) });
  return (await r.json()).user;
}

/** Logs in over HTTP; returns {cookie: 'connect.sid=...', sid}. */
async function login(url, path = '/login?user=alice') {
  const r = await post(url, path);
  const setCookie = r.headers.getSetCookie().find((c) => c.startsWith('connect.sid='));
  assert.ok(setCookie, 'Express set connect.sid');
  const cookie = setCookie.split(';')[0];
  const value = decodeURIComponent(cookie.slice('connect.sid='.length));
  assert.match(value, /^s:/);
  const sid = value.slice(2, value.lastIndexOf('.'));
  assert.equal(h.sessionCookie(sid), cookie, 'the harness signs cookies exactly like express-session');
  return { cookie, sid };
}

function tamper(cookie) {
  const last = cookie.at(-1);
  return cookie.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}

describe('express-session interop [postgres, real Express + connect-pg-simple]', { skip: h.PG_URL ? false : 'ROOMCAST_TEST_PG_URL is not set' }, () => {
  let s;
  let web;
  before(async () => {
    s = await h.setupNode('postgres', { users: ['alice', 'bob'] });
    web = await startExpress(s.db.url);
  });
  after(async () => {
    await web?.close();
    await s?.teardown();
  });

  for (const kind of h.CLIENT_KINDS) {
    it(`${kind}: the Express login cookie opens a socket; the Express session survives its disconnect`, async () => {
      const { cookie, sid } = await login(web.url);
      const expressRow = await s.db.getSession(sid);
      assert.ok(expressRow, 'connect-pg-simple stored the session in express_sessions');
      assert.equal(expressRow.sess.user, 'alice');

      const c = await h.connectClient(kind, s.url, null, { cookie });
      try {
        const row = await h.waitUntil(() => s.db.getSession(c.sid), 'socket row');
        assert.equal(row.sess.user, 'alice');
        assert.equal(row.sess.via, 'cookie');
        await h.joinRoom(c, 'express-room');
        const ack = await c.ack('sendMessage', { room: 'express-room', message: 'hi from the web' });
        const m = await c.waitFor('incomingMessage', (p) => p && p.id === ack.id);
        assert.equal(m.from, 'alice');
      } finally {
        c.close();
      }
      await h.waitUntil(async () => (await s.db.getSession(c.sid)) === null, 'socket row deleted');
      const after = await s.db.getSession(sid);
      assert.ok(after, 'the Express session row survives the socket disconnect');
      assert.deepEqual(after.sess, expressRow.sess, 'and is unchanged');
      assert.equal(await whoami(web.url, cookie), 'alice', 'Express still knows the user');

      assert.equal(
        await h.connectRefused(kind, s.url, null, { cookie: tamper(cookie) }),
        'unauthorized: invalid session cookie',
        'tampered cookie',
      );
    });
  }

  it('a passport-style session (sess.passport.user) is accepted', async () => {
    const { cookie } = await login(web.url, '/login-passport?user=bob');
    const c = await h.connectClient('v4-websocket', s.url, null, { cookie });
    try {
      const row = await h.waitUntil(() => s.db.getSession(c.sid), 'socket row');
      assert.equal(row.sess.user, 'bob');
    } finally {
      c.close();
    }
  });

  it('after the Express logout the cookie is refused', async () => {
    const { cookie, sid } = await login(web.url);
    (await h.connectClient('v4-websocket', s.url, null, { cookie })).close();
    await post(web.url, '/logout', cookie);
    assert.equal(await s.db.getSession(sid), null, 'Express destroyed its row');
    assert.equal(await h.connectRefused('v4-websocket', s.url, null, { cookie }), 'unauthorized: invalid session cookie');
  });

  it('Express keeps working next to the socket rows (it ignores them)', async () => {
    const { cookie } = await login(web.url, '/login?user=bob');
    const c = await h.connectClient('v4-polling', s.url, null, { cookie });
    try {
      await h.waitUntil(() => s.db.getSession(c.sid), 'socket row');
      assert.equal(await whoami(web.url, cookie), 'bob');
    } finally {
      c.close();
    }
  });
});

for (const backend of h.backends()) {
  describe(`express-session cookie, row written directly [${backend.name}]`, { skip: backend.skip }, () => {
    let s;
    before(async () => {
      s = await h.setupNode(backend.name, { users: ['alice'] });
    });
    after(async () => {
      await s?.teardown();
    });

    for (const kind of h.CLIENT_KINDS) {
      it(`${kind}: accepted; the cookie's row survives the disconnect; deleting the row revokes it`, async () => {
        const sid = h.newSid();
        const expire = new Date(Date.now() + 3600e3);
        const sess = h.expressSess('alice', expire);
        await s.db.insertSession(sid, sess, expire);
        const cookie = h.sessionCookie(sid);
        const before = await s.db.getSession(sid);

        const c = await h.connectClient(kind, s.url, null, { cookie });
        try {
          const row = await h.waitUntil(() => s.db.getSession(c.sid), 'socket row');
          assert.equal(row.sess.user, 'alice');
          assert.equal(row.sess.via, 'cookie');
          assert.notEqual(c.sid, sid);
        } finally {
          c.close();
        }
        await h.waitUntil(async () => (await s.db.getSession(c.sid)) === null, 'socket row deleted');
        assert.deepEqual(await s.db.getSession(sid), before, 'the cookie row survives, unchanged');

        assert.equal(
          await h.connectRefused(kind, s.url, null, { cookie: tamper(cookie) }),
          'unauthorized: invalid session cookie',
        );
        await s.db.deleteSession(sid);
        assert.equal(await h.connectRefused(kind, s.url, null, { cookie }), 'unauthorized: invalid session cookie');
      });
    }
  });
}
