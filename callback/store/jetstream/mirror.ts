import type { KfpEvent } from '../../types.js';
import type { AttemptLog, DisabledState } from '../types.js';
import { deliveryId, type DeliveryEntry, type EventRecord } from './records.js';

/**
 * Every replica's in-memory index of the shared state, fed by a KV watch (and by its own writes at
 * once, so a replica reads what it just wrote): which deliveries are pending, due when, leased until
 * when, dead, which subscribers are disabled or failing, each event's search fields (run, pipeline,
 * namespace, type, acceptance) and the attempt log without its requests (for the dashboard's stats).
 * Event bodies and logged requests are not kept (they are read from KV when needed), so 100,000
 * pending deliveries cost a few tens of MB.
 * Pure data structure: no I/O.
 */

/** A logged attempt as the stats need it: no request. */
export type AttemptSummary = Pick<AttemptLog, 'subscriber' | 'startedAt' | 'durationMs' | 'outcome' | 'status' | 'error'>;

export interface MirroredDelivery extends Omit<DeliveryEntry, 'log'> {
  id: number;
  eventId: string;
  log: AttemptSummary[];
}

/** The fields the events search filters on. */
export type SearchFields = Pick<KfpEvent, 'KfpRunId' | 'PipelineName' | 'Namespace' | 'EventType'>;

export interface EventInfo {
  /** The entry's first revision: acceptance order, the events search's keyset cursor. */
  seq: number;
  acceptedAt: number;
  fields: SearchFields;
}

interface MirroredEvent extends EventInfo {
  revision: number;
  eventId: string;
  deliveries: MirroredDelivery[];
}

interface Lane {
  revision: number;
  leases: Map<number, number>;
}

/** A binary min-heap of (due, id) with lazy deletion: stale entries are dropped when they surface. */
class DueHeap {
  private keys: number[] = [];
  private ids: number[] = [];
  get size(): number {
    return this.keys.length;
  }
  push(key: number, id: number): void {
    this.keys.push(key);
    this.ids.push(id);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  peek(): [number, number] | undefined {
    return this.keys.length ? [this.keys[0] as number, this.ids[0] as number] : undefined;
  }
  pop(): void {
    const last = this.keys.length - 1;
    this.swap(0, last);
    this.keys.pop();
    this.ids.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.keys.length && this.less(l, m)) m = l;
      if (r < this.keys.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
  private less(a: number, b: number): boolean {
    const ka = this.keys[a] as number;
    const kb = this.keys[b] as number;
    return ka < kb || (ka === kb && (this.ids[a] as number) < (this.ids[b] as number));
  }
  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b] as number, this.keys[a] as number];
    [this.ids[a], this.ids[b]] = [this.ids[b] as number, this.ids[a] as number];
  }
}

export interface Mirror {
  /**
   * Applies an event entry (or its deletion, record undefined) if newer than what is known. Returns
   * the subscribers that have a new or rescheduled pending delivery in it (work for their lanes).
   */
  applyEvent(key: string, revision: number, record: EventRecord | undefined): Set<string>;
  /** Returns whether a lease ended early (a slot or a delivery became free before its lease end). */
  applyLane(sub: string, revision: number, leases: Record<string, number> | undefined): boolean;
  applyDisabled(sub: string, revision: number, state: DisabledState | undefined): void;
  eventRevision(key: string): number | undefined;
  laneOf(sub: string): { revision: number; leases: Map<number, number> };
  delivery(id: number): MirroredDelivery | undefined;
  eventKeyOf(id: number): string | undefined;
  /**
   * Pending deliveries of `sub` due at `now` and not leased, oldest first, at most `limit`. Does not
   * lease them: the caller does, through the lane entry.
   */
  due(sub: string, now: number, limit: number): MirroredDelivery[];
  /** When the earliest pending delivery of `sub` is (or becomes) claimable. */
  nextDueAt(sub: string): number | undefined;
  pendingOf(sub: string): MirroredDelivery[];
  dead(): MirroredDelivery[];
  depth(): Record<string, number>;
  disabled(): Record<string, DisabledState>;
  disabledReason(sub: string): string | undefined;
  /** Events with their deliveries, for prune. */
  events(): IterableIterator<[string, { revision: number; acceptedAt: number; deliveries: readonly MirroredDelivery[] }]>;
  eventInfo(key: string): EventInfo | undefined;
  /** Event keys in acceptance order, latest first, accepted before the one with seq `before`. */
  latestFirst(before?: number): Generator<[string, EventInfo]>;
  /** The latest acceptance time seen (new events are accepted no earlier: acceptance order is time order). */
  lastAcceptedAt(): number;
  /** Logged attempts that started at or after `from`, oldest first. */
  attemptsSince(from: number): AttemptSummary[];
  applyFailing(sub: string, revision: number, since: number | undefined): void;
  failing(): Record<string, number>;
}

export function createMirror(): Mirror {
  const events = new Map<string, MirroredEvent>();
  const byId = new Map<number, { key: string; d: MirroredDelivery }>();
  const pendingBySub = new Map<string, Map<number, MirroredDelivery>>();
  const deadById = new Map<number, MirroredDelivery>();
  const heaps = new Map<string, DueHeap>();
  const lanes = new Map<string, Lane>();
  // Enabled subscribers keep a tombstone (state undefined) so a late, older entry cannot disable them again.
  const disabled = new Map<string, { revision: number; state: DisabledState | undefined }>();
  // Deletions seen (revision), so that an older put arriving late through the watch is not resurrected.
  const deletedAt = new Map<string, number>();
  // (seq, key) in ascending seq; entries of deleted or re-created events stay until compacted and are
  // skipped on reading (their seq no longer matches the event's).
  const order: { seq: number; key: string }[] = [];
  let stale = 0;
  let maxAcceptedAt = 0;
  const failingMarks = new Map<string, { revision: number; since: number | undefined }>();

  function file(seq: number, key: string): void {
    let lo = order.length;
    // Almost always appended: new entries have the highest revision.
    if (lo > 0 && (order[lo - 1] as { seq: number }).seq > seq) {
      lo = 0;
      let hi = order.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((order[mid] as { seq: number }).seq < seq) lo = mid + 1;
        else hi = mid;
      }
    }
    order.splice(lo, 0, { seq, key });
  }
  function unfiled(): void {
    if (++stale < 1024 || stale < order.length / 2) return;
    const live = order.filter((o) => events.get(o.key)?.seq === o.seq);
    order.length = 0;
    order.push(...live);
    stale = 0;
  }

  const laneOf = (sub: string): Lane => lanes.get(sub) ?? { revision: 0, leases: new Map() };

  /** When this delivery can next be claimed: its due time, or its lease end if that is later. */
  function effectiveDue(d: MirroredDelivery): number {
    const until = laneOf(d.sub).leases.get(d.id);
    return until !== undefined && until > d.dueAt ? until : d.dueAt;
  }
  function heapOf(sub: string): DueHeap {
    let h = heaps.get(sub);
    if (!h) heaps.set(sub, (h = new DueHeap()));
    return h;
  }
  function track(d: MirroredDelivery): boolean {
    if (d.state === 'pending') heapOf(d.sub).push(effectiveDue(d), d.id);
    return d.state === 'pending';
  }

  function forget(ev: MirroredEvent): void {
    for (const d of ev.deliveries) {
      byId.delete(d.id);
      pendingBySub.get(d.sub)?.delete(d.id);
      deadById.delete(d.id);
    }
  }

  /** `before`: the event's deliveries as known until now, so only a changed due time is filed again. */
  function remember(key: string, ev: MirroredEvent, before: MirroredEvent | undefined): Set<string> {
    const work = new Set<string>();
    const old = new Map(before?.deliveries.map((d) => [d.id, d]));
    for (const d of ev.deliveries) {
      byId.set(d.id, { key, d });
      if (d.state === 'pending') {
        let m = pendingBySub.get(d.sub);
        if (!m) pendingBySub.set(d.sub, (m = new Map()));
        m.set(d.id, d);
        const was = old.get(d.id);
        if (!(was?.state === 'pending' && was.dueAt === d.dueAt) && track(d)) work.add(d.sub);
      } else if (d.state === 'dead') deadById.set(d.id, d);
    }
    return work;
  }

  /** Pops stale heap entries; returns the top that is current (key equals its effective due). */
  function cleanTop(sub: string): [number, MirroredDelivery] | undefined {
    const h = heaps.get(sub);
    while (h && h.size > 0) {
      const [key, id] = h.peek() as [number, number];
      const d = byId.get(id)?.d;
      if (d && d.state === 'pending' && effectiveDue(d) === key) return [key, d];
      h.pop();
    }
    return undefined;
  }

  return {
    applyEvent(key, revision, record) {
      const known = events.get(key);
      if (known && known.revision >= revision) return new Set();
      if ((deletedAt.get(key) ?? 0) >= revision) return new Set();
      if (known) forget(known);
      if (!record) {
        events.delete(key);
        deletedAt.set(key, revision);
        if (known) unfiled();
        return new Set();
      }
      deletedAt.delete(key);
      const seq = record.seq ?? revision;
      const { event } = record;
      const ev: MirroredEvent = {
        revision,
        seq,
        acceptedAt: record.acceptedAt,
        fields: { KfpRunId: event.KfpRunId, PipelineName: event.PipelineName, Namespace: event.Namespace, EventType: event.EventType },
        eventId: event.EventId,
        deliveries: record.deliveries.map(({ log, ...d }) => ({
          ...d,
          id: deliveryId(seq, d.i),
          eventId: event.EventId,
          log: (log ?? []).map((a) => ({
            subscriber: d.sub,
            startedAt: a.startedAt,
            durationMs: a.durationMs,
            outcome: a.outcome,
            ...(a.status !== undefined ? { status: a.status } : {}),
            ...(a.error !== undefined ? { error: a.error } : {}),
          })),
        })),
      };
      events.set(key, ev);
      if (known?.seq !== seq) {
        if (known) unfiled();
        file(seq, key);
      }
      maxAcceptedAt = Math.max(maxAcceptedAt, record.acceptedAt);
      return remember(key, ev, known);
    },

    applyLane(sub, revision, leases) {
      const known = lanes.get(sub);
      if (known && known.revision >= revision) return false;
      const next: Lane = { revision, leases: new Map(Object.entries(leases ?? {}).map(([id, until]) => [Number(id), until])) };
      lanes.set(sub, next);
      // Every delivery whose lease changed gets its new claimable time in the heap.
      const touched = new Set<number>([...(known?.leases.keys() ?? []), ...next.leases.keys()]);
      let freed = false;
      for (const id of touched) {
        if (known?.leases.get(id) === next.leases.get(id)) continue;
        if (!next.leases.has(id)) freed = true;
        const d = byId.get(id)?.d;
        if (d) track(d);
      }
      return freed;
    },

    applyDisabled(sub, revision, state) {
      const known = disabled.get(sub);
      if (known && known.revision >= revision) return;
      disabled.set(sub, { revision, state });
    },

    eventRevision: (key) => events.get(key)?.revision,
    laneOf,
    delivery: (id) => byId.get(id)?.d,
    eventKeyOf: (id) => byId.get(id)?.key,

    due(sub, now, limit) {
      const out: MirroredDelivery[] = [];
      const h = heaps.get(sub);
      const held: [number, number][] = [];
      const picked = new Set<number>();
      while (out.length < limit) {
        const top = cleanTop(sub);
        if (!top || top[0] > now) break;
        h?.pop();
        if (picked.has(top[1].id)) continue; // a second copy of one heap entry
        picked.add(top[1].id);
        held.push([top[0], top[1].id]);
        out.push(top[1]);
      }
      // Peeking, not taking: the lease (written by the caller) re-files them under their lease end.
      for (const [k, id] of held) h?.push(k, id);
      return out;
    },

    nextDueAt(sub) {
      return cleanTop(sub)?.[0];
    },

    pendingOf: (sub) => [...(pendingBySub.get(sub)?.values() ?? [])],
    dead: () => [...deadById.values()],
    depth() {
      const out: Record<string, number> = {};
      for (const [sub, m] of pendingBySub) if (m.size > 0) out[sub] = m.size;
      return out;
    },
    disabled: () => Object.fromEntries([...disabled].flatMap(([sub, v]) => (v.state ? [[sub, { ...v.state }]] : []))),
    disabledReason: (sub) => disabled.get(sub)?.state?.reason,
    events: () => events.entries(),
    eventInfo(key) {
      const ev = events.get(key);
      return ev ? { seq: ev.seq, acceptedAt: ev.acceptedAt, fields: ev.fields } : undefined;
    },
    *latestFirst(before) {
      let lo = 0;
      let hi = order.length;
      // The first position whose seq is >= before: everything below it is older.
      if (before !== undefined) {
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((order[mid] as { seq: number }).seq < before) lo = mid + 1;
          else hi = mid;
        }
      }
      for (let i = hi - 1; i >= 0; i--) {
        const o = order[i];
        const ev = o && events.get(o.key);
        if (ev && ev.seq === o.seq) yield [o.key, { seq: ev.seq, acceptedAt: ev.acceptedAt, fields: ev.fields }];
      }
    },
    lastAcceptedAt: () => maxAcceptedAt,
    attemptsSince(from) {
      const out: AttemptSummary[] = [];
      for (const ev of events.values()) for (const d of ev.deliveries) for (const a of d.log) if (a.startedAt >= from) out.push(a);
      return out.sort((a, b) => a.startedAt - b.startedAt);
    },
    applyFailing(sub, revision, since) {
      const known = failingMarks.get(sub);
      if (known && known.revision >= revision) return;
      failingMarks.set(sub, { revision, since });
    },
    failing: () => Object.fromEntries([...failingMarks].flatMap(([sub, v]) => (v.since !== undefined ? [[sub, v.since]] : []))),
  };
}
