// The seed-000 workspace events on `/`, each with other clients observing:
// join room / leave room, sendMessage, invalidate, request (echo, time, rooms.list,
// presence.room, unknown route), unknown events.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.notePgSkip();

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

for (const backend of h.backends()) {
  describe(`events [${backend.name}]`, { skip: backend.skip }, () => {
    let s, tokens;

    before(async () => {
      s = await h.setupNode(backend.name);
      tokens = await h.mintTokens(s.db, ['alice', 'bob', 'carol', 'dave']);
    });
    after(async () => {
      await s?.teardown();
    });

    for (const kind of h.CLIENT_KINDS) {
      describe(kind, () => {
        let open = [];
        let sync; // every client of a test joins it; used as a delivery barrier
        const connect = async (user, k = kind) => {
          const c = await h.connectClient(k, s.url, { token: tokens[user] });
          open.push(c);
          await h.joinRoom(c, sync);
          return c;
        };
        beforeEach(() => {
          sync = h.roomName('sync');
        });
        afterEach(() => {
          for (const c of open) c.close();
          open = [];
        });

        it('join room acks {ok, room}; sendMessage reaches every member, sender included, and no one else', async () => {
          const [a, b, c] = [await connect('alice'), await connect('bob'), await connect('carol')];
          const room = h.roomName('chat');
          h.assertJoined(await a.ack('join room', room), room);
          h.assertJoined(await b.ack('join room', room), room);

          for (const message of ['hello', { text: 'structured', n: [1, 2, { deep: null }] }]) {
            const t0 = Date.now();
            const ack = await a.ack('sendMessage', { room, message });
            const t1 = Date.now();
            assert.equal(ack.ok, true, JSON.stringify(ack));
            assert.match(String(ack.id), UUID_RE, 'ack id is a UUID');
            for (const who of [a, b]) {
              const m = await who.waitFor('incomingMessage', (p) => p && p.room === room && p.id === ack.id);
              assert.deepEqual(Object.keys(m).sort(), ['epoch', 'from', 'id', 'message', 'offset', 'room', 'ts']);
              assert.equal(m.from, 'alice');
              assert.deepEqual(m.message, message);
              assert.equal(typeof m.ts, 'number');
              assert.ok(m.ts >= t0 - 1000 && m.ts <= t1 + 1000, `ts ${m.ts} within [${t0}, ${t1}]`);
              assert.ok(!JSON.stringify(m).includes(a.id), 'no socket id is shown to other users');
            }
          }
          await h.settle(a, [b, c], sync);
          a.assertNothing('only its own messages');
          b.assertNothing('exactly the two messages');
          c.assertNothing('nothing (not a member)');
        });

        it('leave room acks {ok, room}; after it no more delivery to the leaver', async () => {
          const [a, b] = [await connect('alice'), await connect('bob')];
          const room = h.roomName('chat');
          await h.joinRoom(a, room);
          await h.joinRoom(b, room);
          assert.deepEqual(await b.ack('leave room', room), { ok: true, room });
          const ack = await a.ack('sendMessage', { room, message: 'after leave' });
          assert.equal(ack.ok, true);
          await a.waitFor('incomingMessage', (p) => p && p.id === ack.id);
          await h.settle(a, [b], sync);
          b.assertNothing('nothing after leaving');
          // Rejoining works and delivery resumes.
          await h.joinRoom(b, room);
          const ack2 = await a.ack('sendMessage', { room, message: 'back' });
          await b.waitFor('incomingMessage', (p) => p && p.id === ack2.id && p.message === 'back');
        });

        it('sendMessage without an ack still delivers', async () => {
          const [a, b] = [await connect('alice'), await connect('bob')];
          const room = h.roomName('chat');
          await h.joinRoom(a, room);
          await h.joinRoom(b, room);
          a.send('sendMessage', { room, message: 'no ack' });
          const m = await b.waitFor('incomingMessage', (p) => p && p.room === room);
          assert.equal(m.message, 'no ack');
          assert.equal(m.from, 'alice');
          const mine = await a.waitFor('incomingMessage', (p) => p && p.room === room);
          assert.equal(mine.id, m.id, 'same message id for every member');
        });

        it('invalidate relays the whole payload as `ds invalidate` to the members but the sender', async () => {
          const [a, b, c, d] = [await connect('alice'), await connect('bob'), await connect('carol'), await connect('dave')];
          const room = h.roomName('doc');
          for (const x of [a, b, c]) await h.joinRoom(x, room);
          const payload = { room, collection: 'tasks', ids: [1, 2, 3], meta: { reason: 'edit', nested: [true, null] } };
          const ack = await a.ack('invalidate', payload);
          assert.equal(ack && ack.ok, true, JSON.stringify(ack));
          assert.deepEqual(h.withoutPosition(await b.waitFor('ds invalidate')), payload);
          assert.deepEqual(h.withoutPosition(await c.waitFor('ds invalidate')), payload);
          // Without an ack, too.
          const payload2 = { room, key: 'second' };
          a.send('invalidate', payload2);
          assert.deepEqual(h.withoutPosition(await b.waitFor('ds invalidate')), payload2);
          assert.deepEqual(h.withoutPosition(await c.waitFor('ds invalidate')), payload2);
          await h.settle(a, [b, c, d], sync);
          a.assertNothing('no echo of its own invalidate');
          b.assertNothing('exactly two invalidates');
          c.assertNothing('exactly two invalidates');
          d.assertNothing('nothing (not a member)');
        });

        it('request echo: reply `request <uuid>` to the initiator only, and the same ack', async () => {
          const [a, b] = [await connect('alice'), await connect('bob')];
          for (const params of [{ x: [1, { y: null }], s: 'text', f: 1.5 }, 'just a string', 42, [1, 'two']]) {
            const uuid = h.randomUUID();
            const ack = await a.ack('request', { uuid, route: 'echo', params });
            const expected = { uuid, ok: true, result: params };
            assert.deepEqual(ack, expected, 'ack');
            assert.deepEqual(await a.waitFor(`request ${uuid}`), expected, 'reply event');
          }
          await h.settle(a, [b], sync);
          a.assertNothing('one reply per request');
          b.assertNothing('nothing (replies go to the initiator only)');
        });

        it('request without an ack is answered by the reply event', async () => {
          const a = await connect('alice');
          const uuid = `no-ack_${Date.now()}`;
          a.send('request', { uuid, route: 'echo', params: { hi: 1 } });
          assert.deepEqual(await a.waitFor(`request ${uuid}`), { uuid, ok: true, result: { hi: 1 } });
        });

        it('request time returns now (RFC 3339) and epochMs', async () => {
          const a = await connect('alice');
          const uuid = h.randomUUID();
          const t0 = Date.now();
          const ack = await a.ack('request', { uuid, route: 'time' });
          const t1 = Date.now();
          assert.equal(ack.ok, true, JSON.stringify(ack));
          assert.equal(ack.uuid, uuid);
          const { now, epochMs } = ack.result;
          assert.match(now, RFC3339_RE);
          assert.equal(typeof epochMs, 'number');
          assert.ok(epochMs >= t0 - 1000 && epochMs <= t1 + 1000, `epochMs ${epochMs} within [${t0}, ${t1}]`);
          assert.ok(Math.abs(Date.parse(now) - epochMs) < 1000, 'now and epochMs agree');
          assert.deepEqual(await a.waitFor(`request ${uuid}`), ack);
        });

        it('request rooms.list returns the sender’s rooms, sorted', async () => {
          const [a, b] = [await connect('alice'), await connect('bob')];
          const names = ['zeta-' + h.roomName(), 'alpha-' + h.roomName(), 'Mid ' + h.roomName()];
          for (const n of names) await h.joinRoom(a, n);
          await h.joinRoom(b, 'only-bob-' + h.roomName());
          const left = names[2];
          assert.deepEqual(await a.ack('leave room', left), { ok: true, room: left });
          const uuid = h.randomUUID();
          const ack = await a.ack('request', { uuid, route: 'rooms.list' });
          const expected = [sync, names[0], names[1]].sort();
          assert.deepEqual(ack, { uuid, ok: true, result: { rooms: expected } });
          assert.deepEqual(await a.waitFor(`request ${uuid}`), ack);
        });

        it('request presence.room lists the members’ logins, sorted and deduplicated; non-members are refused', async () => {
          const [a, a2, b, c] = [await connect('alice'), await connect('alice', 'v4-websocket'), await connect('bob'), await connect('carol')];
          const room = h.roomName('presence');
          for (const x of [b, a, a2]) await h.joinRoom(x, room);
          const uuid = h.randomUUID();
          const ack = await a.ack('request', { uuid, route: 'presence.room', params: { room } });
          const expected = { uuid, ok: true, result: { room, users: ['alice', 'bob'] } };
          assert.deepEqual(ack, expected);
          assert.deepEqual(await a.waitFor(`request ${uuid}`), expected);
          assert.ok(!JSON.stringify(ack).includes(b.id), 'presence names users, not sockets');

          const uuid2 = h.randomUUID();
          const refused = await c.ack('request', { uuid: uuid2, route: 'presence.room', params: { room } });
          h.assertFailure(refused, 'not_member', 'presence of a room the sender is not in');
          assert.equal(refused.uuid, uuid2);
          const ev = await c.waitFor(`request ${uuid2}`);
          assert.deepEqual(ev, refused, 'the failure reply is also sent as `request <uuid>`');

          // After a leave, the member disappears.
          await b.ack('leave room', room);
          const uuid3 = h.randomUUID();
          const ack3 = await a2.ack('request', { uuid: uuid3, route: 'presence.room', params: { room } });
          assert.deepEqual(ack3.result, { room, users: ['alice'] });
        });

        it('request to an unknown route fails with unknown_route (ack and reply event)', async () => {
          const a = await connect('alice');
          const uuid = h.randomUUID();
          const ack = await a.ack('request', { uuid, route: 'no.such.route', params: {} });
          h.assertFailure(ack, 'unknown_route', 'unknown route');
          assert.equal(ack.uuid, uuid);
          assert.deepEqual(await a.waitFor(`request ${uuid}`), ack);
        });

        it('a uuid can be reused once its request completed', async () => {
          const a = await connect('alice');
          const uuid = 'reused-uuid';
          for (const n of [1, 2]) {
            const ack = await a.ack('request', { uuid, route: 'echo', params: n });
            assert.deepEqual(ack, { uuid, ok: true, result: n });
            assert.deepEqual(await a.waitFor(`request ${uuid}`), ack);
          }
        });

        it('an unknown event is answered with the `error` event (without ack) or a failed ack', async () => {
          const [a, b] = [await connect('alice'), await connect('bob')];
          a.send('no such event', { x: 1 });
          const err = await a.waitFor('error');
          assert.deepEqual(Object.keys(err).sort(), ['code', 'event', 'message']);
          assert.equal(err.event, 'no such event');
          assert.equal(err.code, 'unknown_event');
          assert.equal(typeof err.message, 'string');
          const ack = await a.ack('another unknown', 1);
          h.assertFailure(ack, 'unknown_event', 'unknown event with ack');
          await h.settle(a, [b], sync);
          a.assertNothing('no error event when the failure went to the ack');
          b.assertNothing('nothing');
        });
      });
    }

    // A Socket.IO client sends the events emitted before `connect` right after the CONNECT
    // packet; a user may emit in the `connect` listener. None of them may be lost, so the
    // handlers must be in place when the server sends CONNECT.
    for (const kind of h.CLIENT_KINDS) {
      it(`${kind}: events emitted on connect are never dropped (30 sockets at once)`, async () => {
        const cs = Array.from({ length: 30 }, () => h.openClient(kind, s.url, { token: tokens.alice }));
        try {
          const replies = await Promise.allSettled(
            cs.map((c, i) => c.ack('request', { uuid: `early-${i}`, route: 'echo', params: i })),
          );
          const lost = replies.map((r, i) => (r.status === 'fulfilled' && r.value?.ok === true ? null : i)).filter((i) => i !== null);
          assert.deepEqual(lost, [], `requests emitted on connect that got no ack: ${lost.length}/30`);
        } finally {
          for (const c of cs) c.close();
        }
      });
    }

    it('v2 and v4 clients (WebSocket and polling) share rooms', async () => {
      const room = h.roomName('mixed');
      const cs = [];
      try {
        for (const [user, kind] of [['alice', 'v2'], ['bob', 'v4-websocket'], ['carol', 'v4-polling']]) {
          const c = await h.connectClient(kind, s.url, { token: tokens[user] });
          cs.push(c);
          await h.joinRoom(c, room);
        }
        for (const sender of cs) {
          const ack = await sender.ack('sendMessage', { room, message: `from ${sender.kind}` });
          for (const c of cs) {
            const m = await c.waitFor('incomingMessage', (p) => p && p.id === ack.id);
            assert.equal(m.message, `from ${sender.kind}`);
          }
          const inv = { room, from: sender.kind };
          await sender.ack('invalidate', inv);
          for (const c of cs) if (c !== sender) assert.deepEqual(h.withoutPosition(await c.waitFor('ds invalidate')), inv);
        }
      } finally {
        for (const c of cs) c.close();
      }
    });
  });
}
