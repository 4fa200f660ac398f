// Prints what the real sharded adapter of @socket.io/redis-adapter 8.3.0
// publishes, pinned in src/proto/sharded_tests.rs: `node gen-sharded-fixtures.js`.
//
// The adapter runs inside a real socket.io 4.8 server; only the Redis client
// is replaced by a recorder of SPUBLISH calls (redis@4 client shape). Random
// ids come from a patched crypto.randomBytes so the output is stable.
"use strict";

const crypto = require("crypto");
let counter = 0;
crypto.randomBytes = (n) => Buffer.alloc(n, ++counter);

const { Server } = require("socket.io");
const { createShardedAdapter } = require("@socket.io/redis-adapter");

const published = [];
const handlers = new Map();
const fakeClient = {
  sSubscribe(channel, handler) {
    handlers.set(channel, handler);
    return Promise.resolve();
  },
  sUnsubscribe(channel) {
    handlers.delete(channel);
    return Promise.resolve();
  },
  sPublish(channel, payload) {
    published.push([channel, Buffer.from(payload)]);
    return Promise.resolve(1);
  },
  // SHARDNUMSUB: pretend two servers serve the namespace.
  sendCommand(args) {
    return Promise.resolve([args[2], 2]);
  },
};

async function main() {
  const io = new Server({ adapter: createShardedAdapter(fakeClient, fakeClient) });
  const adapter = io.of("/").adapter;
  const show = async (name, fn) => {
    published.length = 0;
    await fn();
    await new Promise((r) => setTimeout(r, 20));
    for (const [channel, payload] of published) {
      console.log(name, channel, payload.toString("hex"));
    }
  };
  const receive = (msg) => handlers.get(adapter.channel)(Buffer.from(JSON.stringify(msg)), Buffer.from(adapter.channel));

  console.log("uid", adapter.uid);
  await show("broadcast", () => io.emit("ev", 1, "s", { a: 1.5 }));
  await show("broadcast_room_binary", () => io.to("r1").except("x").volatile.emit("ev", Buffer.from([1, 2, 3])));
  await show("broadcast_node_sid", () => io.to("abcdefghijklmnopqrst").emit("ev"));
  await show("broadcast_ack", () => {
    io.timeout(5000).emit("ev", () => {});
  });
  await show("sockets_join", () => io.in("r1").socketsJoin(["j1", "j2"]));
  await show("sockets_leave", () => io.except("x").socketsLeave("j1"));
  await show("disconnect_sockets", () => io.in("r1").disconnectSockets(true));
  await show("fetch_sockets", () => {
    io.in("r1").fetchSockets().catch(() => {});
  });
  await show("server_side_emit", () => io.serverSideEmit("hello", "world", 7));
  await show("server_side_emit_ack", () => {
    io.serverSideEmitWithAck("ping", { x: null }).catch(() => {});
  });
  io.on("pong", (arg, ack) => ack({ ok: true }));
  const peer = "fedcba9876543210";
  await show("server_side_emit_response", () =>
    receive({ type: 9, data: { requestId: "req1", packet: ["pong", 1] }, uid: peer, nsp: "/" }));
  await show("fetch_sockets_response", () =>
    receive({ type: 7, data: { opts: { rooms: ["nobody"], except: [] }, requestId: "req2" }, uid: peer, nsp: "/" }));
  await show("broadcast_client_count", () =>
    receive({ type: 3, data: { packet: { type: 2, data: ["ev"] }, requestId: "req3", opts: { rooms: ["nobody"], except: [], flags: {} } }, uid: peer, nsp: "/" }));
  // A real client answers broadcasts with acks: text, then binary.
  await new Promise((r) => io.listen(0) && r());
  const { io: connect } = require("socket.io-client");
  const port = io.httpServer.address().port;
  const client = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
  client.on("ask", (ack) => ack("ok"));
  client.on("askbin", (ack) => ack(Buffer.from([9, 8])));
  await new Promise((r) => client.on("connect", r));
  for (const [name, event, id] of [["broadcast_ack_text", "ask", "req4"], ["broadcast_ack_binary", "askbin", "req5"]]) {
    await show(name, async () => {
      receive({ type: 3, data: { packet: { type: 2, data: [event] }, requestId: id, opts: { rooms: [], except: [], flags: {} } }, uid: peer, nsp: "/" });
      await new Promise((r) => setTimeout(r, 100));
    });
  }
  client.close();
  io.close();
  process.exit(0);
}

main();
