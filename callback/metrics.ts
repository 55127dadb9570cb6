import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What one delivery attempt came to. */
export type DeliveryOutcome = 'delivered' | 'retry' | 'dead' | 'disabled';

/** Sampled when /metrics is scraped, never pushed: queue depth and disabled state live in the store. */
export interface QueueSnapshot {
  depth: Record<string, number>;
  disabled: readonly string[];
  /** Configured subscribers: reported with depth 0 and disabled 0 when they have nothing queued. */
  subscribers: readonly string[];
}

export interface CallbackMetrics {
  /** Hook calls answered, by HTTP status code. */
  hookCalls: Counter<'code'>;
  /** New events kept, by type and source (hook, watcher). */
  eventsReceived: Counter<'type' | 'source'>;
  /** Events already stored (a retried hook, or the watcher after the hook), by source. */
  duplicates: Counter<'source'>;
  /** Delivery attempts by subscriber and outcome. */
  deliveries: Counter<'subscriber' | 'outcome'>;
  attemptSeconds: Histogram<'subscriber'>;
  /** Accept transactions: how long each group commit took and how many calls it held. */
  commitSeconds: Histogram;
  commitBatch: Histogram;
  queueDepth: Gauge<'subscriber'>;
  disabled: Gauge<'subscriber'>;
  /** Subscribers disabled by the worker, by why: `gone` (HTTP 410) or `failing` (no success for --disable-after). */
  subscriberDisables: Counter<'subscriber' | 'reason'>;
  /** Where queueDepth and disabled read from (set by the runtime once the store is open). */
  sampleQueue(source: () => Promise<QueueSnapshot>): void;
}

// One set per registry: `serve` shares a registry between webhook and callback, and prom-client
// throws on a second registration of the same name.
const byRegistry = new WeakMap<Registry, CallbackMetrics>();

export function callbackMetrics(registry: Registry): CallbackMetrics {
  const known = byRegistry.get(registry);
  if (known) return known;
  const registers = [registry];
  let source: (() => Promise<QueueSnapshot>) | undefined;

  /** A per-subscriber gauge filled from a fresh snapshot at each scrape; configured subscribers read 0 unless set. */
  function sampledGauge(name: string, help: string, fill: (snap: QueueSnapshot, set: (subscriber: string, v: number) => void) => void): Gauge<'subscriber'> {
    return new Gauge({
      name,
      help,
      labelNames: ['subscriber'],
      registers,
      async collect() {
        const snap = await source?.();
        if (!snap) return;
        this.reset();
        for (const s of snap.subscribers) this.set({ subscriber: s }, 0);
        fill(snap, (subscriber, v) => this.set({ subscriber }, v));
      },
    });
  }

  const metrics: CallbackMetrics = {
    hookCalls: new Counter({
      name: 'kfp_notify_hook_calls_total',
      help: 'Hook calls answered, by HTTP status code (202 kept; 4xx refused with a reason; 503 store unavailable)',
      labelNames: ['code'],
      registers,
    }),
    eventsReceived: new Counter({
      name: 'kfp_notify_events_received_total',
      help: 'New events stored, by event type and source (hook, watcher)',
      labelNames: ['type', 'source'],
      registers,
    }),
    duplicates: new Counter({
      name: 'kfp_notify_event_duplicates_total',
      help: 'Events already stored under the same EventId (no new deliveries), by source',
      labelNames: ['source'],
      registers,
    }),
    deliveries: new Counter({
      name: 'kfp_notify_deliveries_total',
      help: 'Delivery attempts by subscriber and outcome (delivered, retry, dead, disabled)',
      labelNames: ['subscriber', 'outcome'],
      registers,
    }),
    attemptSeconds: new Histogram({
      name: 'kfp_notify_delivery_attempt_seconds',
      help: 'Duration of one delivery attempt (request sent to response read, or failure), by subscriber',
      labelNames: ['subscriber'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    commitSeconds: new Histogram({
      name: 'kfp_notify_store_commit_seconds',
      help: 'Duration of one accept transaction (a group commit; its fsync included at --durability fsync)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    commitBatch: new Histogram({
      name: 'kfp_notify_store_commit_batch_size',
      help: 'Accept calls committed together in one transaction',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    queueDepth: sampledGauge(
      'kfp_notify_queue_depth',
      'Deliveries waiting (due, leased or scheduled for retry), by subscriber',
      (snap, set) => Object.entries(snap.depth).forEach(([name, n]) => set(name, n)),
    ),
    disabled: sampledGauge(
      'kfp_notify_subscriber_disabled',
      '1 when the subscriber is disabled (it answered 410 Gone, or failed for --disable-after); re-enable with kfp-notify subscriber enable <name>',
      (snap, set) => snap.disabled.forEach((name) => set(name, 1)),
    ),
    subscriberDisables: new Counter({
      name: 'kfp_notify_subscriber_disables_total',
      help: 'Subscribers disabled, by reason: gone (HTTP 410) or failing (no successful delivery for --disable-after)',
      labelNames: ['subscriber', 'reason'],
      registers,
    }),
    sampleQueue(fn) {
      source = fn;
    },
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
