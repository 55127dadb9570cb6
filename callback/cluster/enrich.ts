import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { toWorkflowSnapshot } from '../normalize.js';
import type { WorkflowSnapshot } from '../types.js';
import { errorStatus, errorText } from './list-watch.js';
import { Lru } from './lru.js';
import { clusterMetrics } from './metrics.js';
import { WORKFLOW_GROUP, WORKFLOW_PLURAL, WORKFLOW_VERSION } from './workflow-api.js';

/**
 * Enrichment: GET the Workflow a hook call is about, for what the call could not carry (a node phase
 * on Argo older than 3.4.17 / 3.5.3, a step's failure message, a KFP terminate). Every step of a run
 * calls back within minutes of the others, so snapshots are cached briefly (TTL) in a bounded LRU,
 * and concurrent lookups of one Workflow share one request.
 *
 * Never throws: a missing Workflow, an API error or a timeout resolves to undefined (normalize then
 * answers 422 if it truly needed the lookup, and the hook retries), logged and counted.
 */

export interface EnricherOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** How long a fetched snapshot answers later lookups (default 5s). */
  ttlMs?: number;
  /** Snapshots kept at most (default 256). */
  maxEntries?: number;
  /** A GET taking longer than this counts as failed (default 5s): a hook call must not hang on it. */
  timeoutMs?: number;
  registry?: Registry;
}

/** What the caller is about to read: a cached snapshot that cannot answer it is fetched again. */
export interface EnrichHint {
  /** The hook's own Workflow UID: a snapshot of an older Workflow that had the same name is not used. */
  uid?: string;
  /** An Argo node name whose final phase is needed (a snapshot where it is still running is stale). */
  nodeName?: string;
  /** An Argo node that must be in the snapshot (a run's exit node, for the attempt of a run end). */
  presentNode?: string;
}

export type Enricher = (namespace: string, name: string, hint?: EnrichHint) => Promise<WorkflowSnapshot | undefined>;

const FINAL_NODE_PHASES = new Set(['Succeeded', 'Failed', 'Error', 'Skipped', 'Omitted']);

function answers(s: WorkflowSnapshot, hint: EnrichHint | undefined): boolean {
  if (hint?.uid && s.uid && s.uid !== hint.uid) return false;
  if (hint?.presentNode && s.nodes[hint.presentNode] === undefined) return false;
  if (hint?.nodeName) return FINAL_NODE_PHASES.has(s.nodes[hint.nodeName]?.phase ?? '');
  return true;
}

export function createEnricher(opts: EnricherOptions): Enricher {
  const log = opts.log.child({ component: 'enrich' });
  const metrics = clusterMetrics(opts.registry);
  const api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
  const cache = new Lru<string, WorkflowSnapshot>(opts.maxEntries ?? 256, opts.ttlMs ?? 5000);
  const inFlight = new Map<string, Promise<WorkflowSnapshot | undefined>>();
  const timeoutMs = opts.timeoutMs ?? 5000;

  async function fetchSnapshot(namespace: string, name: string, key: string): Promise<WorkflowSnapshot | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const get = api.getNamespacedCustomObject({ group: WORKFLOW_GROUP, version: WORKFLOW_VERSION, plural: WORKFLOW_PLURAL, namespace, name });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the Kubernetes API within ${timeoutMs}ms`)), timeoutMs);
      });
      const snapshot = toWorkflowSnapshot(await Promise.race([get, timeout]));
      if (snapshot) cache.set(key, snapshot);
      metrics.enrich.inc({ result: 'fetched' });
      return snapshot;
    } catch (err) {
      const notFound = errorStatus(err) === 404;
      metrics.enrich.inc({ result: notFound ? 'not_found' : 'error' });
      if (notFound) log.info({ namespace, workflow: name }, 'workflow to enrich from is gone');
      else log.warn({ namespace, workflow: name, err: errorText(err) }, 'cannot read the workflow to enrich a hook call');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  return async (namespace, name, hint) => {
    const key = `${namespace}/${name}`;
    const cached = cache.get(key);
    if (cached && answers(cached, hint)) {
      metrics.enrich.inc({ result: 'hit' });
      return cached;
    }
    const pending = inFlight.get(key);
    if (pending) return pending;
    const request = fetchSnapshot(namespace, name, key).finally(() => inFlight.delete(key));
    inFlight.set(key, request);
    return request;
  };
}
