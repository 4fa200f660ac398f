// Authentication in the connect middleware of `/`: refusals with the documented
// `connect_error` messages (and no row written), acceptance by password, JWT and
// express-session cookie, and the order of the credential sources.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.notePgSkip();

const HOUR = 3600 * 1000;
const now = () => Math.floor(Date.now() / 1000);

for (const backend of h.backends()) {
  describe(`auth [${backend.name}]`, { skip: backend.skip }, () => {
    let s;
    let cliToken;
    const rows = {}; // name -> sid of an express-session row inserted by the test

    before(async () => {
      s = await h.setupNode(backend.name);
      cliToken = await h.mintToken(s.db, 'alice');
      const future = new Date(Date.now() + HOUR);
      const past = new Date(Date.now() - HOUR);
      const put = async (name, user, expire, extra = {}) => {
        rows[name] = h.newSid();
        await s.db.insertSession(rows[name], { ...h.expressSess(user, expire), ...extra }, expire);
      };
      await put('valid', 'alice', future);
      await put('passport', undefined, future, { passport: { user: 'bob' } });
      await put('object', { login: 'carol', roles: ['x'] }, future);
      await put('expired', 'alice', past);
      await put('nouser', undefined, future);
    });
    after(async () => {
      await s?.teardown();
    });

    /** Roomcast rows (sid `roomcast:*`) and all rows, to prove a refusal wrote nothing. */
    async function snapshot() {
      return { roomcast: await s.db.listSessionIds('roomcast:'), all: await s.db.listSessionIds('') };
    }

    async function expectRefused(kind, creds, opts, message) {
      const before = await snapshot();
      const got = await h.connectRefused(kind, s.url, creds, opts);
      assert.equal(got, message, `${kind}: connect_error message`);
      // The refusal is final once connect_error arrived; give a late write a moment anyway.
      await h.delay(100);
      assert.deepEqual(await snapshot(), before, 'a refused client must not write any row');
    }

    async function expectAccepted(kind, creds, opts, { user, via }) {
      const c = await h.connectClient(kind, s.url, creds, opts);
      const id = c.id;
      try {
        assert.ok(c.id, 'socket id');
        const row = await h.waitUntil(() => s.db.getSession(c.sid), `row ${c.sid}`);
        assert.equal(row.sess.user, user, 'row user');
        assert.equal(row.sess.via, via, 'row via');
        assert.equal(row.sess.socket, c.id, 'row socket');
      } finally {
        c.close();
      }
      await h
        .waitUntil(async () => (await s.db.getSession(`roomcast:${id}`)) === null, `row roomcast:${id} to be deleted`)
        .catch((e) => {
          throw new Error(`${e.message} (client side: ${c.disconnected})\n${h.nodeLogsMatching(id)}`);
        });
    }

    for (const kind of h.CLIENT_KINDS) {
      describe(kind, () => {
        // v2 (Engine.IO 3) has no handshake `auth`: its credentials ride the query string.
        const tok = (token) => ({ token });

        describe('refused', () => {
          it('no credentials', () => expectRefused(kind, null, {}, 'unauthorized: no credentials'));
          it('wrong password', () =>
            expectRefused(kind, { login: 'alice', password: 'not-her-password' }, {}, 'unauthorized: invalid login or password'));
          it('unknown user', () =>
            expectRefused(kind, { login: 'mallory', password: 'mallory-pw' }, {}, 'unauthorized: invalid login or password'));
          it('malformed token', () => expectRefused(kind, tok('not-a-jwt'), {}, 'unauthorized: invalid token'));
          it('token with a tampered payload', () => {
            const [hd, , sig] = h.signJwt(h.claims('alice')).split('.');
            const forged = Buffer.from(JSON.stringify(h.claims('bob'))).toString('base64url');
            return expectRefused(kind, tok(`${hd}.${forged}.${sig}`), {}, 'unauthorized: invalid token');
          });
          it('expired token', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice', { iat: now() - 7200, exp: now() - 3600 }))), {}, 'unauthorized: token expired'));
          it('token not yet valid (nbf)', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice', { nbf: now() + 3600 }))), {}, 'unauthorized: token not yet valid'));
          it('token with alg none', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice'), { alg: 'none' })), {}, 'unauthorized: invalid token'));
          it('token signed with another secret', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice'), { secret: 'another-secret-0123456789abcdef-0123456789' })), {}, 'unauthorized: invalid token'));
          it('token with another HMAC algorithm (HS512, same secret)', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice'), { alg: 'HS512' })), {}, 'unauthorized: invalid token'));
          it('token with a wrong issuer', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice', { iss: 'someone-else' }))), {}, 'unauthorized: invalid token'));
          it('token with a wrong audience', () =>
            expectRefused(kind, tok(h.signJwt(h.claims('alice', { aud: 'someone-else' }))), {}, 'unauthorized: invalid token'));
          it('token without exp', () => {
            const c = h.claims('alice');
            delete c.exp;
            return expectRefused(kind, tok(h.signJwt(c)), {}, 'unauthorized: invalid token');
          });
          it('forged cookie (signed with another secret)', () =>
            expectRefused(kind, null, { cookie: h.sessionCookie(rows.valid, { secret: 'not-the-session-secret-0123456789' }) }, 'unauthorized: invalid session cookie'));
          it('tampered cookie (sid swapped, signature kept)', () => {
            const good = decodeURIComponent(h.sessionCookie(rows.valid).split('=')[1]);
            const sig = good.slice(good.lastIndexOf('.') + 1);
            const cookie = `connect.sid=${encodeURIComponent(`s:${rows.passport}.${sig}`)}`;
            return expectRefused(kind, null, { cookie }, 'unauthorized: invalid session cookie');
          });
          it('unsigned cookie', () =>
            expectRefused(kind, null, { cookie: `connect.sid=${rows.valid}` }, 'unauthorized: invalid session cookie'));
          it('validly signed cookie for an unknown session row', () =>
            expectRefused(kind, null, { cookie: h.sessionCookie(h.newSid()) }, 'unauthorized: invalid session cookie'));
          it('validly signed cookie for an expired session row', () =>
            expectRefused(kind, null, { cookie: h.sessionCookie(rows.expired) }, 'unauthorized: invalid session cookie'));
          it('validly signed cookie for a row without a user', () =>
            expectRefused(kind, null, { cookie: h.sessionCookie(rows.nouser) }, 'unauthorized: invalid session cookie'));
          it('a bad token is not rescued by a good cookie', () =>
            expectRefused(kind, tok('not-a-jwt'), { cookie: h.sessionCookie(rows.valid) }, 'unauthorized: invalid token'));
          if (kind !== 'v2') {
            it('handshake auth decides before the query string', () =>
              expectRefused(kind, { login: 'alice', password: 'wrong' }, { query: { token: cliToken }, cookie: h.sessionCookie(rows.valid) }, 'unauthorized: invalid login or password'));
            it('bad token in the query string (v4) is refused', () =>
              expectRefused(kind, tok('not-a-jwt'), { inQuery: true }, 'unauthorized: invalid token'));
          }
        });

        describe('accepted', () => {
          it('password', () => expectAccepted(kind, h.passwordOf('alice'), {}, { user: 'alice', via: 'password' }));
          it('token minted by `roomcast token`', () => expectAccepted(kind, tok(cliToken), {}, { user: 'alice', via: 'token' }));
          it('token minted by the test (HS256, iss, aud, exp)', () =>
            expectAccepted(kind, tok(h.signJwt(h.claims('bob'))), {}, { user: 'bob', via: 'token' }));
          it('express-session cookie (sess.user string)', () =>
            expectAccepted(kind, null, { cookie: h.sessionCookie(rows.valid) }, { user: 'alice', via: 'cookie' }));
          it('express-session cookie (sess.passport.user)', () =>
            expectAccepted(kind, null, { cookie: h.sessionCookie(rows.passport) }, { user: 'bob', via: 'cookie' }));
          it('express-session cookie (sess.user object with login)', () =>
            expectAccepted(kind, null, { cookie: h.sessionCookie(rows.object) }, { user: 'carol', via: 'cookie' }));
          it('express-session cookie among other cookies', () =>
            expectAccepted(kind, null, { cookie: `theme=dark; ${h.sessionCookie(rows.valid)}; other=1` }, { user: 'alice', via: 'cookie' }));
          if (kind !== 'v2') {
            it('token in the query string (v4)', () =>
              expectAccepted(kind, tok(cliToken), { inQuery: true }, { user: 'alice', via: 'token' }));
            it('password in the query string (v4)', () =>
              expectAccepted(kind, h.passwordOf('bob'), { inQuery: true }, { user: 'bob', via: 'password' }));
          }
        });
      });
    }

    it('the express-session rows used for cookie logins are left untouched', async () => {
      for (const name of ['valid', 'passport', 'object']) {
        const row = await s.db.getSession(rows[name]);
        assert.ok(row, `row ${name} still present`);
        assert.equal(row.sess.node, undefined, `row ${name} was not rewritten as a socket row`);
      }
    });
  });
}
