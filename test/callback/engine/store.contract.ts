import { afterEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError, type AttemptOutcome, type DeliveryStore } from '../../../callback/store/types.js';
import type { KfpEvent } from '../../../callback/types.js';
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
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const ids = (p: { events: { event: { EventId: string } }[] }) => p.events.map((x) => x.event.EventId);

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

    // --- Delivery dashboard: attempt log, event search, per-subscriber stats ---

    /** One claimed delivery of `sub` settled with an attempt record. */
    async function attemptOnce(s: DeliveryStore, sub: string, at: number, result: { status?: number; error?: string; durationMs: number; outcome: AttemptOutcome; nextAt?: number }) {
      const [c] = await s.claim(sub, { now: at, limit: 1, leaseMs: LEASE });
      const id = c?.delivery.id ?? -1;
      const { outcome, nextAt, durationMs, status, error } = result;
      const request = { url: 'http://127.0.0.1:9', headers: { 'content-type': 'application/json', authorization: '[masked]' }, body: `{"n":${at}}` };
      const attempt = { startedAt: at, durationMs, outcome, ...(status !== undefined ? { status } : {}), ...(error ? { error } : {}), ...(nextAt ? { nextAt } : {}), request };
      const note = { now: at + durationMs, ...(status !== undefined ? { status } : {}), ...(error ? { error } : {}), attempt };
      if (outcome === 'delivered') await s.markDelivered(id, note);
      else if (outcome === 'retry') await s.scheduleRetry(id, nextAt ?? at, note);
      else await s.deadLetter(id, note);
      return { id, attempt };
    }

    test('the attempt log keeps every attempt of a delivery, oldest first, with its request, also across a replay', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 30 }), subscribers: ['a'] }], T0);
      const first = await attemptOnce(s, 'a', T0, { status: 503, error: 'HTTP 503', durationMs: 12.5, outcome: 'retry', nextAt: T0 + 1000 });
      const second = await attemptOnce(s, 'a', T0 + 1000, { error: 'ECONNREFUSED', durationMs: 1, outcome: 'dead' });
      expect(second.id).toBe(first.id);
      await s.replayDeadLetters({ ids: [first.id] }, T0 + 2000);
      const third = await attemptOnce(s, 'a', T0 + 2000, { status: 204, durationMs: 3, outcome: 'delivered' });
      const log = await s.listAttempts(first.id);
      expect(log).toEqual([first, second, third].map((x) => ({ ...x.attempt, id: expect.any(Number), deliveryId: first.id, subscriber: 'a' })));
      expect(new Set(log.map((l) => l.id)).size).toBe(3);
      expect(await s.listAttempts(999_999)).toEqual([]);
      const d = await s.getDelivery(first.id);
      expect(d).toMatchObject({ id: first.id, subscriber: 'a', state: 'delivered', attempts: 1, lastStatus: 204, updatedAt: T0 + 2003 });
      expect(d?.event.EventId).toBe(makeEvent({ seq: 30 }).EventId);
      expect(await s.getDelivery(999_999)).toBeUndefined();
    });

    test('an outcome mark without an attempt record logs nothing', async () => {
      const s = await fresh();
      await s.accept([{ event: makeEvent({ seq: 31 }), subscribers: ['a'] }], T0);
      const [c] = await s.claim('a', { now: T0, limit: 1, leaseMs: LEASE });
      await s.markDelivered(c?.delivery.id ?? -1, { now: T0 + 1, status: 200 });
      expect(await s.listAttempts(c?.delivery.id ?? -1)).toEqual([]);
    });

    test('listEvents: latest first, each with its deliveries, filtered by run, pipeline, namespace, type and time, paged by keyset', async () => {
      const s = await fresh();
      const evs = Array.from({ length: 7 }, (_, i) =>
        makeEvent({
          seq: 40 + i,
          KfpRunId: i < 3 ? 'run-x' : `run-${i}`,
          PipelineName: i % 2 === 0 ? 'train' : 'etl',
          Namespace: i === 6 ? 'team-b' : 'team-a',
          ...(i === 5 ? { EventType: 'WorkflowFailed' as const } : {}),
        }),
      );
      for (const [i, e] of evs.entries()) await s.accept([{ event: e, subscribers: i === 0 ? ['b', 'a'] : [] }], T0 + i * 1000);
      const rev = (idx: number[]) => idx.map((i) => evs[i]?.EventId);

      const all = await s.listEvents({ limit: 100 });
      expect(ids(all)).toEqual(rev([6, 5, 4, 3, 2, 1, 0]));
      expect(all.next).toBeUndefined();
      const oldest = all.events.at(-1);
      expect(oldest?.acceptedAt).toBe(T0);
      expect(oldest?.event).toEqual(evs[0]);
      expect(oldest?.deliveries.map((d) => [d.subscriber, d.state, d.attempts, d.eventId])).toEqual([
        ['a', 'pending', 0, evs[0]?.EventId],
        ['b', 'pending', 0, evs[0]?.EventId],
      ]);

      expect(ids(await s.listEvents({ limit: 100, runId: 'run-x' }))).toEqual(rev([2, 1, 0]));
      expect(ids(await s.listEvents({ limit: 100, pipeline: 'etl' }))).toEqual(rev([5, 3, 1]));
      expect(ids(await s.listEvents({ limit: 100, namespace: 'team-b' }))).toEqual(rev([6]));
      expect(ids(await s.listEvents({ limit: 100, eventType: 'WorkflowFailed' }))).toEqual(rev([5]));
      expect(ids(await s.listEvents({ limit: 100, from: T0 + 2000, to: T0 + 4000 }))).toEqual(rev([3, 2]));
      expect(ids(await s.listEvents({ limit: 100, runId: 'run-x', pipeline: 'train' }))).toEqual(rev([2, 0]));
      expect(ids(await s.listEvents({ limit: 100, runId: 'no-such-run' }))).toEqual([]);

      const pages: string[][] = [];
      let before: number | undefined;
      for (;;) {
        const page = await s.listEvents({ limit: 3, ...(before !== undefined ? { before } : {}) });
        pages.push(ids(page) as string[]);
        if (page.next === undefined) break;
        before = page.next;
      }
      expect(pages).toEqual([rev([6, 5, 4]), rev([3, 2, 1]), rev([0])]);
      const filtered = await s.listEvents({ limit: 2, namespace: 'team-a' });
      expect(ids(filtered)).toEqual(rev([5, 4]));
      expect(ids(await s.listEvents({ limit: 2, namespace: 'team-a', before: filtered.next ?? -1 }))).toEqual(rev([3, 2]));
    });

    test('acceptance times never go back: an accept under a clock that stepped back is kept at the latest time seen', async () => {
      const s = await fresh();
      const [a, b, c] = [81, 82, 83].map((seq) => makeEvent({ seq }));
      await s.accept([{ event: a as KfpEvent, subscribers: [] }], T0 + 5000);
      await s.accept([{ event: b as KfpEvent, subscribers: [] }], T0); // the clock stepped back 5 s
      await s.accept([{ event: c as KfpEvent, subscribers: [] }], T0 + 6000);
      const page = await s.listEvents({ limit: 10 });
      expect(page.events.map((e) => [e.event.EventId, e.acceptedAt])).toEqual([
        [c?.EventId, T0 + 6000],
        [b?.EventId, T0 + 5000],
        [a?.EventId, T0 + 5000],
      ]);
      expect(ids(await s.listEvents({ limit: 10, from: T0 + 5000, to: T0 + 5001 }))).toEqual([b?.EventId, a?.EventId]);
      expect(ids(await s.listEvents({ limit: 10, to: T0 + 5000 }))).toEqual([]);
      expect(ids(await s.listEvents({ limit: 10, from: T0 + 7000 }))).toEqual([]);
    });

    test('eventDeliveries lists the deliveries of one event by subscriber, with their state and last outcome', async () => {
      const s = await fresh();
      const e = makeEvent({ seq: 50 });
      await s.accept([{ event: e, subscribers: ['b', 'a'] }], T0);
      await attemptOnce(s, 'b', T0, { status: 500, error: 'HTTP 500', durationMs: 2, outcome: 'dead' });
      const got = await s.eventDeliveries(e.EventId);
      expect(got.map((d) => [d.subscriber, d.state, d.attempts, d.lastStatus, d.lastError])).toEqual([
        ['a', 'pending', 0, undefined, undefined],
        ['b', 'dead', 1, 500, 'HTTP 500'],
      ]);
      expect(await s.eventDeliveries('evt_missing')).toEqual([]);
    });

    test('subscriberStats: pending now, delivered, failed and dead over the last hour and day, last error, p50/p95 of attempt durations', async () => {
      const s = await fresh();
      const now = T0 + 2 * DAY;
      const at = (agoMs: number) => now - agoMs;
      for (let i = 0; i < 24; i++) await s.accept([{ event: makeEvent({ seq: 60 + i }), subscribers: ['a'] }], T0);
      await s.accept([{ event: makeEvent({ seq: 90 }), subscribers: ['c'] }], T0);
      // Two days ago: outside both windows.
      await attemptOnce(s, 'a', at(2 * DAY - 10), { status: 500, error: 'old', durationMs: 999, outcome: 'dead' });
      // Within the day, not the hour: 10 delivered at 100..1000 ms.
      for (let i = 1; i <= 10; i++) await attemptOnce(s, 'a', at(5 * HOUR) + i, { status: 200, durationMs: i * 100, outcome: 'delivered' });
      // Within the hour: 2 delivered (5, 7 ms), a retry, a dead letter.
      await attemptOnce(s, 'a', at(30 * MIN), { status: 200, durationMs: 5, outcome: 'delivered' });
      await attemptOnce(s, 'a', at(20 * MIN), { status: 200, durationMs: 7, outcome: 'delivered' });
      await attemptOnce(s, 'a', at(10 * MIN), { status: 503, error: 'HTTP 503', durationMs: 9, outcome: 'retry', nextAt: at(5 * MIN) });
      await attemptOnce(s, 'a', at(5 * MIN), { error: 'ECONNRESET', durationMs: 11, outcome: 'dead' });
      const stats = await s.subscriberStats(now);
      expect(Object.keys(stats).sort()).toEqual(['a', 'c']);
      expect(stats.a?.pending).toBe(24 - 15 + 1); // the retried one is pending again
      expect(stats.a?.hour).toEqual({ delivered: 2, failed: 2, dead: 1, p50Ms: 7, p95Ms: 11 });
      expect(stats.a?.day).toEqual({ delivered: 12, failed: 2, dead: 1, p50Ms: 300, p95Ms: 1000 });
      expect(stats.a?.lastError).toEqual({ at: at(5 * MIN), error: 'ECONNRESET' });
      expect(stats.c).toEqual({ pending: 1, hour: { delivered: 0, failed: 0, dead: 0 }, day: { delivered: 0, failed: 0, dead: 0 } });
    });

    test('prune forgets the attempts of the deliveries it forgets, and keeps the others', async () => {
      const s = await fresh();
      const done = makeEvent({ seq: 70 });
      const failed = makeEvent({ seq: 71 });
      await s.accept([{ event: done, subscribers: ['a'] }, { event: failed, subscribers: ['b'] }], T0);
      const d = await attemptOnce(s, 'a', T0, { status: 200, durationMs: 1, outcome: 'delivered' });
      const f = await attemptOnce(s, 'b', T0, { status: 500, durationMs: 1, outcome: 'dead' });
      await s.prune(T0 + 1000);
      expect(await s.listAttempts(d.id)).toEqual([]);
      expect(await s.listAttempts(f.id)).toHaveLength(1);
      expect(ids(await s.listEvents({ limit: 10 }))).toEqual([failed.EventId]);
    });
  });
}
