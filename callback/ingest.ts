import type { CallbackMetrics } from './metrics.js';
import { route } from './route.js';
import type { DeliveryStore } from './store/types.js';
import type { KfpEvent, Subscriber } from './types.js';
import { runUrl } from './run-url.js';

/**
 * Accept → persist → enqueue, for both sources (hook calls and the status watcher): route each event
 * to the subscribers that want it, store the event and one delivery row per subscriber in one
 * transaction, and only then resolve. The worker is told afterwards; it never sees an event that
 * is not already durable. An EventId already stored is a duplicate and queues nothing.
 */

export interface IngestResult {
  /** Every event of the call, in order, kept now or before. */
  eventIds: string[];
  /** The subset that was already stored (a retried hook, or the watcher after the hook). */
  duplicates: string[];
}

export type Ingest = (events: readonly KfpEvent[]) => Promise<IngestResult>;

export interface IngestDeps {
  store: DeliveryStore;
  subscribers: () => readonly Subscriber[];
  /** Told which subscribers have new deliveries, after the commit. */
  onQueued?: (subscribers: Set<string>) => void;
  metrics?: CallbackMetrics;
  now?: () => number;
  /** The KFP UI base (--kfp-ui-url, checked by parseKfpUiUrl): every event gets its RunUrl here, whichever source it came from. */
  kfpUiUrl?: string;
}

export function createIngest(deps: IngestDeps): Ingest {
  const now = deps.now ?? Date.now;
  return async (events) => {
    if (events.length === 0) return { eventIds: [], duplicates: [] };
    const subscribers = deps.subscribers();
    const linked = deps.kfpUiUrl ? events.map((e) => ({ ...e, RunUrl: runUrl(deps.kfpUiUrl, e.KfpRunId) })) : events;
    const items = linked.map((event) => ({ event, subscribers: route(event, subscribers).map((s) => s.name) }));
    const results = await deps.store.accept(items, now());
    const queued = new Set<string>();
    const duplicates: string[] = [];
    results.forEach((r, i) => {
      const item = items[i];
      if (!item) return;
      if (r.duplicate) {
        duplicates.push(r.eventId);
        deps.metrics?.duplicates.inc({ source: item.event.Source });
        return;
      }
      deps.metrics?.eventsReceived.inc({ type: item.event.EventType, source: item.event.Source });
      for (const name of item.subscribers) queued.add(name);
    });
    if (queued.size > 0) deps.onQueued?.(queued);
    return { eventIds: results.map((r) => r.eventId), duplicates };
  };
}
