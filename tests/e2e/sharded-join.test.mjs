// Sharded pub/sub in the dynamic subscription modes, on a real Redis Cluster: a room's
// channel is subscribed by a node only once one of its sockets is in the room. The
// `join room` ack waits for Redis to confirm that subscription, so a message another
// node sends right after the ack is never lost.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

const MESSAGES = 50;
const ROUNDS = 3;

/** Counts `incomingMessage`s with `tag` that `client` received within `ms`. */
async function received(client, tag, ms) {
  await h.delay(ms);
  return client.events.filter((e) => e.name === 'incomingMessage' && String(e.args[0]?.message).startsWith(tag)).length;
}

for (const subscriptionMode of ['dynamic', 'dynamic-private']) {
  describe(`sharded ${subscriptionMode} on a Redis Cluster: joined means will receive`, { timeout: 120000 }, () => {
    let cluster, nodes;
    const connect = (url, creds) => cluster.connect('v4-websocket', url, creds);

    before(async () => {
      cluster = await startCluster({ redis: 'cluster', mode: 'sharded', subscriptionMode, users: ['alice', 'bob'] });
      ({ nodes } = cluster);
    });

    after(() => cluster?.stop());

    it(`${MESSAGES} messages sent from another node right after each join ack: none lost`, async () => {
      const alice = await connect(nodes[0].url, h.passwordOf('alice'));
      const room = h.roomName('shj');
      await h.joinRoom(alice, room);
      // Each round a fresh socket on node B (which then has nobody in the room, so no
      // subscription to its channel) joins; node A sends at once after the ack.
      let lost = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const bob = await connect(nodes[1].url, h.passwordOf('bob'));
        await h.joinRoom(bob, room);
        const tag = `r${round}-`;
        for (let i = 0; i < MESSAGES; i++) alice.send('sendMessage', { room, message: `${tag}${i}` });
        lost += MESSAGES - (await received(bob, tag, 1000));
        bob.close();
      }
      assert.equal(lost, 0, `${lost} of ${ROUNDS * MESSAGES} messages lost`);
    });
  });
}
