// Hostile and broken clients on raw WebSockets: malformed Engine.IO/Socket.IO frames,
// binary where text is expected, unknown namespaces, oversized frames, deep JSON, huge
// room names, thousands of joins, and a client that stops reading. Each gets a clear
// refusal or is cut off; the node stays up, its memory stays bounded, and a well-behaved
// client beside them notices nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import {
  setupNode, joinRoom, passwordOf, roomName, randomUUID, assertFailure, waitUntil, delay,
} from './lib/harness.mjs';

/** A raw Engine.IO 4 WebSocket: resolves once the open packet arrived. */
async function rawSocket(url) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const frames = [];
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? data : data.toString();
    // Answer pings, as a client that still reads does.
    if (text === '2') ws.send('3');
    frames.push(text);
  });
  ws.closed = new Promise((r) => ws.on('close', (code) => r(code)));
  ws.on('error', () => {});
  await waitUntil(() => frames.some((f) => typeof f === 'string' && f.startsWith('0{')), 'Engine.IO open packet');
  ws.frames = frames;
  ws.next = (pred, what = 'frame') => waitUntil(() => frames.find((f) => typeof f === 'string' && pred(f)), what);
  return ws;
}

/** A raw socket with a Socket.IO session on `/`; `ws.sid` is its socket id. */
async function rawSession(url, creds) {
  const ws = await rawSocket(url);
  ws.send(`40${JSON.stringify(creds)}`);
  ws.sid = JSON.parse((await ws.next((f) => f.startsWith('40{'), 'CONNECT reply')).slice(2)).sid;
  return ws;
}

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

describe('hostile clients on raw frames', { timeout: 90000 }, () => {
  let s, bystander, room;

  before(async () => {
    s = await setupNode('sqlite', {
      env: { ROOMCAST_MAX_PAYLOAD: '10000', ROOMCAST_PING_INTERVAL: '1s', ROOMCAST_PING_TIMEOUT: '1s' },
    });
    bystander = await s.connect('v4-websocket', passwordOf('alice'));
    room = roomName('calm');
    await joinRoom(bystander, room);
  });

  after(async () => {
    await s?.teardown();
  });

  /** The bystander still gets its own messages back promptly. */
  async function bystanderFine() {
    const t0 = Date.now();
    const sent = await bystander.ack('sendMessage', { room, message: 'still here' });
    assert.equal(sent.ok, true);
    await bystander.waitFor('incomingMessage', (m) => m.id === sent.id);
    const ms = Date.now() - t0;
    assert.ok(ms < 1000, `bystander round trip ${ms} ms`);
    assert.equal((await fetch(`${s.url}/livez`)).status, 200);
  }

  it('answers malformed Socket.IO packets with a refusal or a close, nothing else', async () => {
    const frames = [
      '', 'x', '4', '4x', '42', '42[', '42[1]', '42{}', '42"join room"', '49[]', '43abc', '4-1["x"]',
      `42${'['.repeat(5000)}${']'.repeat(5000)}`, '42["join room",' + '{"a":'.repeat(3000) + '1' + '}'.repeat(3000) + ']',
      '42["request",{"uuid":"u","route":"echo","params":' + '['.repeat(200) + ']'.repeat(200) + '}]',
    ];
    for (const frame of frames) {
      const ws = await rawSession(s.url, passwordOf('bob'));
      ws.send(frame);
      const outcome = await Promise.race([ws.closed.then(() => 'closed'), delay(300).then(() => 'open')]);
      if (outcome === 'open') {
        // Still open: the session must still work, so the frame was refused as a whole.
        ws.send('42["request",{"uuid":"ok-1","route":"echo","params":1}]');
        await ws.next((f) => f.startsWith('42["request ok-1"'), `session alive after ${JSON.stringify(frame.slice(0, 40))}`);
      }
      ws.terminate();
    }
    await bystanderFine();
  });

  it('refuses binary where text is expected, unknown namespaces and oversized frames', async () => {
    const bin = await rawSession(s.url, passwordOf('bob'));
    bin.send(Buffer.from([0x34, 0x32, 0xff, 0x00, 0x10]));
    assert.ok(await Promise.race([bin.closed.then(() => true), delay(1000).then(() => false)]), 'binary garbage closes the connection');

    const ns = await rawSocket(s.url);
    ns.send('40/nowhere,{}');
    const refusal = await ns.next((f) => f.startsWith('44/nowhere,'), 'CONNECT_ERROR for an unknown namespace');
    assert.match(refusal, /Invalid namespace/i);
    ns.terminate();

    const big = await rawSession(s.url, passwordOf('bob'));
    big.send(`42["sendMessage",{"room":"${room}","message":"${'x'.repeat(20000)}"}]`);
    assert.ok(await Promise.race([big.closed.then(() => true), delay(2000).then(() => false)]), 'a frame over max_payload closes the connection');
    await delay(200);
    bystander.assertNothing('no oversized message', 'incomingMessage');
    await bystanderFine();
  });

  it('bounds room names and joins per socket', async () => {
    const bob = await s.connect('v4-websocket', passwordOf('bob'));
    assertFailure(await bob.ack('join room', 'r'.repeat(5000)), 'room_invalid', 'huge room name');
    const before = rss(s.node.child.pid);
    // In batches: more requests in flight than `server.max_buffer` could not all be
    // answered, by design.
    const replies = [];
    for (let batch = 0; batch < 40; batch++) {
      replies.push(...await Promise.all(Array.from({ length: 50 }, (_, i) => bob.ack('join room', `j-${batch}-${i}-${randomUUID()}`))));
    }
    assert.equal(replies.filter((r) => r.ok).length, 100, 'rooms.max_per_socket');
    assert.equal(replies.filter((r) => r.error?.code === 'too_many_rooms').length, 1900);
    assert.ok(rss(s.node.child.pid) - before < 64 * 1024 * 1024, 'memory stays bounded');
    await bystanderFine();
  });

  it('cuts off a client that stops reading, before memory grows', async () => {
    const slow = await rawSession(s.url, passwordOf('carol'));
    slow.send(`42["join room","${room}"]`);
    await waitUntil(async () => (await s.db.getSession(`roomcast:${slow.sid}`))?.sess.rooms.length === 1, 'the slow client joined');
    // Stop reading: the kernel buffers fill, then the node's bounded queue, then pings
    // go unanswered.
    slow._socket.pause();
    const base = rss(s.node.child.pid);
    const flood = 'y'.repeat(4000);
    for (let i = 0; i < 1500; i++) {
      const r = await bystander.ack('sendMessage', { room, message: `${i}${flood}` });
      assert.equal(r.ok, true);
    }
    await waitUntil(async () => (await s.db.getSession(`roomcast:${slow.sid}`)) === null, 'the slow client is disconnected', 10000, 100);
    assert.ok(rss(s.node.child.pid) - base < 64 * 1024 * 1024, `node memory stays bounded (+${Math.round((rss(s.node.child.pid) - base) / 1048576)} MiB)`);
    slow.terminate();
    await bystanderFine();
  });
});
