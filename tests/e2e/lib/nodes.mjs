// `roomcast` as a child process: `serve` on an ephemeral port, waited for by its
// `listening` line, and the CLI subcommands. Every child is killed when the test exits.

import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';

import { BIN, SECRETS, rand } from './env.mjs';

const children = new Set();
const liveNodes = new Set();

/** Log lines of the running nodes that contain `needle` (for failure messages). */
export function nodeLogsMatching(needle, n = 20) {
  return [...liveNodes].flatMap((nd) => nd.logs().filter((l) => l.includes(needle))).slice(-n).join('\n');
}

/** The last lines each running node logged: appended to timeout errors. */
export function nodeLogTails(n = 12) {
  return [...liveNodes]
    .map((nd) => `--- node ${nd.nodeId} (last ${n} log lines):\n${nd.logs().slice(-n).join('\n')}`)
    .join('\n');
}

process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

function baseEnv(db, extra = {}) {
  const env = { ...process.env };
  delete env.RUST_LOG;
  delete env.ROOMCAST_CONFIG;
  for (const k of Object.keys(env)) if (k.startsWith('ROOMCAST_') && k !== 'ROOMCAST_BIN') delete env[k];
  return {
    ...env,
    DATABASE_URL: db.url,
    ROOMCAST_JWT_SECRET: SECRETS.jwt,
    ROOMCAST_JWT_ISSUER: SECRETS.issuer,
    ROOMCAST_JWT_AUDIENCE: SECRETS.audience,
    ROOMCAST_SESSION_SECRET: SECRETS.session,
    ROOMCAST_LOG_FORMAT: 'json',
    ROOMCAST_LOG_LEVEL: process.env.E2E_LOG_LEVEL || 'info',
    ...extra,
  };
}

/** Runs a `roomcast` subcommand; resolves {code, stdout, stderr}. */
export function runCli(db, args, { env = {}, timeout = 30000 } = {}) {
  return new Promise((resolveRun) => {
    execFile(BIN, args, { env: baseEnv(db, env), timeout, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (err.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr), err });
    });
  });
}

export async function addUser(db, login, password) {
  const r = await runCli(db, ['user', 'add', login, '--password', password]);
  assert.equal(r.code, 0, `roomcast user add ${login} failed: ${r.stderr}${r.stdout}`);
}

export async function mintToken(db, login) {
  const r = await runCli(db, ['token', login]);
  assert.equal(r.code, 0, `roomcast token ${login} failed: ${r.stderr}${r.stdout}`);
  const token = r.stdout.trim().split(/\s+/).pop();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `roomcast token printed ${JSON.stringify(r.stdout)}`);
  return token;
}

/** A JWT for each of `logins`, as {login: token}. */
export async function mintTokens(db, logins) {
  const tokens = {};
  for (const login of logins) tokens[login] = await mintToken(db, login);
  return tokens;
}

/**
 * Calls `onLine` with every whole line of a child's output stream and `onJson` with each
 * one that parses as JSON (other lines are skipped).
 */
export function onJsonLines(stream, onJson, onLine = () => {}) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
      let obj;
      try {
        obj = JSON.parse(line);
      } catch {
        continue;
      }
      onJson(obj);
    }
  });
}

/**
 * Starts `roomcast serve` on an ephemeral port and waits (≤ 20 s) for its `listening` line.
 * Returns {url, port, nodeId, stop(), logs(), child}.
 */
export async function startNode({ db, env = {}, nodeId = `e2e-${rand(3)}` } = {}) {
  assert.ok(existsSync(BIN), `roomcast binary not found at ${BIN} (set ROOMCAST_BIN)`);
  const child = spawn(BIN, ['serve'], {
    env: baseEnv(db, { ROOMCAST_LISTEN: '127.0.0.1:0', ROOMCAST_NODE_ID: nodeId, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines = [];
  const keep = (line) => {
    lines.push(line);
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
  };
  let exited = null;
  const exitPromise = new Promise((r) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      children.delete(child);
      r(exited);
    }),
  );

  const port = await new Promise((resolvePort, rejectPort) => {
    const timer = setTimeout(() => {
      rejectPort(new Error(`roomcast did not log "listening" within 20 s:\n${lines.slice(-40).join('\n')}`));
    }, 20000);
    onJsonLines(child.stdout, (obj) => {
      const msg = obj.message ?? obj.fields?.message;
      const addr = obj.addr ?? obj.fields?.addr;
      if (msg === 'listening' && typeof addr === 'string') {
        clearTimeout(timer);
        resolvePort(Number(addr.slice(addr.lastIndexOf(':') + 1)));
      }
    }, keep);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      for (const l of chunk.split('\n')) if (l) keep(`[stderr] ${l}`);
    });
    exitPromise.then((e) => {
      clearTimeout(timer);
      rejectPort(new Error(`roomcast exited early (${JSON.stringify(e)}):\n${lines.slice(-40).join('\n')}`));
    });
  }).catch(async (e) => {
    child.kill('SIGKILL');
    await exitPromise;
    throw e;
  });

  const url = `http://127.0.0.1:${port}`;
  const handle = {
    url,
    port,
    nodeId,
    child,
    logs: () => lines.slice(),
    exited: () => exited,
    /** SIGTERM, then SIGKILL after `graceMs`. Resolves {code, signal, killed}. */
    async stop(graceMs = 10000) {
      if (exited) return { ...exited, killed: false };
      child.kill('SIGTERM');
      const t = delay(graceMs).then(() => 'timeout');
      const r = await Promise.race([exitPromise, t]);
      if (r === 'timeout') {
        child.kill('SIGKILL');
        const e = await exitPromise;
        return { ...e, killed: true };
      }
      return { ...r, killed: false };
    },
  };
  liveNodes.add(handle);
  exitPromise.then(() => liveNodes.delete(handle));
  return handle;
}
