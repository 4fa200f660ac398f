// Room history and connection recovery, end to end: per-room offsets and epochs, the
// `history` request, and the `recovery` event a reconnecting client gets with
// `auth.recover`: exactly the missed events of each room, in order, before anything new,
// after a transport drop, a move to another node, a node killed with SIGKILL, a drain,
// a Redis restart, and on a single node without Redis; and clear refusals for bad input
// that leave the connection and the other members undisturbed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  PG_URL, mintTokens, connectClient, assertFailure, roomName, delay, randomUUID, waitUntil, untilDelivered,
} from './lib/harness.mjs';
import { startNodePeer } from './lib/node-peer.mjs';
import { startCluster, FAST_HEARTBEATS } from './lib/cluster.mjs';

const USERS = ['alice', 'bob', 'carol', 'dave'];
/** Room events that carry a position in the room's history. */
const STORED = new Set(['incomingMessage', 'ds invalidate']);
/** Every socket a test opened, closed when its suite ends. */
const opened = new Set();
const closeAll = () => {
  for (const c of opened) c.close();
  opened.clear();
};


/**
 * Connects with a JWT (and `recover` when given, whatever its shape) and waits for the
 * `recovery` event, which must be the first event of the socket. The returned client
 * remembers its room positions in `base` (from the recovery, then from joins).
 */
async function open(url, jwt, { recover, kind = 'v4-websocket' } = {}) {
  const auth = { token: jwt, ...(recover === undefined ? {} : { recover }) };
  const client = await connectClient(kind, url, auth);
  opened.add(client);
  const recovery = await client.waitFor('recovery');
  assert.equal(client.events[0].name, 'recovery', `the first event is recovery: ${JSON.stringify(client.pending())}`);
  assert.equal(typeof recovery.token, 'string', `recovery.token: ${JSON.stringify(recovery)}`);
  assert.ok(recovery.token.startsWith(`${client.id}.`) && recovery.token.length > client.id.length + 1,
    `recovery.token is <sid>.<secret>: ${recovery.token} (socket ${client.id})`);
  assert.equal(typeof recovery.recovered, 'boolean', `recovery.recovered: ${JSON.stringify(recovery)}`);
  assert.ok(recovery.rooms && typeof recovery.rooms === 'object' && !Array.isArray(recovery.rooms),
    `recovery.rooms is an object: ${JSON.stringify(recovery)}`);
  client.base = {};
  for (const [room, r] of Object.entries(recovery.rooms)) {
    if (Number.isInteger(r.offset)) client.base[room] = { offset: r.offset, epoch: r.epoch };
  }
  return { client, recovery };
}

/** A first connect: no recovery asked, so none happened and no reason is given. */
async function first(url, jwt, kind) {
  const { client, recovery } = await open(url, jwt, { kind });
  assert.deepEqual({ ...recovery, token: '' }, { token: '', recovered: false, rooms: {} }, 'recovery on a first connect');
  return client;
}

/** Joins; the ack carries the room's last offset (0 if nothing was sent) and its epoch. */
async function join(client, room) {
  const r = await client.ack('join room', room);
  assert.equal(r?.ok, true, `join ${room}: ${JSON.stringify(r)}`);
  assert.equal(r.room, room);
  assert.ok(Number.isInteger(r.offset) && r.offset >= 0, `join ack offset: ${JSON.stringify(r)}`);
  assert.ok(typeof r.epoch === 'string' && r.epoch.length > 0, `join ack epoch: ${JSON.stringify(r)}`);
  client.base[room] = { offset: r.offset, epoch: r.epoch };
  return r;
}

/** Sends a message and resolves with its id; the whole cluster must have been reached. */
async function say(client, room, message) {
  const r = await client.ack('sendMessage', { room, message });
  assert.equal(r?.ok, true, `sendMessage to ${room}: ${JSON.stringify(r)}`);
  assert.equal(r.delivered, undefined, 'delivered cluster-wide');
  return r.id;
}

/** `{name, data}` of the room's stored events a client got, in arrival order. */
function roomEvents(client, room) {
  return client.events
    .filter((e) => STORED.has(e.name) && e.args[0]?.room === room)
    .map((e) => ({ name: e.name, data: e.args[0] }));
}

/** Resolves with the data of message `id` once `client` got it. */
function seen(client, room, id) {
  return waitUntil(() => roomEvents(client, room).find((e) => e.data.id === id)?.data, `message ${id} in ${room}`);
}

/** Where a client stands in each room: its last event with an offset, else its base. */
function positions(client, rooms) {
  const out = {};
  for (const room of rooms) {
    const last = roomEvents(client, room).filter((e) => Number.isInteger(e.data.offset)).at(-1);
    out[room] = last ? { offset: last.data.offset, epoch: last.data.epoch } : { ...client.base[room] };
    assert.ok(Number.isInteger(out[room].offset), `a position in ${room}`);
  }
  return out;
}

/** Cuts the WebSocket's TCP connection without a close frame, as a network drop does. */
async function dropTransport(client) {
  const transport = client.socket.io.engine.transport;
  assert.equal(transport.name, 'websocket', 'only a WebSocket transport can be cut');
  transport.ws.terminate();
  await client.waitDisconnect();
}

async function roomsOf(client) {
  const r = await client.ack('request', { uuid: randomUUID(), route: 'rooms.list' });
  assert.equal(r?.ok, true, `rooms.list: ${JSON.stringify(r)}`);
  return r.result.rooms;
}

/** The socket answers requests. */
async function works(client) {
  const r = await client.ack('request', { uuid: randomUUID(), route: 'echo', params: 'still here' });
  assert.equal(r?.result, 'still here', `echo: ${JSON.stringify(r)}`);
}

/** Sends to `room` every `every` ms until stopped (10 s at most); `stop()` resolves with the last id. */
function keepSending(client, room, every = 10) {
  let running = true;
  let last;
  const t0 = Date.now();
  const loop = (async () => {
    for (let i = 0; running && Date.now() - t0 < 10000; i++) {
      last = await say(client, room, `live ${i}`);
      await delay(every);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return last;
    },
  };
}

const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/**
 * What `client` got of `room` since it connected: offsets `from + 1`, `from + 2`, ... up
 * to at least `through`, each one more than the last (no gap, no duplicate), and each
 * event exactly as `reference` (a member that stayed connected) got it.
 */
function assertContinues(client, room, from, through, reference) {
  const got = roomEvents(client, room);
  const offsets = got.map((e) => e.data.offset);
  assert.deepEqual(offsets.slice(0, through - from), range(from + 1, through), `${room}: offsets after ${from}`);
  for (let i = 1; i < offsets.length; i++) {
    assert.equal(offsets[i], offsets[i - 1] + 1, `${room}: no gap or duplicate in ${offsets}`);
  }
  const byOffset = new Map(roomEvents(reference, room).map((e) => [e.data.offset, e]));
  for (const e of got) {
    if (byOffset.has(e.data.offset)) assert.deepEqual(e, byOffset.get(e.data.offset), `${room}: event ${e.data.offset} as first sent`);
  }
}

/** Every replayed event (at or before its room's recovered offset) precedes every live one. */
function assertReplayFirst(client, recovery) {
  let live = null;
  for (const e of client.events.slice(1)) {
    if (!STORED.has(e.name)) continue;
    const r = recovery.rooms[e.args[0]?.room];
    const replayed = r && Number.isInteger(e.args[0].offset) && e.args[0].offset <= r.offset;
    if (!replayed) live ??= e;
    else assert.equal(live, null, `replayed ${JSON.stringify(e.args[0])} came after live ${JSON.stringify(live?.args[0])}`);
  }
}

/**
 * Asserts a full recovery of `rooms` from `from` (positions sent) and that the client
 * then got every later event up to `through[room]` exactly once, as `reference` did.
 */
function assertRecovered({ client, recovery }, from, through, reference, oldToken) {
  assert.equal(recovery.recovered, true, `recovered: ${JSON.stringify(recovery)}`);
  assert.equal(recovery.reason, undefined, 'no reason when recovered');
  assert.notEqual(recovery.token, oldToken, 'a new token for the next reconnect');
  assert.deepEqual(Object.keys(recovery.rooms).sort(), Object.keys(from).sort(), 'the rooms of the previous socket');
  for (const [room, pos] of Object.entries(from)) {
    const r = recovery.rooms[room];
    assert.equal(r.recovered, true, `${room}: ${JSON.stringify(r)}`);
    assert.equal(r.reason, undefined, `${room}: no reason`);
    assert.equal(r.epoch, pos.epoch, `${room}: same epoch`);
    assert.equal(r.replayed, r.offset - pos.offset, `${room}: replayed = offsets missed (${JSON.stringify(r)} from ${pos.offset})`);
    assertContinues(client, room, pos.offset, through[room], reference);
  }
  assertReplayFirst(client, recovery);
}

/** Waits until `client` got message `id` of every room in `lastIds` ({room: id}). */
async function reached(client, lastIds) {
  for (const [room, id] of Object.entries(lastIds)) await seen(client, room, id);
}

/** Offsets of the last messages: as `reference` got them. */
async function finalOffsets(reference, lastIds) {
  const out = {};
  for (const [room, id] of Object.entries(lastIds)) out[room] = (await seen(reference, room, id)).offset;
  return out;
}

/** A room-event-free interval: `client` received nothing since `mark` (an events index). */
function assertQuietSince(client, mark, what) {
  assert.deepEqual(client.events.slice(mark).map((e) => [e.name, ...e.args]), [], what);
}

/**
 * Members on every node (one over long-polling) and a second one on the first node; the
 * first three send 30 messages each, all at once, into two rooms. Every member must see
 * each room's offsets 1, 2, 3, ... in one order, and each sender's messages in its order.
 */
async function concurrentSenders(nodes, jwt) {
  const room = roomName('order');
  const other = roomName('order2');
  const members = [];
  for (const [i, node] of nodes.entries()) {
    members.push(await first(node.url, jwt[USERS[i]], i === 1 ? 'v4-polling' : 'v4-websocket'));
  }
  members.push(await first(nodes[0].url, jwt.dave));
  for (const m of members) {
    await join(m, room);
    await join(m, other);
  }
  const PER = 30;
  const target = (k) => (k % 3 ? room : other);
  const sent = await Promise.all(members.slice(0, nodes.length).map(async (m, i) => {
    const ids = [];
    for (let k = 0; k < PER; k++) ids.push(await say(m, target(k), `s${i}-${k}`));
    return ids;
  }));
  const total = { [room]: 0, [other]: 0 };
  for (let k = 0; k < PER; k++) total[target(k)] += sent.length;
  for (const m of members) {
    for (const r of [room, other]) {
      await waitUntil(() => roomEvents(m, r).length >= total[r], `all ${total[r]} of ${r}`);
    }
  }
  await delay(100);
  for (const r of [room, other]) {
    const reference = roomEvents(members[0], r).map((e) => e.data.id);
    for (const m of members) {
      assert.deepEqual(roomEvents(m, r).map((e) => e.data.offset), range(1, total[r]), `${r}: offsets strictly +1`);
      assert.deepEqual(roomEvents(m, r).map((e) => e.data.id), reference, `${r}: one order for every member`);
    }
  }
  const offsetOf = new Map([room, other].flatMap((r) => roomEvents(members[0], r).map((e) => [e.data.id, e.data.offset])));
  for (const ids of sent) {
    for (const r of [room, other]) {
      const mine = ids.filter((id) => roomEvents(members[0], r).some((e) => e.data.id === id)).map((id) => offsetOf.get(id));
      assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `${r}: a sender's messages in its order`);
    }
  }
}

/**
 * Two members on other nodes keep sending into two rooms every few ms while alice drops
 * and reconnects five times in a row, each time to the next node, without waiting. Every
 * socket of hers must get each room's offsets one by one from where the previous one
 * stopped (replay, then live), each event as a member that never dropped got it.
 */
async function reconnectsUnderLoad(nodes, jwt) {
  const [r1, r2] = [roomName('load1'), roomName('load2')];
  const first0 = await open(nodes[0].url, jwt.alice);
  const bob = await first(nodes[1 % nodes.length].url, jwt.bob);
  const carol = await first(nodes.at(-1).url, jwt.carol);
  const dave = await first(nodes[0].url, jwt.dave);
  for (const m of [first0.client, bob, carol, dave]) {
    await join(m, r1);
    await join(m, r2);
  }
  const flows = [keepSending(bob, r1, 3), keepSending(carol, r2, 3), keepSending(carol, r1, 5)];
  const sockets = [first0];
  const froms = [];
  try {
    for (let i = 1; i <= 5; i++) {
      await delay(40 * i);
      const previous = sockets.at(-1);
      froms.push(positions(previous.client, [r1, r2]));
      await dropTransport(previous.client);
      sockets.push(await open(nodes[i % nodes.length].url, jwt.alice, { recover: { token: previous.recovery.token, rooms: froms.at(-1) } }));
    }
    await delay(200);
  } finally {
    await Promise.all(flows.map((f) => f.stop()));
  }
  // One more message per room, once every flow stopped, marks the end.
  const lastIds = { [r1]: await say(bob, r1, 'end'), [r2]: await say(bob, r2, 'end') };
  const through = await finalOffsets(dave, lastIds);
  await reached(sockets.at(-1).client, lastIds);
  await delay(100);
  for (let k = 1; k < sockets.length; k++) {
    const until = k + 1 < sockets.length ? { [r1]: froms[k][r1].offset, [r2]: froms[k][r2].offset } : through;
    assertRecovered(sockets[k], froms[k - 1], until, dave, sockets[k - 1].recovery.token);
  }
  // The senders kept going through the reconnects, so there was something to replay.
  const replayed = sockets.slice(1).map((x) => [x.recovery.rooms[r1].replayed, x.recovery.rooms[r2].replayed]);
  assert.ok(replayed.flat().reduce((x, y) => x + y) >= 5, `replayed per reconnect: ${JSON.stringify(replayed)}`);
}

/**
 * A room without history (`plain`): messages carry no offset or epoch, `history` says
 * `no_history`, and a recovery gives the room back with `no_history` and replays nothing.
 */
async function recoversWithoutHistory(urls, jwt, plain) {
  const { client: alice, recovery } = await open(urls[0], jwt.alice);
  const bob = await first(urls.at(-1), jwt.bob);
  for (const client of [alice, bob]) {
    const ack = await client.ack('join room', plain);
    assert.equal(ack?.ok, true, JSON.stringify(ack));
    assert.equal(ack.offset, undefined, `no offset in the join ack: ${JSON.stringify(ack)}`);
  }
  const seenMsg = await seen(alice, plain, await say(bob, plain, 'unnumbered'));
  assert.deepEqual([seenMsg.offset, seenMsg.epoch], [undefined, undefined], `no offset or epoch: ${JSON.stringify(seenMsg)}`);
  assertFailure(await alice.ack('history', { room: plain }), 'no_history', 'history of a room without one');
  await dropTransport(alice);
  await say(bob, plain, 'missed, never kept');
  const { client: back, recovery: r } = await open(urls.at(-1), jwt.alice, { recover: { token: recovery.token, rooms: { [plain]: { offset: 1, epoch: 'none' } } } });
  assert.deepEqual([r.recovered, r.reason, r.rooms[plain]?.recovered, r.rooms[plain]?.reason], [false, undefined, false, 'no_history'], JSON.stringify(r));
  assert.deepEqual(await roomsOf(back), [plain], 'the room is back');
  const live = await say(bob, plain, 'live');
  await seen(back, plain, live);
  assert.deepEqual(roomEvents(back, plain).map((e) => e.data.id), [live], 'nothing replayed');
}

/**
 * More missed messages than `size` (history.size) in one room, one in another: the first
 * says `gap_too_large` and replays nothing, the second recovers; both rooms are back.
 */
async function gapBySize(urls, jwt, size) {
  const [long, short] = [roomName('gap'), roomName('nogap')];
  const { client: alice, recovery } = await open(urls[0], jwt.alice);
  const bob = await first(urls.at(-1), jwt.bob);
  for (const r of [long, short]) {
    await join(alice, r);
    await join(bob, r);
  }
  await seen(alice, long, await say(bob, long, 'seen'));
  const from = positions(alice, [long, short]);
  await dropTransport(alice);
  let last;
  for (let i = 0; i < size + 5; i++) last = await say(bob, long, `flood ${i}`);
  const lastOffset = (await seen(bob, long, last)).offset;
  const shortId = await say(bob, short, 'one missed');

  const next = await open(urls[0], jwt.alice, { recover: { token: recovery.token, rooms: from } });
  const r = next.recovery;
  assert.equal(r.recovered, false, `not every room recovered: ${JSON.stringify(r)}`);
  assert.equal(r.reason, undefined, 'the credential was accepted: no top-level reason');
  assert.deepEqual({ ...r.rooms[long], replayed: undefined },
    { recovered: false, reason: 'gap_too_large', epoch: from[long].epoch, offset: lastOffset, replayed: undefined });
  assert.equal(r.rooms[short].recovered, true, `the other room recovers: ${JSON.stringify(r.rooms[short])}`);
  assert.equal(r.rooms[short].replayed, 1);
  assert.equal((await seen(next.client, short, shortId)).offset, from[short].offset + 1);

  assert.deepEqual(await roomsOf(next.client), [long, short].sort(), 'both rooms back');
  const live = await say(bob, long, 'live again');
  await seen(next.client, long, live);
  assert.deepEqual(roomEvents(next.client, long).map((e) => e.data.offset), [lastOffset + 1], 'nothing of the gap replayed, live from the next offset');
}

/** Missed messages older than history.ttl (1 s on the node at `url`): `gap_too_large`. */
async function gapByAge(url, jwt) {
  const room = roomName('aged');
  const { client: alice, recovery } = await open(url, jwt.alice);
  const bob = await first(url, jwt.bob);
  await join(alice, room);
  await join(bob, room);
  await seen(alice, room, await say(bob, room, 'seen'));
  const from = positions(alice, [room]);
  await dropTransport(alice);
  const old = await seen(bob, room, await say(bob, room, 'missed, then expired'));
  // The room never falls silent (its history stays), but the first missed message ages out.
  let fresh;
  for (let i = 0; i < 7; i++) {
    await delay(400);
    fresh = await seen(bob, room, await say(bob, room, `missed ${i}`));
  }
  assert.equal(fresh.epoch, old.epoch, 'a room that kept talking keeps its epoch');

  const { client: back, recovery: r } = await open(url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
  assert.deepEqual([r.recovered, r.reason], [false, undefined], JSON.stringify(r));
  assert.deepEqual({ ...r.rooms[room], replayed: undefined },
    { recovered: false, reason: 'gap_too_large', epoch: from[room].epoch, offset: fresh.offset, replayed: undefined });
  await delay(100);
  assert.deepEqual(roomEvents(back, room), [], 'nothing replayed over a gap');
  const h = await back.ack('history', { room });
  const kept = h.messages?.map((m) => m.data.offset) ?? [];
  assert.ok(kept.length > 0 && kept[0] > old.offset + 1 && kept.at(-1) === fresh.offset, `only the young messages are kept: ${JSON.stringify(kept)} (oldest missed ${old.offset}, last ${fresh.offset})`);
  assert.deepEqual(await roomsOf(back), [room]);
}

// ---------------------------------------------------------------------------------------

describe('room history and recovery on a cluster of three nodes', { timeout: 150000 }, () => {
  const HISTORY_SIZE = 20;
  let cluster, redis, db, nodes, jwt;

  before(async () => {
    const env = { ROOMCAST_HISTORY_SIZE: String(HISTORY_SIZE), ROOMCAST_HISTORY_SKIP_PREFIXES: 'nohist-,ephemeral-' };
    cluster = await startCluster({ nodes: 3, env, users: USERS });
    ({ redis, db, nodes } = cluster);
    jwt = await mintTokens(db, USERS);
  });

  after(async () => {
    closeAll();
    await cluster?.stop();
  });

  it('numbers each room consecutively, shares offsets with invalidations, and pages history', async () => {
    const [a, b, c] = nodes;
    const room = roomName('offsets');
    const alice = await first(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob, 'v4-polling');
    const first0 = await join(alice, room);
    assert.equal(first0.offset, 0, 'nothing was ever sent');
    assert.equal((await join(bob, room)).epoch, first0.epoch, 'one epoch per room cluster-wide');

    const ids = [];
    for (let i = 1; i <= 5; i++) ids.push(await say(i % 2 ? alice : bob, room, `m${i}`));
    for (const client of [alice, bob]) {
      await seen(client, room, ids.at(-1));
      const got = roomEvents(client, room).map((e) => e.data);
      assert.deepEqual(got.map((m) => m.offset), [1, 2, 3, 4, 5], 'offsets grow by one per message');
      assert.deepEqual(got.map((m) => m.id), ids);
      for (const m of got) assert.equal(m.epoch, first0.epoch);
      assert.deepEqual(Object.keys(got[0]).sort(), ['epoch', 'from', 'id', 'message', 'offset', 'room', 'ts']);
    }

    // An invalidation takes the next offset; the sender gets no echo of it.
    assert.equal((await bob.ack('invalidate', { room, ds: 'tasks' }))?.ok, true);
    const inv = await alice.waitFor('ds invalidate');
    assert.deepEqual(inv, { room, ds: 'tasks', offset: 6, epoch: first0.epoch });
    ids.push(await say(alice, room, 'm7'));
    assert.equal((await seen(bob, room, ids.at(-1))).offset, 7);

    const carol = await first(c.url, jwt.carol);
    assert.deepEqual(await join(carol, room), { ok: true, room, offset: 7, epoch: first0.epoch }, 'a late join: the position to recover from');

    // History pages, oldest first, each event as delivered.
    const delivered = new Map(roomEvents(alice, room).map((e) => [e.data.offset, e]));
    delivered.set(6, { name: 'ds invalidate', data: inv });
    const page = (args) => carol.ack('history', { room, ...args });
    const expectPage = async (args, offsets) => {
      const r = await page(args);
      assert.equal(r?.ok, true, `history ${JSON.stringify(args)}: ${JSON.stringify(r)}`);
      assert.deepEqual({ ...r, messages: null }, { ok: true, room, epoch: first0.epoch, offset: 7, messages: null });
      assert.deepEqual(r.messages, offsets.map((o) => ({ event: delivered.get(o).name, data: delivered.get(o).data })), `history ${JSON.stringify(args)}`);
    };
    await expectPage({}, [1, 2, 3, 4, 5, 6, 7]);
    await expectPage({ limit: 3 }, [5, 6, 7]);
    await expectPage({ before: 4, limit: 2 }, [2, 3]);
    await expectPage({ before: 4 }, [1, 2, 3]);
    await expectPage({ after: 5 }, [6, 7]);
    await expectPage({ after: 2, limit: 2 }, [3, 4]);
    await expectPage({ after: 7 }, []);

    const dave = await first(a.url, jwt.dave);
    assertFailure(await dave.ack('history', { room }), 'not_member', 'history of a room not joined');
    for (const bad of [{ room, limit: 0 }, { room, limit: 101 }, { room, limit: 2.5 }, { room, before: -1 }, { room, after: 'x' }, { room: 5 }, 'just a string']) {
      assertFailure(await carol.ack('history', bad), 'bad_payload', `history ${JSON.stringify(bad)}`);
    }
    assertFailure(await carol.ack('history', { room: ' padded' }), 'room_invalid', 'history of a bad room name');
  });

  it('keeps no history for rooms under history.skip_prefixes, and still gives them back', async () => {
    await recoversWithoutHistory([nodes[0].url, nodes[1].url], jwt, roomName('nohist-'));
  });

  it('delivers messages of Node.js peers and the emitter live, outside the history', async () => {
    const [a, b] = nodes;
    const peer = await startNodePeer(redis.url);
    try {
      const room = roomName('peer');
      const { client: alice, recovery } = await open(a.url, jwt.alice);
      const bob = await first(b.url, jwt.bob);
      await join(alice, room);
      await join(bob, room);
      const m1 = await seen(alice, room, await say(bob, room, 'one'));
      const fromNode = { from: 'node', room, message: 'from a Node server' };
      const fromEmitter = { from: 'emitter', room, message: 'from the emitter' };
      await peer.call('emit', { rooms: [room], event: 'incomingMessage', args: [fromNode] });
      await peer.call('emitter', { op: 'emit', rooms: [room], event: 'incomingMessage', args: [fromEmitter] });
      for (const client of [alice, bob]) {
        await waitUntil(() => roomEvents(client, room).filter((e) => e.data.from !== 'bob').length === 2, 'both foreign messages');
        assert.deepEqual(roomEvents(client, room).filter((e) => e.data.from !== 'bob').map((e) => e.data).sort((x, y) => x.from.localeCompare(y.from)),
          [fromEmitter, fromNode], 'delivered as sent, without offset');
      }
      const m2 = await seen(alice, room, await say(bob, room, 'two'));
      assert.equal(m2.offset, m1.offset + 1, 'foreign messages take no offset');

      const from = positions(alice, [room]);
      await dropTransport(alice);
      await peer.call('emit', { rooms: [room], event: 'incomingMessage', args: [{ ...fromNode, message: 'missed' }] });
      const m3 = await say(bob, room, 'three');
      await seen(bob, room, m3);
      const next = await open(b.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
      const lastIds = { [room]: await say(bob, room, 'four') };
      await reached(next.client, lastIds);
      await delay(100);
      assert.deepEqual(roomEvents(next.client, room).map((e) => e.data.message), ['three', 'four'], 'only stored messages replayed');
      assert.equal(next.recovery.rooms[room].replayed, 1);
      const h = await bob.ack('history', { room });
      assert.deepEqual(h.messages.map((x) => x.data.message), ['one', 'two', 'three', 'four']);
    } finally {
      await peer.stop();
    }
  });

  it('recovers exactly the missed messages after a drop, on the same node, another and a third, while others keep sending', async () => {
    const [a, b, c] = nodes;
    const [r1, r2] = [roomName('rec1'), roomName('rec2')];
    let { client: alice, recovery } = await open(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob);
    const carol = await first(c.url, jwt.carol);
    for (const r of [r1, r2]) {
      await join(alice, r);
      await join(bob, r);
    }
    await join(carol, r1);
    for (const r of [r1, r2]) await seen(alice, r, await say(bob, r, 'before'));

    const tokens = [recovery.token];
    for (const [step, target] of [['same node', a], ['another node', b], ['a third node', c]]) {
      const from = positions(alice, [r1, r2]);
      await dropTransport(alice);
      for (let i = 0; i < 3; i++) await say(bob, r1, `missed ${step} ${i}`);
      for (let i = 0; i < 2; i++) await say(bob, r2, `missed ${step} ${i}`);
      // Another member keeps sending through the reconnect.
      const flow = keepSending(carol, r1);
      await delay(30);
      const next = await open(target.url, jwt.alice, { recover: { token: tokens.at(-1), rooms: from } });
      await delay(60);
      const lastIds = { [r1]: await flow.stop(), [r2]: await say(bob, r2, `after ${step}`) };
      const through = await finalOffsets(bob, lastIds);
      await reached(next.client, lastIds);
      await delay(100);
      assert.ok(next.recovery.rooms[r1].replayed >= 3 && next.recovery.rooms[r2].replayed >= 2, `${step}: replayed ${JSON.stringify(next.recovery.rooms)}`);
      assertRecovered(next, from, through, bob, tokens.at(-1));
      assert.ok(!tokens.includes(next.recovery.token), `${step}: each recovery issues a new token`);
      tokens.push(next.recovery.token);
      assert.deepEqual(await roomsOf(next.client), [r1, r2].sort(), `${step}: rooms back`);
      alice = next.client;
    }
  });

  it('recovers on a new socket while the old one is still connected', async () => {
    const [a, b] = nodes;
    const room = roomName('overlap');
    const { client: old, recovery } = await open(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob);
    await join(old, room);
    await join(bob, room);
    await seen(old, room, await say(bob, room, 'seen'));
    // The client's transport is gone from its own point of view: what follows never
    // reached it, but the server still has the old socket.
    const from = positions(old, [room]);
    for (let i = 0; i < 3; i++) await say(bob, room, `lost ${i}`);
    const next = await open(b.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    const lastIds = { [room]: await say(bob, room, 'after') };
    const through = await finalOffsets(bob, lastIds);
    await reached(next.client, lastIds);
    await delay(200);
    assertRecovered(next, from, through, bob, recovery.token);
    assert.equal(next.recovery.rooms[room].replayed, 3);
    assert.deepEqual(await roomsOf(next.client), [room]);
  });

  it('says gap_too_large when the history no longer covers the gap, and still gives the rooms back', async () => {
    await gapBySize([nodes[0].url, nodes[1].url], jwt, HISTORY_SIZE);
  });

  it('collapses missed invalidations into one marker after the missed messages', async () => {
    const [a, b] = nodes;
    const room = roomName('inval');
    const { client: alice, recovery } = await open(b.url, jwt.alice);
    const bob = await first(a.url, jwt.bob);
    const carol = await first(b.url, jwt.carol);
    for (const client of [alice, bob, carol]) await join(client, room);
    await seen(alice, room, await say(bob, room, 'seen'));
    const from = positions(alice, [room]);
    await dropTransport(alice);
    const m1 = await say(bob, room, 'missed 1');
    for (let i = 0; i < 2; i++) assert.equal((await bob.ack('invalidate', { room, ds: `d${i}` }))?.ok, true);
    const m2 = await say(bob, room, 'missed 2');
    for (let i = 2; i < 4; i++) assert.equal((await bob.ack('invalidate', { room, ds: `d${i}` }))?.ok, true);
    const o = from[room].offset;
    await waitUntil(() => roomEvents(carol, room).some((e) => e.data.offset === o + 6), 'carol got the sixth missed event');

    const next = await open(a.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    const live = await say(carol, room, 'live');
    await seen(next.client, room, live);
    await delay(100);
    const epoch = from[room].epoch;
    const reference = new Map(roomEvents(carol, room).map((e) => [e.data.id, e.data]));
    assert.deepEqual(roomEvents(next.client, room), [
      { name: 'incomingMessage', data: reference.get(m1) },
      { name: 'incomingMessage', data: reference.get(m2) },
      { name: 'ds invalidate', data: { room, missed: 4, offset: o + 6, epoch } },
      { name: 'incomingMessage', data: reference.get(live) },
    ]);
    assert.deepEqual([reference.get(m1).offset, reference.get(m2).offset, reference.get(live).offset], [o + 1, o + 4, o + 7]);
    const r = next.recovery.rooms[room];
    assert.equal(r.recovered, true, JSON.stringify(r));
    assert.equal(r.offset, o + 6);
    assert.equal(next.recovery.recovered, true);
  });

  it('keeps each room in offset order under concurrent senders on three nodes', async () => {
    await concurrentSenders(nodes, jwt);
  });

  it('hands over from replay to live without a gap or duplicate, five reconnects in a row under load', async () => {
    await reconnectsUnderLoad(nodes, jwt);
  });

  it('answers each room on its own: bad offsets, no offset, not a member; a used credential is refused', async () => {
    const [a, b, c] = nodes;
    const rooms = [0, 1, 2, 3, 4].map((i) => roomName(`offs${i}`));
    const { client: alice, recovery } = await open(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob);
    for (const r of rooms) {
      await join(alice, r);
      await join(bob, r);
    }
    for (const r of rooms) await seen(alice, r, await say(bob, r, 'seen'));
    const from = positions(alice, rooms);
    await dropTransport(alice);
    for (const r of rooms) await say(bob, r, 'missed');

    const ask = {
      [rooms[0]]: { offset: -1, epoch: from[rooms[0]].epoch },
      [rooms[1]]: { offset: from[rooms[1]].offset - 0.5, epoch: from[rooms[1]].epoch },
      [rooms[2]]: { offset: from[rooms[2]].offset + 1000, epoch: from[rooms[2]].epoch },
      [rooms[3]]: { offset: String(from[rooms[3]].offset), epoch: from[rooms[3]].epoch },
      // rooms[4] not named: no offset.
      [roomName('never-joined')]: { offset: 0, epoch: from[rooms[0]].epoch },
    };
    const stranger = Object.keys(ask).at(-1);
    const { client: back, recovery: r } = await open(b.url, jwt.alice, { recover: { token: recovery.token, rooms: ask } });
    assert.equal(r.recovered, false, JSON.stringify(r));
    assert.equal(r.reason, undefined, 'the credential was accepted');
    const reasons = Object.fromEntries(Object.entries(r.rooms).map(([room, x]) => [room, [x.recovered, x.reason]]));
    assert.deepEqual(reasons, {
      [rooms[0]]: [false, 'bad_offset'],
      [rooms[1]]: [false, 'bad_offset'],
      [rooms[2]]: [false, 'bad_offset'],
      [rooms[3]]: [false, 'bad_offset'],
      [rooms[4]]: [false, 'no_offset'],
      [stranger]: [false, 'not_member'],
    });
    for (const room of rooms) {
      assert.equal(r.rooms[room].epoch, from[room].epoch, `${room}: epoch`);
      assert.equal(r.rooms[room].offset, from[room].offset + 1, `${room}: the room's position ${JSON.stringify(r.rooms[room])}`);
    }
    assert.deepEqual(await roomsOf(back), [...rooms].sort(), 'every room of the previous socket rejoined, no other');
    await delay(100);
    assert.deepEqual(back.events.slice(1).filter((e) => STORED.has(e.name)), [], 'nothing replayed');
    const live = await say(bob, rooms[0], 'live');
    assert.equal((await seen(back, rooms[0], live)).offset, r.rooms[rooms[0]].offset + 1);

    // The used credential does not work twice.
    const { client: again, recovery: twice } = await open(c.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    assert.deepEqual([twice.recovered, twice.reason, twice.rooms], [false, 'invalid_credential', {}]);
    assert.deepEqual(await roomsOf(again), []);
    await delay(100);
    assert.deepEqual(again.events.slice(1).filter((e) => STORED.has(e.name)), [], 'nothing replayed');
  });

  it('refuses forged, stolen, malformed and oversized recoveries; the connection and the other members carry on', async () => {
    const [a, b, c] = nodes;
    const rooms = [roomName('bad1'), roomName('bad2')];
    const { client: alice, recovery } = await open(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob);
    for (const r of rooms) {
      await join(alice, r);
      await join(bob, r);
    }
    await seen(alice, rooms[0], await say(bob, rooms[0], 'seen'));
    const from = positions(alice, rooms);
    await dropTransport(alice);
    await say(bob, rooms[0], 'missed');
    await say(bob, rooms[1], 'missed');
    const bobMark = bob.events.length;

    /** A socket whose recovery must fail as a whole; it still works, in no room. */
    const refused = async (login, recover, reason) => {
      const what = JSON.stringify(recover)?.slice(0, 120);
      const { client, recovery: r } = await open(c.url, jwt[login], { recover });
      assert.equal(r.recovered, false, `${what}: ${JSON.stringify(r)}`);
      assert.equal(r.reason, reason, `${what}: reason`);
      assert.deepEqual(r.rooms, {}, `${what}: no room given back`);
      await works(client);
      assert.deepEqual(await roomsOf(client), [], `${what}: in no room`);
      assertFailure(await client.ack('sendMessage', { room: rooms[0], message: 'x' }), 'not_member', what);
      await delay(50);
      assert.deepEqual(client.events.slice(1).filter((e) => STORED.has(e.name)), [], `${what}: nothing replayed`);
      client.close();
    };
    const dot = recovery.token.indexOf('.');
    const [sid, secret] = [recovery.token.slice(0, dot), recovery.token.slice(dot + 1)];
    const flipped = `${secret[0] === 'A' ? 'B' : 'A'}${secret.slice(1)}`;
    await refused('alice', { token: `${sid}.${flipped}`, rooms: from }, 'invalid_credential');
    await refused('alice', { token: `AAAAAAAAAAAAAAAA.${secret}`, rooms: from }, 'invalid_credential');
    await refused('alice', { token: 'no-dot-at-all', rooms: from }, 'invalid_credential');
    await refused('carol', { token: recovery.token, rooms: from }, 'invalid_credential');
    for (const recover of ['a string', [recovery.token], 42, { rooms: from }, { token: 7, rooms: from },
      { token: recovery.token, rooms: 'r' }, { token: recovery.token, rooms: [from[rooms[0]]] },
      { token: 'x'.repeat(20000), rooms: from }]) {
      await refused('alice', recover, 'bad_request');
    }
    const many = Object.fromEntries(range(1, 1000).map((i) => [`many-${i}`, { offset: 0, epoch: from[rooms[0]].epoch }]));
    await refused('alice', { token: recovery.token, rooms: { ...from, ...many } }, 'too_many_rooms');

    // The other member saw nothing of all this.
    assertQuietSince(bob, bobMark, 'the other member got nothing from the refused recoveries');

    // Bad input changed nothing: the owner's credential still recovers everything missed.
    const next = await open(b.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    const lastIds = { [rooms[0]]: await say(bob, rooms[0], 'after'), [rooms[1]]: await say(bob, rooms[1], 'after') };
    await reached(next.client, lastIds);
    await delay(100);
    assertRecovered(next, from, await finalOffsets(bob, lastIds), bob, recovery.token);
    await seen(bob, rooms[1], await say(next.client, rooms[1], 'hello from the recovered socket'));
  });

  it('says room_forbidden for a room that may no longer be joined', async () => {
    const [a, b] = nodes;
    const peer = await startNodePeer(redis.url);
    try {
      const room = roomName('allowed');
      const { client: alice, recovery } = await open(a.url, jwt.alice);
      const bob = await first(b.url, jwt.bob);
      await join(alice, room);
      await join(bob, room);
      // A Node server puts alice's socket into a reserved room and into bob's private room.
      await peer.call('socketsJoin', { rooms: [alice.id], room: '$staff' });
      await peer.call('socketsJoin', { rooms: [alice.id], room: bob.id });
      await waitUntil(async () => {
        const rooms = (await db.getSession(alice.sid))?.sess.rooms ?? [];
        return rooms.includes('$staff') && rooms.includes(bob.id);
      }, "the peer's joins in alice's row");
      const from = positions(alice, [room]);
      await dropTransport(alice);
      const missed = await say(bob, room, 'missed');
      const { client: back, recovery: r } = await open(a.url, jwt.alice, {
        recover: { token: recovery.token, rooms: { ...from, $staff: { offset: 0, epoch: from[room].epoch }, [bob.id]: { offset: 0, epoch: from[room].epoch } } },
      });
      // One comparison, so that a failure shows every room's answer and the rooms joined.
      const answer = (x) => [x?.recovered, x?.reason];
      assert.deepEqual(
        { $staff: answer(r.rooms.$staff), privateRoom: answer(r.rooms[bob.id]), allowed: answer(r.rooms[room]), recovered: r.recovered, joined: await roomsOf(back) },
        { $staff: [false, 'room_forbidden'], privateRoom: [false, 'room_forbidden'], allowed: [true, undefined], recovered: false, joined: [room] },
        JSON.stringify(r),
      );
      await seen(back, room, missed);
    } finally {
      await peer.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------

describe(`recovery after a node is killed or drained (${PG_URL ? 'postgres' : 'sqlite'})`, { timeout: 90000 }, () => {
  let cluster, db, survivor, jwt;

  before(async () => {
    // Fast heartbeats: a killed node is swept within about a second.
    cluster = await startCluster({ nodes: 1, db: PG_URL ? 'postgres' : 'sqlite', env: FAST_HEARTBEATS, users: USERS });
    ({ db, nodes: [survivor] } = cluster);
    jwt = await mintTokens(db, USERS);
  });

  after(async () => {
    closeAll();
    await cluster?.stop();
  });

  it('recovers on a survivor after SIGKILL, at once and after the sweep', async () => {
    const victim = await cluster.startNode();
    const room = roomName('killed');
    const { client: alice, recovery: ra } = await open(victim.url, jwt.alice);
    const { client: dave, recovery: rd } = await open(victim.url, jwt.dave, { kind: 'v4-polling' });
    const bob = await first(survivor.url, jwt.bob);
    for (const client of [alice, dave, bob]) await join(client, room);
    await untilDelivered(bob, alice, room, 'bob reaches the victim node');
    await untilDelivered(bob, dave, room, 'bob reaches the victim node');
    const fromAlice = positions(alice, [room]);
    const fromDave = positions(dave, [room]);
    const daveRow = dave.sid;

    victim.child.kill('SIGKILL');
    await alice.waitDisconnect();
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await say(bob, room, `missed ${i}`));

    // Before the cluster noticed the node is gone.
    const next = await open(survivor.url, jwt.alice, { recover: { token: ra.token, rooms: fromAlice } });
    let lastIds = { [room]: await say(bob, room, 'after alice') };
    await reached(next.client, lastIds);
    await delay(100);
    assertRecovered(next, fromAlice, await finalOffsets(bob, lastIds), bob, ra.token);

    // After the sweep removed the dead node's rows.
    await waitUntil(async () => (await db.getSession(daveRow)) === null, "the dead node's rows swept", 8000);
    const back = await open(survivor.url, jwt.dave, { recover: { token: rd.token, rooms: fromDave }, kind: 'v4-polling' });
    lastIds = { [room]: await say(bob, room, 'after dave') };
    await reached(back.client, lastIds);
    await delay(100);
    assertRecovered(back, fromDave, await finalOffsets(bob, lastIds), bob, rd.token);
    assert.ok(back.recovery.rooms[room].replayed >= 4, JSON.stringify(back.recovery.rooms));
  });

  it('recovers on a survivor after a drain, live during the drain delay, missed after it', async () => {
    const draining = await cluster.startNode({ ROOMCAST_DRAIN_DELAY: '800ms', ROOMCAST_SHUTDOWN_TIMEOUT: '5s' });
    const room = roomName('drained');
    const { client: alice, recovery } = await open(draining.url, jwt.alice);
    const bob = await first(survivor.url, jwt.bob);
    await join(alice, room);
    await join(bob, room);
    await untilDelivered(bob, alice, room, 'bob reaches the draining node');
    const exited = new Promise((r) => draining.child.once('exit', (code) => r(code)));
    draining.child.kill('SIGTERM');
    await seen(alice, room, await say(bob, room, 'during the drain'));
    await alice.waitDisconnect(8000);
    const from = positions(alice, [room]);
    for (let i = 0; i < 3; i++) await say(bob, room, `missed ${i}`);
    assert.equal(await exited, 0);

    const next = await open(survivor.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    const lastIds = { [room]: await say(bob, room, 'after') };
    await reached(next.client, lastIds);
    await delay(100);
    assertRecovered(next, from, await finalOffsets(bob, lastIds), bob, recovery.token);
    assert.equal(next.recovery.rooms[room].replayed, 3);
  });
});

// ---------------------------------------------------------------------------------------

describe('room history on a three-master Redis Cluster, sharded pub/sub (sqlite)', { timeout: 90000 }, () => {
  let cluster, nodes, jwt;

  before(async () => {
    cluster = await startCluster({ redis: 'cluster', mode: 'sharded', subscriptionMode: 'dynamic', users: USERS });
    ({ nodes } = cluster);
    jwt = await mintTokens(cluster.db, USERS);
  });

  after(async () => {
    closeAll();
    await cluster?.stop();
  });

  it('keeps each room in offset order under concurrent senders on both nodes', async () => {
    await concurrentSenders(nodes, jwt);
  });

  it('hands over from replay to live without a gap or duplicate, five reconnects in a row under load', async () => {
    await reconnectsUnderLoad(nodes, jwt);
  });
});

// ---------------------------------------------------------------------------------------

describe('recovery across a Redis outage and restart (sqlite)', { timeout: 90000 }, () => {
  let cluster, nodes, jwt;

  before(async () => {
    // Commands to a Redis that is away fail within a second.
    cluster = await startCluster({ env: { ROOMCAST_REDIS_REQUEST_TIMEOUT: '1s' }, users: USERS });
    ({ nodes } = cluster);
    jwt = await mintTokens(cluster.db, USERS);
  });

  after(async () => {
    closeAll();
    await cluster?.stop();
  });

  it('answers at once while Redis is away: history_unavailable, unavailable, local delivery; the room still back', async () => {
    const [a, b] = nodes;
    const room = roomName('outage');
    const { client: alice, recovery } = await open(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob);
    const carol = await first(a.url, jwt.carol);
    for (const client of [alice, bob, carol]) await join(client, room);
    await seen(alice, room, await say(bob, room, 'before'));
    const from = positions(alice, [room]);
    await dropTransport(alice);

    cluster.redis.stop();
    let observed;
    try {
      await delay(300);
      // Every answer is collected (each wait is bounded), so that a failure shows them all.
      const [history, recovered] = await Promise.allSettled([
        carol.ack('history', { room }),
        open(a.url, jwt.alice, { recover: { token: recovery.token, rooms: from } }),
      ]);
      // Sent once the recovered socket is back in the room.
      const [sent] = await Promise.allSettled([carol.ack('sendMessage', { room, message: 'same node, Redis away' })]);
      const back = recovered.value?.client;
      const localId = sent.value?.id;
      observed = {
        history: history.status === 'fulfilled' ? history.value?.error?.code ?? history.value : `no answer: ${history.reason.message.split('\n')[0]}`,
        recovery: recovered.status === 'fulfilled'
          ? [recovered.value.recovery.reason, recovered.value.recovery.rooms[room]?.recovered, recovered.value.recovery.rooms[room]?.reason]
          : `no recovery: ${recovered.reason.message.split('\n')[0]}`,
        rooms: back ? await roomsOf(back).catch((e) => e.message.split('\n')[0]) : null,
        send: sent.status === 'fulfilled' ? sent.value : `no answer: ${sent.reason.message.split('\n')[0]}`,
        liveOnThisNode: localId ? await seen(back ?? carol, room, localId).then(() => true, () => false) : false,
      };
    } finally {
      await cluster.restartRedis();
      await untilDelivered(bob, carol, room, 'the cluster back on the new Redis', 15000);
    }
    assert.deepEqual({ ...observed, send: observed.send?.delivered ?? observed.send }, {
      history: 'unavailable',
      recovery: [undefined, false, 'history_unavailable'],
      rooms: [room],
      send: 'local',
      liveOnThisNode: true,
    });
  });

  it('says epoch_changed when Redis came back empty, gives the room back, and every member keeps receiving', async () => {
    const [a, b] = nodes;
    const room = roomName('epoch');
    const { client: alice, recovery } = await open(a.url, jwt.alice);
    const bob = await first(b.url, jwt.bob);
    const carol = await first(a.url, jwt.carol);
    for (const client of [alice, bob, carol]) await join(client, room);
    await seen(alice, room, await say(bob, room, 'before'));
    await seen(alice, room, await say(carol, room, 'before'));
    const from = positions(alice, [room]);
    await dropTransport(alice);

    cluster.redis.stop();
    await delay(300);
    await cluster.restartRedis();
    await untilDelivered(bob, carol, room, 'the cluster back on the new Redis', 15000);
    // Each node's own Redis links come back on their own schedule: carol's node too.
    await untilDelivered(carol, bob, room, 'the cluster back on the new Redis, from node a', 15000);
    const last = await seen(carol, room, await say(carol, room, 'on the new Redis'));
    assert.notEqual(last.epoch, from[room].epoch, `a new epoch after the history was lost: ${JSON.stringify(last)}`);

    const { client: back, recovery: r } = await open(b.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    assert.equal(r.recovered, false, JSON.stringify(r));
    assert.equal(r.reason, undefined, 'the credential was accepted');
    assert.deepEqual({ ...r.rooms[room], replayed: undefined }, { recovered: false, reason: 'epoch_changed', epoch: last.epoch, offset: last.offset, replayed: undefined });
    assert.deepEqual(await roomsOf(back), [room]);

    // Every member, on either node, gets what either sender sends in the new epoch, in order.
    const sent = [await say(bob, room, 'after from bob'), await say(carol, room, 'after from carol')];
    const members = { bob, carol, alice: back };
    const got = async (client) => {
      const ok = await waitUntil(() => sent.every((id) => roomEvents(client, room).some((e) => e.data.id === id)), 'both', 3000).then(() => true, () => false);
      const fresh = roomEvents(client, room).filter((e) => e.data.epoch === last.epoch).map((e) => e.data.offset);
      return { both: ok, increasingByOne: fresh.every((o, i) => i === 0 || o === fresh[i - 1] + 1) };
    };
    const seenBy = {};
    for (const [name, client] of Object.entries(members)) seenBy[name] = await got(client);
    const fine = { both: true, increasingByOne: true };
    assert.deepEqual(seenBy, { bob: fine, carol: fine, alice: fine }, 'live delivery after the epoch change');
    const first0 = roomEvents(back, room)[0]?.data;
    assert.deepEqual([first0?.epoch, first0?.offset], [last.epoch, last.offset + 1], 'nothing of the lost history replayed');
  });
});

// ---------------------------------------------------------------------------------------

describe('history age (sqlite)', { timeout: 60000 }, () => {
  let cluster, node, jwt;

  before(async () => {
    cluster = await startCluster({ nodes: 1, env: { ROOMCAST_HISTORY_TTL: '1s' }, users: USERS });
    ({ nodes: [node] } = cluster);
    jwt = await mintTokens(cluster.db, USERS);
  });

  after(async () => {
    closeAll();
    await cluster?.stop();
  });

  it('says gap_too_large once the missed messages outlived history.ttl', async () => {
    await gapByAge(node.url, jwt);
  });
});

// ---------------------------------------------------------------------------------------

describe('recovery on a single node without Redis (sqlite)', { timeout: 60000 }, () => {
  let cluster, node, jwt;

  before(async () => {
    cluster = await startCluster({ nodes: 1, redis: 'none', users: USERS });
    ({ nodes: [node] } = cluster);
    jwt = await mintTokens(cluster.db, USERS);
  });

  after(async () => {
    closeAll();
    await cluster?.stop();
  });

  it('recovers after a drop and a disconnect, and says epoch_changed after a restart', async () => {
    const [r1, r2] = [roomName('solo1'), roomName('solo2')];
    const { client: alice, recovery } = await open(node.url, jwt.alice);
    const bob = await first(node.url, jwt.bob);
    for (const r of [r1, r2]) {
      await join(alice, r);
      await join(bob, r);
    }
    await seen(alice, r1, await say(bob, r1, 'seen'));

    let from = positions(alice, [r1, r2]);
    await dropTransport(alice);
    for (let i = 0; i < 3; i++) await say(bob, r1, `missed ${i}`);
    await say(bob, r2, 'missed');
    const next = await open(node.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
    let lastIds = { [r1]: await say(bob, r1, 'after'), [r2]: await say(bob, r2, 'after') };
    await reached(next.client, lastIds);
    await delay(100);
    assertRecovered(next, from, await finalOffsets(bob, lastIds), bob, recovery.token);

    // A polite disconnect keeps the credential too (long-polling this time).
    from = positions(next.client, [r1, r2]);
    next.client.close();
    await say(bob, r2, 'missed after the disconnect');
    const third = await open(node.url, jwt.alice, { recover: { token: next.recovery.token, rooms: from }, kind: 'v4-polling' });
    lastIds = { [r1]: await say(bob, r1, 'after 2'), [r2]: await say(bob, r2, 'after 2') };
    await reached(third.client, lastIds);
    await delay(100);
    assertRecovered(third, from, await finalOffsets(bob, lastIds), bob, next.recovery.token);

    // A restarted node lost its in-process history: a new epoch.
    from = positions(third.client, [r1, r2]);
    await node.stop();
    await third.client.waitDisconnect();
    node = await cluster.startNode();
    const { client: back, recovery: r } = await open(node.url, jwt.alice, { recover: { token: third.recovery.token, rooms: from } });
    assert.equal(r.recovered, false, JSON.stringify(r));
    assert.equal(r.reason, undefined, 'the credential survived the restart');
    for (const room of [r1, r2]) {
      assert.equal(r.rooms[room]?.reason, 'epoch_changed', JSON.stringify(r));
      assert.notEqual(r.rooms[room].epoch, from[room].epoch);
    }
    assert.deepEqual(await roomsOf(back), [r1, r2].sort());
  });

  it('refuses a credential once rooms.resume_ttl has passed since its socket went away', async () => {
    const short = await cluster.startNode({ ROOMCAST_RESUME_TTL: '1s' });
    try {
      const room = roomName('resume-ttl');
      const { client: alice, recovery } = await open(short.url, jwt.alice);
      const bob = await first(short.url, jwt.bob);
      await join(alice, room);
      await join(bob, room);
      // Within the lifetime: recovered.
      let from = positions(alice, [room]);
      await dropTransport(alice);
      await say(bob, room, 'missed in time');
      const soon = await open(short.url, jwt.alice, { recover: { token: recovery.token, rooms: from } });
      assert.equal(soon.recovery.recovered, true, JSON.stringify(soon.recovery));
      // Past it: refused, nothing replayed, no room.
      await seen(soon.client, room, await say(bob, room, 'seen'));
      from = positions(soon.client, [room]);
      await dropTransport(soon.client);
      await say(bob, room, 'missed too late');
      await delay(1600);
      const { client: late, recovery: r } = await open(short.url, jwt.alice, { recover: { token: soon.recovery.token, rooms: from } });
      assert.deepEqual([r.recovered, r.reason, r.rooms], [false, 'invalid_credential', {}], JSON.stringify(r));
      assert.deepEqual(await roomsOf(late), []);
      await delay(100);
      assert.deepEqual(roomEvents(late, room), [], 'nothing replayed');
    } finally {
      await short.stop();
    }
  });

  it('gives rooms back without history when history.enabled is false', async () => {
    const off = await cluster.startNode({ ROOMCAST_HISTORY_ENABLED: 'false' });
    try {
      await recoversWithoutHistory([off.url], jwt, roomName('off'));
    } finally {
      await off.stop();
    }
  });

  it('pages 50 by default and at most 100', async () => {
    const room = roomName('pages');
    const alice = await first(node.url, jwt.alice);
    await join(alice, room);
    let last;
    for (let i = 1; i <= 120; i++) last = await say(alice, room, `m${i}`);
    await seen(alice, room, last);
    const offsets = async (args) => {
      const r = await alice.ack('history', { room, ...args });
      assert.equal(r?.ok, true, JSON.stringify(r));
      assert.equal(r.offset, 120);
      return r.messages.map((m) => m.data.offset);
    };
    assert.deepEqual(await offsets({}), range(71, 120));
    assert.deepEqual(await offsets({ limit: 100 }), range(21, 120));
    assert.deepEqual(await offsets({ limit: 100, before: 21 }), range(1, 20));
    assert.deepEqual(await offsets({ after: 0 }), range(1, 50));
  });

  it('keeps each room in offset order under concurrent senders (in-process history)', async () => {
    await concurrentSenders([node, node, node], jwt);
  });

  it('hands over from replay to live without a gap or duplicate, five reconnects in a row under load (in-process history)', async () => {
    await reconnectsUnderLoad([node], jwt);
  });

  it('says gap_too_large past history.size and history.ttl (in-process history)', async () => {
    const small = await cluster.startNode({ ROOMCAST_HISTORY_SIZE: '5' });
    const young = await cluster.startNode({ ROOMCAST_HISTORY_TTL: '1s' });
    try {
      await gapBySize([small.url], jwt, 5);
      await gapByAge(young.url, jwt);
    } finally {
      await Promise.all([small.stop(), young.stop()]);
    }
  });
});
