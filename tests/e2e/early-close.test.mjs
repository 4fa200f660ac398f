// Session rows follow sockets whatever the close timing: clients that leave while the
// connect middleware is still checking their password (slow by design), right before
// it, or right after CONNECT, on a WebSocket close or an abrupt TCP reset, leave no row
// behind. Afterwards the rows are exactly the live sockets, and stay so.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import * as h from './lib/harness.mjs';

h.notePgSkip();

// Clients per wave; their password checks queue, so the later ones stay in the connect
// middleware for a while.
const WAVE = 30;

/**
 * A raw Engine.IO 4 WebSocket that logs in with `creds` and is closed `ms` after its
 * CONNECT packet left: a close frame (`ws.close()`) or a TCP reset (`ws.terminate()`).
 * Resolves with the socket id if CONNECT was answered before the close, else null.
 */
function loginAndLeave(url, creds, ms, abrupt) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    let sid = null;
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0{')) {
        ws.send(`40${JSON.stringify(creds)}`);
        setTimeout(() => (abrupt ? ws.terminate() : ws.close()), ms);
      } else if (text.startsWith('40{')) {
        sid = JSON.parse(text.slice(2)).sid;
      }
    });
    ws.on('close', () => resolve(sid));
  });
}

const rowIds = async (db) => (await db.listSessionIds('roomcast:')).map((sid) => sid.replace(/^roomcast:/, '')).sort();

for (const backend of h.backends()) {
  describe(`session rows after early closes [${backend.name}]`, { skip: backend.skip, timeout: 120000 }, () => {
    let s;
    before(async () => {
      s = await h.setupNode(backend.name);
    });
    after(async () => {
      await s?.teardown();
    });

    it('rows equal the live sockets after clients close at every point of a slow login', async () => {
      const stay = [await s.connect('v4-websocket', h.passwordOf('alice')), await s.connect('v4-polling', h.passwordOf('bob'))];
      const live = stay.map((c) => c.id).sort();
      await h.waitUntil(async () => (await rowIds(s.db)).length === live.length, 'rows of the clients that stay');

      // How long a wave of logins takes here; the closes are spread over it (and a bit
      // beyond), so they land before, during and after the password checks.
      const t0 = Date.now();
      const wave = await Promise.all(Array.from({ length: WAVE }, () => h.connectClient('v4-websocket', s.url, h.passwordOf('carol'))));
      const waveMs = Date.now() - t0;
      for (const c of wave) c.close();
      const delays = Array.from({ length: WAVE }, (_, i) => Math.round((i * 1.3 * waveMs) / WAVE));

      let connectedBeforeClose = 0;
      for (const abrupt of [false, true]) {
        // Several logins at once queue on the password checker: the later ones are
        // still in the middleware when their clients leave.
        const sids = await Promise.all(
          delays.map((ms, i) => loginAndLeave(s.url, h.passwordOf(i % 2 ? 'carol' : 'dave'), ms, abrupt)),
        );
        connectedBeforeClose += sids.filter(Boolean).length;
      }
      // Some clients got CONNECT, others left before it: both timings were covered.
      assert.ok(connectedBeforeClose > 0, 'some clients left after CONNECT');
      assert.ok(connectedBeforeClose < 2 * WAVE, 'some clients left before CONNECT');

      await h.waitUntil(async () => (await rowIds(s.db)).join() === live.join(), 'rows == live sockets', 10000);
      // Rows written late by a middleware that outlived its client would show up now.
      await h.delay(1500);
      assert.deepEqual(await rowIds(s.db), live, 'rows still equal the live sockets');
      const m = await h.metrics(s.url);
      assert.equal(h.metricSum(m, 'roomcast_connections', { nsp: '/' }), live.length, 'connection gauge');

      for (const c of stay) c.close();
      await h.waitUntil(async () => (await rowIds(s.db)).length === 0, 'no rows once everyone left');
    });
  });
}
