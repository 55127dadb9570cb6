import type { Logger } from '../common/logger.js';
import { formatDelivery } from './formats/index.js';
import type { CallbackMetrics, DeliveryOutcome } from './metrics.js';
import { nextDelay, scalePolicy } from './retry.js';
import type { SendRequest } from './sender.js';
import { sign } from './signing.js';
import type { ClaimedDelivery, DeliveryStore } from './store/types.js';
import type { DeliveryNotice, KfpEvent, SendResult, Subscriber } from './types.js';

/**
 * The delivery loop: one lane per subscriber, each with its own concurrency (Subscriber.maxConcurrency),
 * so a slow or dead subscriber only ever holds its own slots. A lane wakes when ingest reports new
 * deliveries for it (notify) and at its next due time (one timer per lane); it never polls.
 *
 * Per attempt: claim with a lease → format + sign → send → retry.ts decides → record the outcome.
 * A process that dies mid-send leaves the lease behind; the row is due again when the store reopens
 * and the receiver sees the same webhook-id (= EventId) twice, which is what at-least-once means.
 */

export interface WorkerDeps {
  store: DeliveryStore;
  send: (req: SendRequest) => Promise<SendResult>;
  log: Logger;
  metrics?: CallbackMetrics;
  now?: () => number;
  rand?: () => number;
  /**
   * Multiplies every step of every retry schedule (0.001 turns minutes into tens of ms); for tests
   * and demos. A receiver's Retry-After is still honoured in real seconds.
   */
  retryScale?: number;
  /** Told when a delivery is dead-lettered or a subscriber disabled (Kubernetes Events in a cluster). */
  onNotice?: (notice: DeliveryNotice) => void;
}

export interface Worker {
  /** Replace the subscriber set (config reload): new lanes start, removed lanes stop claiming. */
  setSubscribers(subscribers: readonly Subscriber[]): void;
  /** New deliveries were stored for these subscribers (all lanes when omitted). */
  notify(subscribers?: Iterable<string>): void;
  running(): boolean;
  /** Stop claiming, let in-flight sends finish for up to graceMs, then abort them and release their leases. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

interface Lane {
  sub: Subscriber;
  inFlight: Map<number, { abort: AbortController; done: Promise<void> }>;
  timer?: NodeJS.Timeout;
  timerAt?: number;
  pumping: boolean;
  again: boolean;
  removed: boolean;
}

/** How long past the send timeout a claim holds; only matters if the process dies mid-send. */
const LEASE_MARGIN_MS = 30_000;
/** After a store error, how long a lane waits before trying again. */
const STORE_BACKOFF_MS = 1_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The HTTP request for one event to one subscriber: extra headers, format headers, then webhook-* (never overridable). */
export function deliveryRequest(event: KfpEvent, sub: Subscriber, nowMs: number): Omit<SendRequest, 'signal'> {
  const { headers, body } = formatDelivery(event, sub);
  const timestamp = Math.floor(nowMs / 1000);
  const webhook = sub.signingKeys?.length
    ? sign({ id: event.EventId, timestamp, body, secrets: sub.signingKeys })
    : { 'webhook-id': event.EventId, 'webhook-timestamp': String(timestamp) };
  return { url: sub.url ?? '', headers: { ...sub.headers, ...headers, ...webhook }, body, timeoutMs: sub.timeoutMs };
}

function describeFailure(result: SendResult): string {
  return result.status !== undefined ? `HTTP ${result.status}${result.error ? ` (${result.error})` : ''}` : (result.error ?? 'failed');
}

export function startWorker(deps: WorkerDeps, initial: readonly Subscriber[] = []): Worker {
  const { store, log, metrics } = deps;
  const now = deps.now ?? Date.now;
  const rand = deps.rand ?? Math.random;
  const scale = deps.retryScale ?? 1;
  const lanes = new Map<string, Lane>();
  let stopping = false;

  function clearTimer(lane: Lane): void {
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = undefined;
    lane.timerAt = undefined;
  }

  function wakeAt(lane: Lane, at: number): void {
    if (lane.timerAt !== undefined && lane.timerAt <= at) return;
    clearTimer(lane);
    lane.timerAt = at;
    lane.timer = setTimeout(() => {
      lane.timer = undefined;
      lane.timerAt = undefined;
      pump(lane);
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - now())));
    lane.timer.unref();
  }

  function pump(lane: Lane): void {
    if (stopping || lane.removed) return;
    if (lane.pumping) {
      lane.again = true;
      return;
    }
    lane.pumping = true;
    void fill(lane)
      .catch((err: unknown) => {
        log.error({ err, subscriber: lane.sub.name }, 'delivery queue unavailable; retrying');
        wakeAt(lane, now() + STORE_BACKOFF_MS);
      })
      .finally(() => {
        lane.pumping = false;
        if (lane.again) pump(lane);
      });
  }

  /** Claims as many due deliveries as the lane has free slots, then sleeps until the next due time. */
  async function fill(lane: Lane): Promise<void> {
    const name = lane.sub.name;
    do {
      lane.again = false;
      if ((await store.disabledSubscribers())[name]) return;
      const free = lane.sub.maxConcurrency - lane.inFlight.size;
      if (free <= 0) return; // a finishing send pumps again
      const claimed = await store.claim(name, { now: now(), limit: free, leaseMs: lane.sub.timeoutMs + LEASE_MARGIN_MS });
      for (const c of claimed) start(lane, c);
      if (claimed.length === free) return;
    } while (lane.again && !stopping);
    const next = await store.nextDueAt(name);
    if (next !== undefined && !stopping) wakeAt(lane, next);
  }

  function start(lane: Lane, c: ClaimedDelivery): void {
    const abort = new AbortController();
    const done = attempt(lane, c, abort.signal)
      .catch((err: unknown) => log.error({ err, subscriber: lane.sub.name, deliveryId: c.delivery.id }, 'recording a delivery outcome failed'))
      .finally(() => {
        lane.inFlight.delete(c.delivery.id);
        pump(lane);
      });
    lane.inFlight.set(c.delivery.id, { abort, done });
  }

  async function sendOnce(sub: Subscriber, event: KfpEvent, signal: AbortSignal): Promise<SendResult> {
    if (sub.type === 'log') {
      log.info({ subscriber: sub.name, event }, `${event.EventType} ${event.WorkflowName}${event.NodeName ? ` ${event.NodeName}` : ''}`);
      return { ok: true, durationMs: 0 };
    }
    let req: Omit<SendRequest, 'signal'>;
    try {
      req = deliveryRequest(event, sub, now());
    } catch (err) {
      // A config the parser should have refused (a bad signing secret): a failed attempt, not a stuck lease.
      return { ok: false, error: `cannot build the request: ${err instanceof Error ? err.message : String(err)}`, durationMs: 0 };
    }
    return deps.send({ ...req, signal });
  }

  async function attempt(lane: Lane, c: ClaimedDelivery, signal: AbortSignal): Promise<void> {
    const sub = lane.sub;
    const { delivery, event } = c;
    const result = await sendOnce(sub, event, signal);
    if (signal.aborted && !result.ok) {
      // Cut short by shutdown: not the subscriber's fault, so no attempt is counted.
      await store.release([delivery.id], now());
      return;
    }
    metrics?.attemptSeconds.observe({ subscriber: sub.name }, result.durationMs / 1000);
    const attemptNo = delivery.attempts + 1;
    const at = now();
    const note = { now: at, ...(result.status !== undefined ? { status: result.status } : {}), ...(result.error ? { error: result.error } : {}) };
    const policy = scale === 1 ? sub.retry : scalePolicy(sub.retry, scale);
    const decision = nextDelay({ attempt: attemptNo, result, policy, rand });
    const context = { subscriber: sub.name, eventId: event.EventId, attempt: attemptNo, status: result.status, error: result.error };
    let outcome: DeliveryOutcome;
    switch (decision.action) {
      case 'done':
        await store.markDelivered(delivery.id, note);
        outcome = 'delivered';
        log.debug(context, 'delivered');
        break;
      case 'retry': {
        await store.scheduleRetry(delivery.id, at + decision.delayMs, note);
        outcome = 'retry';
        log.info({ ...context, retryInMs: decision.delayMs }, 'delivery failed; will retry');
        break;
      }
      case 'dead':
        await store.deadLetter(delivery.id, note);
        outcome = 'dead';
        log.warn(context, 'delivery failed for the last time; moved to the dead letters');
        deps.onNotice?.({ kind: 'dead-lettered', subscriber: sub.name, eventId: event.EventId, reason: describeFailure(result) });
        break;
      case 'disable': {
        await store.deadLetter(delivery.id, note);
        const moved = await store.disable(sub.name, result.status === 410 ? 'HTTP 410 Gone' : (result.error ?? 'disabled'), at);
        outcome = 'disabled';
        log.warn({ ...context, movedToDeadLetters: moved }, 'subscriber disabled; re-enable with POST /v1/subscribers/<name>/enable');
        deps.onNotice?.({ kind: 'subscriber-disabled', subscriber: sub.name, eventId: event.EventId, reason: describeFailure(result) });
        break;
      }
    }
    metrics?.deliveries.inc({ subscriber: sub.name, outcome });
  }

  function setSubscribers(subscribers: readonly Subscriber[]): void {
    const names = new Set(subscribers.map((s) => s.name));
    for (const [name, lane] of lanes) {
      if (names.has(name)) continue;
      lane.removed = true;
      clearTimer(lane);
      lanes.delete(name);
    }
    for (const sub of subscribers) {
      const lane = lanes.get(sub.name);
      if (lane) lane.sub = sub;
      else lanes.set(sub.name, { sub, inFlight: new Map(), pumping: false, again: false, removed: false });
    }
    notify();
  }

  function notify(names?: Iterable<string>): void {
    if (names === undefined) {
      for (const lane of lanes.values()) pump(lane);
      return;
    }
    for (const name of names) {
      const lane = lanes.get(name);
      if (lane) pump(lane);
    }
  }

  async function stop(opts: { graceMs?: number } = {}): Promise<void> {
    if (stopping) return;
    stopping = true;
    for (const lane of lanes.values()) clearTimer(lane);
    const inFlight = () => [...lanes.values()].flatMap((l) => [...l.inFlight.values()]);
    const all = Promise.all(inFlight().map((f) => f.done));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), opts.graceMs ?? 10_000))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      for (const f of inFlight()) f.abort.abort(new Error('shutting down'));
      await Promise.all(inFlight().map((f) => f.done));
    }
  }

  setSubscribers(initial);
  return { setSubscribers, notify, running: () => !stopping, stop };
}
