// The official Socket.IO clients (v4 over WebSocket or long-polling, v2 over Engine.IO
// 3), wrapped so that every incoming event is recorded and every wait is bounded.

import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';

import { io as ioV4 } from 'socket.io-client';

import { WAIT_MS } from './env.mjs';
import { nodeLogsMatching, nodeLogTails } from './nodes.mjs';

const require = createRequire(import.meta.url);
// socket.io-client 2.5.0 is CommonJS; installed under an npm alias.
const ioV2 = require('socket.io-client-v2');

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
