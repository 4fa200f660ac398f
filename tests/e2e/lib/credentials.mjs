// JWTs and signed session cookies, built independently from the server.

import { createHmac, randomBytes } from 'node:crypto';

import { SECRETS } from './env.mjs';

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** An HS* JWT; `alg: 'none'` yields an unsigned token. */
export function signJwt(claims, { secret = SECRETS.jwt, alg = 'HS256', header = {} } = {}) {
  const h = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(claims));
  if (alg === 'none') return `${h}.${p}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const sig = createHmac(hash, secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

export function claims(sub, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub, iat: now, exp: now + 3600, iss: SECRETS.issuer, aud: SECRETS.audience, ...extra };
}

/** cookie-signature's sign(): `<value>.<base64(HMAC-SHA256) without '='>`. */
export function signCookieValue(value, secret = SECRETS.session) {
  const mac = createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '');
  return `${value}.${mac}`;
}

/** The Cookie header express-session would have set for session `sid`. */
export function sessionCookie(sid, { secret = SECRETS.session, name = 'connect.sid' } = {}) {
  return `${name}=${encodeURIComponent(`s:${signCookieValue(sid, secret)}`)}`;
}

/** A row shaped like express-session's, as connect-pg-simple stores it. */
export function expressSess(user, expire) {
  return {
    cookie: { originalMaxAge: 3600000, expires: expire.toISOString(), httpOnly: true, path: '/' },
    ...(user === undefined ? {} : { user }),
  };
}

export function newSid() {
  // express-session uses uid-safe(24): 32 URL-safe characters.
  return randomBytes(24).toString('base64url');
}
