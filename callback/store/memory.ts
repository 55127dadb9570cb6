import type { KfpEvent } from '../types.js';
import {
  StoreUnavailableError,
  matchesDeadLetterFilter,
  selectsDeadLetter,
  type DeadLetterKey,
  settleMethods,
  foldStats,
  matchesEventQuery,
  DAY_MS,
  type AttemptLog,
  type DeliveryView,
  type SettleFn,
  type ClaimOptions,
  type ClaimedDelivery,
  type DeadLetter,
  type DeliveryStore,
  type DisabledState,
} from './types.js';

/**
 * The in-memory delivery store: the same contract as SQLite with nothing kept across restarts.
 * For tests, demos and `serve --data-dir :memory:`-style runs where losing the queue is acceptable.
 */

interface Row {
  id: number;
  eventId: string;
  subscriber: string;
  state: 'pending' | 'delivered' | 'dead';
  attempts: number;
  dueAt: number;
  leased: boolean;
  lastStatus?: number;
  lastError?: string;
  updatedAt: number;
}

export function openMemoryStore(): DeliveryStore {
  const events = new Map<string, { event: KfpEvent; acceptedAt: number; seq: number }>();
  /** Acceptance order (seq - 1 = index); pruned events leave a hole (undefined). */
  const bySeq: (string | undefined)[] = [];
  const attempts: AttemptLog[] = [];
  let nextAttemptId = 1;
  let lastAcceptedAt = 0;
  const rows = new Map<number, Row>();
  const disabled = new Map<string, DisabledState>();
  const failing = new Map<string, number>();
  let nextId = 1;
  let closed = false;

  function open(): void {
    if (closed) throw new StoreUnavailableError('store unavailable: closed');
  }
  function pending(subscriber?: string): Row[] {
    return [...rows.values()].filter((r) => r.state === 'pending' && (subscriber === undefined || r.subscriber === subscriber));
  }
  function eventOf(r: Row): KfpEvent {
    const e = events.get(r.eventId);
    if (!e) throw new Error(`delivery ${r.id} refers to missing event ${r.eventId}`);
    return structuredClone(e.event);
  }
  function deadKey(r: Row): DeadLetterKey {
    return { id: r.id, subscriber: r.subscriber, kfpRunId: events.get(r.eventId)?.event.KfpRunId, deadAt: r.updatedAt };
  }
  function claimOne(subscriber: string, { now, limit, leaseMs }: ClaimOptions): ClaimedDelivery[] {
    open();
    const due = pending(subscriber)
      .filter((r) => r.dueAt <= now)
      .sort((a, b) => a.dueAt - b.dueAt || a.id - b.id)
      .slice(0, Math.max(0, limit));
    return due.map((r) => {
      const delivery = { id: r.id, eventId: r.eventId, subscriber: r.subscriber, attempts: r.attempts, dueAt: r.dueAt };
      r.leased = true;
      r.dueAt = now + leaseMs;
      return { delivery, event: eventOf(r) };
    });
  }
  const settle: SettleFn = (id, state, dueAt, note) => {
    open();
    const r = rows.get(id);
    // Same rule as SQLite: a success also settles a row disable() moved to the dead letters mid-flight.
    if (r && note.attempt) attempts.push({ ...structuredClone(note.attempt), id: nextAttemptId++, deliveryId: id, subscriber: r.subscriber });
    if (!r || !(r.state === 'pending' || (r.state === 'dead' && state === 'delivered'))) return;
    Object.assign(r, { state, dueAt, leased: false, attempts: r.attempts + 1, updatedAt: note.now });
    r.lastStatus = note.status;
    r.lastError = note.error;
  };

  return {
    async accept(items, now) {
      open();
      return items.map(({ event, subscribers }) => {
        if (events.has(event.EventId)) return { eventId: event.EventId, duplicate: true };
        bySeq.push(event.EventId);
        // As in SQLite: acceptance times never go back, so acceptance order is time order.
        lastAcceptedAt = Math.max(lastAcceptedAt, now);
        events.set(event.EventId, { event: structuredClone(event), acceptedAt: lastAcceptedAt, seq: bySeq.length });
        for (const name of new Set(subscribers)) {
          const off = disabled.get(name);
          const id = nextId++;
          rows.set(id, {
            id,
            eventId: event.EventId,
            subscriber: name,
            state: off ? 'dead' : 'pending',
            attempts: 0,
            dueAt: now,
            leased: false,
            ...(off ? { lastError: `subscriber disabled: ${off.reason}` } : {}),
            updatedAt: now,
          });
        }
        return { eventId: event.EventId, duplicate: false };
      });
    },

    async claim(subscriber, opts) {
      return claimOne(subscriber, opts);
    },

    async claimMany(requests, now) {
      return requests.map((r) => claimOne(r.subscriber, { now, limit: r.limit, leaseMs: r.leaseMs }));
    },

    async nextDueAt(subscriber) {
      const times = pending(subscriber).map((r) => r.dueAt);
      return times.length > 0 ? Math.min(...times) : undefined;
    },

    ...settleMethods(settle),

    async release(ids, now) {
      open();
      for (const id of ids) {
        const r = rows.get(id);
        if (r && r.state === 'pending' && r.leased) Object.assign(r, { leased: false, dueAt: now });
      }
    },

    async listDeadLetters(o = {}) {
      return [...rows.values()]
        .filter((r) => r.state === 'dead' && matchesDeadLetterFilter(o, deadKey(r)))
        .sort((a, b) => a.updatedAt - b.updatedAt || a.id - b.id)
        .slice(0, o.limit ?? 1000)
        .map(
          (r): DeadLetter => ({
            id: r.id,
            eventId: r.eventId,
            subscriber: r.subscriber,
            attempts: r.attempts,
            ...(r.lastStatus !== undefined ? { lastStatus: r.lastStatus } : {}),
            ...(r.lastError !== undefined ? { lastError: r.lastError } : {}),
            deadAt: r.updatedAt,
            event: eventOf(r),
          }),
        );
    },

    async replayDeadLetters(selector, now) {
      open();
      const replayed: number[] = [];
      for (const r of rows.values()) {
        if (r.state !== 'dead' || !selectsDeadLetter(selector, deadKey(r))) continue;
        Object.assign(r, { state: 'pending', attempts: 0, dueAt: now, leased: false, updatedAt: now });
        replayed.push(r.id);
      }
      return replayed;
    },

    async queueDepth() {
      const depth: Record<string, number> = {};
      for (const r of pending()) depth[r.subscriber] = (depth[r.subscriber] ?? 0) + 1;
      return depth;
    },

    async disable(subscriber, reason, now) {
      open();
      disabled.set(subscriber, { since: now, reason });
      const moved = pending(subscriber);
      for (const r of moved) Object.assign(r, { state: 'dead', leased: false, lastError: `subscriber disabled: ${reason}`, updatedAt: now });
      return moved.length;
    },

    async enable(subscriber) {
      open();
      failing.delete(subscriber);
      return disabled.delete(subscriber);
    },

    async disabledSubscribers() {
      return Object.fromEntries(disabled);
    },

    async getEvent(eventId) {
      const e = events.get(eventId);
      return e ? structuredClone(e.event) : undefined;
    },

    // --- Failure tracking ---
    async markFailing(subscriber, since) {
      open();
      if (!failing.has(subscriber)) failing.set(subscriber, since);
    },

    async clearFailing(subscriber) {
      open();
      failing.delete(subscriber);
    },

    async failingSince() {
      return Object.fromEntries(failing);
    },

    async prune(before) {
      open();
      for (const [id, r] of rows) if (r.state === 'delivered' && r.updatedAt < before) rows.delete(id);
      const referenced = new Set([...rows.values()].map((r) => r.eventId));
      let removed = 0;
      for (const [id, e] of events) {
        if (e.acceptedAt < before && !referenced.has(id)) {
          events.delete(id);
          bySeq[e.seq - 1] = undefined;
          removed++;
        }
      }
      for (let i = attempts.length - 1; i >= 0; i--) {
        const a = attempts[i];
        if (a && a.startedAt < before && !rows.has(a.deliveryId)) attempts.splice(i, 1);
      }
      return removed;
    },

    async close() {
      closed = true;
    },

    async listEvents(query) {
      open();
      const page: { seq: number; acceptedAt: number; event: KfpEvent }[] = [];
      let next: number | undefined;
      for (let i = Math.min(bySeq.length, (query.before ?? Infinity) - 1) - 1; i >= 0; i--) {
        const e = events.get(bySeq[i] ?? '');
        if (!e || !matchesEventQuery(query, e.event, e.acceptedAt)) continue;
        if (page.length === query.limit) {
          next = page.at(-1)?.seq;
          break;
        }
        page.push(e);
      }
      const out = page.map((e) => ({ seq: e.seq, acceptedAt: e.acceptedAt, event: structuredClone(e.event), deliveries: deliveriesOf(e.event.EventId) }));
      return next === undefined ? { events: out } : { events: out, next };
    },

    async eventDeliveries(eventId) {
      open();
      return deliveriesOf(eventId);
    },

    async getDelivery(id) {
      open();
      const r = rows.get(id);
      return r ? { ...view(r), event: eventOf(r) } : undefined;
    },

    async listAttempts(deliveryId) {
      open();
      return attempts.filter((a) => a.deliveryId === deliveryId).map((a) => structuredClone(a));
    },

    async subscriberStats(now) {
      open();
      const depth: Record<string, number> = {};
      for (const r of pending()) depth[r.subscriber] = (depth[r.subscriber] ?? 0) + 1;
      return foldStats(
        attempts.filter((a) => a.startedAt >= now - DAY_MS),
        depth,
        now,
      );
    },
  };

  function view(r: Row): DeliveryView {
    return {
      id: r.id,
      eventId: r.eventId,
      subscriber: r.subscriber,
      state: r.state,
      attempts: r.attempts,
      dueAt: r.dueAt,
      ...(r.lastStatus !== undefined ? { lastStatus: r.lastStatus } : {}),
      ...(r.lastError !== undefined ? { lastError: r.lastError } : {}),
      updatedAt: r.updatedAt,
    };
  }

  function deliveriesOf(eventId: string): DeliveryView[] {
    return [...rows.values()]
      .filter((r) => r.eventId === eventId)
      .map(view)
      .sort((a, b) => (a.subscriber < b.subscriber ? -1 : a.subscriber > b.subscriber ? 1 : 0));
  }
}
