import { afterEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError, type DeliveryStore } from '../../../callback/store/types.js';
import { makeEvent } from './events.js';

/**
 * The DeliveryStore contract: every implementation runs this same suite, so a new backend proves
 * itself by passing it (style.md example 11). A skipped test must say why.
 */
export interface StoreContractOptions {
  name: string;
  open: () => Promise<DeliveryStore> | DeliveryStore;
  skip?: { reason: string; tests: string[] }[];
}

const T0 = 1_800_000_000_000;
const LEASE = 30_000;

export function storeContract({ name, open, skip = [] }: StoreContractOptions): void {
  const skipped = new Set(skip.flatMap((s) => s.tests));
  const test = (title: string, fn: () => Promise<void>) => (skipped.has(title) ? it.skip(title, fn) : it(title, fn));

  describe(`DeliveryStore contract: ${name}`, () => {
    let store: DeliveryStore;
    const opened: DeliveryStore[] = [];
    const fresh = async () => {
      store = await open();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    test('accept keeps the event and queues one delivery per subscriber', async () => {
      const s = await fresh();
      const e = makeEvent({ seq: 1 });
      expect(await s.accept([{ event: e, subscribers: ['a', 'b', 'a'] }], T0)).toEqual([{ eventId: e.EventId, duplicate: false }]);
      expect(await s.getEvent(e.EventId)).toEqual(e);
      expect(await s.queueDepth()).toEqual({ a: 1, b: 1 });
      expect(await s.getEvent('evt_missing')).toBeUndefined();
    });

    test('an event id seen before is a duplicate and queues nothing, also within one call', async () => {
      const s = await fresh();
      const e = makeEvent({ seq: 2 });
      await s.accept([{ event: e, subscribers: ['a'] }], T0);
      const again = await s.accept(
        [
          { event: { ...e, Source: 'watcher' }, subscribers: ['a', 'b'] },
          { event: makeEvent({ seq: 3 }), subscribers: ['b'] },
          { event: makeEvent({ seq: 3 }), subscribers: ['b'] },
        ],
        T0 + 1,
      );
      expect(again.map((r) => r.duplicate)).toEqual([true, false, true]);
      expect(await s.queueDepth()).toEqual({ a: 1, b: 1 });
      expect((await s.getEvent(e.EventId))?.Source).toBe('hook');
    });

    test('an event routed to nobody is still kept, so a later duplicate is recognised', async () => {
      const s = await fresh();
      const e = makeEvent({ seq: 4 });
      await s.accept([{ event: e, subscribers: [] }], T0);
      expect(await s.queueDepth()).toEqual({});
      expect((await s.accept([{ event: e, subscribers: ['a'] }], T0))[0]?.duplicate).toBe(true);
    });

    test('claim returns due deliveries of one subscriber, oldest first, up to the limit, with the event', async () => {
      const s = await fresh();
      const events = [5, 6, 7].map((seq) => makeEvent({ seq }));
      for (const [i, e] of events.entries()) await s.accept([{ event: e, subscribers: ['a', 'b'] }], T0 + i);
      const got = await s.claim('a', { now: T0 + 10, limit: 2, leaseMs: LEASE });
      expect(got.map((c) => c.event.EventId)).toEqual([events[0]?.EventId, events[1]?.EventId]);
      expect(got.every((c) => c.delivery.subscriber === 'a' && c.delivery.attempts === 0)).toBe(true);
      expect(got[0]?.event).toEqual(events[0]);
      expect((await s.claim('a', { now: T0 + 10, limit: 10, leaseMs: LEASE })).map((c) => c.event.EventId)).toEqual([events[2]?.EventId]);
      expect(await s.claim('b', { now: T0 + 10, limit: 10, leaseMs: LEASE })).toHaveLength(3);
    });

    test('nothing is claimed before it is due', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 8 }), subscribers: ['a'] }], T0);
      expect(await s.claim('a', { now: T0 - 1, limit: 10, leaseMs: LEASE })).toEqual([]);
      expect(await s.nextDueAt('a')).toBe(T0);
      expect(await s.nextDueAt('nobody')).toBeUndefined();
    });

    test('a claimed delivery is leased: not claimable again until the lease ends, then due with the same id', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 9 }), subscribers: ['a'] }], T0);
      const [first] = await s.claim('a', { now: T0, limit: 10, leaseMs: LEASE });
      expect(first).toBeDefined();
      expect(await s.claim('a', { now: T0 + LEASE - 1, limit: 10, leaseMs: LEASE })).toEqual([]);
      expect(await s.nextDueAt('a')).toBe(T0 + LEASE);
      const again = await s.claim('a', { now: T0 + LEASE, limit: 10, leaseMs: LEASE });
      expect(again.map((c) => [c.delivery.id, c.delivery.attempts])).toEqual([[first?.delivery.id, 0]]);
      expect(await s.queueDepth()).toEqual({ a: 1 });
    });

    test('release gives a claim back at once without counting an attempt', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 10 }), subscribers: ['a'] }], T0);
      const [c] = await s.claim('a', { now: T0, limit: 1, leaseMs: LEASE });
      await s.release([c?.delivery.id ?? -1], T0 + 5);
      const again = await s.claim('a', { now: T0 + 5, limit: 1, leaseMs: LEASE });
      expect(again.map((x) => [x.delivery.id, x.delivery.attempts])).toEqual([[c?.delivery.id, 0]]);
    });

    test('a delivered delivery leaves the queue for good', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 11 }), subscribers: ['a'] }], T0);
      const [c] = await s.claim('a', { now: T0, limit: 1, leaseMs: LEASE });
      await s.markDelivered(c?.delivery.id ?? -1, { now: T0 + 1, status: 204 });
      expect(await s.queueDepth()).toEqual({});
      expect(await s.claim('a', { now: T0 + 10 * LEASE, limit: 10, leaseMs: LEASE })).toEqual([]);
      expect(await s.nextDueAt('a')).toBeUndefined();
      expect(await s.listDeadLetters()).toEqual([]);
    });

    test('a retry counts the attempt and is due at the time given, not before', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 12 }), subscribers: ['a'] }], T0);
      const [c] = await s.claim('a', { now: T0, limit: 1, leaseMs: LEASE });
      const id = c?.delivery.id ?? -1;
      await s.scheduleRetry(id, T0 + 5000, { now: T0 + 10, status: 500, error: 'HTTP 500' });
      expect(await s.nextDueAt('a')).toBe(T0 + 5000);
      expect(await s.claim('a', { now: T0 + 4999, limit: 1, leaseMs: LEASE })).toEqual([]);
      const [again] = await s.claim('a', { now: T0 + 5000, limit: 1, leaseMs: LEASE });
      expect([again?.delivery.id, again?.delivery.attempts]).toEqual([id, 1]);
    });

    test('a dead letter is listed with its last outcome and event, and can be filtered by subscriber', async () => {
      const s = await fresh();
      const e = makeEvent({ seq: 13 });
      await s.accept([{ event: e, subscribers: ['a', 'b'] }], T0);
      for (const sub of ['a', 'b']) {
        const [c] = await s.claim(sub, { now: T0, limit: 1, leaseMs: LEASE });
        await s.deadLetter(c?.delivery.id ?? -1, { now: T0 + 7, status: 502, error: 'HTTP 502' });
      }
      const all = await s.listDeadLetters();
      expect(all.map((d) => d.subscriber).sort()).toEqual(['a', 'b']);
      const onlyA = await s.listDeadLetters({ subscriber: 'a' });
      expect(onlyA).toEqual([
        { id: expect.any(Number), eventId: e.EventId, subscriber: 'a', attempts: 1, lastStatus: 502, lastError: 'HTTP 502', deadAt: T0 + 7, event: e },
      ]);
      expect(await s.queueDepth()).toEqual({});
      expect(await s.listDeadLetters({ limit: 1 })).toHaveLength(1);
    });

    test('replay by ids, by subscriber and all makes dead letters pending with a fresh attempt count', async () => {
      const s = await fresh();
      const ids: Record<string, number[]> = { a: [], b: [] };
      for (const seq of [14, 15]) await s.accept([{ event: makeEvent({ seq }), subscribers: ['a', 'b'] }], T0);
      for (const sub of ['a', 'b']) {
        for (const c of await s.claim(sub, { now: T0, limit: 10, leaseMs: LEASE })) {
          await s.deadLetter(c.delivery.id, { now: T0 + 1, error: 'timeout' });
          ids[sub]?.push(c.delivery.id);
        }
      }
      const firstA = ids.a?.[0] ?? -1;
      expect(await s.replayDeadLetters({ ids: [firstA, 999_999] }, T0 + 100)).toEqual([firstA]);
      expect(await s.replayDeadLetters({ ids: [firstA] }, T0 + 100)).toEqual([]);
      const [c] = await s.claim('a', { now: T0 + 100, limit: 10, leaseMs: LEASE });
      expect([c?.delivery.id, c?.delivery.attempts]).toEqual([firstA, 0]);
      expect((await s.replayDeadLetters({ subscriber: 'b' }, T0 + 200)).sort()).toEqual([...(ids.b ?? [])].sort());
      expect(await s.replayDeadLetters({ all: true }, T0 + 300)).toEqual([ids.a?.[1]]);
      expect(await s.listDeadLetters()).toEqual([]);
      expect(await s.queueDepth()).toEqual({ a: 2, b: 2 });
    });

    test('disable moves pending deliveries to the dead letters, persists, and diverts new ones', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 16 }), subscribers: ['a', 'b'] }], T0);
      expect(await s.disable('a', 'HTTP 410 Gone', T0 + 1)).toBe(1);
      expect(await s.disabledSubscribers()).toEqual({ a: { since: T0 + 1, reason: 'HTTP 410 Gone' } });
      await s.accept([{ event: makeEvent({ seq: 17 }), subscribers: ['a', 'b'] }], T0 + 2);
      expect(await s.queueDepth()).toEqual({ b: 2 });
      expect(await s.claim('a', { now: T0 + 10, limit: 10, leaseMs: LEASE })).toEqual([]);
      const dead = await s.listDeadLetters({ subscriber: 'a' });
      expect(dead).toHaveLength(2);
      expect(dead.every((d) => d.lastError === 'subscriber disabled: HTTP 410 Gone')).toBe(true);
      expect(await s.enable('a')).toBe(true);
      expect(await s.enable('a')).toBe(false);
      expect(await s.disabledSubscribers()).toEqual({});
      await s.accept([{ event: makeEvent({ seq: 18 }), subscribers: ['a'] }], T0 + 3);
      expect(await s.queueDepth()).toEqual({ a: 1, b: 2 });
    });

    test('an in-flight delivery that succeeds after disable counts as delivered; one that fails stays dead', async () => {
      const s = await fresh();
      for (const seq of [19, 20]) await s.accept([{ event: makeEvent({ seq }), subscribers: ['a'] }], T0);
      const [ok, bad] = await s.claim('a', { now: T0, limit: 2, leaseMs: LEASE });
      await s.disable('a', 'HTTP 410 Gone', T0 + 1);
      await s.markDelivered(ok?.delivery.id ?? -1, { now: T0 + 2, status: 200 });
      await s.scheduleRetry(bad?.delivery.id ?? -1, T0 + 1000, { now: T0 + 2, status: 500 });
      expect((await s.listDeadLetters()).map((d) => d.id)).toEqual([bad?.delivery.id]);
      expect(await s.queueDepth()).toEqual({});
    });

    test('prune forgets delivered work and old events, but keeps anything pending or dead', async () => {
      const s = await fresh();
      const done = makeEvent({ seq: 21 });
      const waiting = makeEvent({ seq: 22 });
      const failed = makeEvent({ seq: 23 });
      const recent = makeEvent({ seq: 24 });
      await s.accept([{ event: done, subscribers: ['a'] }], T0);
      await s.accept([{ event: waiting, subscribers: ['b'] }, { event: failed, subscribers: ['c'] }], T0);
      await s.accept([{ event: recent, subscribers: [] }], T0 + 5000);
      const [d] = await s.claim('a', { now: T0, limit: 1, leaseMs: LEASE });
      await s.markDelivered(d?.delivery.id ?? -1, { now: T0 + 1 });
      const [f] = await s.claim('c', { now: T0, limit: 1, leaseMs: LEASE });
      await s.deadLetter(f?.delivery.id ?? -1, { now: T0 + 1 });
      expect(await s.prune(T0 + 1000)).toBe(1);
      expect(await s.getEvent(done.EventId)).toBeUndefined();
      for (const e of [waiting, failed, recent]) expect(await s.getEvent(e.EventId)).toEqual(e);
      expect(await s.queueDepth()).toEqual({ b: 1 });
      expect(await s.listDeadLetters()).toHaveLength(1);
    });

    // --- Dead-letter filters and failure tracking (operators) ---

    /** Three dead letters: run-x to a at T0+10, run-y to a at T0+20, run-x to b at T0+30. */
    async function threeDead(s: DeliveryStore): Promise<{ xa: number; ya: number; xb: number }> {
      const x = makeEvent({ seq: 40, KfpRunId: 'run-x' });
      const y = makeEvent({ seq: 41, KfpRunId: 'run-y' });
      await s.accept([{ event: x, subscribers: ['a', 'b'] }, { event: y, subscribers: ['a'] }], T0);
      const id = async (sub: string, eventId: string, at: number): Promise<number> => {
        const claimed = await s.claim(sub, { now: T0, limit: 10, leaseMs: LEASE });
        const c = claimed.find((d) => d.event.EventId === eventId);
        if (!c) throw new Error(`no delivery of ${eventId} to ${sub}`);
        await s.deadLetter(c.delivery.id, { now: at, status: 500 });
        await s.release(claimed.filter((d) => d !== c).map((d) => d.delivery.id), T0);
        return c.delivery.id;
      };
      return { xa: await id('a', x.EventId, T0 + 10), ya: await id('a', y.EventId, T0 + 20), xb: await id('b', x.EventId, T0 + 30) };
    }

    test('dead letters are listed by run, by the time they died (since inclusive, until exclusive), and by all filters at once', async () => {
      const s = await fresh();
      const { xa, ya, xb } = await threeDead(s);
      const ids = async (f: Parameters<DeliveryStore['listDeadLetters']>[0]) => (await s.listDeadLetters(f)).map((d) => d.id);
      expect(await ids({ kfpRunId: 'run-x' })).toEqual([xa, xb]);
      expect(await ids({ kfpRunId: 'run-nope' })).toEqual([]);
      expect(await ids({ since: T0 + 20 })).toEqual([ya, xb]);
      expect(await ids({ until: T0 + 20 })).toEqual([xa]);
      expect(await ids({ since: T0 + 11, until: T0 + 31 })).toEqual([ya, xb]);
      expect(await ids({ kfpRunId: 'run-x', subscriber: 'b' })).toEqual([xb]);
      expect(await ids({ kfpRunId: 'run-x', since: T0 + 10, limit: 1 })).toEqual([xa]);
    });

    test('replay by filter takes exactly what the filter lists', async () => {
      const s = await fresh();
      const { xa, ya, xb } = await threeDead(s);
      expect((await s.replayDeadLetters({ filter: { kfpRunId: 'run-x' } }, T0 + 100)).sort()).toEqual([xa, xb].sort());
      expect((await s.listDeadLetters()).map((d) => d.id)).toEqual([ya]);
      expect(await s.replayDeadLetters({ filter: { kfpRunId: 'run-y', until: T0 + 20 } }, T0 + 100)).toEqual([]);
      expect(await s.replayDeadLetters({ filter: { since: T0 + 20 } }, T0 + 100)).toEqual([ya]);
      expect(await s.queueDepth()).toEqual({ a: 2, b: 1 });
    });

    test('a failing mark is kept from the first failure, cleared by a success or by enable', async () => {
      const s = await fresh();
      expect(await s.failingSince()).toEqual({});
      await s.markFailing('a', T0);
      await s.markFailing('a', T0 + 500); // already failing: the earlier mark stays
      await s.markFailing('b', T0 + 7);
      expect(await s.failingSince()).toEqual({ a: T0, b: T0 + 7 });
      await s.clearFailing('b');
      expect(await s.failingSince()).toEqual({ a: T0 });
      await s.disable('a', 'no successful delivery for 5d', T0 + 1000);
      expect(await s.failingSince()).toEqual({ a: T0 });
      expect(await s.enable('a')).toBe(true);
      expect(await s.failingSince()).toEqual({});
    });

    test('a closed store refuses to accept with StoreUnavailableError', async () => {
      const s = await fresh();
      await s.close();
      await expect(s.accept([{ event: makeEvent({ seq: 25 }), subscribers: ['a'] }], T0)).rejects.toBeInstanceOf(StoreUnavailableError);
    });
  });
}
