// Request round trips: every VU sends `request {uuid, route: "echo", params}` RATE
// times a second with an ack (RATE is per VU: the whole run sends VUS × RATE requests/s)
// and times the reply event `request <uuid>`.
// A round trip succeeds when both the reply event and the ack arrive with
// `ok: true` and the params echoed back unchanged.
//
//   TARGET=http://127.0.0.1:3000 VUS=20 RATE=50 HOLD=30 TOKEN=... k6 run requests.js

import { Trend, Rate, Counter } from 'k6/metrics';
import { setTimeout, clearTimeout, setInterval, clearInterval } from 'k6/timers';
import { SocketIO, loadCredentials, envInt, randomId } from './lib/socketio.js';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:3000';
const HOLD_S = envInt(__ENV, 'HOLD', 10);
const RATE = Math.max(1, envInt(__ENV, 'RATE', 10));
const ROUTE = __ENV.ROUTE || 'echo';
const credentialsFor = loadCredentials(__ENV);

const rtt = new Trend('sio_request_rtt', true);
const requestOk = new Rate('sio_request_success');
const requests = new Counter('sio_requests');

export const options = {
  scenarios: {
    requests: {
      executor: 'per-vu-iterations',
      vus: envInt(__ENV, 'VUS', 5),
      iterations: 1,
      maxDuration: `${HOLD_S + 30}s`,
    },
  },
  thresholds: {
    sio_request_success: [`rate>=${__ENV.MIN_SUCCESS || 0.999}`],
    sio_request_rtt: [
      `p(50)<${envInt(__ENV, 'P50_MS', 20)}`,
      `p(99)<${envInt(__ENV, 'P99_MS', 100)}`,
    ],
    sio_requests: [`count>=${envInt(__ENV, 'MIN_REQUESTS', 1)}`],
  },
};

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export default function () {
  const socket = new SocketIO(TARGET, {
    auth: credentialsFor(__VU),
    onConnect: (s) => {
      const timer = setInterval(() => {
        const uuid = randomId();
        const params = { n: Math.floor(Math.random() * 1e6), vu: __VU };
        const sentAt = Date.now();
        let replied = false;
        let acked = false;
        let failed = false;
        // A reply event that never comes fails the request as a lost ack does.
        const guard = setTimeout(() => fail(), 5000);
        const settle = () => {
          if (failed || !replied || !acked) return;
          clearTimeout(guard);
          rtt.add(Date.now() - sentAt);
          requestOk.add(true);
        };
        const fail = () => {
          if (failed || (replied && acked)) return;
          failed = true;
          clearTimeout(guard);
          s.off(`request ${uuid}`);
          requestOk.add(false);
        };
        requests.add(1);
        s.on(`request ${uuid}`, (body) => {
          s.off(`request ${uuid}`);
          if (!body || body.ok !== true || body.uuid !== uuid || (ROUTE === 'echo' && !sameJson(body.result, params))) return fail();
          replied = true;
          return settle();
        });
        s.emitWithAck('request', [{ uuid, route: ROUTE, params }], 5000, (err, body) => {
          if (err || !body || body.ok !== true || body.uuid !== uuid) return fail();
          acked = true;
          return settle();
        });
      }, 1000 / RATE);
      setTimeout(() => {
        clearInterval(timer);
        setTimeout(() => s.close(), 500);
      }, HOLD_S * 1000);
    },
    onConnectError: () => requestOk.add(false),
  });
  return socket;
}
