// The Node.js peer of a Roomcast node, for side-by-side benchmarks: socket.io 4.8 with
// @socket.io/redis-adapter 8.3, session rows in Postgres, and the same per-handshake
// work as Roomcast (credentials checked, a row written in express_sessions; the row
// removed on disconnect), the same events and the same replies on namespace `/`.
//
// Configured by the environment variables Roomcast reads, where they apply:
//   ROOMCAST_LISTEN (127.0.0.1:0), REDIS_URL (unset: in-process adapter),
//   DATABASE_URL (postgres://...), ROOMCAST_JWT_SECRET / _ISSUER / _AUDIENCE,
//   ROOMCAST_NODE_ID, ROOMCAST_REDIS_KEY (socket.io), ROOMCAST_PING_INTERVAL_MS,
//   ROOMCAST_PING_TIMEOUT_MS, ROOMCAST_DATABASE_MAX_CONNECTIONS (10),
//   ROOMCAST_SESSION_TTL_S (86400), ROOMCAST_REQUEST_KEY_PREFIX (roomcast),
//   ROOMCAST_REQUEST_SERVE (streams this node answers, comma-separated), and one of its
//   own: ROOMCAST_PEER_REQUEST_STREAM, the worker stream every request is queued on
//   (unset: requests are answered where they arrive). Both speak Roomcast's worker
//   protocol (docs/workers.md), so a request crosses nodes the way it does in Roomcast.
// It logs one JSON line {"message":"listening","addr":"IP:PORT"} once it accepts
// connections, and stops on SIGTERM (rows of its sockets deleted).
//
// Left out, as they cost nothing per socket in Roomcast either: the node heartbeat
// table, the lobby/chat/todo namespaces, cookie auth and metrics.

import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import pg from 'pg';
import jwt from 'jsonwebtoken';
import argon2 from 'argon2';

const env = process.env;
const [host, port] = (env.ROOMCAST_LISTEN || '127.0.0.1:0').split(/:(?=\d+$)/);
const nodeId = env.ROOMCAST_NODE_ID || `node-peer-${process.pid}`;
const ttlS = Number(env.ROOMCAST_SESSION_TTL_S || 86400);
const MAX_ROOMS = 100;
const MAX_MESSAGE_BYTES = 64 * 1024;

if (!env.DATABASE_URL || !env.DATABASE_URL.startsWith('postgres')) {
  console.error('DATABASE_URL must be a postgres:// URL');
  process.exit(2);
}
const db = new pg.Pool({
  connectionString: env.DATABASE_URL,
  max: Number(env.ROOMCAST_DATABASE_MAX_CONNECTIONS || 10),
});

function log(fields) {
  process.stdout.write(`${JSON.stringify({ node: nodeId, ...fields })}\n`);
}

// ---- credentials -----------------------------------------------------------------

const jwtOptions = {
  algorithms: ['HS256'],
  issuer: env.ROOMCAST_JWT_ISSUER || undefined,
  audience: env.ROOMCAST_JWT_AUDIENCE || undefined,
  clockTolerance: 30,
};
const LOGIN_RE = /^[A-Za-z0-9_.@-]{1,64}$/;

class AuthError extends Error {}

async function authenticate(auth) {
  if (auth && typeof auth.token === 'string') {
    if (!env.ROOMCAST_JWT_SECRET) throw new AuthError('unauthorized: token authentication is not enabled');
    let claims;
    try {
      claims = jwt.verify(auth.token, env.ROOMCAST_JWT_SECRET, jwtOptions);
    } catch (e) {
      if (e instanceof jwt.TokenExpiredError) throw new AuthError('unauthorized: token expired');
      if (e instanceof jwt.NotBeforeError) throw new AuthError('unauthorized: token not yet valid');
      throw new AuthError('unauthorized: invalid token');
    }
    if (typeof claims.sub !== 'string' || !LOGIN_RE.test(claims.sub) || claims.exp === undefined) {
      throw new AuthError('unauthorized: invalid token');
    }
    return { user: claims.sub, via: 'token' };
  }
  if (auth && typeof auth.login === 'string' && typeof auth.password === 'string') {
    if (!LOGIN_RE.test(auth.login) || auth.password.length > 1024) {
      throw new AuthError('unauthorized: invalid login or password');
    }
    const { rows } = await db.query('SELECT password_hash FROM users WHERE login = $1', [auth.login]);
    const ok = rows.length > 0 && (await argon2.verify(rows[0].password_hash, auth.password).catch(() => false));
    if (!ok) throw new AuthError('unauthorized: invalid login or password');
    return { user: auth.login, via: 'password' };
  }
  throw new AuthError('unauthorized: no credentials');
}

// ---- session rows (the shape Roomcast writes) --------------------------------------

function sess(socket) {
  const m = socket.data;
  const expires = new Date(m.connectedAt.getTime() + ttlS * 1000);
  return {
    cookie: { originalMaxAge: ttlS * 1000, expires: expires.toISOString(), httpOnly: true, path: '/' },
    user: m.user,
    via: m.via,
    node: nodeId,
    socket: socket.id,
    namespace: '/',
    rooms: [...m.rooms].sort(),
    connectedAt: m.connectedAt.toISOString(),
  };
}

const rowSid = (socket) => `roomcast:${socket.id}`;

async function insertRow(socket) {
  await db.query(
    `INSERT INTO express_sessions (sid, sess, expire)
     VALUES ($1, $2::json, now()::timestamp + make_interval(secs => $3))
     ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire`,
    [rowSid(socket), JSON.stringify(sess(socket)), ttlS],
  );
}

async function updateRow(socket) {
  await db.query('UPDATE express_sessions SET sess = $2::json WHERE sid = $1', [
    rowSid(socket),
    JSON.stringify(sess(socket)),
  ]);
}

async function deleteRow(socket) {
  await db.query('DELETE FROM express_sessions WHERE sid = $1', [rowSid(socket)]);
}

// ---- replies -------------------------------------------------------------------------

function clientError(code, message) {
  return { code, message };
}

// An outcome as requests answer it, on the socket and in worker replies alike:
// `{...head, ok: true, result}` or `{...head, ok: false, error}`.
function answerOf(head, outcome) {
  return outcome.error ? { ...head, ok: false, error: outcome.error } : { ...head, ok: true, result: outcome.ok };
}

function reply(socket, event, ack, outcome) {
  if (outcome.error) {
    if (typeof ack === 'function') ack({ ok: false, error: outcome.error });
    else socket.emit('error', { event, ...outcome.error });
  } else if (typeof ack === 'function') {
    ack({ ok: true, ...outcome.ok });
  }
}

function roomName(io, socket, value) {
  if (typeof value !== 'string') return { error: clientError('bad_payload', 'a room name (string) is required') };
  const chars = [...value].length;
  // eslint-disable-next-line no-control-regex
  if (chars === 0 || chars > 100 || /[\u0000-\u001f\u007f-\u009f]/.test(value) || value.trim() !== value) {
    return { error: clientError('room_invalid', 'room names are 1-100 printable characters without surrounding spaces') };
  }
  if (value.startsWith('$') || value.startsWith('roomcast:')) {
    return { error: clientError('room_forbidden', 'this room name is reserved') };
  }
  return { room: value };
}

function memberRoom(io, socket, value) {
  const r = roomName(io, socket, value);
  if (r.error) return r;
  if (!socket.data.rooms.has(r.room)) return { error: clientError('not_member', 'join the room first') };
  return r;
}

const UUID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function dispatch(socket, route, params) {
  switch (route) {
    case 'echo':
      return { ok: params };
    case 'time': {
      const now = new Date();
      return { ok: { now: now.toISOString(), epochMs: now.getTime() } };
    }
    case 'rooms.list':
      return { ok: { rooms: [...socket.data.rooms].sort() } };
    default:
      return { error: clientError('unknown_route', 'no handler for this route') };
  }
}

// ---- requests across nodes: Roomcast's worker protocol (docs/workers.md) --------------

const KEY_PREFIX = env.ROOMCAST_REQUEST_KEY_PREFIX || 'roomcast';
const GROUP = 'workers';
const REQUEST_TIMEOUT_MS = 10000;
const streamKey = (stream) => `${KEY_PREFIX}:requests:${stream}`;

async function createGroup(redis, key) {
  await redis.xGroupCreate(key, GROUP, '0', { MKSTREAM: true }).catch((e) => {
    if (!String(e).includes('BUSYGROUP')) throw e;
  });
}

// Answers the jobs of one stream with `dispatch`, as a Roomcast node with
// `requests.serve` does: the reply published to the job's `reply_to`, then acknowledged.
async function serveStream(pub, reader, key) {
  const answer = async (entry, job) => {
    if (Number(job.deadline) > Date.now()) {
      let params = null;
      try {
        params = JSON.parse(job.params);
      } catch {
        // A job without usable params is answered as if it had none.
      }
      const caller = { data: { user: job.user, rooms: new Set(JSON.parse(job.rooms || '[]')) } };
      const outcome = dispatch(caller, job.route, params);
      await pub.publish(job.reply_to, JSON.stringify(answerOf({ id: job.id }, outcome)));
    }
    await pub.xAck(key, GROUP, entry);
  };
  while (reader.isOpen) {
    let batch;
    try {
      batch = await reader.xReadGroup(GROUP, nodeId, { key, id: '>' }, { COUNT: 16, BLOCK: 1000 });
    } catch (e) {
      if (!reader.isOpen) return;
      log({ level: 'warn', message: 'reading jobs failed', error: String(e) });
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    for (const { messages } of batch || []) {
      for (const { id, message } of messages) {
        answer(id, message).catch((e) => log({ level: 'warn', message: 'job not answered', error: String(e) }));
      }
    }
  }
}

// Connects the queue: returns `send(socket, uuid, route, params)`, a promise of the
// outcome (null without ROOMCAST_PEER_REQUEST_STREAM), and the clients to close.
async function startQueue(pub) {
  const forward = env.ROOMCAST_PEER_REQUEST_STREAM;
  const serve = (env.ROOMCAST_REQUEST_SERVE || '').split(',').filter(Boolean);
  const clients = [];
  for (const stream of serve) {
    const reader = pub.duplicate();
    await reader.connect();
    clients.push(reader);
    await createGroup(pub, streamKey(stream));
    serveStream(pub, reader, streamKey(stream));
  }
  if (!forward) return { send: null, clients };

  const replyTo = `${KEY_PREFIX}:replies:${nodeId}`;
  const waiting = new Map();
  const sub = pub.duplicate();
  await sub.connect();
  clients.push(sub);
  await sub.subscribe(replyTo, (text) => {
    let reply;
    try {
      reply = JSON.parse(text);
    } catch {
      return;
    }
    const waiter = waiting.get(reply.id);
    if (!waiter) return;
    waiting.delete(reply.id);
    clearTimeout(waiter.timer);
    waiter.resolve(reply.ok ? { ok: reply.result } : { error: reply.error });
  });
  const key = streamKey(forward);
  await createGroup(pub, key);
  const send = (socket, uuid, route, params) =>
    new Promise((resolve) => {
      const id = randomUUID().replaceAll('-', '');
      const deadline = Date.now() + REQUEST_TIMEOUT_MS;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve({ error: clientError('timeout', 'the request was not answered in time') });
      }, REQUEST_TIMEOUT_MS);
      waiting.set(id, { timer, resolve });
      const job = {
        id, uuid, route, params: JSON.stringify(params), user: socket.data.user,
        rooms: JSON.stringify([...socket.data.rooms]), reply_to: replyTo, deadline: String(deadline), attempt: '1',
      };
      // Trimmed by age on each add, as Roomcast does.
      const trim = { strategy: 'MINID', strategyModifier: '~', threshold: Date.now() - REQUEST_TIMEOUT_MS - 75000 };
      pub.xAdd(key, '*', job, { TRIM: trim }).catch(() => {
        waiting.delete(id);
        clearTimeout(timer);
        resolve({ error: clientError('unavailable', 'the request queue is unavailable') });
      });
    });
  return { send, clients };
}

// ---- the server ------------------------------------------------------------------

async function main() {
  const httpServer = createServer();
  const io = new Server(httpServer, {
    transports: ['websocket', 'polling'],
    pingInterval: Number(env.ROOMCAST_PING_INTERVAL_MS || 25000),
    pingTimeout: Number(env.ROOMCAST_PING_TIMEOUT_MS || 20000),
    maxHttpBufferSize: 1e6,
  });
  let redis = null;
  let sendRequest = null;
  if (env.REDIS_URL) {
    const pub = createClient({ url: env.REDIS_URL });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key: env.ROOMCAST_REDIS_KEY || 'socket.io' }));
    const queue = await startQueue(pub);
    sendRequest = queue.send;
    redis = [pub, sub, ...queue.clients];
  }

  io.use(async (socket, next) => {
    try {
      const identity = await authenticate(socket.handshake.auth);
      socket.data = { ...identity, rooms: new Set(), requests: new Set(), connectedAt: new Date() };
      await insertRow(socket);
      next();
    } catch (e) {
      next(new Error(e instanceof AuthError ? e.message : 'service unavailable: session store'));
    }
  });

  io.on('connection', (socket) => {
    socket.on('join room', async (room, ack) => {
      const r = roomName(io, socket, room);
      if (!r.error && (r.room === socket.id || io.of('/').sockets.has(r.room))) {
        r.error = clientError('room_forbidden', "this is a socket's private room");
      }
      if (r.error) return reply(socket, 'join room', ack, r);
      if (!socket.data.rooms.has(r.room)) {
        if (socket.data.rooms.size >= MAX_ROOMS) {
          return reply(socket, 'join room', ack, { error: clientError('too_many_rooms', 'leave a room first') });
        }
        socket.data.rooms.add(r.room);
        socket.join(r.room);
        await updateRow(socket).catch((e) => log({ level: 'warn', message: 'session row not updated', error: String(e) }));
      }
      return reply(socket, 'join room', ack, { ok: { room: r.room } });
    });

    socket.on('leave room', async (room, ack) => {
      const r = memberRoom(io, socket, room);
      if (r.error) return reply(socket, 'leave room', ack, r);
      socket.data.rooms.delete(r.room);
      socket.leave(r.room);
      await updateRow(socket).catch((e) => log({ level: 'warn', message: 'session row not updated', error: String(e) }));
      return reply(socket, 'leave room', ack, { ok: { room: r.room } });
    });

    socket.on('sendMessage', (data, ack) => {
      if (!data || typeof data !== 'object') {
        return reply(socket, 'sendMessage', ack, { error: clientError('bad_payload', 'an object {room, message} is required') });
      }
      const { message } = data;
      const okType = (typeof message === 'string' && message.length > 0) || (message && typeof message === 'object' && !Array.isArray(message));
      if (!okType) {
        return reply(socket, 'sendMessage', ack, { error: clientError('bad_payload', 'message must be a non-empty string or an object') });
      }
      if (JSON.stringify(message).length > MAX_MESSAGE_BYTES) {
        return reply(socket, 'sendMessage', ack, { error: clientError('bad_payload', 'message is too large') });
      }
      const r = memberRoom(io, socket, data.room);
      if (r.error) return reply(socket, 'sendMessage', ack, r);
      const id = randomUUID();
      io.to(r.room).emit('incomingMessage', { id, from: socket.data.user, room: r.room, message, ts: Date.now() });
      return reply(socket, 'sendMessage', ack, { ok: { id } });
    });

    socket.on('request', async (data, ack) => {
      const uuid = data && data.uuid;
      if (!data || typeof data !== 'object' || typeof uuid !== 'string' || !UUID_RE.test(uuid)) {
        return reply(socket, 'request', ack, { error: clientError('bad_payload', 'uuid must be 1-64 characters of [A-Za-z0-9_-]') });
      }
      if (typeof data.route !== 'string' || !data.route || data.route.length > 128) {
        return reply(socket, 'request', ack, { error: clientError('bad_payload', 'route must be a non-empty string') });
      }
      let outcome;
      if (socket.data.requests.has(uuid)) {
        outcome = { error: clientError('duplicate_request', 'this uuid is already in flight') };
      } else {
        socket.data.requests.add(uuid);
        const params = data.params === undefined ? null : data.params;
        outcome = sendRequest ? await sendRequest(socket, uuid, data.route, params) : dispatch(socket, data.route, params);
        socket.data.requests.delete(uuid);
      }
      const body = answerOf({ uuid }, outcome);
      socket.emit(`request ${uuid}`, body);
      if (typeof ack === 'function') ack(body);
      return undefined;
    });

    socket.on('disconnect', () => {
      deleteRow(socket).catch((e) => log({ level: 'warn', message: 'session row not removed', error: String(e) }));
    });
  });

  await new Promise((resolve) => httpServer.listen(Number(port), host, resolve));
  const addr = httpServer.address();
  log({ message: 'listening', addr: `${addr.address}:${addr.port}` });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => process.exit(1), 10000);
    io.close();
    await db.query("DELETE FROM express_sessions WHERE sid LIKE 'roomcast:%' AND sess->>'node' = $1", [nodeId]).catch(() => {});
    await db.end().catch(() => {});
    if (redis) await Promise.all(redis.map((c) => c.quit().catch(() => {})));
    clearTimeout(timer);
    log({ message: 'stopped' });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
