// Hostile clients: password guessing is braked per login and address and per address; a client
// that learns another's socket id can neither read nor post on that session; socket
// ids never reach other users.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import {
  setupNode, connectClient, connectRefused, joinRoom, passwordOf, roomName, randomUUID,
  metrics, metricSum, delay,
} from './lib/harness.mjs';

/** A raw HTTP request from a chosen loopback address; resolves {status, body}. */
function rawRequest(url, { method = 'GET', body, localAddress }) {
  return new Promise((res, rej) => {
    const req = httpRequest(url, { method, localAddress, headers: body ? { 'content-type': 'text/plain;charset=UTF-8' } : {} }, (r) => {
      let data = '';
      r.on('data', (c) => { data += c; });
      r.on('end', () => res({ status: r.statusCode, body: data }));
    });
    req.on('error', rej);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

describe('hostile clients', { timeout: 60000 }, () => {
  let node;
  const clients = [];
  const connect = async (...args) => { const c = await connectClient(...args); clients.push(c); return c; };

  before(async () => {
    node = await setupNode('sqlite', {
      env: {
        ROOMCAST_AUTH_FAILURES_PER_LOGIN: '3',
        ROOMCAST_AUTH_FAILURES_PER_ADDRESS: '5',
        ROOMCAST_AUTH_RATE_WINDOW: '2s',
      },
    });
  });

  after(async () => {
    for (const c of clients) c.close();
    await node?.teardown();
  });

  it('brakes password guessing per login and address, then per address, until the window ends', async () => {
    const url = node.url;
    const from = (localAddress) => ({ localAddress });
    const wrong = (login) => ({ login, password: 'guess' });
    for (let i = 0; i < 3; i++) {
      assert.match(await connectRefused('v4-websocket', url, wrong('alice'), from('127.0.0.3')), /invalid login or password/);
    }
    // The right password no longer helps from that address; from another it does.
    assert.match(await connectRefused('v4-websocket', url, passwordOf('alice'), from('127.0.0.3')), /too many failed attempts/);
    (await connect('v4-websocket', url, passwordOf('alice'), from('127.0.0.4'))).close();
    // Other logins from that address still work until the address limit (5 failures).
    (await connect('v4-websocket', url, passwordOf('bob'), from('127.0.0.3'))).close();
    for (const login of ['carol', 'dave']) {
      assert.match(await connectRefused('v4-websocket', url, wrong(login), from('127.0.0.3')), /invalid login/);
    }
    assert.match(await connectRefused('v4-websocket', url, passwordOf('bob'), from('127.0.0.3')), /too many failed attempts/);
    (await connect('v4-websocket', url, passwordOf('bob'), from('127.0.0.4'))).close();
    const limited = metricSum(await metrics(url), 'roomcast_handshakes_total', { method: 'password', result: 'limited' });
    assert.equal(limited, 2);

    await delay(2100);
    (await connect('v4-websocket', url, passwordOf('alice'), from('127.0.0.3'))).close();
  });

  for (const kind of ['v4-polling', 'v2']) it(`refuses another address that presents a victim session id (${kind})`, async () => {
    const victim = await connect(kind, node.url, passwordOf('carol'));
    const room = roomName('hijack');
    await joinRoom(victim, room);
    const sid = victim.id;
    const eio = kind === 'v2' ? 3 : 4;
    const poll = `${node.url}/socket.io/?EIO=${eio}&transport=polling&sid=${sid}`;

    const read = await rawRequest(poll, { localAddress: '127.0.0.5' });
    assert.equal(read.status, 403, 'no read on the victim session');
    const post = await rawRequest(poll, {
      method: 'POST', localAddress: '127.0.0.5',
      body: `42${JSON.stringify(['sendMessage', { room, message: 'forged' }])}`,
    });
    assert.equal(post.status, 403, 'no post on the victim session');
    const upgrade = await rawRequest(`${node.url}/socket.io/?EIO=${eio}&transport=websocket&sid=${sid}`, { localAddress: '127.0.0.5' });
    assert.equal(upgrade.status, 403, 'no upgrade of the victim session');

    // The victim's session is undisturbed and nothing was posted in its name.
    const sent = await victim.ack('sendMessage', { room, message: 'mine' });
    assert.equal(sent.ok, true);
    const got = await victim.waitFor('incomingMessage', (m) => m.id === sent.id);
    assert.equal(got.message, 'mine');
    await delay(200);
    victim.assertNothing('no forged message', 'incomingMessage');
    assert.ok(metricSum(await metrics(node.url), 'roomcast_errors_total', { kind: 'session_guard' }) >= 3);
  });

  it('never shows a socket id to other users', async () => {
    const alice = await connect('v4-websocket', node.url, passwordOf('alice'));
    const dave = await connect('v2', node.url, passwordOf('dave'));
    const room = roomName('ids');
    await joinRoom(alice, room);
    await joinRoom(dave, room);
    await alice.ack('sendMessage', { room, message: 'hello' });
    await alice.ack('invalidate', { room, ds: 'x' });
    const presence = await dave.ack('request', { uuid: randomUUID(), route: 'presence.room', params: { room } });
    await dave.waitFor('incomingMessage');
    await dave.waitFor('ds invalidate');
    const seen = JSON.stringify([presence, dave.events.map((e) => e.args)]);
    assert.ok(!seen.includes(alice.id), 'alice\'s socket id reached dave');
    assert.ok(seen.includes('"alice"'), 'dave sees alice by login');
  });
});
