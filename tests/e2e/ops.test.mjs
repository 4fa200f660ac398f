// Operations: /livez, /readyz, /metrics (connections and events by name), graceful
// shutdown on SIGTERM, and a database that goes away.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.notePgSkip();

for (const backend of h.backends()) {
  describe(`ops [${backend.name}]`, { skip: backend.skip }, () => {
    describe('probes and metrics', () => {
      let s;
      before(async () => {
        s = await h.setupNode(backend.name, { users: ['alice', 'bob'] });
      });
      after(async () => {
        await s?.teardown();
      });

      it('/livez and /readyz answer 200', async () => {
        assert.equal((await h.httpGet(s.url, '/livez')).status, 200);
        assert.equal((await h.httpGet(s.url, '/readyz')).status, 200);
      });

      it('/metrics is Prometheus text with roomcast_ metrics', async () => {
        const r = await h.httpGet(s.url, '/metrics');
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type') || '', /^text\/plain/);
        const samples = h.parseMetrics(r.body);
        assert.ok(samples.some((x) => x.name === 'roomcast_connections'), 'roomcast_connections present');
        assert.ok(samples.every((x) => Number.isFinite(x.value) || Number.isNaN(x.value)));
        assert.match(r.body, /^# (HELP|TYPE) roomcast_/m);
      });

      it('roomcast_connections follows connects and disconnects', async () => {
        const base = h.metricSum(await h.metrics(s.url), 'roomcast_connections');
        const tok = await h.mintToken(s.db, 'alice');
        const cs = [];
        try {
          for (const k of h.CLIENT_KINDS) cs.push(await h.connectClient(k, s.url, { token: tok }));
          await h.waitUntil(
            async () => h.metricSum(await h.metrics(s.url), 'roomcast_connections') === base + cs.length,
            `roomcast_connections = ${base + cs.length}`,
          );
          // Refused clients are not counted.
          await h.connectRefused('v4-websocket', s.url, null);
          assert.equal(h.metricSum(await h.metrics(s.url), 'roomcast_connections'), base + cs.length);
        } finally {
          for (const c of cs) c.close();
        }
        await h.waitUntil(
          async () => h.metricSum(await h.metrics(s.url), 'roomcast_connections') === base,
          `roomcast_connections back to ${base}`,
        );
      });

      it('roomcast_events_in_total counts events by name', async () => {
        const tok = await h.mintToken(s.db, 'bob');
        const c = await h.connectClient('v4-websocket', s.url, { token: tok });
        try {
          const count = async (event) => h.metricSum(await h.metrics(s.url), 'roomcast_events_in_total', { event });
          const before = {
            join: await count('join room'),
            leave: await count('leave room'),
            send: await count('sendMessage'),
            request: await count('request'),
          };
          for (const r of ['m1', 'm2', 'm3']) await h.joinRoom(c, r);
          await c.ack('leave room', 'm3');
          await c.ack('sendMessage', { room: 'm1', message: 'x' });
          for (const n of [1, 2]) await c.ack('request', { uuid: `m-${n}`, route: 'echo', params: n });
          await h.waitUntil(async () => (await count('join room')) === before.join + 3, 'join room counted 3 times');
          assert.equal(await count('leave room'), before.leave + 1, 'leave room counted once');
          assert.equal(await count('sendMessage'), before.send + 1, 'sendMessage counted once');
          assert.equal(await count('request'), before.request + 2, 'request counted twice');
        } finally {
          c.close();
        }
      });
    });

    describe('shutdown', () => {
      it('SIGTERM disconnects the clients, removes their rows and exits 0', async () => {
        const s = await h.setupNode(backend.name, { users: ['alice'] });
        try {
          const tok = await h.mintToken(s.db, 'alice');
          const cs = [];
          for (const k of h.CLIENT_KINDS) cs.push(await h.connectClient(k, s.url, { token: tok }));
          await h.waitUntil(async () => (await s.db.listSessionIds('roomcast:')).length === cs.length, 'rows present');
          const exit = await s.node.stop(10000);
          assert.deepEqual(exit, { code: 0, signal: null, killed: false }, 'graceful exit with status 0');
          for (const c of cs) await c.waitDisconnect();
          assert.deepEqual(await s.db.listSessionIds('roomcast:'), [], 'no socket rows left after shutdown');
        } finally {
          await s.teardown();
        }
      });
    });

    if (backend.name === 'postgres') {
      describe('database unavailable', () => {
        it('refuses with `service unavailable: session store`, writes nothing and /readyz is 503', async () => {
          const s = await h.setupNode(backend.name, { users: ['alice'] });
          try {
            const tok = await h.mintToken(s.db, 'alice');
            // A token needs no database to verify, so the failure is the session row.
            await s.db.close();
            await s.db.drop(); // DROP DATABASE ... WITH (FORCE): the node loses its store
            const msg = await h.connectRefused('v4-websocket', s.url, { token: tok });
            assert.equal(msg, 'service unavailable: session store');
            const ready = await h.httpGet(s.url, '/readyz');
            assert.equal(ready.status, 503);
            assert.equal((await h.httpGet(s.url, '/livez')).status, 200, 'still alive');
          } finally {
            await s.teardown();
          }
        });
      });
    }
  });
}
