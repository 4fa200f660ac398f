// End-to-end harness: runs the real `roomcast` binary against a fresh database and drives
// it with the official Socket.IO clients (v4 over WebSocket or long-polling, v2 over
// Engine.IO 3). Every wait is bounded; every child process is killed at the end.

import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';

import { io as ioV4 } from 'socket.io-client';
import pg from 'pg';

import { startService } from './services.mjs';

const require = createRequire(import.meta.url);
// socket.io-client 2.5.0 is CommonJS; installed under an npm alias.
const ioV2 = require('socket.io-client-v2');
const BetterSqlite3 = require('better-sqlite3');

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..', '..');
export const BIN = process.env.ROOMCAST_BIN || join(REPO, 'target', 'debug', 'roomcast');
export const PG_URL = process.env.ROOMCAST_TEST_PG_URL || '';

/** Upper bound of every single wait in the suite. */
export const WAIT_MS = 5000;

/** Secrets and claims shared by the nodes, the CLI and the tests. */
export const SECRETS = Object.freeze({
  jwt: 'e2e-jwt-secret-0123456789abcdef-0123456789abcdef',
  session: 'e2e-session-secret-keyboard-cat-0123456789abcdef',
  issuer: 'roomcast-e2e',
  audience: 'roomcast-e2e-clients',
});

export const CLIENT_KINDS = Object.freeze(['v4-websocket', 'v4-polling', 'v2']);

// ---------------------------------------------------------------------------------------
// Backends

/** Backends to run DB-dependent suites on: SQLite always, Postgres when configured. */
export function backends() {
  return [
    { name: 'sqlite', skip: false },
    PG_URL
      ? { name: 'postgres', skip: false }
      : { name: 'postgres', skip: 'ROOMCAST_TEST_PG_URL is not set: Postgres suites skipped' },
  ];
}

let pgSkipNoted = false;
/** Prints, once per test file, why the Postgres suites do not run. */
export function notePgSkip() {
  if (!PG_URL && !pgSkipNoted) {
    pgSkipNoted = true;
    process.stderr.write('note: ROOMCAST_TEST_PG_URL is not set; Postgres suites are skipped\n');
  }
}

function rand(n = 6) {
  return randomBytes(n).toString('hex');
}

/**
 * A fresh database: SQLite in a temp dir, or a new Postgres database `rc_<random>`.
 * The object reads and writes `express_sessions` for the tests.
 */
export async function createDb(kind) {
  if (kind === 'sqlite') return SqliteDb.create();
  if (kind === 'postgres') return PgDb.create();
  throw new Error(`unknown backend ${kind}`);
}

function sqliteExpire(date) {
  // 'YYYY-MM-DD HH:MM:SS.ffffff' UTC, the documented format.
  return date.toISOString().replace('T', ' ').replace('Z', '000');
}

function parseSqliteExpire(text) {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(text);
  assert.ok(m, `expire ${JSON.stringify(text)} is not 'YYYY-MM-DD HH:MM:SS[.ffffff]'`);
  const frac = m[3] ? m[3].slice(0, 4) : '';
  return new Date(`${m[1]}T${m[2]}${frac}Z`);
}

class SqliteDb {
  static create() {
    const db = new SqliteDb();
    db.kind = 'sqlite';
    db.dir = mkdtempSync(join(tmpdir(), 'roomcast-e2e-'));
    db.path = join(db.dir, 'roomcast.db');
    db.url = `sqlite://${db.path}`;
    db.handle = null;
    return db;
  }

  /** Opened lazily: the file only exists once the node (or CLI) applied migrations. */
  h() {
    if (!this.handle) {
      assert.ok(existsSync(this.path), `SQLite file ${this.path} was not created by roomcast`);
      this.handle = new BetterSqlite3(this.path, { timeout: WAIT_MS });
    }
    return this.handle;
  }

  async getSession(sid) {
    const row = this.h().prepare('SELECT sid, sess, expire FROM express_sessions WHERE sid = ?').get(sid);
    if (!row) return null;
    assert.equal(typeof row.sess, 'string', 'sess is stored as JSON text on SQLite');
    return { sid: row.sid, sess: JSON.parse(row.sess), expire: parseSqliteExpire(row.expire), rawExpire: row.expire };
  }

  async listSessionIds(prefix = '') {
    return this.h()
      .prepare('SELECT sid FROM express_sessions WHERE substr(sid, 1, ?) = ? ORDER BY sid')
      .all(prefix.length, prefix)
      .map((r) => r.sid);
  }

  async insertSession(sid, sess, expire) {
    this.h()
      .prepare('INSERT INTO express_sessions (sid, sess, expire) VALUES (?, ?, ?)')
      .run(sid, JSON.stringify(sess), sqliteExpire(expire));
  }

  async deleteSession(sid) {
    this.h().prepare('DELETE FROM express_sessions WHERE sid = ?').run(sid);
  }

  async close() {
    if (this.handle) this.handle.close();
    this.handle = null;
  }

  async drop() {
    await this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

class PgDb {
  static async create() {
    const db = new PgDb();
    db.kind = 'postgres';
    db.name = `rc_${rand(8)}`;
    const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: WAIT_MS });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${db.name}`);
    } finally {
      await admin.end();
    }
    const u = new URL(PG_URL);
    u.pathname = `/${db.name}`;
    db.url = u.toString();
    db.pool = new pg.Pool({ connectionString: db.url, max: 2, connectionTimeoutMillis: WAIT_MS });
    return db;
  }

  async getSession(sid) {
    const { rows } = await this.pool.query(
      // The naive timestamp read in the session TimeZone, as connect-pg-simple reads and
      // writes it (to_timestamp()), independent of this process's TZ.
      `SELECT sid, sess, extract(epoch from expire::timestamptz)::text AS epoch,
              pg_typeof(sess)::text AS sess_type, pg_typeof(expire)::text AS expire_type
         FROM express_sessions WHERE sid = $1`,
      [sid],
    );
    if (!rows.length) return null;
    const r = rows[0];
    return {
      sid: r.sid,
      sess: typeof r.sess === 'string' ? JSON.parse(r.sess) : r.sess,
      expire: new Date(Math.round(Number(r.epoch) * 1000)),
      rawExpire: r.epoch,
      sessType: r.sess_type,
      expireType: r.expire_type,
    };
  }

  async listSessionIds(prefix = '') {
    const { rows } = await this.pool.query(
      'SELECT sid FROM express_sessions WHERE left(sid, $1) = $2 ORDER BY sid',
      [prefix.length, prefix],
    );
    return rows.map((r) => r.sid);
  }

  async insertSession(sid, sess, expire) {
    // Exactly what connect-pg-simple does on set().
    await this.pool.query(
      'INSERT INTO express_sessions (sid, sess, expire) VALUES ($1, $2, to_timestamp($3))',
      [sid, sess, Math.round(expire.getTime() / 1000)],
    );
  }

  async deleteSession(sid) {
    await this.pool.query('DELETE FROM express_sessions WHERE sid = $1', [sid]);
  }

  async close() {
    if (!this.pool) return;
    // end() resolves before its connections are closed: one that `drop()`'s DROP ... WITH
    // (FORCE) ends first errors on the pool, which is no failure of the test.
    this.pool.on('error', () => {});
    await this.pool.end().catch(() => {});
    this.pool = null;
  }

  async drop() {
    await this.close();
    const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: WAIT_MS });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Processes

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
 * Starts `roomcast serve` on an ephemeral port and waits (≤ 20 s) for its `listening` line.
 * Returns {url, port, nodeId, stop(), logs(), child}.
 */
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

/**
 * A node on a fresh database with users alice/bob/carol (passwords `<login>-pw`).
 * Call `teardown()` in `after()`.
 */
export async function setupNode(kind, { env = {}, users = ['alice', 'bob', 'carol', 'dave'] } = {}) {
  const db = await createDb(kind);
  let node;
  try {
    node = await startNode({ db, env });
    await Promise.all(users.map((u) => addUser(db, u, `${u}-pw`)));
  } catch (e) {
    if (node) await node.stop();
    await db.drop().catch(() => {});
    throw e;
  }
  const clients = new Set();
  return {
    db,
    node,
    url: node.url,
    clients,
    /** Connects and remembers the client so `teardown()` closes it. */
    async connect(kindOfClient, creds, opts) {
      const c = await connectClient(kindOfClient, node.url, creds, opts);
      clients.add(c);
      return c;
    },
    async teardown() {
      for (const c of clients) c.close();
      clients.clear();
      const r = await node.stop();
      await db.drop().catch((e) => process.stderr.write(`# dropping database failed: ${e}\n`));
      return r;
    },
  };
}

// ---------------------------------------------------------------------------------------
// JWT and cookies, built independently from the server

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** An HS* JWT; `alg: 'none'` yields an unsigned token. */
export function signJwt(claims, { secret = SECRETS.jwt, alg = 'HS256', header = {} } = {}) {
  const h = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(claims));
  if (alg === 'none') return `${h}.${p}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const sig = createHmac(hash, secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

export function claims(sub, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub, iat: now, exp: now + 3600, iss: SECRETS.issuer, aud: SECRETS.audience, ...extra };
}

/** cookie-signature's sign(): `<value>.<base64(HMAC-SHA256) without '='>`. */
export function signCookieValue(value, secret = SECRETS.session) {
  const mac = createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '');
  return `${value}.${mac}`;
}

/** The Cookie header express-session would have set for session `sid`. */
export function sessionCookie(sid, { secret = SECRETS.session, name = 'connect.sid' } = {}) {
  return `${name}=${encodeURIComponent(`s:${signCookieValue(sid, secret)}`)}`;
}

/** A row shaped like express-session's, as connect-pg-simple stores it. */
export function expressSess(user, expire) {
  return {
    cookie: { originalMaxAge: 3600000, expires: expire.toISOString(), httpOnly: true, path: '/' },
    ...(user === undefined ? {} : { user }),
  };
}

export function newSid() {
  // express-session uses uid-safe(24): 32 URL-safe characters.
  return randomBytes(24).toString('base64url');
}

// ---------------------------------------------------------------------------------------
// Clients

/**
 * Credentials are `{login, password}`, `{token}` or `null`. v4 sends them in the
 * handshake `auth` payload (or `query` with opts.inQuery); v2 always in the query string.
 * `opts.cookie` sets a Cookie header.
 */
function makeSocket(kind, url, creds, opts = {}) {
  const extraHeaders = opts.cookie ? { cookie: opts.cookie } : undefined;
  if (kind === 'v4-websocket' || kind === 'v4-polling') {
    return ioV4(url, {
      transports: kind === 'v4-websocket' ? ['websocket'] : ['polling'],
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...(creds && !opts.inQuery ? { auth: creds } : {}),
      ...(creds && opts.inQuery ? { query: creds } : {}),
      ...(opts.query ? { query: opts.query } : {}),
      ...(extraHeaders ? { extraHeaders } : {}),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
  }
  if (kind === 'v2') {
    return ioV2(url, {
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...(opts.transports ? { transports: opts.transports } : {}),
      ...(creds ? { query: creds } : {}),
      ...(extraHeaders ? { extraHeaders, transportOptions: { polling: { extraHeaders }, websocket: { extraHeaders } } } : {}),
    });
  }
  throw new Error(`unknown client kind ${kind}`);
}

function errorMessage(err) {
  if (typeof err === 'string') return err;
  if (err && typeof err.message === 'string') return err.message;
  return JSON.stringify(err);
}

/** Wraps a connected socket: records every incoming event and offers bounded waits. */
export class Client {
  constructor(kind, socket) {
    this.kind = kind;
    this.socket = socket;
    this.events = []; // {name, args, consumed}
    this.waiters = new Set();
    this.disconnected = null;
    const record = (name, args) => {
      const ev = { name, args, consumed: false };
      this.events.push(ev);
      for (const w of this.waiters) w(ev);
    };
    if (kind === 'v2') {
      const orig = socket.onevent;
      socket.onevent = function (packet) {
        const data = packet.data || [];
        record(data[0], data.slice(1));
        return orig.call(this, packet);
      };
    } else {
      socket.onAny((name, ...args) => record(name, args));
    }
    socket.on('disconnect', (reason) => {
      this.disconnected = reason;
      for (const w of this.waiters) w(null);
    });
  }

  get id() {
    return this.socket.id;
  }

  get sid() {
    return `roomcast:${this.socket.id}`;
  }

  get connected() {
    return this.socket.connected;
  }

  /** Emits and resolves with the ack's first argument; rejects after `timeout`. */
  ack(event, ...args) {
    return new Promise((res, rej) => {
      const timer = setTimeout(
        () =>
          rej(
            new Error(
              `${this.kind} ${this.id}: no ack for ${JSON.stringify(event)} ${JSON.stringify(args)} within ${WAIT_MS} ms (connected: ${this.connected}, disconnect: ${this.disconnected})\n--- log lines naming ${this.id}:\n${nodeLogsMatching(this.id, 15)}\n${nodeLogTails()}`,
            ),
          ),
        WAIT_MS,
      );
      this.socket.emit(event, ...args, (...reply) => {
        clearTimeout(timer);
        res(reply[0]);
      });
    });
  }

  /** Emits without an ack. */
  send(event, ...args) {
    this.socket.emit(event, ...args);
  }

  /**
   * Resolves with the args of the first unconsumed event `name` matching `pred(args[0])`,
   * including events already received; marks it consumed.
   */
  waitFor(name, pred = () => true, timeout = WAIT_MS) {
    const match = (ev) => ev && !ev.consumed && ev.name === name && pred(ev.args[0], ev.args);
    const found = this.events.find(match);
    if (found) {
      found.consumed = true;
      return Promise.resolve(found.args[0]);
    }
    return new Promise((res, rej) => {
      const waiter = (ev) => {
        if (match(ev)) {
          ev.consumed = true;
          cleanup();
          res(ev.args[0]);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        rej(
          new Error(
            `${this.kind} ${this.id}: no ${JSON.stringify(name)} within ${timeout} ms; unconsumed: ${JSON.stringify(this.pending())}\n${nodeLogTails()}`,
          ),
        );
      }, timeout);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  /**
   * Unconsumed events as [name, ...args]. Without a name, the `recovery` event every
   * socket on `/` gets at connect is left out: it is the connection's, not traffic.
   */
  pending(name) {
    const wanted = (e) => (name === undefined ? e.name !== 'recovery' : e.name === name);
    return this.events.filter((e) => !e.consumed && wanted(e)).map((e) => [e.name, ...e.args]);
  }

  /** Asserts that nothing (or nothing named `name`) arrived unconsumed. */
  assertNothing(what = 'nothing', name) {
    assert.deepEqual(this.pending(name), [], `${this.kind} client should have received ${what}`);
  }

  /** Resolves when the socket disconnects (bounded). */
  async waitDisconnect(timeout = WAIT_MS) {
    const t0 = Date.now();
    while (this.disconnected === null) {
      if (Date.now() - t0 > timeout) throw new Error(`${this.kind}: still connected after ${timeout} ms`);
      await delay(20);
    }
    return this.disconnected;
  }

  close() {
    try {
      this.socket.close();
    } catch {
      /* ignore */
    }
  }
}

/**
 * Opens a socket without waiting for `connect`: events emitted on the returned Client are
 * buffered by the Socket.IO client and sent the moment the namespace is connected.
 */
export function openClient(kind, url, creds, opts = {}) {
  return new Client(kind, makeSocket(kind, url, creds, opts));
}

/** Connects; resolves with a Client once `connect` fired, rejects on a connect error. */
export function connectClient(kind, url, creds, opts = {}) {
  const socket = makeSocket(kind, url, creds, opts);
  return new Promise((res, rej) => {
    let client;
    const timer = setTimeout(() => {
      socket.close();
      rej(new Error(`${kind}: not connected within ${WAIT_MS} ms`));
    }, WAIT_MS);
    const fail = (err) => {
      clearTimeout(timer);
      socket.close();
      rej(new Error(`${kind}: connection refused: ${errorMessage(err)}`));
    };
    // Created before `connect` so that no early event is missed.
    client = new Client(kind, socket);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('connect_error', fail);
      if (kind === 'v2') socket.off('error', fail);
      res(client);
    });
    socket.once('connect_error', fail);
    if (kind === 'v2') socket.once('error', fail);
  });
}

/**
 * Expects the connection to be refused. Resolves with the connect error's message
 * (v4: `connect_error` Error.message; v2: the `error` event's data, string or {message}).
 */
export function connectRefused(kind, url, creds, opts = {}) {
  const socket = makeSocket(kind, url, creds, opts);
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      socket.close();
      rej(new Error(`${kind}: neither connected nor refused within ${WAIT_MS} ms`));
    }, WAIT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      const id = socket.id;
      socket.close();
      rej(new Error(`${kind}: connection was accepted (socket ${id}) but should have been refused`));
    });
    const refused = (err) => {
      clearTimeout(timer);
      socket.close();
      res(errorMessage(err));
    };
    if (kind === 'v2') {
      // v2 reports a namespace connect error as `error`; `connect_error` is transport-level.
      socket.once('error', refused);
      socket.once('connect_error', (e) => refused(`transport: ${errorMessage(e)}`));
    } else {
      socket.once('connect_error', refused);
    }
  });
}

export const passwordOf = (login) => ({ login, password: `${login}-pw` });

// ---------------------------------------------------------------------------------------
// Waiting, HTTP, metrics

/** Polls `fn` until it returns a truthy value (returned) or `timeout` passes (throws). */
export async function waitUntil(fn, what, timeout = WAIT_MS, every = 25) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await delay(every);
  }
}

export async function httpGet(url, path) {
  const ctl = AbortSignal.timeout(WAIT_MS);
  const r = await fetch(`${url}${path}`, { signal: ctl });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

/** Parses Prometheus text: [{name, labels: {...}, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `match`. */
export function metricSum(samples, name, match = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

export async function metrics(url) {
  const r = await httpGet(url, '/metrics');
  assert.equal(r.status, 200, '/metrics status');
  return parseMetrics(r.body);
}

// ---------------------------------------------------------------------------------------
// Scenario helpers

export function roomName(prefix = 'room') {
  return `${prefix}-${rand(4)}`;
}

/** Asserts a failure reply `{ok: false, error: {code, message}}`. */
export function assertFailure(reply, code, what = '') {
  assert.ok(reply && typeof reply === 'object', `${what}: reply should be an object, got ${JSON.stringify(reply)}`);
  assert.equal(reply.ok, false, `${what}: reply.ok should be false in ${JSON.stringify(reply)}`);
  assert.ok(reply.error && typeof reply.error === 'object', `${what}: reply.error missing in ${JSON.stringify(reply)}`);
  assert.equal(reply.error.code, code, `${what}: error code in ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.error.message, 'string', `${what}: error.message should be a string`);
}

/**
 * Checks a `join room` ack: `{ok, room}`, plus the room's position `{offset, epoch}`
 * when it keeps history (pass `history: false` for nodes or rooms without).
 */
export function assertJoined(reply, room, { history = true } = {}) {
  const { offset, epoch, ...rest } = reply;
  assert.deepEqual(rest, { ok: true, room }, `join room ${room}`);
  if (history) {
    assert.ok(Number.isSafeInteger(offset) && offset >= 0, `join room ${room}: offset in ${JSON.stringify(reply)}`);
    assert.equal(typeof epoch, 'string', `join room ${room}: epoch in ${JSON.stringify(reply)}`);
  } else {
    assert.equal(offset, undefined, `join room ${room}: no history, no offset`);
  }
  return reply;
}

/**
 * A room event as sent, without the `offset` and `epoch` a room with history adds (both
 * checked for type).
 */
export function withoutPosition(payload) {
  const { offset, epoch, ...rest } = payload ?? {};
  assert.ok(Number.isSafeInteger(offset) && offset > 0, `offset in ${JSON.stringify(payload)}`);
  assert.equal(typeof epoch, 'string', `epoch in ${JSON.stringify(payload)}`);
  return rest;
}

export async function joinRoom(client, room, opts) {
  return assertJoined(await client.ack('join room', room), room, opts);
}

/**
 * A barrier: `sender` sends a message to `syncRoom`, which `sender` and every observer
 * have joined; resolves once all of them received it. Anything the server sent an
 * observer before it has then arrived (one connection delivers in order).
 */
export async function settle(sender, observers, syncRoom) {
  const token = randomUUID();
  const waits = [sender, ...observers].map((c) =>
    c.waitFor('incomingMessage', (m) => m && m.room === syncRoom && m.message && m.message.sync === token),
  );
  const ack = await sender.ack('sendMessage', { room: syncRoom, message: { sync: token } });
  assert.equal(ack && ack.ok, true, `barrier message should be accepted: ${JSON.stringify(ack)}`);
  await Promise.all(waits);
  // A short grace period on top of the ordering guarantee.
  await delay(50);
}

/**
 * A lobby session: `host` (logged in as `hostName`) creates it and `guest` (as
 * `guestName`) joins it; resolves with the key once both got `user_connected`.
 */
export async function lobbySession(host, guest, hostName = 'Hana', guestName = 'Carl') {
  host.send('login', { name: hostName });
  guest.send('login', { name: guestName });
  await Promise.all([host.waitFor('login_success'), guest.waitFor('login_success')]);
  host.send('create_session', { type: 'default', ph_users: 0 });
  const { session_key } = await host.waitFor('send_session_key');
  guest.send('join_session', session_key);
  for (const client of [host, guest]) {
    assert.deepEqual(await client.waitFor('user_connected'), { message: 'User connected!', name: guestName });
  }
  return session_key;
}

// ---------------------------------------------------------------------------------------
// Redis for cluster tests

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * Sends to `room` from `sender` until `receiver` gets one of the messages: for links that
 * come up after a while (a room channel subscribed, a reconnected adapter). An ack that
 * times out meanwhile (a publish waiting out its timeout) counts as a miss.
 */
export async function untilDelivered(sender, receiver, room, what, timeout = WAIT_MS) {
  await waitUntil(async () => {
    const m = await sender.ack('sendMessage', { room, message: 'probe' }).catch(() => null);
    if (!m?.ok) return false;
    try {
      await receiver.waitFor('incomingMessage', (x) => x.id === m.id, 300);
      return true;
    } catch {
      return false;
    }
  }, what, timeout, 50);
}

/** A throw-away redis-server on loopback, without persistence (on `port`, to restart one). */
export async function startRedis({ port } = {}) {
  const redis = await startService('redis', port ? ['--port', String(port)] : []);
  return { url: redis.url, port: redis.ports[0], stop: redis.stop };
}

export { delay, randomUUID };
