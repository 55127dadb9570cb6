import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import type { DeliveryNotice } from '../types.js';
import { errorMessage } from '../../common/error-message.js';

/**
 * Delivery trouble as Kubernetes Events (core/v1, Warning) on the subscribers ConfigMap, so an admin
 * sees it with `kubectl -n kfp-notify get events` or any event exporter, not only in our logs.
 * Throttled per subscriber and kind: a dead endpoint dead-letters every event, and one Event a
 * minute (with a count of the others) says as much without flooding etcd.
 */

export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  /** The callback's own namespace: the only one its Role may create Events in. */
  namespace: string;
  /** What the Events are about: the subscribers ConfigMap. */
  configMapName: string;
  log: Logger;
  minIntervalMs?: number;
  now?: () => number;
}

const REASONS: Record<DeliveryNotice['kind'], string> = {
  'subscriber-disabled': 'SubscriberDisabled',
  'dead-lettered': 'DeliveryDeadLettered',
};

export function describeNotice(n: DeliveryNotice, suppressed: number): string {
  const more = suppressed > 0 ? ` (and ${suppressed} more since the last such Event)` : '';
  return n.kind === 'subscriber-disabled'
    ? `subscriber ${n.subscriber} disabled after ${n.reason} for event ${n.eventId}; its deliveries are in the dead-letter list. Re-enable: kfp-notify subscriber enable ${n.subscriber}`
    : `delivery of event ${n.eventId} to subscriber ${n.subscriber} dead-lettered after its last attempt (${n.reason})${more}. Replay: kfp-notify dlq replay --subscriber ${n.subscriber}`;
}

export function createEventRecorder(opts: EventRecorderOptions): (notice: DeliveryNotice) => void {
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  const now = opts.now ?? Date.now;
  const minInterval = opts.minIntervalMs ?? 60_000;
  const last = new Map<string, { at: number; suppressed: number }>();

  return (notice) => {
    const key = `${notice.kind}/${notice.subscriber}`;
    const seen = last.get(key);
    // A disable is rare and always worth saying; dead letters are throttled.
    if (notice.kind === 'dead-lettered' && seen && now() - seen.at < minInterval) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    last.set(key, { at: now(), suppressed: 0 });
    const at = new Date(now());
    const body = {
      metadata: { generateName: `${opts.configMapName}.`, namespace: opts.namespace },
      involvedObject: { apiVersion: 'v1', kind: 'ConfigMap', name: opts.configMapName, namespace: opts.namespace },
      reason: REASONS[notice.kind],
      message: describeNotice(notice, suppressed).slice(0, 1024),
      type: 'Warning',
      source: { component: 'kfp-notify-callback' },
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1 + suppressed,
    };
    api.createNamespacedEvent({ namespace: opts.namespace, body }).then(
      () => undefined,
      (err: unknown) => opts.log.warn({ err: errorMessage(err), reason: body.reason }, 'could not record a Kubernetes Event'),
    );
  };
}
