// The Node.js peer of mixed-cluster tests: a socket.io 4.8 server with
// @socket.io/redis-adapter 8.3 (classic or sharded) and, in classic mode, a
// @socket.io/redis-emitter, in a child process (node-peer-server.mjs). Every wait is
// bounded and the child is killed when the test process exits.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

import { WAIT_MS, onJsonLines } from './harness.mjs';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'node-peer-server.mjs');
const peers = new Set();
process.on('exit', () => {
  for (const child of peers) child.kill('SIGKILL');
});

/**
 * Starts a Node peer on `redisUrl` listening on a free loopback port.
 * Options: `sharded` (createShardedAdapter instead of createAdapter), `subscriptionMode`
 * (sharded: 'static' | 'dynamic' | 'dynamic-private'), `cluster` (the URL is a Redis
 * Cluster seed node), `namespaces` it serves (default '/', '/chat', '/lobby'),
 * `requestsTimeout` of the classic adapter (default 2000 ms).
 *
 * Returns {url, port, call(cmd, fields), events, waitEvent(pred), stop()}:
 * - `call` runs a command and resolves with its answer (rejects with its error):
 *   fetchSockets, socketsJoin, socketsLeave, disconnectSockets, emit (fields `nsp`,
 *   `rooms`, `except`, and `room` / `event`, `args`), serverSideEmitWithAck ({nsp, event,
 *   args} → {error, responses}), serverCount, emitter ({op, ...} as above);
 * - `events` lists what the peer reported ({type: 'connection' | 'disconnect', nsp, id}).
 */
export async function startNodePeer(
  redisUrl,
  { sharded = false, subscriptionMode = 'dynamic', cluster = false, namespaces = ['/', '/chat', '/lobby'], requestsTimeout = 2000 } = {},
) {
  const options = { redisUrl, sharded, subscriptionMode, cluster, namespaces, requestsTimeout, lifetimeMs: 10 * 60_000 };
  const child = spawn(process.execPath, [SCRIPT, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'] });
  peers.add(child);
  const exited = new Promise((r) => child.on('exit', (code, signal) => { peers.delete(child); r({ code, signal }); }));
  const pending = new Map();
  const events = [];
  const stderr = [];
  let nextId = 1;
  let onReady;
  const ready = new Promise((res, rej) => {
    onReady = { res, rej };
  });

  onJsonLines(child.stdout, (msg) => {
    if (msg.id !== undefined && pending.has(msg.id)) {
      const { res, rej } = pending.get(msg.id);
      pending.delete(msg.id);
      if ('error' in msg) rej(new Error(`node peer: ${msg.error}`));
      else res(msg.ok);
    } else if (msg.type === 'ready') onReady.res(msg.port);
    else if (msg.type === 'fatal') onReady.rej(new Error(`node peer failed: ${msg.error}`));
    else events.push(msg);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => stderr.push(d));
  exited.then((e) => {
    onReady.rej(new Error(`node peer exited (${JSON.stringify(e)}): ${stderr.join('')}`));
    for (const { rej } of pending.values()) rej(new Error(`node peer exited (${JSON.stringify(e)})`));
    pending.clear();
  });

  const timer = delay(20000).then(() => {
    throw new Error(`node peer not ready within 20 s: ${stderr.join('')}`);
  });
  let port;
  try {
    port = await Promise.race([ready, timer]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    events,
    /** Runs a command; bounded by `timeout` ms. */
    call(cmd, fields = {}, timeout = 3 * WAIT_MS) {
      const id = nextId++;
      return new Promise((res, rej) => {
        const t = setTimeout(() => {
          pending.delete(id);
          rej(new Error(`node peer: no answer to ${cmd} within ${timeout} ms`));
        }, timeout);
        pending.set(id, {
          res: (v) => { clearTimeout(t); res(v); },
          rej: (e) => { clearTimeout(t); rej(e); },
        });
        child.stdin.write(`${JSON.stringify({ id, cmd, fields })}\n`);
      });
    },
    /** Resolves with the first reported event matching `pred` (bounded). */
    async waitEvent(pred, what = 'a node peer event', timeout = WAIT_MS) {
      const t0 = Date.now();
      for (;;) {
        const found = events.find(pred);
        if (found) return found;
        if (Date.now() - t0 > timeout) throw new Error(`node peer: no ${what} within ${timeout} ms`);
        await delay(20);
      }
    },
    async stop() {
      child.stdin.end();
      const r = await Promise.race([exited, delay(3000).then(() => null)]);
      if (!r) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
