// One cluster fixture for the e2e tests: a throw-away Redis (one server or a Redis
// Cluster), one shared database, N Roomcast nodes on the Redis adapter, users, and
// optionally a Node.js socket.io peer on the same Redis. One `stop()` takes it all down,
// in the order that leaves no node talking to a service already gone.
import { connectClient, createDb, addUser, startNode, startRedis } from './harness.mjs';
import { startNodePeer } from './node-peer.mjs';
import { startRedisCluster } from './redis-cluster.mjs';

/** Heartbeats fast enough that a dead node is swept within about a second. */
export const FAST_HEARTBEATS = Object.freeze({ ROOMCAST_HEARTBEAT_INTERVAL: '200ms', ROOMCAST_NODE_DEAD_AFTER: '1s' });

const REDIS_KINDS = ['single', 'cluster', 'none'];

/**
 * Starts a cluster. Options:
 * - `nodes` (2, at least 1): Roomcast nodes to start. The first one alone, since it migrates the
 *   schema; the others together once it is ready.
 * - `redis` ('single'): 'single' (one redis-server), 'cluster' (a three-master Redis
 *   Cluster; the nodes get its `redis-cluster://` URL) or 'none' (in-process adapter).
 * - `mode` ('classic') and `subscriptionMode` ('dynamic'): the adapter, as Node's
 *   `createAdapter` or `createShardedAdapter`; sharded sets `ROOMCAST_REDIS_MODE` and
 *   `ROOMCAST_REDIS_SUBSCRIPTION_MODE`, classic leaves both at the node's default.
 * - `db` ('sqlite'): a backend kind for a fresh database, dropped by `stop()`, or a
 *   database the caller owns (`{kind, url}`), left alone.
 * - `env`: environment of every node; `nodeEnv(i)`: more for node `i` only.
 * - `start(db, env)`: how a node is started (default `startNode`), for nodes that need
 *   more than an environment (an ops port of their own).
 * - `users` (['alice', 'bob', 'carol']): created with password `<login>-pw`.
 * - `peer`: options of a Node.js peer (`startNodePeer`) to start last, on the same Redis
 *   and in the same adapter mode; omitted, there is none.
 *
 * Returns {redis, db, env, nodes, peer, startNode(extraEnv), connect(kind, url, creds,
 * opts), restartRedis(), stop()}: `redis` is the Redis handle (`url` is one server, the
 * seed of a Redis Cluster), `env` what every node got (`REDIS_URL` included).
 */
export async function startCluster({
  nodes: count = 2,
  redis: redisKind = 'single',
  mode = 'classic',
  subscriptionMode = 'dynamic',
  db: database = 'sqlite',
  env = {},
  nodeEnv = () => ({}),
  start = (db, nodeEnvironment) => startNode({ db, env: nodeEnvironment }),
  users = ['alice', 'bob', 'carol'],
  peer: peerOptions,
} = {}) {
  if (!REDIS_KINDS.includes(redisKind)) throw new Error(`redis: one of ${REDIS_KINDS.join(', ')}, not ${redisKind}`);
  if (mode !== 'classic' && mode !== 'sharded') throw new Error(`mode: classic or sharded, not ${mode}`);
  const ownsDb = typeof database === 'string';
  const clients = new Set();
  const cluster = {
    redis: null,
    db: null,
    env: null,
    nodes: [],
    peer: null,

    /** One more node with the cluster's environment plus `extraEnv`; `stop()` stops it. */
    async startNode(extraEnv = {}) {
      const node = await start(cluster.db, { ...cluster.env, ...extraEnv });
      cluster.nodes.push(node);
      return node;
    },

    /** Connects a client (harness `connectClient`) that `stop()` closes. */
    async connect(...args) {
      const client = await connectClient(...args);
      clients.add(client);
      return client;
    },

    /** A new, empty Redis on the port of the stopped one (the nodes reconnect to it). */
    async restartRedis() {
      cluster.redis = await startRedis({ port: cluster.redis.port });
      return cluster.redis;
    },

    async stop() {
      for (const c of clients) c.close();
      clients.clear();
      await cluster.peer?.stop();
      await Promise.all(cluster.nodes.map((n) => n.stop()));
      if (ownsDb) await cluster.db?.drop().catch((e) => process.stderr.write(`# dropping database failed: ${e}\n`));
      await cluster.redis?.stop();
    },
  };

  try {
    let redisUrl = null;
    if (redisKind === 'single') {
      cluster.redis = await startRedis();
      redisUrl = cluster.redis.url;
    } else if (redisKind === 'cluster') {
      cluster.redis = await startRedisCluster();
      redisUrl = cluster.redis.clusterUrl;
    }
    cluster.db = ownsDb ? await createDb(database) : database;
    cluster.env = {
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
      ...(mode === 'sharded' ? { ROOMCAST_REDIS_MODE: mode, ROOMCAST_REDIS_SUBSCRIPTION_MODE: subscriptionMode } : {}),
      ...env,
    };
    await cluster.startNode(nodeEnv(0));
    const rest = Array.from({ length: count - 1 }, (_, i) => start(cluster.db, { ...cluster.env, ...nodeEnv(i + 1) }));
    // Every node that did start is kept in `nodes`, so a failure stops it too.
    const started = await Promise.allSettled(rest);
    for (const node of started) if (node.status === 'fulfilled') cluster.nodes.push(node.value);
    const failed = started.find((node) => node.status === 'rejected');
    if (failed) throw failed.reason;
    await Promise.all(users.map((u) => addUser(cluster.db, u, `${u}-pw`)));
    if (peerOptions) {
      cluster.peer = await startNodePeer(cluster.redis.url, {
        sharded: mode === 'sharded',
        subscriptionMode,
        cluster: redisKind === 'cluster',
        ...peerOptions,
      });
    }
  } catch (e) {
    await cluster.stop().catch(() => {});
    throw e;
  }
  return cluster;
}
