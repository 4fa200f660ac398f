// Throw-away Redis, Redis Cluster and Postgres on loopback, started by `scripts/services`,
// the one script every language's tests use. The services stop when this test process
// exits, even when it crashes (the script's `--owner` watchdog).
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const SCRIPT = fileURLToPath(new URL('../../../scripts/services', import.meta.url));
const run = promisify(execFile);

const OPTIONS = { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 };
const failure = (args, e) => new Error(`scripts/services ${args.join(' ')}: ${e.stderr?.toString().trim() || e.message}`);

function services(args) {
  try {
    execFileSync(SCRIPT, args, OPTIONS);
  } catch (e) {
    throw failure(args, e);
  }
}

/**
 * Starts `kind` (`redis`, `redis-cluster`, `postgres`) with the script's `args`; resolves
 * its JSON line ({url, urls, ports, pids, dir}) with:
 * - `stop()`: SIGKILL and remove, before it returns (a test may start again on the port at once);
 * - `down()` / `up()`: a clean stop keeping the data, and a start again on the same ports.
 */
export async function startService(kind, args = []) {
  const start = ['start', kind, ...args, '--owner', String(process.pid)];
  const service = JSON.parse((await run(SCRIPT, start, OPTIONS).catch((e) => { throw failure(start, e); })).stdout);
  return {
    ...service,
    stop: () => services(['stop', '--kill', service.dir]),
    down: () => services(['down', service.dir]),
    up: () => services(['up', service.dir]),
  };
}
