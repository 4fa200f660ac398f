// Sharded pub/sub in the dynamic subscription modes, on a real Redis Cluster: a room's
// channel is subscribed by a node only once one of its sockets is in the room. The
// `join room` ack waits for Redis to confirm that subscription, so a message another
// node sends right after the ack is never lost.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as h from './lib/harness.mjs';

const MESSAGES = 50;
const ROUNDS = 3;

/** A free port whose cluster bus port (+10000) is free too. */
async function clusterPort() {
  for (;;) {
    const port = await h.freePort();
    if (port < 55000) return port;
  }
}

/** Three Redis Cluster masters on loopback, joined by `redis-cli --cluster create`. */
async function startRedisCluster() {
  const ports = [await clusterPort(), await clusterPort(), await clusterPort()];
  const dir = mkdtempSync(join(tmpdir(), 'roomcast-e2e-cluster-'));
  const children = ports.map((port) => {
    const cwd = join(dir, String(port));
    execFileSync('mkdir', ['-p', cwd]);
    return spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000',
    ], { cwd, stdio: 'ignore' });
  });
  const cli = (port, ...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10000 });
  const stop = () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) await h.waitUntil(() => { try { return cli(port, 'ping').includes('PONG'); } catch { return false; } }, `redis ${port}`, 10000);
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 20000 });
    for (const port of ports) await h.waitUntil(() => cli(port, 'cluster', 'info').includes('cluster_state:ok'), `cluster ok on ${port}`, 20000);
  } catch (e) {
    stop();
    throw e;
  }
  const others = ports.slice(1).map((p) => `node=127.0.0.1:${p}`).join('&');
  return { url: `redis-cluster://127.0.0.1:${ports[0]}?${others}`, stop };
}

/** Counts `incomingMessage`s with `tag` that `client` received within `ms`. */
async function received(client, tag, ms) {
  await h.delay(ms);
  return client.events.filter((e) => e.name === 'incomingMessage' && String(e.args[0]?.message).startsWith(tag)).length;
}

for (const subscriptionMode of ['dynamic', 'dynamic-private']) {
  describe(`sharded ${subscriptionMode} on a Redis Cluster: joined means will receive`, { timeout: 120000 }, () => {
    let redis, db;
    const nodes = [];
    const clients = [];
    const connect = async (url, creds) => {
      const c = await h.connectClient('v4-websocket', url, creds);
      clients.push(c);
      return c;
    };

    before(async () => {
      redis = await startRedisCluster();
      db = await h.createDb('sqlite');
      const env = { REDIS_URL: redis.url, ROOMCAST_REDIS_MODE: 'sharded', ROOMCAST_REDIS_SUBSCRIPTION_MODE: subscriptionMode };
      nodes.push(await h.startNode({ db, env }));
      nodes.push(await h.startNode({ db, env }));
      await Promise.all(['alice', 'bob'].map((u) => h.addUser(db, u, `${u}-pw`)));
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
      await db?.drop().catch(() => {});
      redis?.stop();
    });

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
