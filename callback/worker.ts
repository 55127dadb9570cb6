import type { Logger } from '../common/logger.js';
import { formatDelivery } from './formats/index.js';
import type { CallbackMetrics, DeliveryOutcome } from './metrics.js';
import { nextDelay, scalePolicy } from './retry.js';
import type { SendRequest } from './sender.js';
import { sign } from './signing.js';
import type { AttemptOutcome, AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryStore, SentRequest } from './store/types.js';
import { sentRequest } from './attempt-log.js';
import type { DeliveryNotice, KfpEvent, SendResult, Subscriber, SubscriberType, Transport } from './types.js';
import { errorMessage } from '../common/error-message.js';

/**
 * The delivery loop: one lane per subscriber, each with its own concurrency (Subscriber.maxConcurrency),
 * so a slow or dead subscriber only ever holds its own slots. A lane wakes when ingest reports new
 * deliveries for it (notify) and at its next due time (one timer per lane); it never polls.
 *
 * Per attempt: claim with a lease → format + sign → send → retry.ts decides → record the outcome.
 * Bookkeeping is done in bulk, because per delivery it cost more than the send: all lanes that freed
 * slots in one event-loop turn refill in one pass, a lane claims for its free slots plus a reserve of
 * maxConcurrency (so it claims about once per maxConcurrency sends), and the store writes the outcomes
 * of one turn in one transaction.
 *
 * An attempt that gets no HTTP response at all (refused, reset, DNS, TLS, timeout) pauses its lane
 * until that delivery's retry time (at most MAX_LANE_PAUSE_MS): the next delivery would go to the same
 * unreachable endpoint, and a subscriber that refuses connections in a millisecond would otherwise
 * see every queued delivery attempted (and rescheduled) back to back. Any HTTP answer lifts the pause.
 * A process that dies mid-send (or in the turn a send's outcome arrived) takes its leases with it; the
 * row is due again when the store reopens and the receiver sees the same webhook-id (= EventId)
 * twice, which is what at-least-once means.
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
  /** Senders for the subscriber types the worker does not build in (nats, kfp-run), by type. */
  transports?: Partial<Record<Exclude<SubscriberType, 'http' | 'log'>, Transport>>;
  /**
   * Disable a subscriber whose attempts have all failed for this long (ms; Svix's default is 5
   * days). Undefined or 0: never. The failing-since mark is kept in the store, written only when a
   * subscriber starts or stops failing, so a restart does not reset the clock.
   */
  disableAfterMs?: number;
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
  /** Attempts not finished (sending, or recording their outcome), by delivery id. */
  inFlight: Map<number, Promise<void>>;
  /** HTTP requests in flight: what maxConcurrency bounds. */
  sending: number;
  timer?: NodeJS.Timeout;
  timerAt?: number;
  removed: boolean;
  /** Claimed (leased) but not started yet: a reserve, so that a lane claims once per maxConcurrency sends. */
  ready: ClaimedDelivery[];
  /** No claims before this time (ms since the epoch): the endpoint did not answer. */
  pausedUntil?: number;
  /** Every attempt since this time (ms since the epoch) has failed; read from the store once per lane. */
  failingSince?: number;
  failingLoaded: boolean;
}

/**
 * How long past the send timeout (or two, for a delivery waiting in a lane's reserve) a claim holds.
 * Leases live in the store's memory: they only keep this process from claiming a row twice.
 */
const LEASE_MARGIN_MS = 30_000;
/** After a store error, how long a lane waits before trying again. */
const STORE_BACKOFF_MS = 1_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
const LOGGED_OUTCOME: Record<'done' | 'retry' | 'dead' | 'disable', AttemptOutcome> = { done: 'delivered', retry: 'retry', dead: 'dead', disable: 'disabled' };
/** Longest pause of a lane whose endpoint did not answer: how often an unreachable subscriber is probed at worst. */
export const MAX_LANE_PAUSE_MS = 30_000;

/** The HTTP request for one event to one subscriber: extra headers, format headers, then webhook-* (never overridable). */
export function deliveryRequest(event: KfpEvent, sub: Subscriber, nowMs: number): Omit<SendRequest, 'signal'> {
  const { headers, body } = formatDelivery(event, sub);
  const timestamp = Math.floor(nowMs / 1000);
  const webhook = sub.signingKeys?.length
    ? sign({ id: event.EventId, timestamp, body, secrets: sub.signingKeys })
    : { 'webhook-id': event.EventId, 'webhook-timestamp': String(timestamp) };
  return { url: sub.url ?? '', headers: { ...sub.headers, ...headers, ...webhook }, body, timeoutMs: sub.timeoutMs };
}

/** 432000000 → "5d": how long, as an operator would write it. */
export function shortDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
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
  // One signal for every send: shutdown is the only thing that cuts a send short, and it cuts them all.
  const shutdown = new AbortController();

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
      refillSoon(lane);
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - now())));
    lane.timer.unref();
  }

  // Lanes to refill at the end of this turn: one pass serves them all.
  const refillDue = new Set<Lane>();
  let refillScheduled = false;
  let refilling = false;

  /** Refills the lane at the end of this turn, once however many sends finished or notices came. */
  function refillSoon(lane: Lane): void {
    if (stopping || lane.removed) return;
    refillDue.add(lane);
    if (refilling || refillScheduled) return; // a running pass reschedules when it ends
    refillScheduled = true;
    setImmediate(runRefills);
  }

  function runRefills(): void {
    refillScheduled = false;
    if (stopping || refillDue.size === 0) return;
    const batch = [...refillDue];
    refillDue.clear();
    refilling = true;
    void refill(batch)
      .catch((err: unknown) => {
        log.error({ err, subscribers: batch.map((l) => l.sub.name) }, 'delivery queue unavailable; retrying');
        for (const lane of batch) wakeAt(lane, now() + STORE_BACKOFF_MS);
      })
      .finally(() => {
        refilling = false;
        if (refillDue.size > 0 && !refillScheduled && !stopping) {
          refillScheduled = true;
          setImmediate(runRefills);
        }
      });
  }

  /** Claims as many due deliveries as each lane has free slots; a lane left with free slots sleeps until its next due time. */
  async function refill(batch: readonly Lane[]): Promise<void> {
    const disabled = await store.disabledSubscribers();
    if (deps.disableAfterMs && batch.some((l) => !l.failingLoaded)) {
      const marks = await store.failingSince();
      for (const lane of batch) {
        if (lane.failingLoaded) continue;
        lane.failingLoaded = true;
        lane.failingSince = marks[lane.sub.name];
      }
    }
    const at = now();
    const wanting: { lane: Lane; free: number; request: ClaimRequest }[] = [];
    for (const lane of batch) {
      if (lane.removed) continue;
      if (disabled[lane.sub.name]) {
        lane.ready = []; // disabling moved them to the dead letters and dropped their leases
        lane.failingSince = undefined; // enable() clears the stored mark: the clock starts again
        continue;
      }
      if (lane.pausedUntil !== undefined) {
        if (at < lane.pausedUntil) {
          wakeAt(lane, lane.pausedUntil);
          continue;
        }
        lane.pausedUntil = undefined;
      }
      let free = lane.sub.maxConcurrency - lane.sending;
      for (; free > 0 && lane.ready.length > 0; free--) start(lane, lane.ready.shift() as ClaimedDelivery);
      // Claim for the free slots and a reserve of maxConcurrency as soon as the reserve is used up, so
      // that a slot that frees up starts its next send at once. Leases (in memory) cover a wait in the reserve
      // plus the send.
      const want = free + lane.sub.maxConcurrency - lane.ready.length;
      if (free > 0 || lane.ready.length === 0) {
        wanting.push({ lane, free, request: { subscriber: lane.sub.name, limit: want, leaseMs: 2 * lane.sub.timeoutMs + LEASE_MARGIN_MS } });
      }
      // else: a finishing send asks for a refill again
    }
    if (wanting.length === 0) return;
    const claimed = await store.claimMany(
      wanting.map((w) => w.request),
      at,
    );
    if (stopping) {
      await store.release(claimed.flat().map((c) => c.delivery.id), now());
      return;
    }
    for (const [i, { lane, free, request }] of wanting.entries()) {
      const got = claimed[i] ?? [];
      got.slice(0, free).forEach((c) => start(lane, c));
      lane.ready.push(...got.slice(free));
      if (got.length === request.limit) continue;
      const next = await store.nextDueAt(lane.sub.name);
      if (next !== undefined && !stopping) wakeAt(lane, next);
    }
  }

  /** Hands a lane's reserve back to the store (due again at once, no attempt counted). */
  function giveBack(lane: Lane): void {
    const ids = lane.ready.map((c) => c.delivery.id);
    lane.ready = [];
    if (ids.length > 0) store.release(ids, now()).catch((err: unknown) => log.error({ err, subscriber: lane.sub.name }, 'releasing claimed deliveries failed'));
  }

  function startFromReserve(lane: Lane): void {
    if (stopping || lane.removed || lane.pausedUntil !== undefined) return;
    const next = lane.sending < lane.sub.maxConcurrency ? lane.ready.shift() : undefined;
    if (next) start(lane, next);
  }

  function start(lane: Lane, c: ClaimedDelivery): void {
    lane.sending++;
    const id = c.delivery.id;
    const finished = () => {
      lane.inFlight.delete(id);
      refillSoon(lane);
    };
    const done = attempt(lane, c).then(finished, (err: unknown) => {
      log.error({ err, subscriber: lane.sub.name, deliveryId: id }, 'recording a delivery outcome failed');
      finished();
    });
    lane.inFlight.set(id, done);
  }

  /** Sends one attempt; `sent` is told the HTTP request (for the attempt log) before it goes out. */
  function sendOnce(sub: Subscriber, event: KfpEvent, sent: (req: SendRequest) => void): Promise<SendResult> {
    if (sub.type === 'log') {
      log.info({ subscriber: sub.name, event }, `${event.EventType} ${event.WorkflowName}${event.NodeName ? ` ${event.NodeName}` : ''}`);
      return Promise.resolve({ ok: true, durationMs: 0 });
    }
    if (sub.type !== 'http') {
      const transport = deps.transports?.[sub.type];
      // A subscriber whose type has no transport in this process: a failed attempt with the reason,
      // retried and dead-lettered like any other, never a stuck lease.
      if (!transport) return Promise.resolve({ ok: false, error: `no transport for subscriber type ${sub.type}`, durationMs: 0 });
      return transport.deliver(sub, event, shutdown.signal);
    }
    let req: SendRequest;
    try {
      req = deliveryRequest(event, sub, now());
    } catch (err) {
      // A config the parser should have refused (a bad signing secret): a failed attempt, not a stuck lease.
      return Promise.resolve({ ok: false, error: `cannot build the request: ${errorMessage(err)}`, durationMs: 0 });
    }
    sent(req);
    req.signal = shutdown.signal;
    return deps.send(req);
  }

  /** One attempt. Its slot is freed once the send is over, or (for a 410) once the subscriber is disabled. */
  async function attempt(lane: Lane, c: ClaimedDelivery): Promise<void> {
    let slotHeld = true;
    const freeSlot = () => {
      if (slotHeld) lane.sending--;
      slotHeld = false;
    };
    try {
      await attemptHolding(lane, c, freeSlot);
    } finally {
      freeSlot();
    }
  }

  async function attemptHolding(lane: Lane, c: ClaimedDelivery, freeSlot: () => void): Promise<void> {
    const sub = lane.sub;
    const { delivery, event } = c;
    const startedAt = now();
    let request: SentRequest | undefined;
    const result = await sendOnce(sub, event, (req) => (request = sentRequest(req, sub)));
    if (shutdown.signal.aborted && !result.ok) {
      // Cut short by shutdown: not the subscriber's fault, so no attempt is counted.
      await store.release([delivery.id], now());
      return;
    }
    metrics?.attemptSeconds.observe({ subscriber: sub.name }, result.durationMs / 1000);
    const attemptNo = delivery.attempts + 1;
    const at = now();
    const policy = scale === 1 ? sub.retry : scalePolicy(sub.retry, scale);
    const decision = nextDelay({ attempt: attemptNo, result, policy, rand });
    const failure = { ...(result.status !== undefined ? { status: result.status } : {}), ...(result.error ? { error: result.error } : {}) };
    // The attempt log's record rides on the outcome mark: same transaction, no write of its own.
    const attemptRecord: AttemptRecord = {
      startedAt,
      durationMs: result.durationMs,
      outcome: LOGGED_OUTCOME[decision.action],
      ...failure,
      ...(decision.action === 'retry' ? { nextAt: at + decision.delayMs } : {}),
      ...(request ? { request } : {}),
    };
    const note = { now: at, ...failure, attempt: attemptRecord };
    if (result.status !== undefined) lane.pausedUntil = undefined;
    else if (sub.type !== 'log' && decision.action === 'retry') {
      lane.pausedUntil = Math.max(lane.pausedUntil ?? 0, at + Math.min(decision.delayMs, MAX_LANE_PAUSE_MS));
      giveBack(lane);
    }
    // The slot is free now: the next send need not wait for this outcome to be written. A 410 keeps
    // it until the subscriber is disabled, so that nothing more is sent to it meanwhile.
    if (decision.action !== 'disable') {
      freeSlot();
      startFromReserve(lane);
    }
    const context = { subscriber: sub.name, eventId: event.EventId, attempt: attemptNo, status: result.status, error: result.error };
    let outcome: DeliveryOutcome;
    switch (decision.action) {
      case 'done':
        await store.markDelivered(delivery.id, note);
        outcome = 'delivered';
        // At info, so that a working callback does not look idle; a log subscriber's own line is its delivery.
        if (sub.type !== 'log') {
          log.info({ subscriber: sub.name, eventId: event.EventId, eventType: event.EventType, kfpRunId: event.KfpRunId, attempt: attemptNo, status: result.status, durationMs: Math.round(result.durationMs) }, 'delivered');
        }
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
        lane.ready = []; // disable() below moves them to the dead letters and drops their leases
        await store.deadLetter(delivery.id, note);
        const moved = await store.disable(sub.name, result.status === 410 ? 'HTTP 410 Gone' : (result.error ?? 'disabled'), at);
        outcome = 'disabled';
        log.warn({ ...context, movedToDeadLetters: moved }, `subscriber disabled by HTTP 410 Gone; re-enable with: kfp-notify subscriber enable ${sub.name}`);
        metrics?.subscriberDisables.inc({ subscriber: sub.name, reason: 'gone' });
        deps.onNotice?.({ kind: 'subscriber-disabled', subscriber: sub.name, eventId: event.EventId, reason: describeFailure(result) });
        break;
      }
    }
    metrics?.deliveries.inc({ subscriber: sub.name, outcome });
    if (outcome !== 'disabled') await trackFailing(lane, result.ok, at, event.EventId);
  }

  /**
   * Auto-disable: the failing mark is set by the first failure after a success and cleared by the
   * next success (store writes on those transitions only); a failure once the mark is older than
   * disableAfterMs disables the subscriber, as a 410 does.
   */
  async function trackFailing(lane: Lane, ok: boolean, at: number, eventId: string): Promise<void> {
    const limit = deps.disableAfterMs;
    const sub = lane.sub;
    if (!limit || sub.type === 'log') return;
    if (ok) {
      if (lane.failingSince === undefined) return;
      lane.failingSince = undefined;
      await store.clearFailing(sub.name);
      return;
    }
    if (lane.failingSince === undefined) {
      lane.failingSince = at;
      await store.markFailing(sub.name, at);
      return;
    }
    if (at - lane.failingSince < limit || stopping) return;
    const since = lane.failingSince;
    lane.failingSince = undefined;
    lane.ready = []; // disable() moves them to the dead letters and drops their leases
    const reason = `no successful delivery for ${shortDuration(limit)} (failing since ${new Date(since).toISOString()})`;
    const moved = await store.disable(sub.name, reason, at);
    log.warn(
      { subscriber: sub.name, failingSince: new Date(since).toISOString(), disableAfterMs: limit, movedToDeadLetters: moved },
      `subscriber disabled: ${reason}; re-enable with: kfp-notify subscriber enable ${sub.name}`,
    );
    metrics?.subscriberDisables.inc({ subscriber: sub.name, reason: 'failing' });
    deps.onNotice?.({ kind: 'subscriber-disabled', subscriber: sub.name, eventId, reason });
  }

  function setSubscribers(subscribers: readonly Subscriber[]): void {
    const names = new Set(subscribers.map((s) => s.name));
    for (const [name, lane] of lanes) {
      if (names.has(name)) continue;
      lane.removed = true;
      clearTimer(lane);
      giveBack(lane);
      lanes.delete(name);
    }
    for (const sub of subscribers) {
      const lane = lanes.get(sub.name);
      if (lane) lane.sub = sub;
      else lanes.set(sub.name, { sub, inFlight: new Map(), sending: 0, removed: false, ready: [], failingLoaded: false });
    }
    notify();
  }

  /** New work: claimed at once (the first send of an idle lane should not wait a turn), batched only behind a running pass. */
  function notify(names?: Iterable<string>): void {
    const targets = names === undefined ? [...lanes.values()] : [...names].flatMap((n) => lanes.get(n) ?? []);
    for (const lane of targets) if (!stopping && !lane.removed) refillDue.add(lane);
    if (!refilling && !refillScheduled && refillDue.size > 0) runRefills();
  }

  async function stop(opts: { graceMs?: number } = {}): Promise<void> {
    if (stopping) return;
    stopping = true;
    for (const lane of lanes.values()) {
      clearTimer(lane);
      giveBack(lane);
    }
    const inFlight = () => [...lanes.values()].flatMap((l) => [...l.inFlight.values()]);
    const all = Promise.all(inFlight());
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), opts.graceMs ?? 10_000))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      shutdown.abort(new Error('shutting down'));
      await Promise.all(inFlight());
    }
  }

  setSubscribers(initial);
  return { setSubscribers, notify, running: () => !stopping, stop };
}
