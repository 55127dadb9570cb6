import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createLogger, type Logger } from '../../../common/logger.js';
import { createIngest, type Ingest } from '../../../callback/ingest.js';
import { callbackMetrics, type CallbackMetrics } from '../../../callback/metrics.js';
import { createSender } from '../../../callback/sender.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import type { DeliveryStore } from '../../../callback/store/types.js';
import type { Subscriber } from '../../../callback/types.js';
import { startWorker, type Worker, type WorkerDeps } from '../../../callback/worker.js';

/** A fresh `whsec_` secret, as a subscriber would be given. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** An http subscriber with a short retry schedule (tens of ms), unless overridden. */
export function httpSubscriber(name: string, url: string, over: Partial<Subscriber> = {}): Subscriber {
  return {
    name,
    type: 'http',
    url,
    format: 'json',
    headers: {},
    timeoutMs: 2000,
    maxConcurrency: 4,
    retry: { schedule: [0.02, 0.02], jitter: 0 },
    ...over,
  };
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger whose lines land in an array (parsed JSON), so tests can read what was logged. */
export function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) } });
  return { log, lines };
}

export interface Engine {
  store: DeliveryStore;
  worker: Worker;
  ingest: Ingest;
  metrics: CallbackMetrics;
  registry: Registry;
  lines: LogLine[];
  file: string;
  close(): Promise<void>;
}

/** The real delivery engine (SQLite file, undici sender, worker, ingest) around the given subscribers. */
export function startEngine(subscribers: Subscriber[], opts: Pick<WorkerDeps, 'retryScale' | 'now' | 'disableAfterMs' | 'onNotice'> = {}): Engine {
  const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-engine-'));
  const file = join(dir, 'callback.db');
  const store = openSqliteStore({ file });
  const sender = createSender();
  const registry = new Registry();
  const metrics = callbackMetrics(registry);
  const { log, lines } = capturingLogger();
  const worker = startWorker({ store, send: sender.send, log, metrics, ...opts }, subscribers);
  const ingest = createIngest({ store, subscribers: () => subscribers, onQueued: (n) => worker.notify(n), metrics });
  metrics.sampleQueue(async () => ({
    depth: await store.queueDepth(),
    disabled: Object.keys(await store.disabledSubscribers()),
    subscribers: subscribers.map((s) => s.name),
  }));
  return {
    store,
    worker,
    ingest,
    metrics,
    registry,
    lines,
    file,
    async close() {
      await worker.stop({ graceMs: 100 });
      await sender.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
