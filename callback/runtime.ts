import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { ensureDataDir, loadAdminToken, loadHookKeys } from '../common/data-dir.js';

// Where they always were, for the CLI and benches that import them from here.
export { ADMIN_TOKEN_FILE, adminTokenPath, loadAdminToken } from '../common/data-dir.js';
import { watchFiles } from '../common/file-watch.js';
import type { HookKey } from '../common/hook-token.js';
import type { Logger } from '../common/logger.js';
import { buildApp, type EnrichHint } from './app.js';
import { createIngest, type Ingest } from './ingest.js';
import { callbackMetrics } from './metrics.js';
import { standardPolicy } from './retry.js';
import { createSender } from './sender.js';
import { createNatsTransport } from './nats/transport.js';
import { createKfpRunTransport } from './kfp-run/transport.js';
import { openMemoryStore } from './store/memory.js';
import { openSqliteStore, type Durability } from './store/sqlite.js';
import type { DeliveryStore } from './store/types.js';
import type { JetStreamSettings } from './store/jetstream/config.js';
import type { DeliveryNotice, Subscriber, WorkflowSnapshot } from './types.js';
import { startWorker, type Worker } from './worker.js';
import { errorMessage } from '../common/error-message.js';

/**
 * Wires one whole callback process: data dir, hook keys, admin token, store, subscribers, worker,
 * HTTP app, optional cluster services. `kfp-notify callback` calls it; so can `serve` and tests.
 * It owns shutdown order: stop the watcher, stop taking hook calls (in-flight ones finish their
 * commit), let in-flight sends finish (bounded), release what is left, close the database.
 */

/** Where subscribers come from: a watched file, a watched ConfigMap, or a fixed list. */
export interface SubscriberSource {
  current(): readonly Subscriber[];
  onChange(listener: (subscribers: readonly Subscriber[]) => void): () => void;
  close(): void | Promise<void>;
}

/**
 * The seam to callback/cluster: everything optional, so the callback runs with none of it.
 * - enrich: fetch a Workflow when a hook call lacks a fact (node phase, failure message);
 * - subscribers: the ConfigMap (+ Secret) watch;
 * - watch: start the status watcher, which reports through ingest (deduplicated by EventId).
 */
export interface ClusterServices {
  enrich?: (namespace: string, workflowName: string, hint?: EnrichHint) => Promise<WorkflowSnapshot | undefined>;
  subscribers?: SubscriberSource;
  watch?: (ingest: Ingest) => { stop(): Promise<void>; ready?(): boolean };
  /** Dead letters and disabled subscribers, reported as Kubernetes Events. */
  notice?: (notice: DeliveryNotice) => void;
  close?: () => void | Promise<void>;
}

export interface CallbackOptions {
  dataDir: string;
  log: Logger;
  /** Listen here; without it the app is built but not listening (the caller mounts or injects). */
  listen?: { host: string; port: number };
  /** Default: the cluster's subscribers if any, else one `log` subscriber. */
  subscribers?: SubscriberSource;
  cluster?: ClusterServices;
  hookKeyFile?: string;
  adminTokenFile?: string;
  /** 'memory' keeps nothing across restarts (tests, throwaway demos); `nats`: JetStream, shared by replicas. */
  store?: 'sqlite' | 'memory' | { nats: JetStreamSettings };
  retryScale?: number;
  registry?: Registry;
  /** Bound on waiting for in-flight sends at shutdown (default 10 s). */
  shutdownGraceMs?: number;
  /** Delivered work and its events are forgotten after this long (default 30 days). */
  retentionMs?: number;
  /** A hook call must arrive whole within this (default 10 s). */
  requestTimeoutMs?: number;
  /** How often the hook key file is stat'ed besides the directory watch (default 10 s). */
  keyPollMs?: number;
  /** Largest SQLite file, bytes; past it hook calls get 503 instead of filling the volume. */
  maxStoreBytes?: number;
  /** When a hook call's 202 is sent (default 'fsync': after the WAL's fdatasync); see store/sqlite.ts. */
  durability?: Durability;
  /** The KFP UI base URL (parseKfpUiUrl): events carry RunUrl; without it RunUrl is ''. */
  kfpUiUrl?: string;
  /** Disable a subscriber after this long without a successful delivery (default 5 days; 0: never). */
  disableAfterMs?: number;
}

export const DEFAULT_DISABLE_AFTER_MS = 5 * 24 * 60 * 60 * 1000;

export interface CallbackRuntime {
  app: FastifyInstance;
  store: DeliveryStore;
  worker: Worker;
  ingest: Ingest;
  registry: Registry;
  /** The base URL when listening, e.g. http://127.0.0.1:8080. */
  url?: string;
  close(): Promise<void>;
}

export const DB_FILE = 'callback.db';
const DAY_MS = 24 * 60 * 60 * 1000;
const PRUNE_EVERY_MS = 60 * 60 * 1000;
/** How long shutdown waits for open hook requests before cutting their connections. */
const HTTP_DRAIN_MS = 5_000;

/**
 * Stops taking hook calls. app.close() lets calls in progress finish their commit and get their
 * answer, but it waits for every open request: a client that stops half-way through sending one
 * would hold shutdown open until the request timeout cuts it (or, without one, until the pod is killed).
 */
async function closeHttp(app: FastifyInstance): Promise<void> {
  const cut = setTimeout(() => app.server.closeAllConnections(), HTTP_DRAIN_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(cut);
  }
}

/** The subscriber a new user gets: every event as one log line, so hook calls are visible at once. */
export function logSubscriber(): Subscriber {
  return { name: 'log', type: 'log', format: 'json', headers: {}, timeoutMs: 1000, maxConcurrency: 1, retry: standardPolicy() };
}

export function fixedSubscribers(list: readonly Subscriber[]): SubscriberSource {
  return { current: () => list, onChange: () => () => {}, close: () => {} };
}



function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startCallback(opts: CallbackOptions): Promise<CallbackRuntime> {
  const { log } = opts;
  const dataDir = ensureDataDir(opts.dataDir);
  const hookKeys: HookKey[] = loadHookKeys({ keyFile: opts.hookKeyFile, dataDir });
  // Keys rotate without a restart: the app reads this array on every call, so it is refilled in place.
  const keyWatch = watchFiles([opts.hookKeyFile ?? join(dataDir, 'hook-key')], () => {
    try {
      hookKeys.splice(0, hookKeys.length, ...loadHookKeys({ keyFile: opts.hookKeyFile, dataDir, create: false }));
      log.info({ keys: hookKeys.map((k) => k.kid) }, 'hook keys reloaded');
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'hook key file unreadable; keeping the previous keys');
    }
  }, { logger: log, ...(opts.keyPollMs !== undefined ? { pollMs: opts.keyPollMs } : {}) });
  const adminToken = loadAdminToken({ file: opts.adminTokenFile, dataDir });
  const registry = opts.registry ?? new Registry();
  const metrics = callbackMetrics(registry);
  const source = opts.subscribers ?? opts.cluster?.subscribers ?? fixedSubscribers([logSubscriber()]);
  const natsStore = typeof opts.store === 'object' ? opts.store.nats : undefined;
  const store = natsStore
    ? // Loaded only when asked for: a SQLite install never loads the NATS client.
      await (await import('./store/jetstream/index.js')).openJetStreamStore({
        ...natsStore,
        log,
        // A subscriber's maxConcurrency holds across all replicas: the store caps its live leases.
        maxLeased: (name) => source.current().find((s) => s.name === name)?.maxConcurrency,
      })
    : opts.store === 'memory'
      ? openMemoryStore()
      : openSqliteStore({
          file: join(dataDir, DB_FILE),
          ...(opts.maxStoreBytes !== undefined ? { maxBytes: opts.maxStoreBytes } : {}),
          ...(opts.durability ? { durability: opts.durability } : {}),
          onCommit: ({ size, durationMs }) => {
            metrics.commitSeconds.observe(durationMs / 1000);
            metrics.commitBatch.observe(size);
          },
        });

  const sender = createSender();
  // No I/O until a nats subscriber's first delivery.
  const nats = createNatsTransport({ log });
  const kfpRun = createKfpRunTransport({ log });
  const worker = startWorker(
    {
      store,
      send: sender.send,
      log,
      metrics,
      ...(opts.retryScale !== undefined ? { retryScale: opts.retryScale } : {}),
      ...(opts.cluster?.notice ? { onNotice: opts.cluster.notice } : {}),
      transports: { nats, 'kfp-run': kfpRun },
      disableAfterMs: opts.disableAfterMs ?? DEFAULT_DISABLE_AFTER_MS,
    },
    source.current(),
  );
  const unsubscribe = source.onChange((subs) => worker.setSubscribers(subs));
  if ('onWork' in store && typeof store.onWork === 'function') store.onWork((names: string[]) => worker.notify(names));
  metrics.sampleQueue(async () => ({
    depth: await store.queueDepth(),
    disabled: Object.keys(await store.disabledSubscribers()),
    subscribers: source.current().map((s) => s.name),
  }));

  const ingest = createIngest({ store, subscribers: () => source.current(), onQueued: (names) => worker.notify(names), metrics, ...(opts.kfpUiUrl ? { kfpUiUrl: opts.kfpUiUrl } : {}) });
  const app = buildApp({
    log,
    hookKeys,
    adminToken,
    ingest,
    store,
    subscribers: () => source.current(),
    notify: (names) => worker.notify(names),
    ...(opts.cluster?.enrich ? { enrich: opts.cluster.enrich } : {}),
    registry,
    metrics,
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    readiness: [
      { name: 'store', check: async () => store.getEvent('readyz').then(() => undefined, (err: unknown) => (errorMessage(err))) },
      { name: 'worker', check: () => (worker.running() ? undefined : 'stopped') },
    ],
  });

  const watcher = opts.cluster?.watch?.(ingest);
  const retentionMs = opts.retentionMs ?? 30 * DAY_MS;
  const pruner = setInterval(() => {
    store.prune(Date.now() - retentionMs).then(
      (n) => n > 0 && log.info({ events: n }, 'pruned delivered events past retention'),
      (err: unknown) => log.warn({ err }, 'pruning failed'),
    );
  }, PRUNE_EVERY_MS);
  pruner.unref();

  let url: string | undefined;
  try {
    if (opts.listen) {
      await app.listen({ host: opts.listen.host, port: opts.listen.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.listen.port;
      url = `http://${hostForUrl(opts.listen.host)}:${port}`;
    } else {
      await app.ready();
    }
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  const subscriberNames = source.current().map((s) => s.name);
  log.info({ url, dataDir, store: natsStore ? natsStore.servers : (opts.store ?? 'sqlite'), durability: opts.durability ?? 'fsync', subscribers: subscriberNames, cluster: opts.cluster !== undefined }, 'callback ready');

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    clearInterval(pruner);
    keyWatch.close();
    await watcher?.stop();
    await closeHttp(app);
    await worker.stop({ graceMs: opts.shutdownGraceMs ?? 10_000 });
    unsubscribe();
    await sender.close();
    await nats.close();
    await kfpRun.close();
    await source.close();
    await opts.cluster?.close?.();
    await store.close();
    log.info('callback stopped');
  }

  return { app, store, worker, ingest, registry, ...(url ? { url } : {}), close: () => (closing ??= close()) };
}
