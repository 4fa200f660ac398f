// Connection storm: every VU opens an authenticated socket, waits for the CONNECT
// reply (auth checked and session row written by then), and closes it, again and
// again. Measures the full Engine.IO + Socket.IO handshake with auth.
//
//   TARGET=http://127.0.0.1:3000 VUS=50 DURATION=30s TOKEN=... k6 run connect-storm.js

import { Trend, Rate, Counter } from 'k6/metrics';
import { SocketIO, loadCredentials, envInt } from './lib/socketio.js';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:3000';
const credentialsFor = loadCredentials(__ENV);

const connectTime = new Trend('sio_connect_time', true);
const connectOk = new Rate('sio_connect_success');
const connectErrors = new Counter('sio_connect_errors');

export const options = {
  scenarios: {
    storm: {
      executor: 'constant-vus',
      vus: envInt(__ENV, 'VUS', 20),
      duration: __ENV.DURATION || '10s',
      gracefulStop: '5s',
    },
  },
  thresholds: {
    sio_connect_success: [`rate>=${__ENV.MIN_SUCCESS || 0.99}`],
    sio_connect_time: [`p(95)<${envInt(__ENV, 'P95_MS', 1000)}`],
    // At least one handshake per VU, or the run proved nothing.
    iterations: [`count>=${envInt(__ENV, 'VUS', 20)}`],
  },
};

// The first few refusals of each VU are printed, so a failed run says why.
let reported = 0;

export default function () {
  const started = Date.now();
  const socket = new SocketIO(TARGET, {
    auth: credentialsFor(__VU),
    connectTimeoutMs: envInt(__ENV, 'CONNECT_TIMEOUT_MS', 5000),
    onConnect: (s) => {
      connectTime.add(Date.now() - started);
      connectOk.add(true);
      s.close();
    },
    onConnectError: (message) => {
      connectOk.add(false);
      if (reported++ < 3) console.warn(`VU ${__VU}: connect failed: ${message}`);
      connectErrors.add(1, { message: String(message).slice(0, 60) });
    },
  });
  return socket;
}
