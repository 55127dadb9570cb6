import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadHookKeys } from '../../common/data-dir.js';
import { createLogger } from '../../common/logger.js';
import { buildApp } from '../../callback/app.js';
import { createIngest } from '../../callback/ingest.js';
import { callbackMetrics } from '../../callback/metrics.js';
import { DB_FILE, loadAdminToken } from '../../callback/runtime.js';
import { openSqliteStore, type Durability } from '../../callback/store/sqlite.js';
import type { Subscriber } from '../../callback/types.js';
import { childConfig, serveRpc } from '../lib/rpc.js';

/**
 * The callback's accept path with the worker kept from sending: the real app (authenticate,
 * normalize), the real ingest and the real SQLite store (group commit; at durability 'fsync' the
 * WAL's fdatasync before the 202, at 'write' after it), wired as callback/runtime.ts wires them,
 * minus the worker. Every accepted call leaves one pending delivery per subscriber on disk;
 * `pending` counts them, so the bench can check none was lost.
 */

const cfg = childConfig<{ dataDir: string; subscribers: Subscriber[]; durability: Durability }>();
const log = createLogger({ level: 'info', destination: pino.destination({ dest: join(cfg.dataDir, 'ingest.log'), sync: false }) });
const registry = new Registry();
const metrics = callbackMetrics(registry);
const store = openSqliteStore({
  file: join(cfg.dataDir, DB_FILE),
  durability: cfg.durability,
  onCommit: ({ size, durationMs }) => {
    metrics.commitSeconds.observe(durationMs / 1000);
    metrics.commitBatch.observe(size);
  },
});
const subscribers = () => cfg.subscribers;
const ingest = createIngest({ store, subscribers, metrics });
const app = buildApp({
  log,
  hookKeys: loadHookKeys({ dataDir: cfg.dataDir }),
  adminToken: loadAdminToken({ dataDir: cfg.dataDir }),
  ingest,
  store,
  subscribers,
  notify: () => undefined,
  registry,
  metrics,
});
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as { port: number };

serveRpc({
  ready: () => ({ url: `http://127.0.0.1:${port}` }),
  pending: () => store.queueDepth(),
});
