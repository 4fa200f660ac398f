// Chat: VUs talk in rooms of GROUP members each. Every VU sends a message every
// INTERVAL_MS with an ack, and checks that the ack carries a message id and that the
// same message comes back to it as `incomingMessage` (the sender is a member too).
//
//   TARGET=http://127.0.0.1:3000 VUS=100 GROUP=10 INTERVAL_MS=1000 HOLD=30 TOKEN=... \
//     k6 run chat.js

import { Trend, Rate, Counter } from 'k6/metrics';
import { setTimeout, setInterval, clearInterval } from 'k6/timers';
import { SocketIO, loadCredentials, envInt } from './lib/socketio.js';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:3000';
const HOLD_S = envInt(__ENV, 'HOLD', 10);
const GROUP = Math.max(1, envInt(__ENV, 'GROUP', 5));
const INTERVAL_MS = envInt(__ENV, 'INTERVAL_MS', 500);
const PREFIX = __ENV.ROOM_PREFIX || 'k6-chat';
const credentialsFor = loadCredentials(__ENV);

const ackTime = new Trend('sio_chat_ack_time', true);
const echoTime = new Trend('sio_chat_echo_time', true);
const ackOk = new Rate('sio_chat_ack_success');
const echoOk = new Rate('sio_chat_echo_success');
const received = new Counter('sio_chat_received');

export const options = {
  scenarios: {
    chat: {
      executor: 'per-vu-iterations',
      vus: envInt(__ENV, 'VUS', 10),
      iterations: 1,
      maxDuration: `${HOLD_S + 30}s`,
    },
  },
  thresholds: {
    sio_chat_ack_success: ['rate>=0.99'],
    sio_chat_echo_success: ['rate>=0.99'],
    sio_chat_ack_time: [`p(95)<${envInt(__ENV, 'P95_MS', 250)}`],
    sio_chat_echo_time: [`p(95)<${envInt(__ENV, 'P95_MS', 250)}`],
    sio_chat_received: [`count>=${envInt(__ENV, 'MIN_RECEIVED', 1)}`],
  },
};

export default function () {
  const room = `${PREFIX}-${Math.floor((__VU - 1) / GROUP)}`;
  // Sequence numbers this VU sent, with their send time, until they come back.
  const pending = {};
  const me = `${__VU}-${Math.floor(Math.random() * 1e9)}`;
  const socket = new SocketIO(TARGET, {
    auth: credentialsFor(__VU),
    onConnect: (s) => {
      s.on('incomingMessage', (msg) => {
        received.add(1);
        const m = msg && msg.message;
        if (!m || m.from !== me || pending[m.seq] === undefined) return;
        echoTime.add(Date.now() - pending[m.seq]);
        echoOk.add(true);
        delete pending[m.seq];
      });
      s.emitWithAck('join room', [room], 5000, (err, reply) => {
        if (err || !reply || reply.ok !== true) {
          ackOk.add(false);
          return s.close();
        }
        let seq = 0;
        const timer = setInterval(() => {
          const sentAt = Date.now();
          const n = seq++;
          pending[n] = sentAt;
          const payload = { room, message: { from: me, seq: n, text: `hello from ${me}` } };
          s.emitWithAck('sendMessage', [payload], 5000, (e, r) => {
            const ok = !e && r && r.ok === true && typeof r.id === 'string';
            ackOk.add(ok);
            if (ok) ackTime.add(Date.now() - sentAt);
          });
        }, INTERVAL_MS);
        setTimeout(() => {
          clearInterval(timer);
          setTimeout(() => {
            // What never came back counts as a failed echo.
            for (let i = Object.keys(pending).length; i > 0; i--) echoOk.add(false);
            s.close();
          }, 1000);
        }, HOLD_S * 1000);
        return undefined;
      });
    },
    onConnectError: () => ackOk.add(false),
  });
  return socket;
}
