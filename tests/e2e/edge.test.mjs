// The node's edge: sessions bound to their address from the handshake on, a deadline on
// request heads and a cap on slow connections per address, client addresses taken from
// trusted proxies only (behind the shipped HAProxy config), login limits an attacker
// cannot turn against other users, one audit line per login, and tokens and cookies of
// deleted users refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { mkdtempSync, rmSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REPO, WAIT_MS, setupNode, connectClient, connectRefused, passwordOf, mintToken, sessionCookie,
  expressSess, newSid, metrics, metricSum, waitUntil, freePort, delay,
} from './lib/harness.mjs';

/** A raw HTTP request from a chosen loopback address; resolves {status, body}. */
function rawRequest(url, { method = 'GET', body, localAddress = '127.0.0.1' } = {}) {
  return new Promise((res, rej) => {
    const headers = body ? { 'content-type': 'text/plain;charset=UTF-8' } : {};
    const req = httpRequest(url, { method, localAddress, headers, agent: false }, (r) => {
      let data = '';
      r.on('data', (c) => { data += c; });
      r.on('end', () => res({ status: r.statusCode, body: data }));
    });
    req.on('error', rej);
    req.setTimeout(WAIT_MS, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** Opens an Engine.IO 4 long-polling session from `localAddress`; resolves its id. */
async function pollingHandshake(url, localAddress) {
  const r = await rawRequest(`${url}/socket.io/?EIO=4&transport=polling`, { localAddress });
  assert.equal(r.status, 200, `handshake: ${r.status} ${r.body}`);
  return JSON.parse(r.body.slice(1)).sid;
}

/** The node's JSON log lines with target `audit`. */
function auditLines(node) {
  return node.node.logs().flatMap((line) => {
    try {
      const obj = JSON.parse(line);
      return obj.target === 'audit' ? [obj] : [];
    } catch {
      return [];
    }
  });
}

describe('sessions are bound to their address from the handshake on', { timeout: 60000 }, () => {
  let node;
  before(async () => {
    node = await setupNode('sqlite', {
      env: { ROOMCAST_AUTH_LOGIN_DELAY: '1500ms', ROOMCAST_MAX_UNCONNECTED_PER_ADDRESS: '3' },
    });
  });
  after(async () => { await node?.teardown(); });

  it('refuses another address on a new session while its login runs; the victim stays itself', async () => {
    // Failed guesses at alice from elsewhere make each of her password checks wait
    // 1.5 s: the window in which her new session has an id but no namespace yet.
    for (let i = 0; i < 5; i++) {
      const refused = await connectRefused('v4-websocket', node.url, { login: 'alice', password: 'guess' }, { localAddress: '127.0.0.9' });
      assert.match(refused, /invalid login or password/);
    }
    const sid = await pollingHandshake(node.url, '127.0.0.1');
    const session = `${node.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const attack = async (when) => {
      const forged = await rawRequest(session, {
        method: 'POST', localAddress: '127.0.0.2', body: `40${JSON.stringify(passwordOf('bob'))}`,
      });
      assert.equal(forged.status, 403, `${when}, a connect from another address: ${forged.status} ${forged.body}`);
      const read = await rawRequest(session, { localAddress: '127.0.0.2' });
      assert.equal(read.status, 403, `${when}, a poll from another address: ${read.status} ${read.body}`);
    };
    // Before the victim sends its connect, and while its login runs.
    await attack('before the connect');
    const login = rawRequest(session, { method: 'POST', body: `40${JSON.stringify(passwordOf('alice'))}` });
    await delay(200);
    await attack('during the login');
    assert.equal((await login).status, 200);

    // Polls (pings may come first) until the namespace connect is answered.
    const packets = [];
    while (!packets.some((p) => p.startsWith('4')) && packets.length < 10) {
      packets.push(...(await rawRequest(session)).body.split('\x1e'));
    }
    assert.ok(packets.some((p) => /^40\{"sid":"[\w-]+"\}$/.test(p)), `the victim's connect reply: ${packets}`);
    const row = await node.db.getSession(`roomcast:${sid}`);
    assert.equal(row?.sess.user, 'alice', 'the session runs as its own user');
    assert.ok(metricSum(await metrics(node.url), 'roomcast_errors_total', { kind: 'session_guard' }) >= 2);
  });

  it('binds an Engine.IO 3 polling session at its handshake too', async () => {
    const r = await rawRequest(`${node.url}/socket.io/?EIO=3&transport=polling`, { localAddress: '127.0.0.1' });
    assert.equal(r.status, 200);
    const sid = /"sid":"([\w-]+)"/.exec(r.body)?.[1];
    assert.ok(sid, `no sid in ${JSON.stringify(r.body)}`);
    const read = await rawRequest(`${node.url}/socket.io/?EIO=3&transport=polling&sid=${sid}`, { localAddress: '127.0.0.2' });
    assert.equal(read.status, 403, `a poll from another address: ${read.status} ${read.body}`);
  });

  it('caps sessions per address that have not connected a namespace (HTTP 429)', async () => {
    const waiting = [];
    for (let i = 0; i < 3; i++) waiting.push(await pollingHandshake(node.url, '127.0.0.6'));
    const over = await rawRequest(`${node.url}/socket.io/?EIO=4&transport=polling`, { localAddress: '127.0.0.6' });
    assert.equal(over.status, 429, `a fourth waiting session: ${over.status} ${over.body}`);
    // Other addresses are not affected.
    await pollingHandshake(node.url, '127.0.0.7');
    (await connectClient('v4-websocket', node.url, passwordOf('carol'), { localAddress: '127.0.0.8' })).close();
    // Connecting a namespace frees a place.
    const post = await rawRequest(`${node.url}/socket.io/?EIO=4&transport=polling&sid=${waiting[0]}`, {
      method: 'POST', localAddress: '127.0.0.6', body: `40${JSON.stringify(passwordOf('dave'))}`,
    });
    assert.equal(post.status, 200);
    await waitUntil(async () => (await node.db.getSession(`roomcast:${waiting[0]}`)) !== null, 'dave connected');
    await pollingHandshake(node.url, '127.0.0.6');
  });
});

describe('slow request heads', { timeout: 60000 }, () => {
  let node;
  const sockets = [];
  before(async () => {
    node = await setupNode('sqlite', {
      env: { ROOMCAST_HEADER_READ_TIMEOUT: '3s', ROOMCAST_MAX_PENDING_PER_ADDRESS: '64' },
      users: ['alice'],
    });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await node?.teardown();
  });

  /** A connection from `localAddress` that sends a header line every second. */
  function slowClient(localAddress) {
    const socket = tcpConnect({ host: '127.0.0.1', port: node.node.port, localAddress });
    sockets.push(socket);
    const state = { opened: Date.now(), closedAt: null, data: '' };
    let timer;
    socket.on('connect', () => {
      socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n');
      timer = setInterval(() => socket.write(`X-Slow-${Date.now()}: 1\r\n`), 1000);
    });
    socket.on('data', (d) => { state.data += d; });
    socket.on('error', (e) => { state.error = e.code; });
    socket.on('close', () => { clearInterval(timer); state.closedAt = Date.now(); });
    return state;
  }

  it('closes slow clients at the deadline, refuses them past the cap, and serves others meanwhile', async () => {
    const slow = Array.from({ length: 200 }, () => slowClient('127.0.0.8'));
    await delay(1500);
    // Within the deadline, slow clients stay: all of them, unless the node accepted
    // some only after the first ones had counted (then those are over the cap).
    const open = slow.filter((s) => s.closedAt === null).length;
    assert.ok(open >= 64, `only ${open} slow clients still open after 1.5 s`);
    // Past the grace, all 200 count as pending: more from that address are closed at once.
    const refused = Array.from({ length: 10 }, () => slowClient('127.0.0.8'));
    await waitUntil(() => refused.every((s) => s.closedAt !== null), 'over-cap connections closed', 1000);
    assert.ok(refused.every((s) => s.data === '' && s.closedAt - s.opened < 1000), 'closed unanswered, at once');
    // A normal client is served meanwhile, from another address and from a burst.
    const clients = await Promise.all(
      Array.from({ length: 5 }, () => connectClient('v4-polling', node.url, passwordOf('alice'))),
    );
    for (const c of clients) c.close();
    assert.equal((await rawRequest(`${node.url}/livez`, { localAddress: '127.0.0.9' })).status, 200);

    await waitUntil(() => slow.every((s) => s.closedAt !== null), 'slow clients closed by the deadline', 4000);
    const longest = Math.max(...slow.map((s) => s.closedAt - s.opened));
    assert.ok(longest < 5000, `a slow client lasted ${longest} ms (deadline 3 s)`);
    assert.ok(slow.every((s) => !s.data.includes(' 200 ')), 'no request of a slow client was answered');
    // Once they are gone, the address is served again.
    assert.equal((await rawRequest(`${node.url}/livez`, { localAddress: '127.0.0.8' })).status, 200);
    assert.ok(metricSum(await metrics(node.url), 'roomcast_errors_total', { kind: 'pending_limit' }) >= 10);
  });
});

describe('logins behind the shipped HAProxy, with trusted proxies', { timeout: 60000 }, () => {
  let node;
  let proxy;
  let lb;
  let dir;
  before(async () => {
    node = await setupNode('sqlite', {
      env: { ROOMCAST_TRUSTED_PROXIES: '127.0.0.1/32', ROOMCAST_AUTH_LOGIN_DELAY: '300ms' },
    });
    const port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'roomcast-edge-haproxy-'));
    const asRoot = process.getuid && process.getuid() === 0;
    if (asRoot) chownSync(dir, 65534, 65534);
    const env = { ...process.env, ROOMCAST_LB_BIND: `127.0.0.1:${port}` };
    for (const n of [1, 2, 3]) {
      env[`ROOMCAST_NODE${n}_ADDR`] = `127.0.0.1:${node.node.port}`;
      env[`ROOMCAST_NODE${n}_OPS_PORT`] = String(node.node.port);
    }
    const child = spawn('haproxy', ['-db', '-f', join(REPO, 'deploy', 'haproxy', 'haproxy.cfg')], {
      cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
    });
    let logs = '';
    child.stdout.on('data', (d) => { logs += d; });
    child.stderr.on('data', (d) => { logs += d; });
    proxy = child;
    lb = `http://127.0.0.1:${port}`;
    await waitUntil(async () => {
      assert.equal(child.exitCode, null, `haproxy exited:\n${logs}`);
      try {
        return (await fetch(`${lb}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200;
      } catch {
        return false;
      }
    }, 'HAProxy routing to the node', 20000, 100);
  });
  after(async () => {
    proxy?.kill('SIGKILL');
    await node?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("an attacker failing alice's password locks out only itself", async () => {
    const from = (localAddress) => ({ localAddress });
    const wrong = { login: 'alice', password: 'guess' };
    for (let i = 0; i < 5; i++) {
      assert.match(await connectRefused('v4-websocket', lb, wrong, from('127.0.0.2')), /invalid login or password/);
    }
    for (let i = 0; i < 5; i++) {
      assert.match(await connectRefused('v4-websocket', lb, wrong, from('127.0.0.2')), /too many failed attempts/);
    }
    // Even the right password, from the attacker's address.
    assert.match(await connectRefused('v4-websocket', lb, passwordOf('alice'), from('127.0.0.2')), /too many failed attempts/);
    // Alice from her own address, and bob from anywhere, log in.
    (await connectClient('v4-websocket', lb, passwordOf('alice'), from('127.0.0.3'))).close();
    (await connectClient('v4-websocket', lb, passwordOf('bob'), from('127.0.0.4'))).close();
    (await connectClient('v4-websocket', lb, passwordOf('bob'), from('127.0.0.2'))).close();

    // The audit trail names the real client addresses, forwarded by the trusted proxy.
    const lines = auditLines(node);
    const refusedFrom = new Set(lines.filter((l) => l.message === 'login refused' && l.user === 'alice').map((l) => l.address));
    assert.deepEqual([...refusedFrom], ['127.0.0.2']);
    const accepted = lines.filter((l) => l.message === 'login accepted').map((l) => `${l.user}@${l.address}`);
    assert.deepEqual(accepted.sort(), ['alice@127.0.0.3', 'bob@127.0.0.2', 'bob@127.0.0.4']);
  });

  it('a client cannot forge its address through the proxy', async () => {
    // HAProxy appends the real source; a header the client sent stays to the left.
    const r = await new Promise((res, rej) => {
      const req = httpRequest(`${lb}/socket.io/?EIO=4&transport=polling`, {
        localAddress: '127.0.0.5', headers: { 'x-forwarded-for': '127.0.0.3' }, agent: false,
      }, (resp) => {
        let body = '';
        resp.on('data', (c) => { body += c; });
        resp.on('end', () => res({ status: resp.statusCode, body, cookie: resp.headers['set-cookie'] }));
      });
      req.on('error', rej);
      req.end();
    });
    assert.equal(r.status, 200);
    const sid = JSON.parse(r.body.slice(1)).sid;
    const cookie = String(r.cookie).split(';')[0];
    const poll = await new Promise((res, rej) => {
      const req = httpRequest(`${lb}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
        localAddress: '127.0.0.3', headers: { cookie }, agent: false,
      }, (resp) => { resp.resume(); resp.on('end', () => res(resp.statusCode)); });
      req.on('error', rej);
      req.end();
    });
    assert.equal(poll, 403, 'the session belongs to 127.0.0.5, not to the address it claimed');
  });
});

describe('audit lines and deleted users', { timeout: 60000 }, () => {
  let node;
  before(async () => { node = await setupNode('sqlite'); });
  after(async () => { await node?.teardown(); });

  it('writes one audit line per login, every method, never a secret', async () => {
    const token = await mintToken(node.db, 'bob');
    const sid = newSid();
    const expire = new Date(Date.now() + 3600_000);
    await node.db.insertSession(sid, expressSess('carol', expire), expire);
    (await connectClient('v4-websocket', node.url, passwordOf('alice'))).close();
    await connectRefused('v4-websocket', node.url, { login: 'alice', password: 'not-her-password' });
    (await connectClient('v4-websocket', node.url, { token })).close();
    (await connectClient('v4-websocket', node.url, null, { cookie: sessionCookie(sid) })).close();
    const guest = await connectClient('v4-websocket', `${node.url}/chat`, null);
    guest.close();
    await waitUntil(() => auditLines(node).length >= 5, 'five audit lines');
    const lines = auditLines(node).map((l) => [l.message, l.method, l.user ?? null, l.address, l.ns]);
    assert.deepEqual(lines, [
      ['login accepted', 'password', 'alice', '127.0.0.1', '/'],
      ['login refused', 'password', 'alice', '127.0.0.1', '/'],
      ['login accepted', 'token', 'bob', '127.0.0.1', '/'],
      ['login accepted', 'cookie', 'carol', '127.0.0.1', '/'],
      ['login accepted', 'guest', null, '127.0.0.1', '/chat'],
    ]);
    assert.match(auditLines(node)[1].reason, /invalid login or password/);
    const all = node.node.logs().join('\n');
    for (const secret of ['alice-pw', 'not-her-password', token, sid]) {
      assert.ok(!all.includes(secret), `a secret reached the log: ${secret.slice(0, 12)}…`);
    }
  });

  it("refuses a deleted user's unexpired token and session cookie", async () => {
    const token = await mintToken(node.db, 'dave');
    const sid = newSid();
    const expire = new Date(Date.now() + 3600_000);
    await node.db.insertSession(sid, expressSess('dave', expire), expire);
    (await connectClient('v4-websocket', node.url, { token })).close();
    node.db.h().prepare('DELETE FROM users WHERE login = ?').run('dave');
    assert.equal(await connectRefused('v4-websocket', node.url, { token }), 'unauthorized: invalid token');
    assert.equal(
      await connectRefused('v4-websocket', node.url, null, { cookie: sessionCookie(sid) }),
      'unauthorized: invalid session cookie',
    );
  });
});
