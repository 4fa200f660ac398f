// A minimal Socket.IO v5 client over Engine.IO v4, on k6's event-loop WebSocket.
//
// k6 has no Socket.IO client, and the official one does not run in k6's JS runtime,
// so the framing is written out here. Only the WebSocket transport is spoken (no
// long-polling, no upgrade): the load is what a socket costs once it is established.
//
// Engine.IO packets are text frames whose first character is the type:
//   0 open {sid, pingInterval, ...}   2 ping (server → client)   3 pong
//   1 close                            4 message (a Socket.IO packet follows)
// Socket.IO packets (inside an Engine.IO message):
//   0 CONNECT [nsp,] [auth]   1 DISCONNECT   2 EVENT [nsp,] [ackId] ["name", ...args]
//   3 ACK [nsp,] ackId [...args]   4 CONNECT_ERROR [nsp,] {message}
// A namespace other than "/" is written before the payload, ending with a comma.

import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';

/** The WebSocket URL of a Socket.IO server given as http(s):// or ws(s)://. */
export function socketUrl(target, path = '/socket.io/') {
  const base = String(target).replace(/^http/, 'ws').replace(/\/+$/, '');
  const p = path.endsWith('/') ? path : `${path}/`;
  return `${base}${p}?EIO=4&transport=websocket`;
}

/** Encodes a Socket.IO packet as an Engine.IO message frame. */
export function encodePacket(type, nsp, data, ackId) {
  let out = `4${type}`;
  if (nsp && nsp !== '/') out += `${nsp},`;
  if (ackId !== undefined && ackId !== null) out += String(ackId);
  if (data !== undefined) out += JSON.stringify(data);
  return out;
}

/**
 * Decodes one Engine.IO frame. Returns {eio, data} for non-message packets and
 * {eio: '4', sio: {type, nsp, id, data}} for Socket.IO packets; null on garbage.
 */
export function decodeFrame(text) {
  if (typeof text !== 'string' || text.length === 0) return null;
  const eio = text[0];
  if (eio === '0') return { eio, data: safeJson(text.slice(1)) };
  if (eio !== '4') return { eio, data: text.slice(1) };
  if (text.length < 2) return null;
  const type = Number(text[1]);
  let i = 2;
  let nsp = '/';
  if (text[i] === '/') {
    const comma = text.indexOf(',', i);
    const end = comma < 0 ? text.length : comma;
    nsp = text.slice(i, end);
    i = comma < 0 ? end : end + 1;
  }
  let id = null;
  let digits = '';
  while (i < text.length && text[i] >= '0' && text[i] <= '9') digits += text[i++];
  if (digits) id = Number(digits);
  const rest = text.slice(i);
  const data = rest ? safeJson(rest) : undefined;
  if (rest && data === undefined) return null;
  return { eio, sio: { type, nsp, id, data } };
}

function safeJson(s) {
  try {
    return JSON.parse(s);
  } catch (_) {
    return undefined;
  }
}

/**
 * One Socket.IO client socket.
 *
 * options: auth (object sent with CONNECT), nsp, path, connectTimeoutMs,
 * onConnect(sio), onConnectError(message), onClose(wasConnected), onPing().
 * Everything is callback-driven: k6 keeps the VU iteration alive until the socket
 * closes and no timer is pending.
 */
export class SocketIO {
  constructor(target, options = {}) {
    this.nsp = options.nsp || '/';
    this.options = options;
    this.handlers = {};
    this.acks = {};
    this.nextAck = 0;
    this.state = 'opening';
    this.startedAt = Date.now();
    this.ws = new WebSocket(socketUrl(target, options.path));
    this.connectTimer = setTimeout(() => {
      if (this.state !== 'connected') this.fail('connect timeout');
    }, options.connectTimeoutMs || 5000);
    this.ws.onmessage = (e) => this.onFrame(e.data);
    this.ws.onerror = (e) => this.fail(`websocket error: ${e && e.error}`);
    this.ws.onclose = () => this.closed();
  }

  onFrame(text) {
    const frame = decodeFrame(text);
    if (!frame) return;
    switch (frame.eio) {
      case '0':
        // The Engine.IO handshake: ask for the namespace with our credentials.
        this.send(encodePacket(0, this.nsp, this.options.auth));
        return;
      case '2':
        this.send('3');
        if (this.options.onPing) this.options.onPing();
        return;
      case '1':
        this.close();
        return;
      case '4':
        this.onPacket(frame.sio);
        return;
      default:
    }
  }

  onPacket(p) {
    if (p.nsp !== this.nsp) return;
    switch (p.type) {
      case 0:
        this.state = 'connected';
        clearTimeout(this.connectTimer);
        this.connectedAt = Date.now();
        if (this.options.onConnect) this.options.onConnect(this);
        return;
      case 4:
        this.fail((p.data && p.data.message) || 'connect_error');
        return;
      case 1:
        this.close();
        return;
      case 2: {
        if (!Array.isArray(p.data) || typeof p.data[0] !== 'string') return;
        const fn = this.handlers[p.data[0]];
        if (fn) fn(...p.data.slice(1));
        return;
      }
      case 3: {
        const ack = this.acks[p.id];
        if (!ack) return;
        delete this.acks[p.id];
        clearTimeout(ack.timer);
        ack.cb(null, ...(Array.isArray(p.data) ? p.data : []));
        return;
      }
      default:
    }
  }

  on(event, fn) {
    this.handlers[event] = fn;
    return this;
  }

  off(event) {
    delete this.handlers[event];
  }

  emit(event, ...args) {
    this.send(encodePacket(2, this.nsp, [event, ...args]));
  }

  /** Emits with an acknowledgement; cb(err, ...reply) is called once. */
  emitWithAck(event, args, timeoutMs, cb) {
    const id = this.nextAck++;
    const timer = setTimeout(() => {
      if (this.acks[id]) {
        delete this.acks[id];
        cb(new Error(`ack timeout for ${event}`));
      }
    }, timeoutMs);
    this.acks[id] = { cb, timer };
    this.send(encodePacket(2, this.nsp, [event, ...args], id));
  }

  send(text) {
    if (this.state === 'closed') return;
    try {
      this.ws.send(text);
    } catch (e) {
      this.fail(`send failed: ${e}`);
    }
  }

  fail(message) {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    if (!wasConnected && this.options.onConnectError) this.options.onConnectError(message);
    this.error = message;
    this.close();
  }

  close() {
    if (this.state === 'closed') return;
    this.closed();
    try {
      this.ws.close();
    } catch (_) {
      // already closing
    }
  }

  closed() {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    for (const id of Object.keys(this.acks)) {
      const ack = this.acks[id];
      delete this.acks[id];
      clearTimeout(ack.timer);
      ack.cb(new Error('socket closed'));
    }
    if (this.options.onClose) this.options.onClose(wasConnected);
  }
}

/**
 * Credentials for VU number `vu` (1-based): from the JSON file CREDENTIALS (an array
 * of handshake auth objects, used round-robin), else TOKEN, else LOGIN/PASSWORD.
 * Call only in the init context (it uses open()).
 */
export function loadCredentials(env) {
  if (env.CREDENTIALS) {
    // eslint-disable-next-line no-undef
    const list = JSON.parse(open(env.CREDENTIALS));
    if (!Array.isArray(list) || list.length === 0) throw new Error('CREDENTIALS: empty list');
    return (vu) => list[(vu - 1) % list.length];
  }
  if (env.TOKEN) return () => ({ token: env.TOKEN });
  if (env.LOGIN && env.PASSWORD) return () => ({ login: env.LOGIN, password: env.PASSWORD });
  throw new Error('set CREDENTIALS (file), TOKEN, or LOGIN and PASSWORD');
}

/** A positive integer from the environment, or the default. */
export function envInt(env, name, dflt) {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number`);
  return n;
}

/** A short random id for request uuids and room names. */
export function randomId() {
  return `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
}
