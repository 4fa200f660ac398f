// A Node.js member of the mixed cluster, driven by the Rust tests.
//
// Runs a socket.io 4.8 server with @socket.io/redis-adapter 8.3 on a free
// loopback port (`node peer.js URL`: classic adapter and a
// @socket.io/redis-emitter on one Redis; `node peer.js URL sharded MODE`:
// createShardedAdapter with subscriptionMode MODE on a Redis Cluster whose
// seed node is URL), and any number of
// socket.io-client sockets (to Node or Rust servers). Commands arrive as
// JSON lines on stdin ({id, cmd, ...}); answers ({id, ok} or {id, error})
// and events ({type: ...}) leave as JSON lines on stdout.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const { io: connect } = require("socket.io-client");
const { createClient, createCluster } = require("redis");

const url = process.argv[2];
const sharded = process.argv[3] === "sharded";
const subscriptionMode = process.argv[4] || "dynamic";
const out = (msg) => process.stdout.write(JSON.stringify(msg) + "\n");
const clients = new Map();

// The harness must never hang: stop with the parent or after a minute.
setTimeout(() => process.exit(3), 60_000).unref();
process.stdin.on("end", () => process.exit(0));

function select(target, op) {
  let t = target;
  for (const room of op.rooms || []) t = t.to(room);
  for (const room of op.except || []) t = t.except(room);
  if (op.volatile) t = t.volatile;
  return t;
}

async function main() {
  let adapter;
  let emitter = null;
  if (sharded) {
    const pub = createCluster({ rootNodes: [{ url }] });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    adapter = createShardedAdapter(pub, sub, { subscriptionMode });
  } else {
    const pub = createClient({ url });
    const sub = pub.duplicate();
    const emitterClient = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);
    adapter = createAdapter(pub, sub, { requestsTimeout: 2000 });
    emitter = new Emitter(emitterClient);
  }

  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter });
  io.on("connection", (socket) => {
    socket.on("join", (room) => socket.join(room));
    socket.on("leave", (room) => socket.leave(room));
  });
  io.on("sse", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    out({ type: "server-event", event: "sse", args });
    if (ack) ack("node");
  });

  const commands = {
    async client({ name, url, ackDelay = 0 }) {
      const socket = connect(url, { transports: ["websocket"], reconnection: false, forceNew: true });
      clients.set(name, socket);
      socket.onAny((event, ...args) => {
        const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
        out({ type: "event", client: name, event, args });
        if (ack) setTimeout(() => ack(name), ackDelay);
      });
      socket.on("disconnect", (reason) => out({ type: "disconnect", client: name, reason }));
      await new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      });
      return socket.id;
    },
    async clientEmit({ name, event, args }) {
      clients.get(name).emit(event, ...args);
      return null;
    },
    async io(op) {
      const target = select(io, op);
      switch (op.op) {
        case "emit":
          target.emit(op.event, ...op.args);
          return null;
        case "emitWithAck":
          return await target.timeout(op.timeout).emitWithAck(op.event, ...op.args);
        case "fetchSockets":
          return (await target.fetchSockets()).map((s) => ({
            id: s.id,
            rooms: [...s.rooms],
            handshake: s.handshake,
            data: s.data,
          }));
        case "socketsJoin":
          target.socketsJoin(op.room);
          return null;
        case "socketsLeave":
          target.socketsLeave(op.room);
          return null;
        case "disconnectSockets":
          target.disconnectSockets();
          return null;
        case "allRooms":
          return [...(await io.of("/").adapter.allRooms())];
        case "serverCount":
          return await io.of("/").adapter.serverCount();
        case "serverSideEmit":
          io.serverSideEmit(op.event, ...op.args);
          return null;
        case "serverSideEmitWithAck":
          return await io.serverSideEmitWithAck(op.event, ...op.args);
        default:
          throw new Error("unknown io op " + op.op);
      }
    },
    async emitter(op) {
      const target = select(emitter, op);
      switch (op.op) {
        case "emit":
          target.emit(op.event, ...op.args);
          return null;
        case "socketsJoin":
          target.socketsJoin(op.room);
          return null;
        case "socketsLeave":
          target.socketsLeave(op.room);
          return null;
        case "disconnectSockets":
          target.disconnectSockets();
          return null;
        case "serverSideEmit":
          emitter.serverSideEmit(op.event, ...op.args);
          return null;
        default:
          throw new Error("unknown emitter op " + op.op);
      }
    },
  };

  readline.createInterface({ input: process.stdin }).on("line", async (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
      out({ id: msg.id, ok: await commands[msg.cmd](msg) });
    } catch (err) {
      out({ id: msg && msg.id, error: String(err && err.message) });
    }
  });

  httpServer.listen(0, "127.0.0.1", () => out({ type: "ready", port: httpServer.address().port }));
}

main().catch((err) => {
  out({ type: "fatal", error: String(err) });
  process.exit(2);
});
