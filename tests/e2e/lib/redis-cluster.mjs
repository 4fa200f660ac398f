// A throw-away Redis Cluster on loopback for sharded-mode tests: three masters, no
// replicas, no persistence, each in its own temporary directory, joined with
// `redis-cli --cluster create`. Needs Redis 7+ (sharded pub/sub). Bounded waits.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { freePort, waitUntil } from './harness.mjs';

const run = promisify(execFile);

async function clusterPort(taken) {
  // The cluster bus listens on port + 10000.
  for (;;) {
    const port = await freePort();
    if (port + 10000 < 65536 && !taken.includes(port)) return port;
  }
}

function startMaster(port, dir) {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`redis-server on ${port} did not start within 10 s`)), 10000);
    child.once('error', (e) => { clearTimeout(timer); rej(e); });
    child.stdout.on('data', (d) => {
      if (String(d).includes('Ready to accept connections')) { clearTimeout(timer); res(child); }
    });
  });
}

/** Starts the cluster; resolves {url (one seed), clusterUrl (redis-cluster://, every master), stop()}. */
export async function startRedisCluster() {
  const ports = [];
  for (let i = 0; i < 3; i++) ports.push(await clusterPort(ports));
  const dirs = ports.map(() => mkdtempSync(join(tmpdir(), 'roomcast-e2e-cluster-')));
  const children = await Promise.all(ports.map((port, i) => startMaster(port, dirs[i])));
  const stop = () => {
    for (const child of children) child.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20000 });
    await waitUntil(async () => {
      const infos = await Promise.all(ports.map((p) => run('redis-cli', ['-p', String(p), 'cluster', 'info'], { timeout: 2000 })));
      return infos.every(({ stdout }) => stdout.includes('cluster_state:ok'));
    }, 'cluster_state:ok on every master', 20000, 100);
  } catch (e) {
    stop();
    throw e;
  }
  const [first, ...others] = ports;
  return {
    url: `redis://127.0.0.1:${first}`,
    clusterUrl: `redis-cluster://127.0.0.1:${first}?${others.map((p) => `node=127.0.0.1:${p}`).join('&')}`,
    stop,
  };
}
