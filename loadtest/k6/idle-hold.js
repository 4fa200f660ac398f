// Idle hold: every VU opens one authenticated socket and keeps it for HOLD seconds,
// answering the server's pings, then closes it. A hold succeeds when the socket
// stayed connected the whole time.
//
//   TARGET=http://127.0.0.1:3000 VUS=500 HOLD=60 TOKEN=... k6 run idle-hold.js

import { Rate, Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { SocketIO, loadCredentials, envInt } from './lib/socketio.js';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:3000';
const HOLD_S = envInt(__ENV, 'HOLD', 10);
const MIN_PINGS = envInt(__ENV, 'MIN_PINGS', 0);
const credentialsFor = loadCredentials(__ENV);

const holdOk = new Rate('sio_hold_success');
const pings = new Counter('sio_pings');
const connectTime = new Trend('sio_connect_time', true);

export const options = {
  scenarios: {
    hold: {
      executor: 'per-vu-iterations',
      vus: envInt(__ENV, 'VUS', 50),
      iterations: 1,
      maxDuration: `${HOLD_S + 30}s`,
    },
  },
  thresholds: {
    sio_hold_success: [`rate>=${__ENV.MIN_SUCCESS || 0.99}`],
    sio_connect_time: [`p(95)<${envInt(__ENV, 'P95_MS', 2000)}`],
    // MIN_PINGS > 0 proves the heartbeat is answered (use a short ping interval).
    sio_pings: [`count>=${MIN_PINGS}`],
  },
};

export default function () {
  const started = Date.now();
  let done = false;
  const finish = (ok) => {
    if (done) return;
    done = true;
    holdOk.add(ok);
  };
  const socket = new SocketIO(TARGET, {
    auth: credentialsFor(__VU),
    onPing: () => pings.add(1),
    onConnect: (s) => {
      connectTime.add(Date.now() - started);
      setTimeout(() => {
        finish(s.state === 'connected');
        s.close();
      }, HOLD_S * 1000);
    },
    onConnectError: () => finish(false),
    // Closed by the server (or the network) before the hold ended.
    onClose: () => finish(false),
  });
  return socket;
}
