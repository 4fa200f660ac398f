// Three Roomcast nodes behind the shipped load balancer configs (deploy/haproxy,
// deploy/nginx), driven by the official clients through the balancer only: long-polling
// must stay on one node (HAProxy: the SERVERID cookie; nginx: the client address hash),
// the WebSocket upgrade must reach the node holding the session, and a room broadcast
// must cross nodes. HAProxy and nginx run unprivileged on loopback ports, from a temp
// dir, and are killed at the end.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, chownSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import {
  REPO, PG_URL, WAIT_MS, createDb, startNode, addUser, startRedis, Client, joinRoom, roomName,
  passwordOf, waitUntil, delay, nodeLogTails, freePort,
} from '../e2e/lib/harness.mjs';

// The clients come from the e2e package's node_modules (this directory has none).
const require = createRequire(join(REPO, 'tests', 'e2e', 'package.json'));
const { io } = require('socket.io-client');
const ioV2 = require('socket.io-client-v2');

const NOBODY = 65534;
const asRoot = process.getuid && process.getuid() === 0;

/** Fills ${VAR} placeholders; an unknown placeholder is an error, not an empty string. */
function renderTemplate(text, vars) {
  return text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, k) => {
    assert.ok(k in vars, `template placeholder \${${k}} has no value`);
    return vars[k];
  });
}

/** A scratch dir the unprivileged proxy can write to. */
function scratchDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (asRoot) chownSync(dir, NOBODY, NOBODY);
  return dir;
}

/** Spawns a proxy as `nobody` when we are root; returns {child, logs(), stop()}. */
function spawnProxy(cmd, args, { env = {}, cwd }) {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  const lines = [];
  for (const s of [child.stdout, child.stderr]) s.on('data', (d) => lines.push(String(d)));
  let exited = null;
  const exit = new Promise((r) => child.on('exit', (code, signal) => r((exited = { code, signal }))));
  return {
    child,
    logs: () => lines.join(''),
    exited: () => exited,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const r = await Promise.race([exit, delay(5000).then(() => null)]);
      if (!r) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

/** Waits for `connect`; rejects with the connect error. Returns a harness Client. */
function connected(kind, socket) {
  const client = new Client(kind, socket);
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      socket.close();
      rej(new Error(`${kind}: not connected within ${WAIT_MS} ms\n${nodeLogTails(5)}`));
    }, WAIT_MS);
    const fail = (err) => {
      clearTimeout(timer);
      socket.close();
      rej(new Error(`${kind}: connection refused: ${err?.message ?? JSON.stringify(err)}`));
    };
    socket.once('connect', () => {
      clearTimeout(timer);
      res(client);
    });
    socket.once('connect_error', fail);
    if (kind === 'v2') socket.once('error', fail);
  });
}

const v4Opts = (extra) => ({ forceNew: true, reconnection: false, timeout: WAIT_MS, ...extra });

/** Resolves once the Engine.IO connection of a v4 socket runs over WebSocket. */
async function upgraded(socket) {
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') {
    await new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`no upgrade within ${WAIT_MS} ms`)), WAIT_MS);
      engine.once('upgrade', () => { clearTimeout(t); res(); });
      engine.once('upgradeError', (e) => { clearTimeout(t); rej(new Error(`upgrade failed: ${e.message}`)); });
    });
  }
  assert.equal(engine.transport.name, 'websocket');
}

/** Several round trips over long-polling: each is a new HTTP request through the LB. */
async function pollingRoundTrips(client, n = 4) {
  for (let i = 0; i < n; i++) {
    const reply = await client.ack('request', { uuid: `rt-${i}-${Date.now()}`, route: 'echo', params: { i } });
    assert.equal(reply?.ok, true, `round trip ${i}: ${JSON.stringify(reply)}`);
  }
}

const describePg = PG_URL ? describe : describe.skip;

describePg('three nodes behind the shipped load balancers', { timeout: 180000 }, () => {
  let redis, db;
  const nodes = [];
  const opsPorts = [];
  const clients = [];
  const proxies = [];
  const dirs = [];
  const track = (c) => { clients.push(c); return c; };

  /** The node holding a `/` socket, from its session row (sess.node = ROOMCAST_NODE_ID). */
  async function nodeOf(client) {
    const row = await waitUntil(() => db.getSession(client.sid), `session row of ${client.id}`);
    return row.sess.node;
  }

  before(async () => {
    redis = await startRedis();
    db = await createDb('postgres');
    for (let i = 1; i <= 3; i++) {
      const ops = await freePort();
      opsPorts.push(ops);
      // The first node migrates the schema before the others start.
      const start = () => startNode({
        db,
        nodeId: `node${i}`,
        env: { REDIS_URL: redis.url, ROOMCAST_OPS_LISTEN: `127.0.0.1:${ops}`, ROOMCAST_SHUTDOWN_TIMEOUT: '3s' },
      });
      nodes.push(await start());
    }
    await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => addUser(db, u, `${u}-pw`)));
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const p of proxies) await p.stop();
    await Promise.all(nodes.map((n) => n.stop(5000)));
    await db?.drop().catch(() => {});
    redis?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  describe('HAProxy (cookie SERVERID)', () => {
    let lb;

    before(async () => {
      const port = await freePort();
      const dir = scratchDir('roomcast-haproxy-');
      dirs.push(dir);
      const env = { ROOMCAST_LB_BIND: `127.0.0.1:${port}` };
      nodes.forEach((n, i) => {
        env[`ROOMCAST_NODE${i + 1}_ADDR`] = `127.0.0.1:${n.port}`;
        env[`ROOMCAST_NODE${i + 1}_OPS_PORT`] = String(opsPorts[i]);
      });
      const proxy = spawnProxy('haproxy', ['-db', '-f', join(REPO, 'deploy', 'haproxy', 'haproxy.cfg')], { env, cwd: dir });
      proxies.push(proxy);
      lb = `http://127.0.0.1:${port}`;
      // Every node must take new sessions: fresh requests (no cookie) go round-robin,
      // and the inserted cookie names the node that answered.
      const seen = new Set();
      await waitUntil(async () => {
        assert.equal(proxy.exited(), null, `haproxy exited:\n${proxy.logs()}`);
        try {
          const r = await fetch(`${lb}/`, { signal: AbortSignal.timeout(2000) });
          const m = /SERVERID=(\w+)/.exec(r.headers.get('set-cookie') || '');
          if (r.status === 200 && m) seen.add(m[1]);
        } catch { /* not listening yet */ }
        return seen.size === 3;
      }, `HAProxy routing to all three nodes (seen ${[...seen]})\n${proxy.logs()}`, 20000, 100);
    });

    it('inserts SERVERID as an httponly cookie only when the client has none', async () => {
      const r = await fetch(`${lb}/socket.io/?EIO=4&transport=polling`, { signal: AbortSignal.timeout(WAIT_MS) });
      assert.equal(r.status, 200);
      const cookie = r.headers.get('set-cookie');
      assert.match(cookie, /^SERVERID=node[123]; path=\/; HttpOnly/i);
      // "indirect": a request that already carries the cookie gets none back.
      const again = await fetch(`${lb}/`, { headers: { cookie: cookie.split(';')[0] }, signal: AbortSignal.timeout(WAIT_MS) });
      assert.equal(again.headers.get('set-cookie'), null);
    });

    it('keeps a v4 long-polling session on one node with the cookie, and breaks without it', async () => {
      // Without cookies every request of the session goes to the next node: the node
      // that did not do the handshake refuses the unknown Engine.IO session id.
      await assert.rejects(
        connected('v4-polling', io(lb, v4Opts({ transports: ['polling'], auth: passwordOf('dave') }))),
        /connection refused|not connected/,
      );

      // withCredentials: engine.io-client keeps a cookie jar in Node (since 6.5).
      const alice = track(await connected('v4-polling', io(lb, v4Opts({ transports: ['polling'], withCredentials: true, auth: passwordOf('alice') }))));
      const bob = track(await connected('v4-polling', io(lb, v4Opts({ transports: ['polling'], withCredentials: true, auth: passwordOf('bob') }))));
      const [na, nb] = [await nodeOf(alice), await nodeOf(bob)];
      // Round-robin puts consecutive new sessions on different nodes; the cookie each
      // client holds names the node its session row says it is on.
      assert.notEqual(na, nb, 'two consecutive sessions should land on different nodes');
      for (const [c, n] of [[alice, na], [bob, nb]]) {
        const jar = Object.fromEntries([...c.socket.io.engine._cookieJar.cookies].map(([k, v]) => [k, v.value]));
        assert.equal(jar.SERVERID, n, 'sticky cookie names the node holding the session');
        assert.equal(c.socket.io.engine.transport.name, 'polling');
        await pollingRoundTrips(c);
      }

      const room = roomName('lb-poll');
      await joinRoom(alice, room);
      await joinRoom(bob, room);
      const sent = await bob.ack('sendMessage', { room, message: 'via haproxy' });
      assert.equal(sent.ok, true, JSON.stringify(sent));
      const m = await alice.waitFor('incomingMessage', (x) => x.id === sent.id);
      assert.deepEqual([m.from, m.room, m.message], ['bob', room, 'via haproxy']);
    });

    it('upgrades v4 polling to WebSocket on the node holding the session, and v2 follows its cookie', async () => {
      const carol = track(await connected('v4-upgrade', io(lb, v4Opts({ transports: ['polling', 'websocket'], withCredentials: true, auth: passwordOf('carol') }))));
      await upgraded(carol.socket);
      const nc = await nodeOf(carol);

      // socket.io-client v2 has no cookie jar in Node; like a browser, it sends the
      // cookie the balancer set on an earlier response (here: the demo page).
      let cookie, nv2;
      for (let i = 0; i < 6 && (!cookie || nv2 === nc); i++) {
        const r = await fetch(`${lb}/`, { signal: AbortSignal.timeout(WAIT_MS) });
        cookie = (r.headers.get('set-cookie') || '').split(';')[0];
        nv2 = /^SERVERID=(\w+)$/.exec(cookie)?.[1];
      }
      assert.ok(nv2 && nv2 !== nc, `a cookie for a node other than ${nc}: ${cookie}`);
      const extraHeaders = { cookie };
      const dave = track(await connected('v2', ioV2(lb, {
        forceNew: true, reconnection: false, timeout: WAIT_MS, query: passwordOf('dave'),
        transports: ['polling', 'websocket'], extraHeaders,
        transportOptions: { polling: { extraHeaders }, websocket: { extraHeaders } },
      })));
      assert.equal(await nodeOf(dave), nv2, 'the v2 session lives on the node its cookie names');
      await waitUntil(() => dave.socket.io.engine.transport.name === 'websocket', 'v2 upgrade to websocket');

      const room = roomName('lb-ws');
      await joinRoom(carol, room);
      await joinRoom(dave, room);
      const sent = await carol.ack('sendMessage', { room, message: 'from v4 ws' });
      assert.equal(sent.ok, true);
      assert.equal((await dave.waitFor('incomingMessage', (x) => x.id === sent.id)).message, 'from v4 ws');
      const back = await dave.ack('sendMessage', { room, message: 'from v2' });
      assert.equal(back.ok, true);
      assert.equal((await carol.waitFor('incomingMessage', (x) => x.id === back.id)).message, 'from v2');
    });
  });

  describe('nginx (hash $remote_addr consistent)', () => {
    let lb;
    // Loopback source addresses: nginx hashes each to a node, so clients bound to
    // different ones can sit on different nodes, as distinct users would.
    const agentFor = (addr) => new Agent({ localAddress: addr, keepAlive: false });

    before(async () => {
      const port = await freePort();
      const dir = scratchDir('roomcast-nginx-');
      dirs.push(dir);
      const vars = { NGINX_RUN_DIR: dir, ROOMCAST_LB_LISTEN: `127.0.0.1:${port}` };
      nodes.forEach((n, i) => { vars[`ROOMCAST_NODE${i + 1}_ADDR`] = `127.0.0.1:${n.port}`; });
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, renderTemplate(readFileSync(join(REPO, 'deploy', 'nginx', 'nginx.conf.template'), 'utf8'), vars));
      mkdirSync(join(dir, 'logs'), { recursive: true });
      if (asRoot) chownSync(join(dir, 'logs'), NOBODY, NOBODY);
      const proxy = spawnProxy('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'], { cwd: dir });
      proxies.push(proxy);
      lb = `http://127.0.0.1:${port}`;
      await waitUntil(async () => {
        assert.equal(proxy.exited(), null, `nginx exited:\n${proxy.logs()}`);
        try {
          return (await fetch(`${lb}/`, { signal: AbortSignal.timeout(2000) })).status === 200;
        } catch {
          return false;
        }
      }, `nginx listening\n${proxy.logs()}`, 10000, 100);
    });

    const v4From = (addr, transports, creds) => io(lb, v4Opts({ transports, auth: creds, agent: agentFor(addr), localAddress: addr }));

    it('keeps long-polling sessions sticky per client address and relays broadcasts between nodes', async () => {
      // Pick two source addresses that hash to different nodes.
      const byNode = new Map();
      for (let i = 2; i < 40 && byNode.size < 2; i++) {
        const addr = `127.0.0.${i}`;
        const c = track(await connected('v4-polling', v4From(addr, ['polling'], passwordOf('alice'))));
        const n = await nodeOf(c);
        // The same address always maps to the same node.
        const c2 = track(await connected('v4-polling', v4From(addr, ['polling'], passwordOf('alice'))));
        assert.equal(await nodeOf(c2), n, `${addr} hashed to one node`);
        c2.close();
        if (!byNode.has(n)) byNode.set(n, { addr, client: c });
        else c.close();
      }
      assert.equal(byNode.size, 2, 'two loopback addresses hashing to different nodes');
      const [[, a], [, b]] = [...byNode];
      for (const { client } of [a, b]) await pollingRoundTrips(client);

      const room = roomName('nginx-poll');
      await joinRoom(a.client, room);
      await joinRoom(b.client, room);
      const sent = await b.client.ack('sendMessage', { room, message: 'via nginx' });
      assert.equal(sent.ok, true);
      assert.equal((await a.client.waitFor('incomingMessage', (x) => x.id === sent.id)).message, 'via nginx');

      // WebSocket upgrade through nginx (Upgrade/Connection headers passed on), and the
      // v2 client, each from an address on another node than its peer.
      const ws = track(await connected('v4-upgrade', v4From(a.addr, ['polling', 'websocket'], passwordOf('carol'))));
      await upgraded(ws.socket);
      const v2 = track(await connected('v2', ioV2(lb, {
        forceNew: true, reconnection: false, timeout: WAIT_MS, query: passwordOf('dave'),
        transports: ['polling', 'websocket'], agent: agentFor(b.addr), localAddress: b.addr,
      })));
      assert.notEqual(await nodeOf(ws), await nodeOf(v2));
      await waitUntil(() => v2.socket.io.engine.transport.name === 'websocket', 'v2 upgrade to websocket');
      const room2 = roomName('nginx-ws');
      await joinRoom(ws, room2);
      await joinRoom(v2, room2);
      const m1 = await v2.ack('sendMessage', { room: room2, message: 'v2 to v4' });
      assert.equal((await ws.waitFor('incomingMessage', (x) => x.id === m1.id)).message, 'v2 to v4');
      const m2 = await ws.ack('sendMessage', { room: room2, message: 'v4 to v2' });
      assert.equal((await v2.waitFor('incomingMessage', (x) => x.id === m2.id)).message, 'v4 to v2');
    });
  });
});

describePg('a node drained with SIGTERM under traffic, behind HAProxy', { timeout: 120000 }, () => {
  let redis, db, lb, proxy, dir;
  const nodes = [];
  const clients = [];
  const everyone = [];
  let room;

  before(async () => {
    redis = await startRedis();
    db = await createDb('postgres');
    const env = { ROOMCAST_LB_BIND: '' };
    for (let i = 1; i <= 3; i++) {
      const ops = await freePort();
      nodes.push(await startNode({
        db,
        nodeId: `drain${i}`,
        env: {
          REDIS_URL: redis.url,
          ROOMCAST_OPS_LISTEN: `127.0.0.1:${ops}`,
          // HAProxy marks a node down after fall (2) x inter (2 s): keep the sockets
          // that long, so the clients' reconnections go to the other nodes.
          ROOMCAST_DRAIN_DELAY: '5s',
          ROOMCAST_SHUTDOWN_TIMEOUT: '15s',
          // A node killed outright is swept after 3 s of silence.
          ROOMCAST_HEARTBEAT_INTERVAL: '200ms',
          ROOMCAST_NODE_DEAD_AFTER: '3s',
        },
      }));
      env[`ROOMCAST_NODE${i}_ADDR`] = `127.0.0.1:${nodes[i - 1].port}`;
      env[`ROOMCAST_NODE${i}_OPS_PORT`] = String(ops);
    }
    await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((u) => addUser(db, u, `${u}-pw`)));
    const port = await freePort();
    env.ROOMCAST_LB_BIND = `127.0.0.1:${port}`;
    dir = scratchDir('roomcast-haproxy-drain-');
    proxy = spawnProxy('haproxy', ['-db', '-f', join(REPO, 'deploy', 'haproxy', 'haproxy.cfg')], { env, cwd: dir });
    lb = `http://127.0.0.1:${port}`;
    await waitUntil(async () => {
      try {
        return (await fetch(`${lb}/`, { signal: AbortSignal.timeout(2000) })).status === 200;
      } catch {
        return false;
      }
    }, `HAProxy up\n${proxy.logs()}`, 20000, 100);
  });

  after(async () => {
    for (const c of clients) c.close();
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n.stop(5000)));
    await db?.drop().catch(() => {});
    redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A client as an application would write one: reconnects, and names its previous
   * socket in `auth.resume` so that a drained node's rooms follow it. */
  async function resumingClient(login, transports) {
    let previous;
    const socket = io(lb, {
      forceNew: true, withCredentials: true, transports, timeout: WAIT_MS,
      reconnectionDelay: 200, reconnectionDelayMax: 1000,
      auth: (cb) => cb({ ...passwordOf(login), ...(previous ? { resume: previous } : {}) }),
    });
    const client = new Client(`${login}/${transports.join('+')}`, socket);
    client.connects = [];
    socket.on('connect', () => { previous = socket.id; client.connects.push(Date.now()); });
    clients.push(client);
    await waitUntil(() => client.connects.length === 1, `${login} connected`);
    return client;
  }

  const nodeOf = async (client) =>
    (await waitUntil(() => db.getSession(`roomcast:${client.socket.id}`), `row of ${client.kind}`)).sess.node;

  it('moves its clients to the other nodes with their rooms; nothing sent after the move is lost', async () => {
    room = roomName('drain');
    const kinds = [['polling'], ['polling', 'websocket']];
    for (const [i, login] of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].entries()) {
      const c = await resumingClient(login, kinds[i % 2]);
      await joinRoom(c, room);
      everyone.push(c);
    }
    const homes = await Promise.all(everyone.map(nodeOf));
    const victimId = homes[0];
    const victim = nodes.find((n) => n.nodeId === victimId);
    const moving = everyone.filter((_, i) => homes[i] === victimId);
    const sender = everyone.find((_, i) => homes[i] !== victimId);
    assert.ok(sender, 'a client on another node sends');

    // Traffic: the sender keeps posting to the room, numbered, until told to stop.
    const sent = []; // {seq, id, at}
    let sending = true;
    const traffic = (async () => {
      for (let seq = 0; sending; seq++) {
        const at = Date.now();
        const reply = await sender.ack('sendMessage', { room, message: `m${seq}` });
        if (reply?.ok) sent.push({ seq, id: reply.id, at });
        await delay(25);
      }
    })();

    await delay(300);
    const exited = new Promise((r) => victim.child.once('exit', (code) => r(code)));
    victim.child.kill('SIGTERM');
    for (const c of moving) {
      await waitUntil(() => c.connects.length === 2, `${c.kind} reconnected`, 30000, 50);
    }
    // Let traffic run on the new nodes, then stop it.
    await delay(1000);
    sending = false;
    await traffic;
    assert.equal(await exited, 0, 'the drained node exits 0');

    for (const c of moving) {
      assert.notEqual(await nodeOf(c), victimId, `${c.kind} moved to another node`);
      const rooms = (await c.ack('request', { uuid: `r-${Date.now()}`, route: 'rooms.list' })).result.rooms;
      assert.deepEqual(rooms, [room], `${c.kind} got its room back`);
      const movedAt = c.connects[1];
      const expected = sent.filter((m) => m.at > movedAt);
      assert.ok(expected.length > 10, `traffic after the move (${expected.length} messages)`);
      for (const m of expected) {
        await c.waitFor('incomingMessage', (x) => x.id === m.id, 2000);
      }
    }
    // Clients that stayed lost nothing at all.
    for (const c of everyone.filter((x) => !moving.includes(x))) {
      for (const m of sent) await c.waitFor('incomingMessage', (x) => x.id === m.id, 2000);
    }
    // The drained node's rows are gone; every client has exactly one.
    const sids = await db.listSessionIds('roomcast:');
    const rows = await Promise.all(sids.map((sid) => db.getSession(sid)));
    assert.ok(!rows.some((r) => r.sess.node === victimId), 'no row of the drained node is left');
    assert.equal(rows.length, everyone.length, 'one row per client');
  });

  it('moves the clients of a node killed with SIGKILL; its rows are swept, nothing half-joined', async () => {
    const homes = await Promise.all(everyone.map(nodeOf));
    const victimId = homes[0];
    const victim = nodes.find((n) => n.nodeId === victimId);
    const moving = everyone.filter((_, i) => homes[i] === victimId);
    const sender = everyone.find((_, i) => homes[i] !== victimId);
    assert.ok(sender, 'a client on a surviving node sends');
    const before = moving.map((c) => c.connects.length);

    victim.child.kill('SIGKILL');
    for (const [i, c] of moving.entries()) {
      await waitUntil(() => c.connects.length === before[i] + 1, `${c.kind} reconnected`, 30000, 50);
    }
    for (const c of moving) {
      assert.notEqual(await nodeOf(c), victimId, `${c.kind} moved`);
      const rooms = (await c.ack('request', { uuid: `k-${Date.now()}`, route: 'rooms.list' })).result.rooms;
      assert.deepEqual(rooms, [room], `${c.kind} resumed its room from its previous row`);
      const m = await sender.ack('sendMessage', { room, message: 'after the crash' });
      await c.waitFor('incomingMessage', (x) => x.id === m.id, 2000);
    }
    // Swept within the bound: no row of the dead node, one row per client, and the
    // room's presence lists every user once.
    await waitUntil(async () => {
      const rows = await Promise.all((await db.listSessionIds('roomcast:')).map((sid) => db.getSession(sid)));
      return rows.every((r) => r.sess.node !== victimId) && rows.length === everyone.length;
    }, 'the dead node swept', 10000, 100);
    const presence = await sender.ack('request', { uuid: `p-${Date.now()}`, route: 'presence.room', params: { room } });
    assert.deepEqual(presence.result.users, ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']);
  });
});

if (!PG_URL) {
  process.stderr.write('note: ROOMCAST_TEST_PG_URL is not set; the three-node load balancer tests are skipped\n');
}
