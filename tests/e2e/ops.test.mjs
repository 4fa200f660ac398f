// Operations: /livez, /readyz, /metrics (connections and events by name), graceful
// shutdown on SIGTERM, and a database that goes away. Then what operators expect of any
// server: version, build and process metrics, a start-up summary in the logs, clear
// config errors, the client bundle under the Socket.IO path, CORS as Node answers it,
// and what an oversized WebSocket frame does.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
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

/** Runs `roomcast serve` with text logs on a pipe until it logs `listening`; resolves its stdout. */
async function textLogsUntilListening(db, env = {}) {
  const child = spawn(h.BIN, ['serve'], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: db.url,
      ROOMCAST_LISTEN: '127.0.0.1:0',
      ROOMCAST_LOG_FORMAT: 'text',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c) => (out += c));
  try {
    await h.waitUntil(async () => out.includes('listening'), 'the listening line', 20000);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  return out;
}

/** Connects two users (one twice) into rooms and checks the user and room gauges of `/`. */
async function followsUsersAndRooms(s, opsUrl) {
  const gauge = async (name, nsp = '/') => h.metricSum(await h.metrics(opsUrl), name, { nsp });
  const [ta, tb] = [await h.mintToken(s.db, 'alice'), await h.mintToken(s.db, 'bob')];
  const a1 = await h.connectClient('v4-websocket', s.url, { token: ta });
  const a2 = await h.connectClient('v4-polling', s.url, { token: ta });
  const b = await h.connectClient('v2', s.url, { token: tb });
  try {
    // Two sockets of alice are one user.
    await h.waitUntil(async () => (await gauge('roomcast_users_online')) === 2, 'two users online');
    assert.equal(await gauge('roomcast_users_online', '/chat'), 0);
    await h.joinRoom(a1, 'ops-r1');
    await h.joinRoom(a2, 'ops-r1');
    await h.joinRoom(b, 'ops-r2');
    assert.equal(await gauge('roomcast_rooms'), 2, 'ops-r1 and ops-r2, private rooms not counted');
    a1.close();
    a2.close();
    await h.waitUntil(async () => (await gauge('roomcast_users_online')) === 1, 'alice gone');
    assert.equal(await gauge('roomcast_rooms'), 1);
  } finally {
    for (const c of [a1, a2, b]) c.close();
  }
  await h.waitUntil(async () => (await gauge('roomcast_users_online')) === 0, 'nobody online');
  assert.equal(await gauge('roomcast_rooms'), 0);
}

describe('what operators expect', () => {
  describe('version, build and process metrics', () => {
    let s;
    let opsUrl;
    before(async () => {
      const opsPort = await h.freePort();
      s = await h.setupNode('sqlite', { users: ['alice', 'bob'], env: { ROOMCAST_OPS_LISTEN: `127.0.0.1:${opsPort}` } });
      opsUrl = `http://127.0.0.1:${opsPort}`;
    });
    after(async () => {
      await s?.teardown();
    });

    it('`roomcast --version` and /version on the ops port name the same build', async () => {
      const cli = await h.runCli(s.db, ['--version']);
      assert.equal(cli.code, 0, cli.stderr);
      const r = await h.httpGet(opsUrl, '/version');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') || '', /^application\/json/);
      const v = JSON.parse(r.body);
      assert.match(v.version, /^\d+\.\d+\.\d+/);
      assert.match(v.commit, /^([0-9a-f]{7,40}|unknown)$/);
      assert.ok(['debug', 'release'].includes(v.profile), v.profile);
      assert.equal(cli.stdout.trim(), `roomcast ${v.version} (commit ${v.commit}, ${v.profile} build)`);
      // Only on the ops port when it has one of its own.
      assert.equal((await h.httpGet(s.url, '/version')).status, 404);
    });

    it('exports roomcast_build_info and the standard process_* metrics', async () => {
      const v = JSON.parse((await h.httpGet(opsUrl, '/version')).body);
      const m = await h.metrics(opsUrl);
      const info = m.filter((x) => x.name === 'roomcast_build_info');
      assert.equal(info.length, 1);
      assert.deepEqual(info[0].labels, { version: v.version, commit: v.commit, profile: v.profile });
      assert.equal(info[0].value, 1);
      const one = (name) => {
        const xs = m.filter((x) => x.name === name);
        assert.equal(xs.length, 1, `${name} exported once`);
        return xs[0].value;
      };
      assert.ok(one('process_resident_memory_bytes') > 1 << 20, 'resident memory above 1 MiB');
      assert.ok(one('process_cpu_seconds_total') > 0, 'some CPU spent');
      const fds = one('process_open_fds');
      assert.ok(fds > 3 && fds <= one('process_max_fds'), `open fds ${fds}`);
      const started = one('process_start_time_seconds');
      assert.ok(Math.abs(started - (Date.now() / 1000 - process.uptime())) < 120, `start time ${started}`);
      assert.ok(started <= Date.now() / 1000);
    });

    it('every per-namespace series is present at zero from start, labelled nsp', async () => {
      const m = await h.metrics(opsUrl);
      assert.ok(m.every((x) => !('namespace' in x.labels)), 'no label named namespace');
      for (const nsp of ['/', '/lobby', '/chat', '/todo']) {
        for (const name of ['roomcast_connections', 'roomcast_users_online', 'roomcast_rooms']) {
          assert.ok(m.some((x) => x.name === name && x.labels.nsp === nsp), `${name}{nsp="${nsp}"}`);
        }
        for (const method of ['none', 'password', 'token', 'cookie']) {
          for (const result of ['accepted', 'refused', 'limited']) {
            assert.ok(
              m.some((x) => x.name === 'roomcast_handshakes_total' && x.labels.nsp === nsp
                && x.labels.method === method && x.labels.result === result),
              `handshakes ${nsp} ${method} ${result}`,
            );
          }
        }
      }
      for (const route of ['echo', 'time', 'rooms.list', 'presence.room']) {
        assert.ok(m.some((x) => x.name === 'roomcast_request_duration_seconds_count' && x.labels.route === route), route);
      }
    });

    it('roomcast_users_online and roomcast_rooms follow users and rooms', () => followsUsersAndRooms(s, opsUrl));
  });

  describe('with the Redis adapter', () => {
    let redis;
    let s;
    before(async () => {
      redis = await h.startRedis();
      s = await h.setupNode('sqlite', { users: ['alice', 'bob'], env: { REDIS_URL: redis.url } });
    });
    after(async () => {
      await s?.teardown();
      redis?.stop();
    });

    it('counts this node\'s users and rooms, and says so in its start-up line', async () => {
      const line = s.node.logs().map((l) => { try { return JSON.parse(l); } catch { return null; } })
        .find((o) => (o?.fields?.message ?? o?.message) === 'listening');
      assert.equal((line.fields ?? line).adapter, 'redis-classic');
      const m = await h.metrics(s.url);
      for (const kind of ['published', 'received', 'redis_errors', 'reconnects']) {
        assert.ok(m.some((x) => x.name === 'roomcast_adapter_messages_total' && x.labels.kind === kind), kind);
      }
      await followsUsersAndRooms(s, s.url);
    });
  });

  describe('logs and configuration errors', () => {
    let db;
    before(async () => {
      db = await h.createDb('sqlite');
    });
    after(async () => {
      await db?.drop();
    });

    it('the listening line summarises the node; JSON fields for collectors', async () => {
      const node = await h.startNode({ db, env: { ROOMCAST_SESSION_SECRET: undefined } });
      try {
        const line = node.logs().map((l) => { try { return JSON.parse(l); } catch { return null; } })
          .find((o) => o?.fields?.message === 'listening' || o?.message === 'listening');
        const f = line.fields ?? line;
        assert.equal(f.node, node.nodeId);
        assert.match(f.addr, /^127\.0\.0\.1:\d+$/);
        assert.equal(f.ops, f.addr, 'ops endpoints on the main port');
        assert.match(f.version, /^\d+\.\d+\.\d+/);
        assert.equal(f.store, 'sqlite');
        assert.equal(f.adapter, 'local');
        assert.equal(f.auth, 'password,token', 'no cookie auth without a session secret');
      } finally {
        await node.stop();
      }
    });

    it('text logs on a pipe carry no colour codes; unknown ROOMCAST_ variables are named', async () => {
      const out = await textLogsUntilListening(db, { ROOMCAST_PING_INTREVAL: '5s' });
      assert.ok(!out.includes('\x1b['), `ANSI escape in ${JSON.stringify(out.slice(0, 300))}`);
      assert.match(out, /WARN .*unknown environment variable ignored variable=ROOMCAST_PING_INTREVAL/);
      assert.match(out, /INFO .*listening addr=127\.0\.0\.1:\d+ .*store=sqlite adapter=local/);
    });

    it('a bad value is one line naming the field and variable, exit status 2, no backtrace', async () => {
      const r = await h.runCli(db, ['serve'], { env: { ROOMCAST_PING_INTERVAL: 'soon', RUST_BACKTRACE: '1' } });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^roomcast: configuration: server\.ping_interval \(ROOMCAST_PING_INTERVAL\): .*duration/);
      const bad = await h.runCli(db, ['check-config'], { env: { ROOMCAST_MAX_PAYLOAD: '10' } });
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr.trim(), 'roomcast: configuration: server.max_payload: must be at least 1024 bytes');
    });
  });

  describe('client bundle and CORS', () => {
    let s;
    before(async () => {
      s = await h.setupNode('sqlite', { users: ['alice'], env: { ROOMCAST_CORS_ORIGINS: '*' } });
    });
    after(async () => {
      await s?.teardown();
    });

    it('serves socket.io.js, .min.js, .esm.min.js and their maps under the Socket.IO path', async () => {
      for (const file of ['socket.io.js', 'socket.io.min.js', 'socket.io.esm.min.js']) {
        const r = await h.httpGet(s.url, `/socket.io/${file}`);
        assert.equal(r.status, 200, file);
        assert.equal(r.headers.get('content-type'), 'application/javascript; charset=utf-8');
        assert.equal(r.headers.get('cache-control'), 'public, max-age=0');
        const etag = r.headers.get('etag');
        assert.match(etag, /^"4\.8\.\d+"$/);
        // The licence header is kept and names the version the ETag carries.
        assert.ok(r.body.startsWith(`/*!\n * Socket.IO v${etag.slice(1, -1)}\n`), file);
        assert.match(r.body, new RegExp(`//# sourceMappingURL=${file.replace(/\./g, '\\.')}\\.map\\s*$`));
        const map = await h.httpGet(s.url, `/socket.io/${file}.map`);
        assert.equal(map.status, 200);
        assert.equal(map.headers.get('content-type'), 'application/json; charset=utf-8');
        assert.equal(JSON.parse(map.body).version, 3);
        const head = await fetch(`${s.url}/socket.io/${file}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('etag'), etag);
        for (const tag of [etag, `W/${etag}`]) {
          const again = await fetch(`${s.url}/socket.io/${file}`, { headers: { 'If-None-Match': tag } });
          assert.equal(again.status, 304, `${file} revalidated with ${tag}`);
        }
      }
      assert.equal((await h.httpGet(s.url, '/socket.io/socket.io.msgpack.min.js')).status, 400, 'not a bundle here');
    });

    it('the bundle follows a custom path', async () => {
      const node = await h.startNode({ db: s.db, env: { ROOMCAST_PATH: '/rt' } });
      try {
        assert.equal((await h.httpGet(node.url, '/rt/socket.io.min.js')).status, 200);
        assert.equal((await h.httpGet(node.url, '/socket.io/socket.io.min.js')).status, 404);
      } finally {
        await node.stop();
      }
    });

    it('CORS `*` answers `*` without credentials; a preflight gets the headers it asked for', async () => {
      const poll = await fetch(`${s.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'https://app.example' } });
      assert.equal(poll.status, 200);
      assert.equal(poll.headers.get('access-control-allow-origin'), '*');
      assert.equal(poll.headers.get('access-control-allow-credentials'), null);
      const pre = await fetch(`${s.url}/socket.io/?EIO=4&transport=polling`, {
        method: 'OPTIONS',
        headers: {
          Origin: 'https://app.example',
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'x-requested-with, x-tenant',
        },
      });
      assert.ok(pre.status < 300, `preflight ${pre.status}`);
      assert.equal(pre.headers.get('access-control-allow-origin'), '*');
      assert.equal(pre.headers.get('access-control-allow-headers'), 'x-requested-with, x-tenant');
      assert.match(pre.headers.get('access-control-allow-methods') || '', /POST/);
    });

    it('a listed origin is answered with itself and credentials; others get no CORS headers', async () => {
      const node = await h.startNode({ db: s.db, env: { ROOMCAST_CORS_ORIGINS: 'https://app.example' } });
      try {
        const get = (origin) => fetch(`${node.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
        const ok = await get('https://app.example');
        assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
        assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
        const other = await get('https://evil.example');
        assert.equal(other.headers.get('access-control-allow-origin'), null);
      } finally {
        await node.stop();
      }
    });
  });

  describe('oversized WebSocket frame', () => {
    it('closes that connection only, without a status (1005 or 1006, not 1009)', async () => {
      const s = await h.setupNode('sqlite', { users: ['alice'], env: { ROOMCAST_MAX_PAYLOAD: '1024' } });
      try {
        const tok = await h.mintToken(s.db, 'alice');
        const bystander = await h.connectClient('v4-websocket', s.url, { token: tok });
        const ws = new WebSocket(`${s.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
        const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
        await new Promise((resolve, reject) => {
          ws.once('message', resolve); // the Engine.IO open packet
          ws.once('error', reject);
        });
        ws.send(`4${'x'.repeat(2000)}`);
        const code = await Promise.race([closed, h.delay(5000).then(() => 'still open')]);
        // engineioxide ends the transport on the read error: a close frame without a
        // status code or, racing it, just the TCP close. Node would send 1009.
        assert.ok(code === 1005 || code === 1006, `closed with ${code}`);
        // The node and its other sockets carry on.
        await h.joinRoom(bystander, 'after-big-frame');
        assert.equal((await h.httpGet(s.url, '/livez')).status, 200);
        bystander.close();
      } finally {
        await s.teardown();
      }
    });
  });
});
