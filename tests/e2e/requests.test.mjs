// Request routing across a three-node cluster: built-in routes, an HTTP upstream (a
// real server in this process), worker routes answered by the example worker
// (examples/worker, separate processes) and by a node that serves a stream. Every
// reply must reach its initiator only, be one PUBLISH on the origin node's channel,
// and survive a worker killed with SIGKILL while holding it. The nodes export their
// spans to an OTLP/HTTP receiver in this process: a request's trace must continue on
// the node that serves it, and reach the upstream and the worker as `traceparent`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  REPO, backends, notePgSkip, joinRoom, passwordOf, assertFailure, roomName, metrics, metricSum, delay, randomUUID,
  waitUntil,
} from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

const WORKER = join(REPO, 'examples', 'worker', 'worker.mjs');

/** The example worker as a child process; resolves once it has joined the group. */
async function startWorker(redisUrl, name) {
  const child = spawn(process.execPath, [WORKER], {
    env: { ...process.env, REDIS_URL: redisUrl, WORKER_STREAM: 'jobs', WORKER_NAME: name, WORKER_REFRESH_MS: '250' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const exited = new Promise((r) => child.on('exit', r));
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`worker ${name} not ready:\n${lines.join('\n')}`)), 10000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      lines.push(...chunk.split('\n').filter(Boolean));
      if (lines.some((l) => l.includes('worker ready'))) { clearTimeout(timer); res(); }
    });
    child.stderr.on('data', (chunk) => lines.push(`[stderr] ${chunk}`));
    exited.then((code) => { clearTimeout(timer); rej(new Error(`worker ${name} exited ${code}:\n${lines.join('\n')}`)); });
  });
  return {
    name,
    lines,
    took: () => lines.filter((l) => l.includes('took job')).map((l) => JSON.parse(l)),
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** An upstream handler: echoes what it was told, or answers 418 under /fail. */
async function startUpstream() {
  const seen = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const call = {
        path: req.url,
        user: req.headers['x-roomcast-user'],
        route: req.headers['x-roomcast-route'],
        request: req.headers['x-roomcast-request'],
        traceparent: req.headers.traceparent,
        params: JSON.parse(body || 'null'),
      };
      seen.push(call);
      if (req.url.startsWith('/fail')) {
        res.writeHead(418, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ why: 'teapot' }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(call));
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

/** An OTLP/HTTP receiver (JSON encoding): collects every exported span. */
async function startOtlpReceiver() {
  const spans = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        for (const rs of JSON.parse(body).resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue;
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const attrs = Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
              spans.push({ service, name: s.name, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || '', attrs });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, spans, close: () => server.close() };
}

/** `redis-cli monitor` on the server; `stop()` resolves with the commands it saw. */
async function monitor(redisUrl) {
  const port = new URL(redisUrl).port;
  const child = spawn('redis-cli', ['-p', port, 'monitor'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c) => { out += c; });
  await waitUntil(() => out.startsWith('OK'), 'MONITOR running');
  return {
    async stop() {
      await delay(200);
      child.kill();
      return out.split('\n').slice(1).filter(Boolean);
    },
  };
}

for (const backend of backends()) {
  describe(`request routing in a three-node cluster (${backend.name})`, { skip: backend.skip, timeout: 120000 }, () => {
    let cluster, redis, upstream, otlp, nodes, server;
    const workers = [];
    const connect = (...args) => cluster.connect(...args);
    const request = (client, route, params, uuid = randomUUID()) => client.ack('request', { uuid, route, params });

    before(async () => {
      notePgSkip();
      upstream = await startUpstream();
      otlp = await startOtlpReceiver();
      const routes = [
        `{prefix="http.fail.", kind="upstream", url="${upstream.url}/fail"}`,
        `{prefix="http.", kind="upstream", url="${upstream.url}/rpc"}`,
        '{prefix="jobs.", kind="worker", stream="jobs", timeout="20s"}',
        '{prefix="presence.", kind="worker", stream="nodes"}',
        '{prefix="void.", kind="worker", stream="void", timeout="400ms"}',
      ];
      cluster = await startCluster({
        nodes: 3,
        db: backend.name,
        env: {
          ROOMCAST_REQUEST_ROUTES: `[${routes.join(', ')}]`,
          ROOMCAST_REQUEST_CLAIM_AFTER: '1s',
          OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
          OTEL_BSP_SCHEDULE_DELAY: '100',
        },
        // The third node also answers the "nodes" stream with its built-in routes.
        nodeEnv: (i) => (i === 2 ? { ROOMCAST_REQUEST_SERVE: 'nodes' } : {}),
      });
      ({ redis, nodes } = cluster);
      server = nodes[2];
      workers.push(await startWorker(redis.url, 'w1'));
    });

    after(async () => {
      await Promise.all(workers.map((w) => w.kill('SIGKILL')));
      await cluster?.stop();
      upstream?.close();
      otlp?.close();
    });

    it('answers every kind of handler, each reply to its initiator only', async () => {
      const [a, b, c] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const bob = await connect('v4-polling', b.url, passwordOf('bob'));
      const carol = await connect('v2', c.url, passwordOf('carol'));
      const everyone = [alice, bob, carol];
      const logins = ['alice', 'bob', 'carol'];
      const room = roomName('req');
      for (const client of everyone) await joinRoom(client, room);

      // The same uuid on three sockets at once: each gets its own answer.
      const uuid = randomUUID();
      for (const [route, params] of [
        ['echo', (i) => ({ i })],
        ['http.profile', (i) => ({ i })],
        ['jobs.whoami', () => null],
        ['presence.room', () => ({ room })],
      ]) {
        const replies = await Promise.all(everyone.map((client, i) => request(client, route, params(i), uuid)));
        for (const [i, reply] of replies.entries()) {
          assert.equal(reply.ok, true, `${route} for ${logins[i]}: ${JSON.stringify(reply)}`);
          assert.equal(reply.uuid, uuid);
          const event = await everyone[i].waitFor(`request ${uuid}`);
          assert.deepEqual(event, reply, `${route}: the event and the ack agree`);
          if (route === 'echo') assert.deepEqual(reply.result, { i });
          if (route === 'http.profile') {
            assert.equal(reply.result.status, 200);
            const { traceparent, ...call } = reply.result.body;
            assert.deepEqual(call, { path: '/rpc', user: logins[i], route, request: uuid, params: { i } });
            assert.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'trace context forwarded');
          }
          if (route === 'jobs.whoami') {
            assert.equal(reply.result.user, logins[i]);
            assert.deepEqual(reply.result.rooms, [room]);
            assert.equal(reply.result.worker, 'w1');
          }
          if (route === 'presence.room') assert.deepEqual(reply.result.users, logins);
        }
        await delay(100);
        for (const client of everyone) client.assertNothing(`one ${route} reply only`, `request ${uuid}`);
      }

      // presence.* ran on the serving node, whoever asked.
      const served = await Promise.all(nodes.map(async (n) =>
        metricSum(await metrics(n.url), 'roomcast_requests_served_total', { stream: 'nodes' })));
      assert.deepEqual(served, [0, 0, 3]);
      for (const [n, kind, route] of [[a, 'worker', 'jobs.'], [b, 'upstream', 'http.'], [c, 'builtin', 'echo']]) {
        const count = metricSum(await metrics(n.url), 'roomcast_request_duration_seconds_count', { route, kind });
        assert.equal(count, 1, `${route} latency observed on its node`);
      }
    });

    it('reports upstream statuses, worker errors, unknown routes and timeouts', async () => {
      const alice = await connect('v4-websocket', nodes[0].url, passwordOf('alice'));
      const failed = await request(alice, 'http.fail.now', { x: 1 });
      assertFailure(failed, 'upstream_status', 'a 418 upstream');
      assert.equal(failed.error.status, 418);
      assert.deepEqual(failed.error.body, { why: 'teapot' });

      assertFailure(await request(alice, 'jobs.sum', { numbers: 'x' }), 'bad_params', 'worker error');
      assert.deepEqual((await request(alice, 'jobs.sum', { numbers: [1, 2, 3] })).result.sum, 6);
      assertFailure(await request(alice, 'jobs.nothing'), 'unknown_route', 'worker without the route');
      assertFailure(await request(alice, 'nowhere'), 'unknown_route', 'no route');

      const t0 = Date.now();
      assertFailure(await request(alice, 'void.x'), 'timeout', 'a stream nobody reads');
      const took = Date.now() - t0;
      assert.ok(took >= 350 && took < 3000, `timed out after the route's 400 ms (${took} ms)`);
      const timeouts = metricSum(await metrics(nodes[0].url), 'roomcast_request_timeouts_total', { route: 'void.', kind: 'worker' });
      assert.equal(timeouts, 1);
    });

    it('refuses a uuid already in flight on the same socket', async () => {
      const bob = await connect('v4-websocket', nodes[1].url, passwordOf('bob'));
      const uuid = randomUUID();
      const first = request(bob, 'jobs.sleep', { ms: 400 }, uuid);
      const second = await request(bob, 'echo', 1, uuid);
      assertFailure(second, 'duplicate_request', 'same uuid in flight');
      assert.equal((await first).ok, true);
      assert.equal((await request(bob, 'echo', 2, uuid)).ok, true, 'free again once answered');
    });

    it('carries the trace to the serving node, the upstream and the worker', async () => {
      const [a, , c] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const room = roomName('trace');
      await joinRoom(alice, room);
      const spanOf = (uuid) => waitUntil(() => otlp.spans.find((s) => s.name === 'request' && s.attrs.uuid === uuid), `request span ${uuid}`);

      // A node serving the stream: its `job` span is a child of the request span.
      const viaNode = randomUUID();
      assert.equal((await request(alice, 'presence.room', { room }, viaNode)).ok, true);
      const root = await spanOf(viaNode);
      assert.deepEqual([root.service, root.attrs.node, root.attrs.kind, root.attrs.route], ['roomcast', a.nodeId, 'worker', 'presence.room']);
      const job = await waitUntil(() => otlp.spans.find((s) => s.name === 'job' && s.traceId === root.traceId), 'job span');
      assert.equal(job.parentSpanId, root.spanId, 'the job continues the request span');
      assert.equal(job.attrs.node, c.nodeId, 'on the serving node');

      // The upstream gets the request span as its parent in `traceparent`.
      const viaHttp = randomUUID();
      assert.equal((await request(alice, 'http.trace', null, viaHttp)).ok, true);
      const httpSpan = await spanOf(viaHttp);
      assert.equal(upstream.seen.find((s) => s.request === viaHttp).traceparent, `00-${httpSpan.traceId}-${httpSpan.spanId}-01`);

      // So does the worker, in the job.
      const viaWorker = randomUUID();
      assert.equal((await request(alice, 'jobs.whoami', null, viaWorker)).ok, true);
      const workerSpan = await spanOf(viaWorker);
      const took = workers.flatMap((w) => w.took()).find((t) => t.traceparent?.includes(workerSpan.traceId));
      assert.ok(took, 'the worker received the trace context');
      assert.equal(took.traceparent, `00-${workerSpan.traceId}-${workerSpan.spanId}-01`);
    });

    it('sends a reply as one PUBLISH on the origin node channel', async () => {
      const [a] = nodes;
      const alice = await connect('v4-websocket', a.url, passwordOf('alice'));
      const room = roomName('mon');
      await joinRoom(alice, room);
      for (const [route, params] of [['jobs.sum', { numbers: [2, 2] }], ['presence.room', { room }]]) {
        const mon = await monitor(redis.url);
        const reply = await request(alice, route, params);
        assert.equal(reply.ok, true, JSON.stringify(reply));
        const publishes = (await mon.stop()).filter((l) => /"publish"/i.test(l));
        assert.equal(publishes.length, 1, `${route}: one PUBLISH\n${publishes.join('\n')}`);
        assert.match(publishes[0], new RegExp(`"PUBLISH" "roomcast:replies:${a.nodeId}"`, 'i'));
      }
    });

    it('hands a job held by a worker killed with SIGKILL to another worker', async () => {
      await workers[0].kill();
      const victim = await startWorker(redis.url, 'victim');
      workers.push(victim);
      const bob = await connect('v4-polling', nodes[1].url, passwordOf('bob'));
      const uuid = randomUUID();
      bob.send('request', { uuid, route: 'jobs.sleep', params: { ms: 1500 } });
      await waitUntil(() => victim.took().length === 1, 'the victim took the job');
      await victim.kill('SIGKILL');
      const rescuer = await startWorker(redis.url, 'rescuer');
      workers.push(rescuer);

      const reply = await bob.waitFor(`request ${uuid}`, () => true, 15000);
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.deepEqual(reply.result, { slept: 1500, worker: 'rescuer', attempt: 2 });
      const reclaimed = (await Promise.all(nodes.map(async (n) =>
        metricSum(await metrics(n.url), 'roomcast_requests_reclaimed_total', { stream: 'jobs' })))).reduce((x, y) => x + y);
      assert.equal(reclaimed, 1, 'taken back once, by one node');
      await delay(200);
      bob.assertNothing('one reply only', `request ${uuid}`);
    });
  });
}
