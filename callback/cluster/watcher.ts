import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { RUN_ID_LABEL } from '../../common/hook-contract.js';
import { factsFromWorkflow, isFinished } from '../status-events.js';
import type { KfpEvent } from '../types.js';
import { errorText, startListWatch, type KubeObject, type ListWatchHandle } from './list-watch.js';
import { Lru } from './lru.js';
import { clusterMetrics } from './metrics.js';
import { workflowLister, workflowsPath } from './workflow-api.js';

/**
 * The status watcher: the backstop behind the hooks, and the reporter of what no hook reports. It
 * watches every KFP Workflow (label `pipeline/runid`) and derives from its status every fact a fully
 * hooked run would have reported (status-events.ts). A fact no hook will report (the Workflow's
 * `stepHooks` policy leaves it to the watcher, a retried step whose hook node is kept, a Workflow the
 * webhook never saw) is ingested at once; a fact a hook is expected to report waits out a grace period
 * for the hook first.
 * The store deduplicates by EventId, so a fact the hook already delivered becomes a duplicate, never
 * a second delivery. On start the first list covers runs that finished while the callback was down.
 *
 * Memory stays bounded: only Workflows with something running or waiting are tracked; a finished
 * one is forgotten once its events are ingested (a small LRU of digests keeps later no-op updates of
 * it, such as KFP's persistence labels, from being reprocessed).
 */

export interface StatusWatcherOptions {
  kubeConfig: KubeConfig;
  /** Stores the events (deduplicating by EventId); a rejection is retried with backoff. */
  ingest: (events: KfpEvent[]) => Promise<unknown>;
  /** How long a fact a hook is expected to report waits for it before the watcher reports it (`--watch-grace`, default 60s). */
  graceMs: number;
  log: Logger;
  /** Watch only these namespaces; all namespaces when absent or empty. */
  namespaces?: string[];
  /**
   * Facts older than this when first seen are not reported (default 24h), so that installing the
   * callback into a cluster full of old runs does not replay their history to subscribers.
   */
  maxAgeMs?: number;
  registry?: Registry;
  /** Finished Workflows remembered so their later no-op updates are ignored (default 10000). */
  maxFinishedRemembered?: number;
  backoff?: { initialMs: number; maxMs: number };
  watchTimeoutSeconds?: number;
  pageSize?: number;
}

export interface StatusWatcher {
  /** Stops watching and waits for an ingest in flight; events still in their grace period are dropped (the next start lists them again). */
  stop(): Promise<void>;
  /** True once every watched collection has been listed once. */
  ready(): boolean;
}

interface Pending {
  event: KfpEvent;
  dueAt: number;
}

interface Tracked {
  uid: string;
  name: string;
  pending: Map<string, Pending>;
  emitted: Set<string>;
  finished: boolean;
  deleted: boolean;
  digest: string;
  timer?: NodeJS.Timeout;
  timerAt?: number;
  flushing: boolean;
  retryMs: number;
}

const DEFAULT_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const INGEST_RETRY_MIN_MS = 1000;
const INGEST_RETRY_MAX_MS = 60_000;

function digestOf(events: readonly KfpEvent[]): string {
  const h = createHash('sha256');
  for (const id of events.map((e) => e.EventId).sort()) h.update(`${id}\n`);
  return h.digest('base64url').slice(0, 22);
}

export function startStatusWatcher(opts: StatusWatcherOptions): StatusWatcher {
  const log = opts.log.child({ component: 'status-watcher' });
  const metrics = clusterMetrics(opts.registry);
  const maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const tracked = new Map<string, Tracked>();
  const finished = new Lru<string, string>(opts.maxFinishedRemembered ?? 10_000);
  const inFlight = new Set<Promise<void>>();
  let stopped = false;

  const updateGauge = (): void => metrics.watcherTracked.set(tracked.size);

  function retire(t: Tracked): void {
    if (t.timer) clearTimeout(t.timer);
    tracked.delete(t.uid);
    if (t.finished && !t.deleted) finished.set(t.uid, t.digest);
    updateGauge();
  }

  function schedule(t: Tracked): void {
    if (stopped || t.flushing) return;
    let due = Infinity;
    for (const p of t.pending.values()) due = Math.min(due, p.dueAt);
    if (due === Infinity) {
      if (t.finished || t.deleted) retire(t);
      return;
    }
    if (t.timer && t.timerAt !== undefined && t.timerAt <= due) return;
    if (t.timer) clearTimeout(t.timer);
    t.timerAt = due;
    t.timer = setTimeout(() => {
      t.timer = undefined;
      t.timerAt = undefined;
      const run = flush(t);
      inFlight.add(run);
      void run.finally(() => inFlight.delete(run));
    }, Math.max(0, due - Date.now()));
  }

  async function flush(t: Tracked): Promise<void> {
    const now = Date.now();
    const due = [...t.pending.entries()].filter(([, p]) => p.dueAt <= now);
    if (due.length === 0 || stopped) return schedule(t);
    t.flushing = true;
    try {
      await opts.ingest(due.map(([, p]) => p.event));
      for (const [id, p] of due) {
        t.pending.delete(id);
        t.emitted.add(id);
        metrics.watcherEvents.inc({ type: p.event.EventType });
      }
      t.retryMs = INGEST_RETRY_MIN_MS;
      log.info({ workflow: t.name, eventIds: due.map(([id]) => id) }, 'status watcher reported facts no hook reports, or none delivered in time (or already had)');
    } catch (err) {
      metrics.watcherIngestErrors.inc();
      log.warn({ workflow: t.name, err: errorText(err), retryInMs: t.retryMs }, 'ingest of watcher events failed; will retry');
      const retryAt = Date.now() + t.retryMs;
      for (const [, p] of due) p.dueAt = retryAt;
      t.retryMs = Math.min(t.retryMs * 2, INGEST_RETRY_MAX_MS);
    } finally {
      t.flushing = false;
    }
    schedule(t);
  }

  function onUpsert(obj: KubeObject): void {
    const uid = obj.metadata?.uid ?? '';
    const name = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (!uid) return;
    const now = Date.now();
    const facts = factsFromWorkflow(obj, { now: new Date(now).toISOString() });
    const events = facts.map((f) => f.event);
    const done = isFinished(obj);
    const digest = digestOf(events);
    let t = tracked.get(uid);
    if (!t) {
      if (finished.get(uid) === digest) return;
      if (events.length === 0 && done) return;
      t = { uid, name, pending: new Map(), emitted: new Set(), finished: false, deleted: false, digest, flushing: false, retryMs: INGEST_RETRY_MIN_MS };
      tracked.set(uid, t);
      updateGauge();
    }
    t.finished = done;
    t.digest = digest;
    for (const { event: e, hookExpected } of facts) {
      if (t.emitted.has(e.EventId)) continue;
      const dueAt = hookExpected ? now + opts.graceMs : now;
      const known = t.pending.get(e.EventId);
      if (known) {
        known.event = e; // a later status may say more (a message, a finish time)
        known.dueAt = Math.min(known.dueAt, dueAt); // or that no hook will come after all
        continue;
      }
      if (now - Date.parse(e.Time) > maxAgeMs) {
        t.emitted.add(e.EventId);
        log.debug({ workflow: name, eventId: e.EventId, time: e.Time }, 'fact older than the watch max age; not reported');
        continue;
      }
      t.pending.set(e.EventId, { event: e, dueAt });
    }
    schedule(t);
  }

  function onDelete(obj: KubeObject): void {
    const t = tracked.get(obj.metadata?.uid ?? '');
    if (!t) return;
    // Facts of a deleted run still happened: what is pending is still reported, then forgotten.
    t.deleted = true;
    schedule(t);
  }

  const namespaces = opts.namespaces?.filter((n) => n !== '') ?? [];
  const scopes: (string | undefined)[] = namespaces.length > 0 ? namespaces : [undefined];
  metrics.watcherSynced.set(0);
  const handles: ListWatchHandle[] = scopes.map((ns) =>
    startListWatch({
      kubeConfig: opts.kubeConfig,
      path: workflowsPath(ns),
      list: workflowLister(opts.kubeConfig, ns, RUN_ID_LABEL),
      labelSelector: RUN_ID_LABEL,
      resource: ns ? `workflows/${ns}` : 'workflows',
      log,
      onUpsert,
      onDelete,
      onError: () => metrics.watchErrors.inc({ resource: 'workflows' }),
      onRelist: () => metrics.relists.inc({ resource: 'workflows' }),
      // Called after a list, so `handles` is assigned by then.
      onSynced: () => metrics.watcherSynced.set(handles.every((h) => h.synced()) ? 1 : 0),
      backoff: opts.backoff,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
      pageSize: opts.pageSize,
    }),
  );
  log.info({ namespaces: namespaces.length > 0 ? namespaces : 'all', graceMs: opts.graceMs }, 'status watcher started');

  return {
    async stop() {
      stopped = true;
      await Promise.all(handles.map((h) => h.stop()));
      for (const t of tracked.values()) if (t.timer) clearTimeout(t.timer);
      await Promise.allSettled([...inFlight]);
      tracked.clear();
      updateGauge();
    },
    ready: () => handles.every((h) => h.synced()),
  };
}
