// Room history fills what a node's feed loses: Redis drops every subscriber connection
// (CLIENT KILL TYPE pubsub) while a member of another node sends, so events published
// during the reconnect never reach this node live. The next event shows the gap, the
// node reads the missing ones back from the room's stream and sends them first: every
// member gets every event once, in offset order.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { joinRoom, passwordOf, roomName, metrics, metricSum, delay } from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

describe('history fills a gap in a node feed', { timeout: 60000 }, () => {
  let cluster;

  before(async () => {
    cluster = await startCluster({ users: ['alice', 'bob'] });
  });

  after(() => cluster?.stop());

  it('sends the events lost while the subscription was down, before the next one', async () => {
    const [a, b] = cluster.nodes;
    const alice = await cluster.connect('v4-websocket', a.url, passwordOf('alice'));
    const bob = await cluster.connect('v4-websocket', b.url, passwordOf('bob'));
    const room = roomName('gap');
    await joinRoom(alice, room);
    await joinRoom(bob, room);
    const first = await bob.ack('sendMessage', { room, message: 'before' });
    await alice.waitFor('incomingMessage', (m) => m.id === first.id);

    const sent = [first.id];
    // Bounded retries: each round kills the subscriptions and sends through the window in
    // which they are gone; a round in which alice's node lost nothing is tried again.
    const gaps = async () => metricSum(await metrics(a.url), 'roomcast_history_resent_total', { reason: 'gap' });
    for (let round = 0; round < 5 && (await gaps()) === 0; round++) {
      const killed = spawnSync('redis-cli', ['-p', String(cluster.redis.port), 'CLIENT', 'KILL', 'TYPE', 'pubsub']);
      assert.equal(killed.status, 0, String(killed.stderr));
      const until = Date.now() + 400;
      while (Date.now() < until) {
        sent.push((await bob.ack('sendMessage', { room, message: `during ${sent.length}` })).id);
      }
      // Once both nodes hear the feed again, one more event shows any gap.
      await delay(1500);
      const last = await bob.ack('sendMessage', { room, message: `after ${round}` });
      sent.push(last.id);
      await alice.waitFor('incomingMessage', (m) => m.id === last.id, 10000).catch(() => {});
    }
    assert.ok((await gaps()) > 0, 'a gap was filled from the store');

    const got = alice.events.filter((e) => e.name === 'incomingMessage').map((e) => e.args[0]);
    assert.deepEqual(got.map((m) => m.id), sent, 'every event once, in the order sent');
    const offsets = got.map((m) => m.offset);
    assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), 'offsets without a hole');
  });
});
