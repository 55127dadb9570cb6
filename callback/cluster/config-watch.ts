import { isDeepStrictEqual } from 'node:util';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { parseSubscribers, type ParseOptions } from '../subscribers/parse.js';
import type { SecretRef, Subscriber } from '../types.js';
import { startListWatch, type KubeObject, type ListWatchHandle } from './list-watch.js';
import { clusterMetrics } from './metrics.js';
import { errorMessage } from '../../common/error-message.js';

/**
 * Subscribers from the cluster: the ConfigMap `kfp-event-handler-config` (the name microsoft's
 * kfp-event-handler used, so its ConfigMap works as is) in the callback's own namespace, and the
 * Secrets its entries reference for signing keys. Any change to either is re-parsed and handed to
 * `onChange`, so edits and key rotations apply without a restart.
 *
 * Each entry is parsed on its own: a broken entry keeps its last good version (if it had one) and
 * its error is reported, while the other entries' edits apply. A deleted ConfigMap keeps the last
 * good config too (empty its `data` to remove every subscriber). Secret values never reach a log.
 */

export interface SubscriberConfigWatchOptions {
  kubeConfig: KubeConfig;
  /** The callback's own namespace. */
  namespace: string;
  configMapName: string;
  /** Called once both are first listed, then after every change that changes the result. */
  onChange: (subscribers: Subscriber[], errors: string[]) => void;
  log: Logger;
  /** Passed to parseSubscribers (e.g. `retryScale` from `--retry-scale`). */
  parseOptions?: ParseOptions;
  registry?: Registry;
  backoff?: { initialMs: number; maxMs: number };
  watchTimeoutSeconds?: number;
}

export interface SubscriberConfigWatch {
  stop(): Promise<void>;
  /** True once the ConfigMap and Secrets have been listed and onChange has been called. */
  ready(): boolean;
}

function stringData(obj: KubeObject, field: 'data'): Record<string, string> {
  const d = obj[field];
  if (typeof d !== 'object' || d === null) return {};
  return Object.fromEntries(Object.entries(d).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

export function startSubscriberConfigWatch(opts: SubscriberConfigWatchOptions): SubscriberConfigWatch {
  const log = opts.log.child({ component: 'subscriber-config', configMap: `${opts.namespace}/${opts.configMapName}` });
  const metrics = clusterMetrics(opts.registry);
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  const ns = encodeURIComponent(opts.namespace);

  /** The ConfigMap's data; undefined until listed, null once known to be absent. */
  let configData: Record<string, string> | null | undefined;
  const secrets = new Map<string, Record<string, string>>();
  /** Secret names the current entries reference: a change to any other Secret is not our business. */
  let referenced = new Set<string>();
  /** Per entry key, the last version that parsed cleanly. */
  const lastGood = new Map<string, Subscriber[]>();
  let last: { subscribers: Subscriber[]; errors: string[] } | undefined;
  let configSynced = false;
  let secretsSynced = false;
  /** The ConfigMap went away while subscribers ran: its return is logged even if it brings the same ones. */
  let deleted = false;

  function resolveSecret(ref: SecretRef): string | undefined {
    referenced.add(ref.name);
    const b64 = secrets.get(ref.name)?.[ref.key];
    return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
  }

  function reload(why: string): void {
    if (!configSynced || !secretsSynced) return;
    if (configData === null && last !== undefined) {
      metrics.configReloads.inc({ result: 'rejected' });
      log.warn('subscriber ConfigMap deleted; keeping the last good subscribers (empty its data to remove them)');
      deleted = true;
      return;
    }
    if (deleted && configData !== null) {
      deleted = false;
      log.info({ trigger: why }, 'subscriber ConfigMap back; loading it');
    }
    referenced = new Set();
    const subscribers: Subscriber[] = [];
    const errors: string[] = configData === null ? [`ConfigMap ${opts.namespace}/${opts.configMapName} not found: no subscribers`] : [];
    const data = configData ?? {};
    for (const key of Object.keys(data).sort()) {
      const parsed = parseSubscribers({ [key]: data[key] }, resolveSecret, opts.parseOptions);
      if (parsed.errors.length === 0) {
        lastGood.set(key, parsed.subscribers);
        subscribers.push(...parsed.subscribers);
        continue;
      }
      const kept = lastGood.get(key);
      errors.push(...parsed.errors.map((e) => (kept ? `${e} (keeping the previous version of ${key})` : e)));
      subscribers.push(...(kept ?? parsed.subscribers));
    }
    for (const key of [...lastGood.keys()]) if (!(key in data)) lastGood.delete(key);

    const next = { subscribers, errors };
    if (last && isDeepStrictEqual(last, next)) return;
    last = next;
    metrics.configReloads.inc({ result: errors.length > 0 ? 'rejected' : 'applied' });
    const names = subscribers.map((s) => s.name);
    if (errors.length > 0) log.warn({ subscribers: names, errors, trigger: why }, 'subscriber config loaded with errors');
    else log.info({ subscribers: names, trigger: why }, 'subscriber config loaded');
    try {
      opts.onChange(subscribers, errors);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'onChange failed');
    }
  }

  const common = { kubeConfig: opts.kubeConfig, log, backoff: opts.backoff, watchTimeoutSeconds: opts.watchTimeoutSeconds };
  const fieldSelector = `metadata.name=${opts.configMapName}`;
  const handles: ListWatchHandle[] = [
    startListWatch({
      ...common,
      resource: 'configmaps',
      path: `/api/v1/namespaces/${ns}/configmaps`,
      fieldSelector,
      list: ({ limit, continueToken }) => api.listNamespacedConfigMap({ namespace: opts.namespace, fieldSelector, limit, _continue: continueToken }),
      onUpsert: (obj) => {
        configData = stringData(obj, 'data');
        reload('configmap changed');
      },
      onDelete: () => {
        configData = null;
        reload('configmap deleted');
      },
      onSynced: () => {
        configSynced = true;
        if (configData === undefined) configData = null;
        reload('configmap listed');
      },
      onError: () => metrics.watchErrors.inc({ resource: 'configmaps' }),
      onRelist: () => metrics.relists.inc({ resource: 'configmaps' }),
    }),
    startListWatch({
      ...common,
      resource: 'secrets',
      path: `/api/v1/namespaces/${ns}/secrets`,
      list: ({ limit, continueToken }) => api.listNamespacedSecret({ namespace: opts.namespace, limit, _continue: continueToken }),
      onUpsert: (obj) => {
        const name = obj.metadata?.name ?? '';
        secrets.set(name, stringData(obj, 'data'));
        if (referenced.has(name)) reload(`secret ${name} changed`);
      },
      onDelete: (obj) => {
        const name = obj.metadata?.name ?? '';
        secrets.delete(name);
        if (referenced.has(name)) reload(`secret ${name} deleted`);
      },
      onSynced: () => {
        secretsSynced = true;
        reload('secrets listed');
      },
      onError: () => metrics.watchErrors.inc({ resource: 'secrets' }),
      onRelist: () => metrics.relists.inc({ resource: 'secrets' }),
    }),
  ];

  return {
    async stop() {
      await Promise.all(handles.map((h) => h.stop()));
    },
    ready: () => last !== undefined,
  };
}
