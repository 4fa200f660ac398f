// Bounded waits, HTTP GETs and the Prometheus text of a node's /metrics.

import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';

import { WAIT_MS } from './env.mjs';

/** Polls `fn` until it returns a truthy value (returned) or `timeout` passes (throws). */
export async function waitUntil(fn, what, timeout = WAIT_MS, every = 25) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await delay(every);
  }
}

export async function httpGet(url, path) {
  const ctl = AbortSignal.timeout(WAIT_MS);
  const r = await fetch(`${url}${path}`, { signal: ctl });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

/** Parses Prometheus text: [{name, labels: {...}, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `match`. */
export function metricSum(samples, name, match = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

export async function metrics(url) {
  const r = await httpGet(url, '/metrics');
  assert.equal(r.status, 200, '/metrics status');
  return parseMetrics(r.body);
}
