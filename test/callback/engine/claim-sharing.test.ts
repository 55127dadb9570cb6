import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createEventCache } from '../../../callback/store/event-cache.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import type { DeliveryStore } from '../../../callback/store/types.js';
import { makeEvent } from './events.js';

/**
 * An event routed to n subscribers is claimed n times; the SQLite store parses it once and hands
 * every claim the same frozen object (store/event-cache.ts), which is what lets the worker build
 * one body per event and format.
 */
describe('claims share the parsed event', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-claims-'));
  let n = 0;
  const open: DeliveryStore[] = [];
  const store = () => {
    const s = openSqliteStore({ file: join(dir, `claims-${n++}.db`) });
    open.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const T0 = 1_800_000_000_000;
  const lease = { subscriber: '', limit: 10, leaseMs: 60_000 };

  it('every subscriber of one event gets the same frozen event, equal to the one accepted', async () => {
    const s = store();
    const event = makeEvent({ seq: 1 });
    await s.accept([{ event, subscribers: ['a', 'b', 'c'] }], T0);
    const claims = (await s.claimMany(['a', 'b', 'c'].map((subscriber) => ({ ...lease, subscriber })), T0)).flat();
    expect(claims.map((c) => [c.delivery.subscriber, c.delivery.eventId])).toEqual([
      ['a', event.EventId],
      ['b', event.EventId],
      ['c', event.EventId],
    ]);
    expect(claims[0]?.event).toEqual(event);
    expect(Object.isFrozen(claims[0]?.event)).toBe(true);
    expect(claims[1]?.event).toBe(claims[0]?.event);
    expect(claims[2]?.event).toBe(claims[0]?.event);
  });

  it('after prune deletes the last event, the row number it frees claims the new event, not the cached one', async () => {
    const s = store();
    const first = makeEvent({ seq: 1 });
    await s.accept([{ event: first, subscribers: ['a'] }], T0);
    const [c1] = await s.claim('a', { now: T0, limit: 1, leaseMs: 60_000 });
    expect(c1?.event.EventId).toBe(first.EventId);
    await s.markDelivered(c1?.delivery.id ?? -1, { now: T0, status: 204 });
    expect(await s.prune(T0 + 1)).toBe(1); // the events table is empty: SQLite may reuse the row number

    const second = makeEvent({ seq: 2 });
    await s.accept([{ event: second, subscribers: ['a'] }], T0 + 2);
    const [c2] = await s.claim('a', { now: T0 + 2, limit: 1, leaseMs: 60_000 });
    expect(c2?.delivery.eventId).toBe(second.EventId);
    expect(c2?.event).toEqual(second);
  });

  it('the cache is bounded: past its size the oldest entry goes, and reading it again loads it again', () => {
    const loads: number[] = [];
    const cache = createEventCache((seq) => {
      loads.push(seq);
      return { id: `evt_${seq}`, body: JSON.stringify(makeEvent({ seq })) };
    }, 2);
    cache.get(1);
    cache.get(2);
    cache.get(1); // a hit
    cache.get(3); // evicts 1, the oldest
    cache.get(2); // still there
    cache.get(1); // loaded again
    expect(loads).toEqual([1, 2, 3, 1]);
    expect(cache.get(7)?.eventId).toBe('evt_7');
    expect(cache.get(7)?.event.WorkflowName).toBe('wf-7');
  });
});
