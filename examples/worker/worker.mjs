// A Roomcast request worker (the protocol is docs/workers.md).
//
// It joins the stream's consumer group, takes jobs with XREADGROUP, answers each by
// PUBLISHing one JSON reply on the job's `reply_to` channel, then acknowledges it with
// XACK. A job it takes and never acknowledges (this process dies) is taken back by the
// nodes after `requests.claim_after` and handed to another worker; so that a long job is
// not taken back while this worker is still on it, the worker re-claims the jobs it
// holds (XCLAIM … JUSTID, which resets their idle time) every WORKER_REFRESH_MS, which
// must be well under claim_after.
//
//   REDIS_URL=redis://127.0.0.1:6379 WORKER_STREAM=jobs node worker.mjs
import { createClient } from 'redis';
import { hostname } from 'node:os';

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = process.env.ROOMCAST_REQUEST_KEY_PREFIX || 'roomcast';
const stream = process.env.WORKER_STREAM || 'jobs';
const name = process.env.WORKER_NAME || `${hostname()}-${process.pid}`;
const concurrency = Number(process.env.WORKER_CONCURRENCY || 8);
const refreshMs = Number(process.env.WORKER_REFRESH_MS || 5000);
const key = `${prefix}:requests:${stream}`;
const GROUP = 'workers';

// The routes this worker answers. A handler returns the result or throws a
// WorkerError whose code the client sees.
class WorkerError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const handlers = {
  'jobs.sum': ({ params }) => {
    const numbers = params?.numbers;
    if (!Array.isArray(numbers) || !numbers.every((n) => typeof n === 'number')) {
      throw new WorkerError('bad_params', 'params.numbers must be an array of numbers');
    }
    return { sum: numbers.reduce((a, b) => a + b, 0) };
  },
  'jobs.whoami': ({ user, rooms }) => ({ user, rooms }),
  'jobs.sleep': async ({ params }) => {
    const ms = Math.min(Math.max(Number(params?.ms) || 0, 0), 60000);
    await sleep(ms);
    return { slept: ms };
  },
};


async function answer(job) {
  const handler = handlers[job.route];
  if (!handler) return { ok: false, error: { code: 'unknown_route', message: `no worker route ${job.route}` } };
  try {
    const result = await handler({
      params: JSON.parse(job.params),
      user: job.user,
      rooms: JSON.parse(job.rooms),
      uuid: job.uuid,
    });
    return { ok: true, result: { ...result, worker: name, attempt: Number(job.attempt) } };
  } catch (e) {
    if (e instanceof WorkerError) return { ok: false, error: { code: e.code, message: e.message } };
    console.error(`[${name}] ${job.route} failed:`, e);
    return { ok: false, error: { code: 'handler_error', message: 'the worker failed' } };
  }
}

const commands = createClient({ url });
// XREADGROUP with BLOCK holds its connection: it gets one of its own.
const reader = commands.duplicate();
for (const c of [commands, reader]) c.on('error', (e) => console.error(`[${name}] redis:`, e.message));
await Promise.all([commands.connect(), reader.connect()]);
try {
  await commands.xGroupCreate(key, GROUP, '0', { MKSTREAM: true });
} catch (e) {
  if (!String(e.message).startsWith('BUSYGROUP')) throw e;
}

let stopping = false;
const held = new Set(); // entry ids taken and not yet acknowledged
const refresh = setInterval(() => {
  if (held.size === 0) return;
  commands.xClaimJustId(key, GROUP, name, 0, [...held]).catch((e) => {
    console.error(`[${name}] refreshing held jobs failed:`, e.message);
  });
}, refreshMs);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => { stopping = true; });
console.log(JSON.stringify({ msg: 'worker ready', name, key }));

while (!stopping) {
  const free = concurrency - held.size;
  if (free <= 0) { await sleep(5); continue; }
  let batch;
  try {
    batch = await reader.xReadGroup(GROUP, name, { key, id: '>' }, { COUNT: free, BLOCK: 1000 });
  } catch (e) {
    console.error(`[${name}] read failed:`, e.message);
    await sleep(500);
    continue;
  }
  for (const { messages } of batch ?? []) {
    for (const { id, message: job } of messages) {
      held.add(id);
      console.log(JSON.stringify({ msg: 'took job', name, id, job: job.id, route: job.route, attempt: Number(job.attempt), traceparent: job.traceparent }));
      (async () => {
        try {
          // Nobody waits for an expired job's reply.
          if (Number(job.deadline) > Date.now()) {
            await commands.publish(job.reply_to, JSON.stringify({ id: job.id, ...(await answer(job)) }));
          }
          await commands.xAck(key, GROUP, id);
        } catch (e) {
          // Unacknowledged, the job goes to another worker after claim_after.
          console.error(`[${name}] job ${id} not answered:`, e.message);
        } finally {
          held.delete(id);
        }
      })();
    }
  }
}
while (held.size > 0) await sleep(10);
clearInterval(refresh);
await Promise.all([commands.quit(), reader.quit()]);
