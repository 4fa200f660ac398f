// Room fan-out: VUS members join one room; the first SENDERS of them send a
// timestamped `sendMessage` every INTERVAL_MS after a warm-up. Every member times
// each `incomingMessage` it receives against the timestamp in the payload (sender and
// receivers share this k6 process's clock, so the figure is one-way delivery time).
//
//   TARGET=http://127.0.0.1:3000 VUS=200 SENDERS=2 INTERVAL_MS=100 HOLD=30 TOKEN=... \
//     k6 run fanout.js

import { Trend, Rate, Counter } from 'k6/metrics';
import { setTimeout, setInterval, clearInterval } from 'k6/timers';
import { SocketIO, loadCredentials, envInt } from './lib/socketio.js';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:3000';
const HOLD_S = envInt(__ENV, 'HOLD', 10);
const SENDERS = envInt(__ENV, 'SENDERS', 1);
const INTERVAL_MS = envInt(__ENV, 'INTERVAL_MS', 200);
const WARMUP_MS = envInt(__ENV, 'WARMUP_MS', 2000);
const ROOM = __ENV.ROOM || 'k6-fanout';
const credentialsFor = loadCredentials(__ENV);

const latency = new Trend('sio_delivery_latency', true);
const deliveries = new Counter('sio_deliveries');
const sent = new Counter('sio_messages_sent');
const joinOk = new Rate('sio_join_success');
const sendOk = new Rate('sio_send_success');

export const options = {
  scenarios: {
    fanout: {
      executor: 'per-vu-iterations',
      vus: envInt(__ENV, 'VUS', 20),
      iterations: 1,
      maxDuration: `${HOLD_S + 30}s`,
    },
  },
  thresholds: {
    sio_join_success: ['rate>=0.99'],
    sio_send_success: ['rate>=0.99'],
    sio_delivery_latency: [
      `p(50)<${envInt(__ENV, 'P50_MS', 100)}`,
      `p(99)<${envInt(__ENV, 'P99_MS', 500)}`,
    ],
    sio_deliveries: [`count>=${envInt(__ENV, 'MIN_DELIVERIES', 1)}`],
  },
};

export default function () {
  const socket = new SocketIO(TARGET, {
    auth: credentialsFor(__VU),
    onConnect: (s) => {
      s.on('incomingMessage', (msg) => {
        const t = msg && msg.message && msg.message.t;
        if (typeof t !== 'number') return;
        latency.add(Date.now() - t);
        deliveries.add(1);
      });
      s.emitWithAck('join room', [ROOM], 5000, (err, reply) => {
        const ok = !err && reply && reply.ok === true;
        joinOk.add(ok);
        if (!ok) return s.close();
        let timer = null;
        if (__VU <= SENDERS) {
          setTimeout(() => {
            timer = setInterval(() => {
              sent.add(1);
              const payload = { room: ROOM, message: { t: Date.now(), vu: __VU } };
              s.emitWithAck('sendMessage', [payload], 5000, (e, r) => sendOk.add(!e && r && r.ok === true));
            }, INTERVAL_MS);
          }, WARMUP_MS);
        }
        setTimeout(() => {
          if (timer !== null) clearInterval(timer);
          // Let the last messages arrive before leaving.
          setTimeout(() => s.close(), 500);
        }, HOLD_S * 1000);
        return undefined;
      });
    },
    onConnectError: () => joinOk.add(false),
  });
  return socket;
}
