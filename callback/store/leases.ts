/**
 * Claims held by this process, in memory. One process owns the database file (locking_mode=
 * EXCLUSIVE), so nobody else needs to see a lease, and whatever this process held when it died is
 * due again as soon as the file is reopened: its row still carries the due time it was claimed at.
 * Keeping leases here makes a claim a read instead of a write (a WAL commit per claim).
 */
export interface Leases {
  hold(subscriber: string, id: number, until: number): void;
  /** When the lease on `id` ends, if there is one. */
  until(id: number): number | undefined;
  drop(id: number): void;
  dropSubscriber(subscriber: string): void;
  /** Leases held on one subscriber's rows. */
  count(subscriber: string): number;
  /** The earliest lease end among one subscriber's rows. */
  earliest(subscriber: string): number | undefined;
}

export function createLeases(): Leases {
  const bySubscriber = new Map<string, Map<number, number>>();
  const owner = new Map<number, string>();
  return {
    hold(subscriber, id, until) {
      let held = bySubscriber.get(subscriber);
      if (!held) bySubscriber.set(subscriber, (held = new Map()));
      held.set(id, until);
      owner.set(id, subscriber);
    },
    until(id) {
      const sub = owner.get(id);
      return sub === undefined ? undefined : bySubscriber.get(sub)?.get(id);
    },
    drop(id) {
      const sub = owner.get(id);
      if (sub === undefined) return;
      owner.delete(id);
      const held = bySubscriber.get(sub);
      held?.delete(id);
      if (held?.size === 0) bySubscriber.delete(sub);
    },
    dropSubscriber(subscriber) {
      for (const id of bySubscriber.get(subscriber)?.keys() ?? []) owner.delete(id);
      bySubscriber.delete(subscriber);
    },
    count: (subscriber) => bySubscriber.get(subscriber)?.size ?? 0,
    earliest(subscriber) {
      let min: number | undefined;
      for (const t of bySubscriber.get(subscriber)?.values() ?? []) if (min === undefined || t < min) min = t;
      return min;
    },
  };
}
