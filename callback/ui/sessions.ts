import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The dashboard's server-side sessions: the browser holds only a random id (an HttpOnly cookie); the
 * admin token is checked once, at login, and never leaves the server again. Each session has its own
 * CSRF token (sent back in a header by the page's own script) and a fixed lifetime. In memory: a
 * restart logs everyone out, which costs one login.
 */

export interface Session {
  id: string;
  /** Who logged in, as they named themselves at login (the admin token is shared): for the audit log. */
  operator: string;
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export interface Sessions {
  create(operator: string, now: number): Session;
  /** The live session with this id, or undefined (unknown or expired: then forgotten). */
  get(id: string | undefined, now: number): Session | undefined;
  end(id: string | undefined): void;
  size(): number;
}

export const SESSION_TTL_MS = 8 * 3_600_000;
/** More live sessions than this drops the oldest: a flood of logins cannot grow memory without bound. */
const MAX_SESSIONS = 1000;

const token = () => randomBytes(32).toString('base64url');

export function createSessions(ttlMs = SESSION_TTL_MS): Sessions {
  const live = new Map<string, Session>();
  return {
    create(operator, now) {
      for (const [id, s] of live) if (s.expiresAt <= now) live.delete(id);
      while (live.size >= MAX_SESSIONS) live.delete(live.keys().next().value as string);
      const s: Session = { id: token(), operator, csrf: token(), createdAt: now, expiresAt: now + ttlMs };
      live.set(s.id, s);
      return s;
    },
    get(id, now) {
      if (!id) return undefined;
      const s = live.get(id);
      if (!s) return undefined;
      if (s.expiresAt <= now) {
        live.delete(id);
        return undefined;
      }
      return s;
    },
    end(id) {
      if (id) live.delete(id);
    },
    size: () => live.size,
  };
}

/** Equal strings, compared in constant time (hashed first: lengths may differ and must not leak). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** A short, stable, non-reversible name for a session in logs (the id itself is a credential). */
export function sessionTag(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 12);
}

/** One cookie's value from a Cookie header; undefined when absent. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
