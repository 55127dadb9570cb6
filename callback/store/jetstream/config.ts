import { readFileSync } from 'node:fs';
import { credsAuthenticator, tokenAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';

/**
 * How to reach NATS and what to create there. Parsing is pure (`parseNatsStoreUrl`); reading the
 * credential files happens once, in `connectionOptions`, and their contents never reach a log line.
 */

export interface JetStreamSettings {
  /** nats://host:port, one per server of the cluster (the client fails over between them). */
  servers: string[];
  /** Bucket names are `<prefix>-events` and `<prefix>-subscribers` (default kfp-notify). */
  prefix: string;
  /** Replicas of the buckets the callback creates (1, 3 or 5; R>1 needs a JetStream cluster). */
  replicas: number;
  storage: 'file' | 'memory';
  /**
   * Longest claim on a delivery (default 30 s): what a replica that dies mid-send leaves behind is
   * claimable by the others after at most this long. A send that outlasts it may be repeated by
   * another replica, with the same webhook-id.
   */
  leaseMs: number;
  /** A NATS .creds file (JWT + nkey seed). */
  credsFile?: string;
  /** A file holding a NATS token. */
  tokenFile?: string;
  /** TLS: CA bundle to verify the servers, and a client certificate and key for mutual TLS. */
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
}

export const DEFAULT_PREFIX = 'kfp-notify';
export const DEFAULT_LEASE_MS = 30_000;

/**
 * `nats://h1:4222,h2:4222` (or tls://) → the server list. Throws an Error saying what is wrong;
 * the CLI turns it into exit 2.
 */
export function parseNatsStoreUrl(spec: string): string[] {
  const m = /^(nats|tls):\/\/(.+)$/.exec(spec);
  if (!m) throw new Error(`--store must be sqlite, memory or nats://HOST:PORT[,HOST:PORT...] (got ${spec})`);
  const scheme = m[1] as string;
  return (m[2] as string).split(',').map((hostPort) => {
    const hp = hostPort.trim().replace(/^(nats|tls):\/\//, '');
    if (hp.includes('@')) throw new Error('--store: put NATS credentials in --nats-creds or --nats-token-file, not in the URL');
    const parsed = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(hp);
    const port = parsed?.[2] === undefined ? 4222 : Number(parsed[2]);
    if (!parsed || port < 1 || port > 65535) throw new Error(`--store: "${hostPort}" is not HOST:PORT`);
    return `${scheme}://${parsed[1] as string}:${port}`;
  });
}

export function connectionOptions(s: JetStreamSettings, name: string): ConnectionOptions {
  const authenticator = s.credsFile
    ? credsAuthenticator(readFileSync(s.credsFile))
    : s.tokenFile
      ? tokenAuthenticator(readFileSync(s.tokenFile, 'utf8').trim())
      : undefined;
  const tls =
    s.tlsCaFile || s.tlsCertFile || s.tlsKeyFile || s.servers.some((u) => u.startsWith('tls://'))
      ? {
          ...(s.tlsCaFile ? { caFile: s.tlsCaFile } : {}),
          ...(s.tlsCertFile ? { certFile: s.tlsCertFile } : {}),
          ...(s.tlsKeyFile ? { keyFile: s.tlsKeyFile } : {}),
        }
      : undefined;
  return {
    servers: s.servers,
    name,
    ...(authenticator ? { authenticator } : {}),
    ...(tls ? { tls } : {}),
    // A replica outlives any NATS outage: it keeps trying (503s meanwhile) instead of giving up after
    // 10 attempts per server, the client's default.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // At start too: the process waits for NATS rather than exiting (a pod would crash-loop).
    waitOnFirstConnect: true,
    // Notice a dead server in ~10 s instead of the default 4 min (2 min ping × 2 missed).
    pingInterval: 5_000,
    maxPingOut: 2,
  };
}
