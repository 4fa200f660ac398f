// Roomcast client helper: makes an official socket.io-client v4 socket get its rooms and
// the messages it missed back after any reconnect, on whichever node it lands.
// No dependencies, no globals: one export that wraps a socket in place.
//
//   import { io } from '/socket.io/socket.io.esm.min.js';
//   import { recoverable } from '/socket.io/roomcast.mjs';
//   const socket = recoverable(io(url, { auth: { token } }));
//   socket.on('recovery', ({ recovered, reason, rooms }) => { ... });
//   socket.roomcast.rooms();            // ['lobby', ...]: the rooms the socket is in
//   socket.roomcast.position('lobby');  // { offset, epoch } of the last event seen, or null
//
// What it does (the wire contract is in the server's docs/recovery.md):
// - remembers per room the `{offset, epoch}` of the last `incomingMessage` or
//   `ds invalidate` it passed on, of the `join room` ack (the position to recover from
//   when nothing arrived), and of the `recovery` report; forgets a room on a successful
//   `leave room` ack. Rooms are learnt from acks only when the app asks for one;
//   callbacks, `emitWithAck` and `timeout()` all work;
// - keeps the one-time `token` of the latest `recovery` event and, on every (re)connect,
//   sends the app's own auth (object or function, also when reassigned later to
//   `socket.auth`) plus `recover: {token, rooms}`;
// - drops an event whose offset is not newer than the one it has for that room and epoch
//   (the summary of missed invalidations after a replay excepted). The server sends each
//   event once; this guards against a duplicate reaching the app all the same (a message
//   relayed twice by the app's own servers, say).
// Call it right after `io()`, before the socket first connects: the first `recovery`
// event carries the token the next reconnect needs.

/**
 * Makes `socket` recoverable and returns it, with `socket.roomcast` added.
 * @param {import('socket.io-client').Socket} socket
 */
export function recoverable(socket) {
  if (socket.roomcast) return socket;
  // room -> {offset, epoch} of the last event seen, or null for a room without history.
  const rooms = new Map();
  let token = null;
  let appAuth = socket.auth;

  // Moves a room's position forward; false when `position` is not newer than the known one.
  function advance(room, position) {
    const known = rooms.get(room);
    if (known && known.epoch === position.epoch && known.offset >= position.offset) return false;
    rooms.set(room, { offset: position.offset, epoch: position.epoch });
    return true;
  }

  // The report lists every room the new socket was put back in; it replaces what we had.
  function onRecovery(report) {
    if (!report || typeof report !== 'object') return;
    if (typeof report.token === 'string') token = report.token;
    const before = new Map(rooms);
    rooms.clear();
    for (const [room, state] of Object.entries(report.rooms ?? {})) {
      if (!state || state.reason === 'not_member' || state.reason === 'room_forbidden') continue;
      // A recovered room keeps its old position: the replayed events that follow move it.
      if (state.recovered && before.get(room)) rooms.set(room, before.get(room));
      else rooms.set(room, hasPosition(state) ? { offset: state.offset, epoch: state.epoch } : null);
    }
  }

  const onevent = socket.onevent;
  socket.onevent = function (packet) {
    const [event, data] = packet.data ?? [];
    if (event === 'recovery') onRecovery(data);
    else if (hasPosition(data) && typeof data.room === 'string') {
      // The one `ds invalidate {missed}` after a replay carries the room's position, the
      // offset of the last replayed message too: always passed on.
      if (!advance(data.room, data) && !('missed' in data)) return;
    }
    return onevent.call(this, packet);
  };

  const emit = socket.emit;
  socket.emit = function (event, ...args) {
    const callback = args[args.length - 1];
    if ((event === 'join room' || event === 'leave room') && typeof callback === 'function') {
      const watched = function (...reply) {
        const ack = reply.find((arg) => arg && typeof arg === 'object' && arg.ok === true);
        if (typeof ack?.room === 'string') {
          if (event === 'leave room') rooms.delete(ack.room);
          else if (hasPosition(ack)) advance(ack.room, ack);
          else if (!rooms.has(ack.room)) rooms.set(ack.room, null);
        }
        return callback.apply(this, reply);
      };
      // socket.io-client passes an error first to callbacks marked so (emitWithAck, timeout).
      watched.withError = callback.withError;
      args[args.length - 1] = watched;
    }
    return emit.call(this, event, ...args);
  };

  // socket.io-client reads `auth` at each CONNECT; a function lets it see the latest token.
  function authWithRecovery(send) {
    const withRecover = (auth) => {
      const positions = {};
      for (const [room, position] of rooms) if (position) positions[room] = position;
      send(token ? { ...auth, recover: { token, rooms: positions } } : auth);
    };
    if (typeof appAuth === 'function') appAuth(withRecover);
    else withRecover(appAuth);
  }
  Object.defineProperty(socket, 'auth', {
    configurable: true,
    get: () => authWithRecovery,
    set: (auth) => { appAuth = auth; },
  });

  socket.roomcast = Object.freeze({
    rooms: () => [...rooms.keys()],
    position: (room) => (rooms.get(room) ? { ...rooms.get(room) } : null),
  });
  return socket;
}

function hasPosition(data) {
  return Boolean(data) && Number.isSafeInteger(data.offset) && typeof data.epoch === 'string';
}
