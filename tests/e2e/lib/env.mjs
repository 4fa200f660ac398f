// What the e2e helpers share: where the binary and the repository are, the bound of
// every wait, and the secrets the nodes, the CLI and the tests agree on.

import { randomBytes } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..', '..');
export const BIN = process.env.ROOMCAST_BIN || join(REPO, 'target', 'debug', 'roomcast');
export const PG_URL = process.env.ROOMCAST_TEST_PG_URL || '';

/** Upper bound of every single wait in the suite. */
export const WAIT_MS = 5000;

/** Secrets and claims shared by the nodes, the CLI and the tests. */
export const SECRETS = Object.freeze({
  jwt: 'e2e-jwt-secret-0123456789abcdef-0123456789abcdef',
  session: 'e2e-session-secret-keyboard-cat-0123456789abcdef',
  issuer: 'roomcast-e2e',
  audience: 'roomcast-e2e-clients',
});

export const CLIENT_KINDS = Object.freeze(['v4-websocket', 'v4-polling', 'v2']);

/** A short random hex string, for names that must not collide. */
export function rand(n = 6) {
  return randomBytes(n).toString('hex');
}
