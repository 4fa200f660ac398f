// Fresh databases for the tests: SQLite in a temp dir or a new Postgres database, with
// reads and writes of `express_sessions` done as the Node session stores do them.

import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

import pg from 'pg';

import { PG_URL, WAIT_MS, rand } from './env.mjs';

const require = createRequire(import.meta.url);
const BetterSqlite3 = require('better-sqlite3');

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
