// One socket floods a slow HTTP upstream with requests. The node keeps at most
// `requests.max_in_flight_per_socket` of them in flight and refuses the rest at once
// with `too_many_requests`; upstream calls are bounded node-wide
// (`requests.upstream_concurrency`), so connections, memory and file descriptors stay
// flat; another socket keeps getting answers. When the client's buffer cannot take every
// answer, each one that is lost is counted (`roomcast_undelivered_total`), never dropped
// silently.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { setupNode, passwordOf, metrics, metricSum, randomUUID, waitUntil } from './lib/harness.mjs';

const MAX_IN_FLIGHT = 32;
const UPSTREAM_CONCURRENCY = 8;
const UPSTREAM_DELAY_MS = 500;
const FLOOD = 500;

/** An upstream that answers after a delay, counting its connections and peak load. */
async function startSlowUpstream() {
  const stats = { connections: 0, inFlight: 0, peak: 0, calls: 0 };
  const server = createServer((req, res) => {
    stats.calls += 1;
    stats.inFlight += 1;
    stats.peak = Math.max(stats.peak, stats.inFlight);
    req.resume();
    setTimeout(() => {
      stats.inFlight -= 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ slow: true }));
    }, UPSTREAM_DELAY_MS);
  });
  server.on('connection', () => { stats.connections += 1; });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stats,
    close: () => { server.closeAllConnections(); server.close(); },
  };
}

/** Resident memory (bytes) and open file descriptors of a process. */
function usage(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { rss: rssKb * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** Emits `count` requests at once; resolves with the acks that came within `waitMs`. */
async function flood(client, route, count, waitMs) {
  const acks = [];
  const sentAt = Date.now();
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, waitMs);
    for (let i = 0; i < count; i++) {
      client.socket.emit('request', { uuid: randomUUID(), route, params: { i } }, (reply) => {
        acks.push({ reply, ms: Date.now() - sentAt });
        if (acks.length === count) { clearTimeout(timer); resolve(); }
      });
    }
  });
  return acks;
}

const code = (ack) => (ack.reply.ok ? 'ok' : ack.reply.error.code);

describe('a request flood from one socket', { timeout: 60000 }, () => {
  let upstream, t;

  before(async () => {
    upstream = await startSlowUpstream();
    t = await setupNode('sqlite', {
      env: {
        ROOMCAST_REQUEST_ROUTES: `[{prefix="slow.", kind="upstream", url="${upstream.url}/rpc"}]`,
        ROOMCAST_REQUEST_MAX_IN_FLIGHT_PER_SOCKET: String(MAX_IN_FLIGHT),
        ROOMCAST_REQUEST_UPSTREAM_CONCURRENCY: String(UPSTREAM_CONCURRENCY),
        // Room for every answer: this test is about the cap, the next one about loss.
        ROOMCAST_MAX_BUFFER: '4096',
      },
    });
  });

  after(async () => {
    await t?.teardown();
    upstream?.close();
  });

  it('caps requests in flight, refuses the rest at once and stays bounded', async (ctx) => {
    const flooder = await t.connect('v4-websocket', passwordOf('alice'));
    const bystander = await t.connect('v4-websocket', passwordOf('bob'));
    const pid = t.node.child.pid;
    const before = usage(pid);

    const flooding = flood(flooder, 'slow.work', FLOOD, 20000);
    // While the flood is in flight, another socket is answered promptly.
    const asked = Date.now();
    const echo = await bystander.ack('request', { uuid: randomUUID(), route: 'echo', params: 'still here' });
    assert.equal(echo.ok, true);
    assert.deepEqual(echo.result, 'still here');
    assert.ok(Date.now() - asked < 1000, `bystander answered in ${Date.now() - asked} ms`);
    const during = usage(pid);

    const acks = await flooding;
    assert.equal(acks.length, FLOOD, 'every request answered');
    const byCode = {};
    for (const a of acks) byCode[code(a)] = (byCode[code(a)] ?? 0) + 1;
    assert.deepEqual(byCode, { ok: MAX_IN_FLIGHT, too_many_requests: FLOOD - MAX_IN_FLIGHT });
    const refusals = acks.filter((a) => code(a) === 'too_many_requests');
    assert.ok(refusals.every((a) => a.ms < UPSTREAM_DELAY_MS), 'refusals come at once, not after a slot frees');
    assert.match(refusals[0].reply.error.message, new RegExp(`${MAX_IN_FLIGHT}`));

    ctx.diagnostic(`rss ${before.rss >> 20} -> ${during.rss >> 20} MB, fds ${before.fds} -> ${during.fds}, upstream connections ${upstream.stats.connections}, peak ${upstream.stats.peak}`);
    // Upstream load is bounded node-wide, and so are connections to it.
    assert.equal(upstream.stats.calls, MAX_IN_FLIGHT);
    assert.ok(upstream.stats.peak <= UPSTREAM_CONCURRENCY, `upstream peak ${upstream.stats.peak}`);
    // Connections are reused: a few more than the permits may open while a finished
    // one is on its way back to the pool, far fewer than one per request.
    assert.ok(upstream.stats.connections <= UPSTREAM_CONCURRENCY + 4, `upstream connections ${upstream.stats.connections}`);
    assert.ok(during.fds - before.fds <= UPSTREAM_CONCURRENCY + 8, `fds ${before.fds} -> ${during.fds}`);
    assert.ok(during.rss - before.rss < 40 * 1024 * 1024, `rss ${before.rss} -> ${during.rss}`);

    // The slots are free again once answered.
    const again = await flooder.ack('request', { uuid: randomUUID(), route: 'echo', params: 1 });
    assert.equal(again.ok, true);
    const samples = await metrics(t.url);
    assert.equal(metricSum(samples, 'roomcast_errors_total', { kind: 'too_many_requests' }), FLOOD - MAX_IN_FLIGHT);
    assert.equal(metricSum(samples, 'roomcast_undelivered_total', { nsp: '/' }), 0, 'nothing lost');
  });
});

describe('answers a client buffer cannot take', { timeout: 60000 }, () => {
  let t;

  before(async () => {
    // A small buffer and a cap above the flood: every request is answered at once,
    // faster than the client reads.
    t = await setupNode('sqlite', {
      env: { ROOMCAST_MAX_BUFFER: '16', ROOMCAST_REQUEST_MAX_IN_FLIGHT_PER_SOCKET: '1000' },
    });
  });

  after(async () => {
    await t?.teardown();
  });

  it('are counted and logged, never dropped silently', async (ctx) => {
    const start = await metrics(t.url);
    for (const kind of ['ack', 'event', 'broadcast']) {
      for (const nsp of ['/', '/lobby', '/chat', '/todo']) {
        assert.equal(start.filter((s) => s.name === 'roomcast_undelivered_total' && s.labels.nsp === nsp && s.labels.kind === kind).length, 1, `${nsp} ${kind} present from start`);
      }
    }
    assert.equal(metricSum(start, 'roomcast_emits_dropped_total', { nsp: '/' }), 0);

    const client = await t.connect('v4-websocket', passwordOf('alice'));
    const acks = await flood(client, 'echo', FLOOD, 3000);
    // Whatever did not arrive was counted: the sum is exact once the node is done.
    const samples = await waitUntil(async () => {
      const s = await metrics(t.url);
      const lost = metricSum(s, 'roomcast_undelivered_total', { nsp: '/', kind: 'ack' });
      return acks.length + lost === FLOOD ? s : null;
    }, `${FLOOD} acks received or counted (received ${acks.length})`);
    const lostAcks = metricSum(samples, 'roomcast_undelivered_total', { nsp: '/', kind: 'ack' });
    const lostEvents = metricSum(samples, 'roomcast_undelivered_total', { nsp: '/', kind: 'event' });
    ctx.diagnostic(`acks received ${acks.length}, counted undelivered: ${lostAcks} acks, ${lostEvents} events`);
    assert.ok(lostAcks + lostEvents > 0, 'the small buffer overflowed (else this test proves nothing)');
    assert.equal(metricSum(samples, 'roomcast_emits_dropped_total', { nsp: '/' }), lostAcks + lostEvents, 'all lost to a full buffer');
    assert.ok(t.node.logs().some((l) => l.includes('packet not delivered to a client')), 'logged');
    // The socket is still served.
    assert.equal((await client.ack('request', { uuid: randomUUID(), route: 'echo', params: 2 })).ok, true);
  });
});
