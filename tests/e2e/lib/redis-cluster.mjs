// A throw-away Redis Cluster on loopback for sharded-mode tests: three masters, no
// replicas, no persistence, started by `scripts/services`. Needs Redis 7+ (sharded pub/sub).
import { startService } from './services.mjs';

/** Starts the cluster; resolves {url (one seed), clusterUrl (redis-cluster://, every master), stop()}. */
export async function startRedisCluster() {
  const cluster = await startService('redis-cluster', ['--masters', '3']);
  const [first, ...others] = cluster.ports;
  return {
    url: cluster.url,
    clusterUrl: `redis-cluster://127.0.0.1:${first}?${others.map((p) => `node=127.0.0.1:${p}`).join('&')}`,
    stop: cluster.stop,
  };
}
