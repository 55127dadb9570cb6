import { existsSync } from 'node:fs';
import { DEFAULT_LEASE_MS, DEFAULT_PREFIX, parseNatsStoreUrl, type JetStreamSettings } from '../callback/store/jetstream/config.js';
import { durationMs } from '../callback/subscribers/duration.js';
import { errorMessage } from '../common/error-message.js';
import { UsageError } from './io.js';

/**
 * `--store` and the NATS flags of `kfp-notify callback` (and `serve`): parsed here so that
 * cli/callback.ts only gains two lines.
 */

export const STORE_USAGE = `  --store S                    where events and the delivery queue live (default sqlite or $KFP_NOTIFY_STORE):
                               sqlite  one file in the data dir, one replica (the embedded choice)
                               memory  nothing survives a restart (tests, demos)
                               nats://HOST:PORT[,HOST:PORT...]  NATS JetStream, shared by any number of
                                       replicas (tls://... for TLS); see docs/callback.md
  --nats-creds F               NATS .creds file (JWT and nkey seed)
  --nats-token-file F          file holding a NATS token
  --nats-tls-ca F              CA bundle to verify the NATS servers
  --nats-tls-cert F            client certificate for mutual TLS (with --nats-tls-key F)
  --nats-tls-key F             its private key
  --nats-prefix P              bucket names P-events and P-subscribers (default ${DEFAULT_PREFIX})
  --nats-replicas N            replicas of the buckets the callback creates: 1, 3 or 5 (default 1)
  --nats-storage S             file or memory, for the buckets the callback creates (default file)
  --nats-lease D               how long a claim on a delivery holds: what a dead replica held is
                               sent by another after at most this (default 30s)
  --watch-lease NAME           with several replicas, the status watcher runs on the one holding this
                               Kubernetes Lease (default kfp-notify-watcher with --store nats://...;
                               none: on every replica)
`;

export const STORE_OPTIONS = {
  store: { type: 'string' },
  'nats-creds': { type: 'string' },
  'nats-token-file': { type: 'string' },
  'nats-tls-ca': { type: 'string' },
  'nats-tls-cert': { type: 'string' },
  'nats-tls-key': { type: 'string' },
  'nats-prefix': { type: 'string' },
  'nats-replicas': { type: 'string' },
  'nats-storage': { type: 'string' },
  'nats-lease': { type: 'string' },
  'watch-lease': { type: 'string' },
} as const;

export type StoreChoice = 'sqlite' | 'memory' | { nats: JetStreamSettings };

type StoreValues = Partial<Record<keyof typeof STORE_OPTIONS, string>>;

function readableFile(flag: string, file: string | undefined): string | undefined {
  if (file !== undefined && !existsSync(file)) throw new UsageError(`${flag}: no such file ${file}`);
  return file;
}

export const DEFAULT_WATCH_LEASE = 'kfp-notify-watcher';

/** The Lease that elects the one replica running the status watcher, or undefined (run it here). */
export function parseWatchLease(v: StoreValues, store: StoreChoice): string | undefined {
  const name = v['watch-lease'] ?? (typeof store === 'object' ? DEFAULT_WATCH_LEASE : 'none');
  if (name === 'none') return undefined;
  // A Kubernetes object name (DNS subdomain).
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new UsageError(`--watch-lease must be a Kubernetes object name or none (got ${name})`);
  return name;
}

export function parseStoreFlags(v: StoreValues, env: NodeJS.ProcessEnv): StoreChoice {
  const spec = v.store ?? (env.KFP_NOTIFY_STORE || 'sqlite');
  const natsFlags = Object.keys(v).filter((k) => k.startsWith('nats-') && v[k as keyof StoreValues] !== undefined);
  if (spec === 'sqlite' || spec === 'memory') {
    if (natsFlags.length > 0) throw new UsageError(`--${natsFlags[0]} only applies with --store nats://...`);
    return spec;
  }
  let servers: string[];
  try {
    servers = parseNatsStoreUrl(spec);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const replicas = Number(v['nats-replicas'] ?? '1');
  if (![1, 3, 5].includes(replicas)) throw new UsageError(`--nats-replicas must be 1, 3 or 5 (got ${v['nats-replicas']})`);
  const storage = v['nats-storage'] ?? 'file';
  if (storage !== 'file' && storage !== 'memory') throw new UsageError(`--nats-storage must be file or memory (got ${storage})`);
  const prefix = v['nats-prefix'] ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) throw new UsageError(`--nats-prefix may use letters, digits, - and _ (got ${prefix})`);
  const leaseMs = v['nats-lease'] === undefined ? DEFAULT_LEASE_MS : durationMs(v['nats-lease'], 1000);
  if (leaseMs === undefined || leaseMs < 1000) throw new UsageError(`--nats-lease must be a duration of at least 1s such as 30s or 2m (got ${v['nats-lease']})`);
  if (v['nats-creds'] && v['nats-token-file']) throw new UsageError('give --nats-creds or --nats-token-file, not both');
  if (Boolean(v['nats-tls-cert']) !== Boolean(v['nats-tls-key'])) throw new UsageError('--nats-tls-cert and --nats-tls-key go together');
  const files = {
    credsFile: readableFile('--nats-creds', v['nats-creds']),
    tokenFile: readableFile('--nats-token-file', v['nats-token-file']),
    tlsCaFile: readableFile('--nats-tls-ca', v['nats-tls-ca']),
    tlsCertFile: readableFile('--nats-tls-cert', v['nats-tls-cert']),
    tlsKeyFile: readableFile('--nats-tls-key', v['nats-tls-key']),
  };
  return {
    nats: {
      servers,
      prefix,
      replicas,
      storage,
      leaseMs,
      ...Object.fromEntries(Object.entries(files).filter(([, f]) => f !== undefined)),
    },
  };
}
