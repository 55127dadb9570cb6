import type { KfpEvent } from '../types.js';

/**
 * The durable side of the callback: events, the delivery queue (one row per event × subscriber),
 * dead letters and the disabled state of subscribers. Two implementations (SQLite, memory) pass
 * one contract suite (test/callback/engine/store.contract.ts).
 *
 * Rows carry ids, never bodies: a delivery is (event id, subscriber name, attempts, due time) and
 * the body is rebuilt from the stored event at send time, so a changed format applies to retries.
 * Every method takes the time (`now`, ms since the epoch) from the caller: the store never reads a
 * clock, so leases and schedules are testable without sleeping.
 */

/** One event to keep, with the names of the subscribers it was routed to. */
export interface AcceptItem {
  event: KfpEvent;
  subscribers: readonly string[];
}

/** `duplicate`: the event id was already stored, so nothing new was queued for it. */
export interface AcceptResult {
  eventId: string;
  duplicate: boolean;
}

export interface Delivery {
  id: number;
  eventId: string;
  subscriber: string;
  /** Attempts completed before this claim (0 for the first send). */
  attempts: number;
  dueAt: number;
}

/** A claimed delivery with its event, ready to format and send. */
export interface ClaimedDelivery {
  delivery: Delivery;
  event: KfpEvent;
}

/** One subscriber's part of a claimMany. */
export interface ClaimRequest {
  subscriber: string;
  limit: number;
  leaseMs: number;
}

export interface ClaimOptions {
  now: number;
  limit: number;
  /** How long the claim holds: the row is due again at now + leaseMs if nobody settles it first. */
  leaseMs: number;
}

/** What the last attempt came to, kept on the row for the dead-letter list. */
export interface AttemptNote {
  now: number;
  status?: number;
  error?: string;
  /** The attempt as sent, for the attempt log (dashboard); written in the same transaction as the mark. */
  attempt?: AttemptRecord;
}

export interface DeadLetter {
  id: number;
  eventId: string;
  subscriber: string;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  /** ms since the epoch. */
  deadAt: number;
  event: KfpEvent;
}

/**
 * Exactly one selector: these ids, everything of one subscriber, everything, or what a filter
 * matches (by run, by the time it died; `kfp-notify dlq replay --run ID --since 2h`).
 */
export type ReplaySelector = { ids: readonly number[] } | { subscriber: string } | { all: true } | { filter: DeadLetterFilter };

export interface DisabledState {
  /** ms since the epoch. */
  since: number;
  reason: string;
}

export interface DeliveryStore {
  /**
   * Keeps the events and their deliveries atomically, then resolves. An event id already stored
   * is a duplicate: it adds no deliveries. Deliveries to a disabled subscriber go straight to the
   * dead-letter list (nothing is lost; they can be replayed once it is enabled). Rejects with
   * StoreUnavailableError when nothing could be kept.
   */
  accept(items: readonly AcceptItem[], now: number): Promise<AcceptResult[]>;
  /** Due, unleased deliveries of one subscriber, oldest first, leased to the caller. */
  claim(subscriber: string, opts: ClaimOptions): Promise<ClaimedDelivery[]>;
  /** claim for several subscribers at once (SQLite: one transaction); one list per request, in order. */
  claimMany(requests: readonly ClaimRequest[], now: number): Promise<ClaimedDelivery[][]>;
  /** The earliest time a pending delivery of this subscriber is (or becomes) claimable. */
  nextDueAt(subscriber: string): Promise<number | undefined>;
  /**
   * The three outcome marks resolve once written (SQLite: committed, not fsync'ed). Marks made in
   * one turn of the event loop may share one transaction, so a process crash in that turn can lose
   * them: the attempt is then repeated, as for a crash mid-send.
   */
  markDelivered(id: number, note: AttemptNote): Promise<void>;
  scheduleRetry(id: number, dueAt: number, note: AttemptNote): Promise<void>;
  deadLetter(id: number, note: AttemptNote): Promise<void>;
  /** Gives claimed deliveries back without counting an attempt (graceful shutdown). */
  release(ids: readonly number[], now: number): Promise<void>;
  listDeadLetters(opts?: DeadLetterFilter & { limit?: number }): Promise<DeadLetter[]>;
  /** Makes the selected dead letters pending again with a fresh attempt count; returns their ids. */
  replayDeadLetters(selector: ReplaySelector, now: number): Promise<number[]>;
  /** Pending deliveries per subscriber (subscribers with none are absent). */
  queueDepth(): Promise<Record<string, number>>;
  /**
   * Disables a subscriber (persisted) and moves its pending deliveries to the dead-letter list;
   * returns how many were moved.
   */
  disable(subscriber: string, reason: string, now: number): Promise<number>;
  /** Returns false when the subscriber was not disabled. Also clears its failing mark. */
  enable(subscriber: string): Promise<boolean>;
  disabledSubscribers(): Promise<Record<string, DisabledState>>;
  getEvent(eventId: string): Promise<KfpEvent | undefined>;

  // --- Failure tracking (auto-disable after a long uninterrupted failure) ---
  /**
   * Marks the subscriber failing since `since`, unless it is marked already (the earlier mark stays).
   * Written on transitions only (first failure after a success), not per attempt. enable() clears it.
   */
  markFailing(subscriber: string, since: number): Promise<void>;
  /** Forgets the failing mark (a delivery succeeded). */
  clearFailing(subscriber: string): Promise<void>;
  /** Failing marks by subscriber (ms since the epoch); subscribers without one are absent. */
  failingSince(): Promise<Record<string, number>>;
  /**
   * Forgets delivered deliveries settled before `before`, and events older than `before` that
   * have nothing left pending or dead. Returns the number of events removed.
   */
  prune(before: number): Promise<number>;
  close(): Promise<void>;

  // --- Delivery dashboard (attempt log, event search, per-subscriber stats) ---
  /** Events, latest first (by acceptance), filtered; keyset-paged: pass the page's `next` as `before`. */
  listEvents(query: EventQuery): Promise<EventPage>;
  /** The deliveries of one event, by subscriber name; [] for an unknown event. */
  eventDeliveries(eventId: string): Promise<DeliveryView[]>;
  getDelivery(id: number): Promise<(DeliveryView & { event: KfpEvent }) | undefined>;
  /** The logged attempts of one delivery, oldest first (kept across replays). */
  listAttempts(deliveryId: number): Promise<AttemptLog[]>;
  /** Per subscriber with anything pending or attempted in the last day. */
  subscriberStats(now: number): Promise<Record<string, SubscriberStats>>;
}

/** The request of one attempt as sent, with secrets already masked (see callback/attempt-log.ts). */
export interface SentRequest {
  /** The endpoint's origin only: a URL's path or query may hold a token (Slack webhook URLs do). */
  url: string;
  headers: Record<string, string>;
  body: string;
}

export type AttemptOutcome = 'delivered' | 'retry' | 'dead' | 'disabled';

/** One attempt, as the worker reports it with its outcome mark. */
export interface AttemptRecord {
  /** ms since the epoch when the send started. */
  startedAt: number;
  durationMs: number;
  outcome: AttemptOutcome;
  status?: number;
  error?: string;
  /** ms since the epoch when the next attempt is due (outcome retry). */
  nextAt?: number;
  /** Absent for types that send no HTTP request (log, and transports). */
  request?: SentRequest;
}

export interface AttemptLog extends AttemptRecord {
  id: number;
  deliveryId: number;
  subscriber: string;
}

export interface EventQuery {
  runId?: string;
  pipeline?: string;
  namespace?: string;
  eventType?: string;
  /** Acceptance time range, ms since the epoch: from ≤ t < to. */
  from?: number;
  to?: number;
  /** Keyset cursor: only events accepted before the one with this `seq`. */
  before?: number;
  limit: number;
}

export interface DeliveryView {
  id: number;
  eventId: string;
  subscriber: string;
  state: 'pending' | 'delivered' | 'dead';
  attempts: number;
  dueAt: number;
  lastStatus?: number;
  lastError?: string;
  updatedAt: number;
}

export interface EventSummary {
  /** Acceptance order: the keyset cursor. */
  seq: number;
  acceptedAt: number;
  event: KfpEvent;
  deliveries: DeliveryView[];
}

export interface EventPage {
  events: EventSummary[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next?: number;
}

/** Attempts in one time window. Latency: send duration of the attempts (request to response). */
export interface WindowStats {
  delivered: number;
  /** Failed attempts (retried or not). */
  failed: number;
  /** Deliveries dead-lettered (incl. by a disable after a 410). */
  dead: number;
  p50Ms?: number;
  p95Ms?: number;
}

export interface SubscriberStats {
  /** Pending now. */
  pending: number;
  hour: WindowStats;
  day: WindowStats;
  lastError?: { at: number; status?: number; error: string };
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** Nearest-rank percentile of ascending numbers; undefined for none. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Per-subscriber stats from the last day's attempts (oldest first) and the pending counts: one fold both stores share. */
export function foldStats(
  attempts: Iterable<Pick<AttemptLog, 'subscriber' | 'startedAt' | 'durationMs' | 'outcome' | 'status' | 'error'>>,
  pending: Record<string, number>,
  now: number,
): Record<string, SubscriberStats> {
  const acc = new Map<string, { stats: SubscriberStats; hourMs: number[]; dayMs: number[] }>();
  const empty = (): WindowStats => ({ delivered: 0, failed: 0, dead: 0 });
  const of = (name: string) => {
    let a = acc.get(name);
    if (!a) acc.set(name, (a = { stats: { pending: pending[name] ?? 0, hour: empty(), day: empty() }, hourMs: [], dayMs: [] }));
    return a;
  };
  for (const name of Object.keys(pending)) of(name);
  for (const t of attempts) {
    if (t.startedAt < now - DAY_MS) continue;
    const a = of(t.subscriber);
    const windows: [WindowStats, number[]][] = [[a.stats.day, a.dayMs]];
    if (t.startedAt >= now - HOUR_MS) windows.push([a.stats.hour, a.hourMs]);
    for (const [w, ms] of windows) {
      if (t.outcome === 'delivered') w.delivered++;
      else w.failed++;
      if (t.outcome === 'dead' || t.outcome === 'disabled') w.dead++;
      ms.push(t.durationMs);
    }
    if (t.outcome !== 'delivered') {
      a.stats.lastError = { at: t.startedAt, ...(t.status !== undefined ? { status: t.status } : {}), error: t.error ?? (t.status !== undefined ? `HTTP ${t.status}` : 'failed') };
    }
  }
  const out: Record<string, SubscriberStats> = {};
  for (const [name, a] of acc) {
    for (const [w, ms] of [[a.stats.hour, a.hourMs], [a.stats.day, a.dayMs]] as const) {
      ms.sort((x, y) => x - y);
      const p50 = percentile(ms, 50);
      const p95 = percentile(ms, 95);
      if (p50 !== undefined) w.p50Ms = p50;
      if (p95 !== undefined) w.p95Ms = p95;
    }
    out[name] = a.stats;
  }
  return out;
}

/** Whether an event matches a query's field filters (the memory store's WHERE). */
export function matchesEventQuery(q: EventQuery, event: Pick<KfpEvent, 'KfpRunId' | 'PipelineName' | 'Namespace' | 'EventType'>, acceptedAt: number): boolean {
  return (
    (q.runId === undefined || event.KfpRunId === q.runId) &&
    (q.pipeline === undefined || event.PipelineName === q.pipeline) &&
    (q.namespace === undefined || event.Namespace === q.namespace) &&
    (q.eventType === undefined || event.EventType === q.eventType) &&
    (q.from === undefined || acceptedAt >= q.from) &&
    (q.to === undefined || acceptedAt < q.to)
  );
}

/** The store could not keep anything (disk full, database locked or closed): answer 503, retry later. */
export class StoreUnavailableError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * Which dead letters to list or replay besides ids: one subscriber's, one run's (the event's
 * KfpRunId), dead at or after `since` and before `until` (ms since the epoch). Every given field
 * must match.
 */
export interface DeadLetterFilter {
  subscriber?: string;
  kfpRunId?: string;
  since?: number;
  until?: number;
}

/** The fields of a dead letter that selectors and filters look at. */
export interface DeadLetterKey {
  id: number;
  subscriber: string;
  kfpRunId?: string;
  deadAt: number;
}

export function matchesDeadLetterFilter(f: DeadLetterFilter, row: DeadLetterKey): boolean {
  return (
    (f.subscriber === undefined || row.subscriber === f.subscriber) &&
    (f.kfpRunId === undefined || row.kfpRunId === f.kfpRunId) &&
    (f.since === undefined || row.deadAt >= f.since) &&
    (f.until === undefined || row.deadAt < f.until)
  );
}

/** Which dead letters a selector picks; shared by both implementations so they cannot drift. */
export function selectsDeadLetter(selector: ReplaySelector, row: DeadLetterKey): boolean {
  if ('all' in selector) return true;
  if ('subscriber' in selector) return row.subscriber === selector.subscriber;
  if ('filter' in selector) return matchesDeadLetterFilter(selector.filter, row);
  return selector.ids.includes(row.id);
}

/** Where an attempt's outcome moves a row: the one mapping both implementations share. */
export type SettleFn = (id: number, state: 'delivered' | 'pending' | 'dead', dueAt: number, note: AttemptNote) => void | Promise<void>;

export function settleMethods(settle: SettleFn): Pick<DeliveryStore, 'markDelivered' | 'scheduleRetry' | 'deadLetter'> {
  return {
    markDelivered: async (id, note) => settle(id, 'delivered', note.now, note),
    scheduleRetry: async (id, dueAt, note) => settle(id, 'pending', dueAt, note),
    deadLetter: async (id, note) => settle(id, 'dead', note.now, note),
  };
}
