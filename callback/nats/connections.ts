import { createHash } from 'node:crypto';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/error-message.js';
import type { NatsTarget } from './config.js';
import { within } from './within.js';

/**
 * NATS connections, one per server set and identity: every subscriber that names the same servers
 * with the same credentials and TLS shares one connection (NATS multiplexes; a connection per
 * subscriber would only cost sockets and handshakes).
 *
 * - The first connect happens at the first delivery, tries each server once, and on failure the
 *   delivery fails with no status (its lane pauses and retries as for an unreachable HTTP endpoint);
 *   the next delivery tries again. Nothing is attempted in the background before then, so a
 *   subscriber whose server never comes up costs nothing between its retries.
 * - Once connected, nats.js reconnects on its own and never gives up (maxReconnectAttempts -1).
 *   While it is disconnected, `get` answers at once with the reason instead of letting a publish sit
 *   in the client's reconnect buffer: the attempt fails, the lane pauses, and the retry publishes the
 *   same message (same Nats-Msg-Id) once the server is back.
 * - A connection the server closes for good (say, an authorization error) is forgotten; the next
 *   delivery connects afresh.
 * - A connection no delivery has used for IDLE_CLOSE_MS is closed (checked at each delivery): after a
 *   config edit removes a server, nothing keeps reconnecting to it in the background.
 * Secrets (token, .creds, password, TLS key) go to the client only; they are never logged and the map
 * key is a hash, so they do not sit in it either.
 */

export interface NatsConnections {
  /** The connection for `target`, connecting when there is none; never throws. */
  get(target: NatsTarget, timeoutMs: number): Promise<{ ok: true; nc: NatsConnection } | { ok: false; error: string }>;
  /** Drains every connection (flushes what was published) and closes it. */
  close(): Promise<void>;
}

interface Entry {
  servers: string;
  nc?: NatsConnection;
  connecting?: Promise<NatsConnection | Error>;
  /** Connected now (false between a disconnect and the reconnect). */
  up: boolean;
  lastUsed: number;
  lastError?: string;
}

/** Between reconnect attempts, per server (nats.js defaults to 2 s; a short pause keeps a restart's gap short). */
const RECONNECT_WAIT_MS = 1_000;
/** Bound on one TCP+TLS connect to one server. */
const MAX_CONNECT_TIMEOUT_MS = 10_000;
export const IDLE_CLOSE_MS = 10 * 60_000;

function connectionKey(t: NatsTarget): string {
  return createHash('sha256').update(JSON.stringify([t.servers, t.auth ?? null, t.tls ?? null])).digest('hex');
}

function connectionOptions(t: NatsTarget, timeoutMs: number, name: string): ConnectionOptions {
  const auth = t.auth;
  return {
    servers: t.servers.map((s) => s.replace(/^tls:\/\//, 'nats://')),
    name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    timeout: Math.min(Math.max(timeoutMs, 1), MAX_CONNECT_TIMEOUT_MS),
    waitOnFirstConnect: false,
    ...(auth && 'token' in auth ? { token: auth.token } : {}),
    ...(auth && 'user' in auth ? { user: auth.user, pass: auth.password } : {}),
    ...(auth && 'creds' in auth ? { authenticator: credsAuthenticator(new TextEncoder().encode(auth.creds)) } : {}),
    ...(t.tls ? { tls: { ...(t.tls.ca ? { ca: t.tls.ca } : {}), ...(t.tls.cert ? { cert: t.tls.cert } : {}), ...(t.tls.key ? { key: t.tls.key } : {}) } } : {}),
  };
}

export function natsConnections(opts: { log: Logger; name?: string; now?: () => number }): NatsConnections {
  const { log } = opts;
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let closed = false;

  function watch(key: string, entry: Entry, nc: NatsConnection): void {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          entry.up = false;
          entry.lastError = `disconnected from ${s.server}`;
          log.warn({ servers: entry.servers }, 'NATS connection lost; reconnecting');
        } else if (s.type === 'reconnect') {
          entry.up = true;
          entry.lastError = undefined;
          log.info({ servers: entry.servers, server: s.server }, 'NATS connection re-established');
        } else if (s.type === 'error') {
          entry.lastError = errorMessage(s.error);
        }
      }
    })().catch(() => undefined);
    void nc.closed().then((err) => {
      if (entries.get(key) === entry && entry.nc === nc) entries.delete(key);
      if (err && !closed) log.warn({ servers: entry.servers, err: errorMessage(err) }, 'NATS connection closed');
    });
  }

  function start(key: string, entry: Entry, target: NatsTarget, timeoutMs: number): Promise<NatsConnection | Error> {
    const attempt = connect(connectionOptions(target, timeoutMs, opts.name ?? 'kfp-notify')).then(
      (nc) => {
        entry.connecting = undefined;
        if (closed) {
          void nc.close();
          return new Error('shutting down');
        }
        entry.nc = nc;
        entry.up = true;
        entry.lastError = undefined;
        log.info({ servers: entry.servers, server: nc.getServer() }, 'NATS connected');
        watch(key, entry, nc);
        return nc;
      },
      (err: unknown) => {
        entry.connecting = undefined;
        entry.lastError = errorMessage(err);
        return err instanceof Error ? err : new Error(String(err));
      },
    );
    entry.connecting = attempt;
    return attempt;
  }

  function closeIdle(except: string): void {
    for (const [key, e] of entries) {
      if (key === except || !e.nc || now() - e.lastUsed < IDLE_CLOSE_MS) continue;
      entries.delete(key);
      log.info({ servers: e.servers }, 'NATS connection idle; closing it');
      void e.nc.close().catch(() => undefined);
    }
  }

  return {
    async get(target, timeoutMs) {
      if (closed) return { ok: false, error: 'shutting down' };
      const key = connectionKey(target);
      closeIdle(key);
      let entry = entries.get(key);
      if (!entry) entries.set(key, (entry = { servers: target.servers.join(','), up: false, lastUsed: now() }));
      entry.lastUsed = now();
      if (entry.nc) {
        return entry.up ? { ok: true, nc: entry.nc } : { ok: false, error: `NATS ${entry.servers}: not connected (${entry.lastError ?? 'reconnecting'}); the client keeps reconnecting` };
      }
      const r = await within(entry.connecting ?? start(key, entry, target, timeoutMs), timeoutMs);
      if (r === 'timeout') return { ok: false, error: `NATS ${entry.servers}: no connection within ${timeoutMs} ms` };
      if (r instanceof Error) return { ok: false, error: `NATS ${entry.servers}: cannot connect: ${errorMessage(r)}` };
      return { ok: true, nc: r };
    },
    async close() {
      closed = true;
      const all = [...entries.values()];
      entries.clear();
      await Promise.all(
        all.map(async (e) => {
          const nc = e.nc ?? (await e.connecting?.then((x) => (x instanceof Error ? undefined : x)));
          if (!nc || nc.isClosed()) return;
          // drain() flushes what was published and waits for the server; a dead server would hold it, so close() bounds it.
          const drained = await within(nc.drain().catch(() => undefined), 2_000);
          if (drained === 'timeout') await nc.close().catch(() => undefined);
        }),
      );
    },
  };
}
