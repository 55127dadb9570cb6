import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Hook tokens: how the callback knows a hook call came from a workflow the webhook injected.
 *
 * At admission the webhook mints `kn1.<kid>.<mac>` where
 *   mac = base64url(HMAC-SHA256(key, "kfp-notify-hook-v1\n" + namespace + "\n" + kfpRunId))
 * and bakes it into that workflow's hook template. The callback recomputes the MAC from the
 * namespace and run id the call claims. So:
 * - a call without a token, or with one not made from our key, is rejected (401/403);
 * - a token copied out of one workflow only ever speaks for that workflow's namespace and run id;
 *   claiming another run with it fails the MAC.
 * The key never leaves the webhook and callback processes. Several keys may be configured: the
 * first signs, all verify (rotation without a flag day); `kid` picks the key without trying each.
 */

const TOKEN_PREFIX = 'kn1';
const DOMAIN = 'kfp-notify-hook-v1';

export interface HookKey {
  kid: string;
  secret: Buffer;
}

export interface TokenSubject {
  namespace: string;
  kfpRunId: string;
}

export function hookKeyFromSecret(secret: string | Buffer): HookKey {
  const buf = typeof secret === 'string' ? Buffer.from(secret.trim(), 'utf8') : secret;
  if (buf.length < 16) throw new Error('hook key must be at least 16 bytes');
  const kid = createHash('sha256').update(buf).digest('hex').slice(0, 8);
  return { kid, secret: buf };
}

/** Parse a key file: one key per line, blank lines and `#` comments ignored; the first key signs. */
export function parseHookKeys(text: string): HookKey[] {
  const keys = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map(hookKeyFromSecret);
  if (keys.length === 0) throw new Error('no hook key found');
  return keys;
}

export function newHookKeySecret(): string {
  return randomBytes(32).toString('base64url');
}

function mac(key: HookKey, s: TokenSubject): string {
  return createHmac('sha256', key.secret).update(`${DOMAIN}\n${s.namespace}\n${s.kfpRunId}`).digest('base64url');
}

export function mintHookToken(key: HookKey, subject: TokenSubject): string {
  return `${TOKEN_PREFIX}.${key.kid}.${mac(key, subject)}`;
}

export type TokenVerdict = { ok: true } | { ok: false; status: 401 | 403; reason: string };

export function verifyHookToken(keys: readonly HookKey[], token: string | undefined, subject: TokenSubject): TokenVerdict {
  if (!token) return { ok: false, status: 401, reason: 'missing bearer token' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX) return { ok: false, status: 401, reason: 'malformed hook token' };
  const key = keys.find((k) => k.kid === parts[1]);
  if (!key) return { ok: false, status: 403, reason: 'hook token signed by an unknown key' };
  const want = Buffer.from(mac(key, subject));
  const got = Buffer.from(parts[2] ?? '');
  if (want.length !== got.length || !timingSafeEqual(want, got)) {
    return { ok: false, status: 403, reason: 'hook token does not match this namespace and run id' };
  }
  return { ok: true };
}

/** `Authorization: Bearer <token>` → token, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m?.[1];
}
