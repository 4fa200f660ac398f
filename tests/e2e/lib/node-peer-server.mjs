// A Node.js Socket.IO server in the mixed cluster: socket.io 4.8 with
// @socket.io/redis-adapter 8.3 (classic `createAdapter`, or `createShardedAdapter` on a
// Redis 7 server or Redis Cluster), and in classic mode a @socket.io/redis-emitter on the
// same Redis. Started and driven by node-peer.mjs: options as JSON in argv[2]; commands
// as JSON lines on stdin ({id, cmd, ...fields}); answers ({id, ok} or {id, error}) and
// events ({type, ...}) as JSON lines on stdout.
import http from 'node:http';
import readline from 'node:readline';
import { Server } from 'socket.io';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Emitter } from '@socket.io/redis-emitter';
import { createClient, createCluster } from 'redis';

const { redisUrl, sharded, subscriptionMode, cluster, namespaces, requestsTimeout, lifetimeMs } = JSON.parse(
  process.argv[2],
);
const out = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);

// Never outlive the test: stop with the parent's stdin or after `lifetimeMs`.
setTimeout(() => process.exit(3), lifetimeMs).unref();
process.stdin.on('end', () => process.exit(0));

/** `io.of(nsp)` narrowed to rooms / except, as the fields say. */
function target(root, { nsp = '/', rooms = [], except = [] }) {
  let t = root === 'emitter' ? emitter.of(nsp) : io.of(nsp);
  for (const room of rooms) t = t.to(room);
  for (const room of except) t = t.except(room);
  return t;
}

let io;
let emitter = null;

async function main() {
  let adapter;
  if (sharded) {
    const pub = cluster ? createCluster({ rootNodes: [{ url: redisUrl }] }) : createClient({ url: redisUrl });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    adapter = createShardedAdapter(pub, sub, { subscriptionMode });
  } else {
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    const emitterClient = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);
    adapter = createAdapter(pub, sub, { requestsTimeout });
    emitter = new Emitter(emitterClient);
  }
  const httpServer = http.createServer();
  io = new Server(httpServer, { adapter });
  for (const nsp of namespaces) {
    io.of(nsp).on('connection', (socket) => {
      out({ type: 'connection', nsp, id: socket.id });
      socket.on('disconnect', (reason) => out({ type: 'disconnect', nsp, id: socket.id, reason }));
    });
  }

  const commands = {
    async fetchSockets(f) {
      const sockets = await target('io', f).fetchSockets();
      return sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data }));
    },
    async socketsJoin(f) {
      target('io', f).socketsJoin(f.room);
      return null;
    },
    async socketsLeave(f) {
      target('io', f).socketsLeave(f.room);
      return null;
    },
    async disconnectSockets(f) {
      target('io', f).disconnectSockets(true);
      return null;
    },
    async emit(f) {
      target('io', f).emit(f.event, ...(f.args ?? []));
      return null;
    },
    // Node's callback form: on timeout the answers received so far come with the error.
    async serverSideEmitWithAck({ nsp = '/', event, args = [] }) {
      return await new Promise((resolve) => {
        io.of(nsp).serverSideEmit(event, ...args, (err, responses) => {
          resolve({ error: err ? String(err.message) : null, responses });
        });
      });
    },
    async serverCount({ nsp = '/' }) {
      return await io.of(nsp).adapter.serverCount();
    },
    async emitter(f) {
      if (!emitter) throw new Error('the emitter speaks the classic protocol only');
      const t = target('emitter', f);
      switch (f.op) {
        case 'socketsJoin':
          t.socketsJoin(f.room);
          return null;
        case 'socketsLeave':
          t.socketsLeave(f.room);
          return null;
        case 'disconnectSockets':
          t.disconnectSockets(true);
          return null;
        case 'emit':
          t.emit(f.event, ...(f.args ?? []));
          return null;
        default:
          throw new Error(`unknown emitter op ${f.op}`);
      }
    },
  };

  readline.createInterface({ input: process.stdin }).on('line', async (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
      const run = commands[msg.cmd];
      if (!run) throw new Error(`unknown command ${msg.cmd}`);
      out({ id: msg.id, ok: await run(msg.fields ?? {}) });
    } catch (err) {
      out({ id: msg?.id, error: String(err?.message ?? err) });
    }
  });

  httpServer.listen(0, '127.0.0.1', () => out({ type: 'ready', port: httpServer.address().port }));
}

main().catch((err) => {
  out({ type: 'fatal', error: String(err?.stack ?? err) });
  process.exit(2);
});
