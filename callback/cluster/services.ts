import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { DeliveryNotice, KfpEvent, Subscriber, WorkflowSnapshot } from '../types.js';
import { startSubscriberConfigWatch } from './config-watch.js';
import { createEnricher, type EnrichHint } from './enrich.js';
import { createEventRecorder } from './events.js';
import { startStatusWatcher, type StatusWatcher } from './watcher.js';
import { startLeaderElection } from './leader.js';

/**
 * Everything the cluster gives one callback process, in the shapes callback/runtime.ts takes
 * (ClusterServices): enrichment, the status watcher (started by the runtime once its ingest
 * exists) and, when a ConfigMap is named, the subscriber source. So `kfp-notify callback` wires
 * the cluster in one call.
 */

export interface ClusterServiceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  registry?: Registry;
  /** `--watch-grace`: how long a fact waits for its hook before the watcher reports it. */
  watchGraceMs: number;
  /** Watch these namespaces only (default: all). */
  watchNamespaces?: string[];
  /** Subscribers from this ConfigMap (and the Secrets it references) in `namespace`. */
  subscribers?: { namespace: string; configMapName: string; retryScale?: number; readyTimeoutMs?: number };
  enrichTtlMs?: number;
  /**
   * Run the status watcher only while holding this Lease (several replicas); without it the watcher
   * runs in this process unconditionally (one replica).
   */
  watchLease?: { namespace: string; name: string; identity: string; leaseDurationMs?: number; retryMs?: number };
}

/** Structurally runtime.ts's SubscriberSource. */
export interface ClusterSubscriberSource {
  current(): readonly Subscriber[];
  onChange(listener: (subscribers: readonly Subscriber[]) => void): () => void;
  close(): Promise<void>;
}

export interface ClusterServices {
  enrich: (namespace: string, workflowName: string, hint?: EnrichHint) => Promise<WorkflowSnapshot | undefined>;
  subscribers?: ClusterSubscriberSource;
  watch: (ingest: (events: readonly KfpEvent[]) => Promise<unknown>) => { stop(): Promise<void>; ready(): boolean };
  /** With a subscribers ConfigMap: dead letters and disabled subscribers become Events on it. */
  notice?: (notice: DeliveryNotice) => void;
  close: () => Promise<void>;
}

/**
 * Starts the subscriber ConfigMap watch (if asked) and waits for its first load: hook calls must
 * not be accepted and routed to nobody just because the API was slow. Rejects when the first load
 * does not come within `readyTimeoutMs` (default 30s), so the process exits and is restarted.
 */
export async function startClusterSubscribers(
  opts: Pick<ClusterServiceOptions, 'kubeConfig' | 'log' | 'registry'> & Required<Pick<ClusterServiceOptions, 'subscribers'>>,
): Promise<ClusterSubscriberSource> {
  const { namespace, configMapName, retryScale, readyTimeoutMs = 30_000 } = opts.subscribers;
  let current: readonly Subscriber[] = [];
  const listeners = new Set<(s: readonly Subscriber[]) => void>();
  let firstLoad: (() => void) | undefined;
  const loaded = new Promise<void>((resolve) => (firstLoad = resolve));
  const watch = startSubscriberConfigWatch({
    kubeConfig: opts.kubeConfig,
    namespace,
    configMapName,
    log: opts.log,
    ...(opts.registry ? { registry: opts.registry } : {}),
    ...(retryScale !== undefined ? { parseOptions: { retryScale } } : {}),
    onChange: (subscribers) => {
      current = subscribers;
      firstLoad?.();
      for (const l of listeners) l(current);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), readyTimeoutMs)));
  const outcome = await Promise.race([loaded, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await watch.stop();
    throw new Error(`cannot read ConfigMap ${namespace}/${configMapName} and its Secrets from the Kubernetes API within ${readyTimeoutMs}ms (check RBAC: get/list/watch configmaps and secrets in ${namespace})`);
  }
  let closed: Promise<void> | undefined;
  return {
    current: () => current,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    // The runtime closes its subscriber source and the cluster services both; once is enough.
    close: () => (closed ??= watch.stop()),
  };
}

export async function startClusterServices(opts: ClusterServiceOptions): Promise<ClusterServices> {
  const common = { kubeConfig: opts.kubeConfig, log: opts.log, ...(opts.registry ? { registry: opts.registry } : {}) };
  const subscribers = opts.subscribers ? await startClusterSubscribers({ ...common, subscribers: opts.subscribers }) : undefined;
  const enrich = createEnricher({ ...common, ...(opts.enrichTtlMs !== undefined ? { ttlMs: opts.enrichTtlMs } : {}) });
  const notice = opts.subscribers
    ? createEventRecorder({ kubeConfig: opts.kubeConfig, log: opts.log, namespace: opts.subscribers.namespace, configMapName: opts.subscribers.configMapName })
    : undefined;
  return {
    enrich,
    ...(subscribers ? { subscribers } : {}),
    ...(notice ? { notice } : {}),
    watch: (ingest) => {
      const start = () =>
        startStatusWatcher({
          ...common,
          ingest: (events) => ingest(events),
          graceMs: opts.watchGraceMs,
          ...(opts.watchNamespaces ? { namespaces: opts.watchNamespaces } : {}),
        });
      if (!opts.watchLease) return start();
      let watcher: StatusWatcher | undefined;
      const election = startLeaderElection({
        ...opts.watchLease,
        kubeConfig: opts.kubeConfig,
        log: opts.log,
        onStartedLeading: () => (watcher = start()),
        onStoppedLeading: async () => {
          const w = watcher;
          watcher = undefined;
          await w?.stop();
        },
      });
      return {
        stop: () => election.stop(),
        // A replica that does not hold the lease has no watcher to wait for.
        ready: () => watcher?.ready() ?? true,
      };
    },
    close: async () => {
      await subscribers?.close();
    },
  };
}
