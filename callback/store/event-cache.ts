import type { KfpEvent } from '../types.js';

/**
 * Parsed events by their row (seq), for claims: an event routed to n subscribers is claimed n
 * times, usually within a few milliseconds, and reading and parsing its body each time cost more
 * than the rest of the claim. The objects are frozen because every claim of the event shares one
 * (which also lets the worker build its request body once per event, see formats/index.ts).
 *
 * Bounded: the oldest entry goes first (claims run in accept order, so what falls out is what was
 * sent long ago); a miss only costs a read.
 */
export interface EventCache {
  get(seq: number): { eventId: string; event: KfpEvent } | undefined;
  /** Rows may be deleted and their seq reused (prune): forget everything. */
  clear(): void;
}

export const EVENT_CACHE_SIZE = 1024;

/** `load` reads one event row: its id and its stored JSON. */
export function createEventCache(load: (seq: number) => { id: string; body: string } | undefined, size = EVENT_CACHE_SIZE): EventCache {
  const cached = new Map<number, { eventId: string; event: KfpEvent }>();
  return {
    get(seq) {
      const hit = cached.get(seq);
      if (hit) return hit;
      const row = load(seq);
      if (!row) return undefined;
      const entry = { eventId: row.id, event: Object.freeze(JSON.parse(row.body) as KfpEvent) };
      if (cached.size >= size) cached.delete(cached.keys().next().value as number);
      cached.set(seq, entry);
      return entry;
    },
    clear: () => cached.clear(),
  };
}
