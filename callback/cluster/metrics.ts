import { Counter, Gauge, Registry } from 'prom-client';

/** Counters of the callback's cluster side: the status watcher, enrichment, subscriber config. */
export interface ClusterMetrics {
  /** List or watch failures, by stream (workflows, configmaps, secrets). */
  watchErrors: Counter<'resource'>;
  /** Fresh lists after a 410 or an error, by stream. */
  relists: Counter<'resource'>;
  /** Events the watcher handed to ingest, by type. */
  watcherEvents: Counter<'type'>;
  /** Ingest calls from the watcher that failed (retried later). */
  watcherIngestErrors: Counter;
  /** Workflows the watcher tracks right now (pending or running). */
  watcherTracked: Gauge;
  /** 1 once the status watcher's first full list of Workflows arrived (every watched namespace), else 0. */
  watcherSynced: Gauge;
  /** Enrichment lookups by result: hit, fetched, not_found, error. */
  enrich: Counter<'result'>;
  /** Subscriber config reloads by result: applied, rejected (kept the last good one). */
  configReloads: Counter<'result'>;
}

// One set per registry: several cluster modules (and `serve`) share one registry, and prom-client
// throws on a second registration of the same name.
const byRegistry = new WeakMap<Registry, ClusterMetrics>();

export function clusterMetrics(registry: Registry = new Registry()): ClusterMetrics {
  const known = byRegistry.get(registry);
  if (known) return known;
  const registers = [registry];
  const metrics: ClusterMetrics = {
    watchErrors: new Counter({
      name: 'kfp_notify_watch_errors_total',
      help: 'Kubernetes list/watch failures, by stream; each is followed by a fresh list after a backoff',
      labelNames: ['resource'],
      registers,
    }),
    relists: new Counter({
      name: 'kfp_notify_watch_relists_total',
      help: 'Full lists of a watched collection (the first one included), by stream',
      labelNames: ['resource'],
      registers,
    }),
    watcherEvents: new Counter({
      name: 'kfp_notify_watcher_events_total',
      help: 'Events derived from Workflow status and handed to ingest after the grace period, by type',
      labelNames: ['type'],
      registers,
    }),
    watcherIngestErrors: new Counter({
      name: 'kfp_notify_watcher_ingest_errors_total',
      help: 'Ingest calls from the status watcher that failed and were retried',
      registers,
    }),
    watcherTracked: new Gauge({
      name: 'kfp_notify_watcher_tracked_workflows',
      help: 'Workflows the status watcher holds state for (running, or with events waiting out the grace period)',
      registers,
    }),
    watcherSynced: new Gauge({
      name: 'kfp_notify_watcher_synced',
      help: '1 once the status watcher has listed the Workflows it watches (every namespace), 0 until then',
      registers,
    }),
    enrich: new Counter({
      name: 'kfp_notify_enrich_total',
      help: 'Workflow lookups for enrichment, by result (hit, fetched, not_found, error)',
      labelNames: ['result'],
      registers,
    }),
    configReloads: new Counter({
      name: 'kfp_notify_subscriber_config_reloads_total',
      help: 'Subscriber config reloads from the cluster, by result (applied, rejected)',
      labelNames: ['result'],
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
