import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com, spec v1.0.0): the receiver gets
 *   webhook-id: <event id>            (also the idempotency key: one fact, one id, on every retry)
 *   webhook-timestamp: <unix seconds>
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")> [v1,<...> ...]
 * where key is the base64 part of a `whsec_...` secret. One signature per secret, space-separated,
 * so a subscriber can rotate its secret without a moment in which deliveries fail verification.
 */

export const SECRET_PREFIX = 'whsec_';
/** The spec asks for 24 to 64 random bytes. */
export const MIN_SECRET_BYTES = 24;
export const MAX_SECRET_BYTES = 64;

export interface SignatureHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** `whsec_<base64>` → key bytes, or why the text is not a usable secret. */
export function parseSigningSecret(secret: string): { ok: true; key: Buffer } | { ok: false; reason: string } {
  const s = secret.trim();
  if (!s.startsWith(SECRET_PREFIX)) return { ok: false, reason: `a signing secret must start with ${SECRET_PREFIX}` };
  const b64 = s.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return { ok: false, reason: `a signing secret is ${SECRET_PREFIX} followed by base64` };
  const key = Buffer.from(b64, 'base64');
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES) {
    return { ok: false, reason: `a signing secret must decode to ${MIN_SECRET_BYTES}–${MAX_SECRET_BYTES} bytes (got ${key.length})` };
  }
  return { ok: true, key };
}

function keyOf(secret: string): Buffer {
  const parsed = parseSigningSecret(secret);
  // Subscribers are validated at load (subscribers/parse.ts); reaching this is a programming error.
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.key;
}

// Keys by the secrets list they came from (a subscriber's signingKeys, the same array for every
// delivery): parsing the secret and preparing the key took a third of the time of a signature.
const keysOf = new WeakMap<readonly string[], KeyObject[]>();

function keysFor(secrets: readonly string[]): KeyObject[] {
  let keys = keysOf.get(secrets);
  if (!keys) keysOf.set(secrets, (keys = secrets.map((s) => createSecretKey(keyOf(s)))));
  return keys;
}

function signature(key: Buffer | KeyObject, id: string, timestamp: number, body: string): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
}

export interface SignInput {
  /** The event id (EventId). */
  id: string;
  /** Unix seconds, when the attempt is sent. */
  timestamp: number;
  /** Exactly the bytes sent. */
  body: string;
  /** `whsec_...` secrets; every one signs. Read once per array: to change the secrets, pass a new array. */
  secrets: readonly string[];
}

export function sign({ id, timestamp, body, secrets }: SignInput): SignatureHeaders {
  if (secrets.length === 0) throw new Error('sign() needs at least one secret');
  const ts = Math.floor(timestamp);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': keysFor(secrets)
      .map((key) => `v1,${signature(key, id, ts, body)}`)
      .join(' '),
  };
}

export interface VerifyInput {
  headers: Readonly<Record<string, string | undefined>>;
  body: string;
  secrets: readonly string[];
  /** Unix seconds. */
  now: number;
  /** Default 300 s, as the spec's reference libraries use. */
  toleranceSeconds?: number;
}

/**
 * What a subscriber does (for the demo receiver and tests): true when any `v1,` signature matches any
 * secret, compared in constant time, and the timestamp is within tolerance of `now`.
 */
export function verify({ headers, body, secrets, now, toleranceSeconds = 300 }: VerifyInput): boolean {
  const id = headers['webhook-id'];
  const ts = Number(headers['webhook-timestamp']);
  const sent = headers['webhook-signature'];
  if (!id || !sent || !Number.isInteger(ts) || Math.abs(now - ts) > toleranceSeconds) return false;
  const offered = sent
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  return secrets.some((secret) => {
    const parsed = parseSigningSecret(secret);
    if (!parsed.ok) return false;
    const want = Buffer.from(signature(parsed.key, id, ts, body), 'base64');
    return offered.some((got) => got.length === want.length && timingSafeEqual(got, want));
  });
}
