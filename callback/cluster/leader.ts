import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/error-message.js';

/**
 * One holder at a time for a job every replica could do (the status watcher), through a Kubernetes
 * Lease (coordination.k8s.io/v1), the way client-go's leader election does it:
 * - the holder renews `spec.renewTime` every `retryMs`; a write is a replace with the read
 *   resourceVersion, so two candidates never both win;
 * - a candidate takes over when the record has not changed for `leaseDurationMs` as seen by ITS OWN
 *   clock (time since it last saw the record change), so clock skew between nodes does not matter;
 * - a holder that cannot renew stops the job at once, and one that shuts down empties holderIdentity
 *   so the next candidate takes over on its next try.
 * With the defaults (10 s lease, 2 s retry) another replica takes over within 12 s of the holder's
 * death.
 */

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export type LeaderStep = { action: 'create' } | { action: 'renew' } | { action: 'takeover' } | { action: 'wait' };

/**
 * Pure: what a candidate does with the lease as read. `unchangedSinceMs`: local time at which the
 * candidate first saw the record as it is now.
 */
export function decide(record: LeaseRecord | undefined, me: string, unchangedSinceMs: number, nowMs: number, leaseDurationMs: number): LeaderStep {
  if (!record) return { action: 'create' };
  if (record.holderIdentity === me) return { action: 'renew' };
  if (!record.holderIdentity) return { action: 'takeover' };
  return nowMs - unchangedSinceMs >= leaseDurationMs ? { action: 'takeover' } : { action: 'wait' };
}

/** RFC 3339 with microseconds, the format of a Lease's MicroTime fields. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  log: Logger;
  leaseDurationMs?: number;
  retryMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => Promise<void> | void;
  now?: () => number;
}

export interface LeaderElection {
  leading(): boolean;
  /** Stops trying; a holder stops its job and hands the lease back. */
  stop(): Promise<void>;
}

const GROUP = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' };

interface LeaseObject {
  metadata?: { resourceVersion?: string };
  spec?: LeaseRecord;
}

function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function startLeaderElection(opts: LeaderElectionOptions): LeaderElection {
  const api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
  const now = opts.now ?? Date.now;
  const leaseDurationMs = opts.leaseDurationMs ?? 10_000;
  const retryMs = opts.retryMs ?? 2_000;
  const ref = { ...GROUP, namespace: opts.namespace, name: opts.name };
  let leading = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let seen: { key: string; since: number } | undefined;
  let running: Promise<void> = Promise.resolve();

  const spec = (prev: LeaseRecord | undefined, at: number, takeover: boolean): LeaseRecord => ({
    holderIdentity: opts.identity,
    leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
    acquireTime: takeover || !prev?.acquireTime ? microTime(at) : prev.acquireTime,
    renewTime: microTime(at),
    leaseTransitions: (prev?.leaseTransitions ?? 0) + (takeover && prev ? 1 : 0),
  });

  async function lose(why: string): Promise<void> {
    if (!leading) return;
    leading = false;
    opts.log.warn({ lease: `${opts.namespace}/${opts.name}`, why }, 'lost the watcher lease; status watcher stopped here');
    await opts.onStoppedLeading();
  }

  async function tick(): Promise<void> {
    let obj: LeaseObject | undefined;
    try {
      obj = (await api.getNamespacedCustomObject(ref)) as LeaseObject;
    } catch (err) {
      if (statusCode(err) !== 404) {
        await lose(`cannot read the lease: ${errorMessage(err)}`);
        return;
      }
    }
    const record = obj?.spec;
    const key = JSON.stringify(record ?? null);
    if (seen?.key !== key) seen = { key, since: now() };
    const step = decide(record, opts.identity, seen.since, now(), leaseDurationMs);
    if (step.action === 'wait') {
      await lose(`held by ${record?.holderIdentity ?? '?'}`);
      return;
    }
    const at = now();
    try {
      if (step.action === 'create') {
        await api.createNamespacedCustomObject({
          ...GROUP,
          namespace: opts.namespace,
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: opts.name, namespace: opts.namespace }, spec: spec(undefined, at, true) },
        });
      } else {
        await api.replaceNamespacedCustomObject({
          ...ref,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: opts.name, namespace: opts.namespace, resourceVersion: obj?.metadata?.resourceVersion },
            spec: spec(record, at, step.action === 'takeover'),
          },
        });
      }
    } catch (err) {
      // 409: someone else wrote first; they hold it (or renewed it).
      await lose(statusCode(err) === 409 ? 'another replica wrote the lease first' : `cannot write the lease: ${errorMessage(err)}`);
      return;
    }
    if (!leading && !stopped) {
      leading = true;
      opts.log.info({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity }, 'holding the watcher lease; status watcher runs here');
      opts.onStartedLeading();
    }
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(schedule);
    }, retryMs);
    timer.unref();
  }
  running = tick().finally(schedule);

  return {
    leading: () => leading,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running.catch(() => undefined);
      if (!leading) return;
      await lose('shutting down');
      // Hand it back so the next replica need not wait out the lease.
      try {
        const obj = (await api.getNamespacedCustomObject(ref)) as LeaseObject;
        if (obj.spec?.holderIdentity === opts.identity) {
          await api.replaceNamespacedCustomObject({ ...ref, body: { ...obj, spec: { ...obj.spec, holderIdentity: '' } } });
        }
      } catch (err) {
        opts.log.warn({ err: errorMessage(err) }, 'could not hand back the watcher lease; another replica takes it when it expires');
      }
    },
  };
}
