// Bad inputs: wrong payload types, missing fields, invalid / reserved / forbidden room
// names, another socket's id as a room, acting on rooms the sender is not in, the
// per-socket room limit. Each failure must carry the documented code and change nothing:
// observers receive nothing and the sender's session row is untouched.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.notePgSkip();

for (const backend of h.backends()) {
  describe(`validation [${backend.name}]`, { skip: backend.skip }, () => {
    let s, tokens;

    before(async () => {
      s = await h.setupNode(backend.name);
      tokens = await h.mintTokens(s.db, ['alice', 'bob']);
    });
    after(async () => {
      await s?.teardown();
    });

    for (const kind of h.CLIENT_KINDS) {
      describe(kind, () => {
        // a (kind under test) is the offender; b (v4 WebSocket) observes. Both are in
        // `room` and `sync`; only b is in `bobs`.
        let a, b, sync, room, bobs;
        beforeEach(async () => {
          sync = h.roomName('sync');
          room = h.roomName('shared');
          bobs = h.roomName('bobs');
          a = await h.connectClient(kind, s.url, { token: tokens.alice });
          b = await h.connectClient('v4-websocket', s.url, { token: tokens.bob });
          for (const r of [sync, room]) {
            await h.joinRoom(a, r);
            await h.joinRoom(b, r);
          }
          await h.joinRoom(b, bobs);
          await h.waitUntil(async () => (await s.db.getSession(a.sid))?.sess.rooms?.length === 2, 'row of a lists its 2 rooms');
        });
        afterEach(() => {
          a?.close();
          b?.close();
        });

        /** Runs a failing call and proves nothing changed. */
        async function expectNoChange(what, fn) {
          const before = await s.db.getSession(a.sid);
          assert.ok(before, 'row of a exists');
          await fn();
          await h.settle(a, [b], sync);
          a.assertNothing(`nothing after ${what}`);
          b.assertNothing(`nothing after ${what}`);
          assert.deepEqual(await s.db.getSession(a.sid), before, `row unchanged after ${what}`);
        }

        async function expectCode(event, args, code) {
          const what = `${event} ${JSON.stringify(args)}`;
          await expectNoChange(what, async () => {
            const reply = await a.ack(event, ...args);
            h.assertFailure(reply, code, what);
          });
        }

        it('join room: wrong payload types → bad_payload', async () => {
          for (const p of [42, null, true, {}, { room: 'x' }, ['x']]) await expectCode('join room', [p], 'bad_payload');
          await expectCode('join room', [], 'bad_payload');
        });

        it('join room: invalid names → room_invalid', async () => {
          for (const name of ['', 'x'.repeat(101), ' leading', 'trailing ', ' ', '\t', 'line\nbreak', 'nul\u0000byte', 'bell\u0007', 'del\u007f', 'c1\u0085']) {
            await expectCode('join room', [name], 'room_invalid');
          }
        });

        it('join room: reserved names → room_forbidden', async () => {
          for (const name of ['$', '$server', '$internal room', 'roomcast:', 'roomcast:anything', `roomcast:${b.id}`]) {
            await expectCode('join room', [name], 'room_forbidden');
          }
        });

        it('join room: a socket id (another socket’s or its own) → room_forbidden', async () => {
          assert.ok(b.id && a.id);
          await expectCode('join room', [b.id], 'room_forbidden');
          await expectCode('join room', [a.id], 'room_forbidden');
          // Had the join of b's id worked, a would now receive what is sent to b alone:
          // nothing is sent to b that a can observe either way, so check the row too (done).
        });

        it('join room: boundary names are accepted', async () => {
          for (const name of ['x'.repeat(100), 'é'.repeat(100), 'inner space', 'café ☕ 房间', 'roomcast', 'a$b']) {
            h.assertJoined(await a.ack('join room', name), name);
            assert.deepEqual(await a.ack('leave room', name), { ok: true, room: name }, `leave ${JSON.stringify(name)}`);
          }
        });

        it('leave room: bad payload, invalid name, not a member', async () => {
          for (const p of [42, null, {}, ['x']]) await expectCode('leave room', [p], 'bad_payload');
          await expectCode('leave room', [''], 'room_invalid');
          await expectCode('leave room', ['x'.repeat(101)], 'room_invalid');
          await expectCode('leave room', [bobs], 'not_member');
          await expectCode('leave room', [h.roomName('never')], 'not_member');
        });

        it('sendMessage: bad payloads, invalid room, room not joined', async () => {
          for (const p of [
            'text',
            42,
            null,
            {},
            { room },
            { message: 'no room' },
            { room, message: '' },
            { room, message: 42 },
            { room, message: null },
            { room, message: true },
            { room: 42, message: 'x' },
            { room: null, message: 'x' },
          ]) {
            await expectCode('sendMessage', [p], 'bad_payload');
          }
          await expectCode('sendMessage', [{ room: '', message: 'x' }], 'room_invalid');
          await expectCode('sendMessage', [{ room: 'x'.repeat(101), message: 'x' }], 'room_invalid');
          await expectCode('sendMessage', [{ room: bobs, message: 'intrusion' }], 'not_member');
          await expectCode('sendMessage', [{ room: b.id, message: 'direct to a socket' }], 'not_member');
        });

        it('invalidate: bad payloads, invalid room, room not joined', async () => {
          for (const p of ['text', 42, null, [], {}, { key: 'no room' }, { room: 42 }, { room: null }]) {
            await expectCode('invalidate', [p], 'bad_payload');
          }
          await expectCode('invalidate', [{ room: '' }], 'room_invalid');
          await expectCode('invalidate', [{ room: bobs, key: 'x' }], 'not_member');
          await expectCode('invalidate', [{ room: b.id, key: 'x' }], 'not_member');
        });

        it('request: unusable uuid → bad_payload', async () => {
          for (const p of [
            'text',
            42,
            null,
            {},
            { route: 'echo', params: 1 },
            { uuid: '', route: 'echo' },
            { uuid: 42, route: 'echo' },
            { uuid: 'has space', route: 'echo' },
            { uuid: 'slash/no', route: 'echo' },
            { uuid: 'x'.repeat(65), route: 'echo' },
          ]) {
            await expectCode('request', [p], 'bad_payload');
          }
          const uuid = 'A-z_0'.padEnd(64, '9');
          assert.deepEqual(await a.ack('request', { uuid, route: 'echo', params: 1 }), { uuid, ok: true, result: 1 });
          assert.deepEqual(await a.waitFor(`request ${uuid}`), { uuid, ok: true, result: 1 });
        });

        it('request: bad params and membership for presence.room', async () => {
          for (const [params, code] of [
            [undefined, 'bad_params'],
            [{}, 'bad_params'],
            [{ room: 42 }, 'bad_params'],
            ['just a string', 'bad_params'],
            [{ room: bobs }, 'not_member'],
          ]) {
            const uuid = h.randomUUID();
            const what = `presence.room ${JSON.stringify(params)}`;
            await expectNoChange(what, async () => {
              const ack = await a.ack('request', { uuid, route: 'presence.room', params });
              h.assertFailure(ack, code, what);
              assert.equal(ack.uuid, uuid, `${what}: uuid echoed`);
              assert.deepEqual(await a.waitFor(`request ${uuid}`), ack, `${what}: reply event`);
            });
          }
        });

        it('failures without an ack are reported as the `error` event', async () => {
          for (const [event, payload, code] of [
            ['join room', 42, 'bad_payload'],
            ['join room', '$reserved', 'room_forbidden'],
            ['leave room', h.roomName('never'), 'not_member'],
            ['sendMessage', { room: bobs, message: 'x' }, 'not_member'],
            ['invalidate', { room: bobs }, 'not_member'],
            ['request', { uuid: 'bad uuid', route: 'echo' }, 'bad_payload'],
          ]) {
            const what = `${event} ${JSON.stringify(payload)} without ack`;
            await expectNoChange(what, async () => {
              a.send(event, payload);
              const err = await a.waitFor('error');
              assert.deepEqual(Object.keys(err).sort(), ['code', 'event', 'message'], what);
              assert.equal(err.event, event, what);
              assert.equal(err.code, code, what);
              assert.equal(typeof err.message, 'string', what);
            });
          }
        });
      });
    }

    describe('rooms.max_per_socket', () => {
      let s3;
      before(async () => {
        s3 = await h.setupNode(backend.name, { env: { ROOMCAST_ROOMS_MAX_PER_SOCKET: '3' }, users: ['alice', 'bob'] });
      });
      after(async () => {
        await s3?.teardown();
      });

      for (const kind of h.CLIENT_KINDS) {
        it(`${kind}: the fourth room is refused with too_many_rooms and nothing changes`, async () => {
          const a = await s3.connect(kind, { token: await h.mintToken(s3.db, 'alice') });
          const b = await s3.connect('v4-websocket', { token: await h.mintToken(s3.db, 'bob') });
          try {
            const rooms = [h.roomName('r1'), h.roomName('r2'), h.roomName('r3')];
            for (const r of rooms) await h.joinRoom(a, r);
            await h.joinRoom(b, rooms[0]);
            const fourth = h.roomName('r4');
            await h.joinRoom(b, fourth);
            await h.waitUntil(async () => (await s3.db.getSession(a.sid))?.sess.rooms?.length === 3, 'row lists 3 rooms');
            const before = await s3.db.getSession(a.sid);
            h.assertFailure(await a.ack('join room', fourth), 'too_many_rooms', 'fourth room');
            // Not joined: a message to the fourth room does not reach a.
            const ack = await b.ack('sendMessage', { room: fourth, message: 'not for a' });
            await b.waitFor('incomingMessage', (m) => m && m.id === ack.id);
            const sync = await b.ack('sendMessage', { room: rooms[0], message: 'sync' });
            await a.waitFor('incomingMessage', (m) => m && m.id === sync.id);
            await b.waitFor('incomingMessage', (m) => m && m.id === sync.id);
            a.assertNothing('nothing from the room it could not join');
            assert.deepEqual(await s3.db.getSession(a.sid), before, 'row unchanged');
            // Leaving frees a slot.
            assert.deepEqual(await a.ack('leave room', rooms[2]), { ok: true, room: rooms[2] });
            await h.joinRoom(a, fourth);
          } finally {
            a.close();
            b.close();
          }
        });
      }
    });
  });
}
