import { describe, expect, it } from 'vitest';
import { createMirror } from '../../../callback/store/jetstream/mirror.js';
import { deliveryId, fromKeyToken, keyToken, newEventRecord, pruneRecord, settleEntry, splitDeliveryId } from '../../../callback/store/jetstream/records.js';
import { makeEvent } from './events.js';

describe('JetStream store records (pure)', () => {
  it.each(['evt_0123abcd', 'ops-team_1', 'a.b', 'Slack #alerts', 'ünï', ''])('key token of %j is a valid NATS key token and decodes back', (s) => {
    const t = keyToken(s);
    expect(t).toMatch(/^[px]\.[A-Za-z0-9_=-]+$/);
    expect(fromKeyToken(t)).toBe(s);
  });

  it('delivery ids pack the event entry sequence and the index, and unpack', () => {
    expect(splitDeliveryId(deliveryId(123_456, 7))).toEqual({ seq: 123_456, i: 7 });
    expect(Number.isSafeInteger(deliveryId(2 ** 41 - 1, 4095))).toBe(true);
    expect(Number.isSafeInteger(deliveryId(2 ** 41, 4095))).toBe(false);
  });

  it('a new record: one pending delivery per distinct subscriber, a disabled one dead with the reason', () => {
    const r = newEventRecord(makeEvent({ seq: 1 }), ['a', 'b', 'a'], 10, (s) => (s === 'b' ? 'HTTP 410 Gone' : undefined));
    expect(r.deliveries.map((d) => [d.i, d.sub, d.state, d.lastError])).toEqual([
      [0, 'a', 'pending', undefined],
      [1, 'b', 'dead', 'subscriber disabled: HTTP 410 Gone'],
    ]);
  });

  it('settle moves only a pending delivery, except that a success also settles a dead one', () => {
    const r = newEventRecord(makeEvent({ seq: 2 }), ['a'], 0, () => undefined);
    const d = r.deliveries[0]!;
    expect(settleEntry(d, 'dead', 5, { now: 5, status: 500 })).toBe(true);
    expect(settleEntry(d, 'pending', 9, { now: 6 })).toBe(false);
    expect(settleEntry(d, 'delivered', 7, { now: 7, status: 200 })).toBe(true);
    expect([d.state, d.attempts, d.lastStatus]).toEqual(['delivered', 2, 200]);
  });

  it('prune drops delivered deliveries settled before the cut, and the event when nothing pending or dead is left', () => {
    const r = newEventRecord(makeEvent({ seq: 3 }), ['a', 'b'], 0, () => undefined);
    settleEntry(r.deliveries[0]!, 'delivered', 1, { now: 1 });
    expect(pruneRecord(structuredClone(r), 0)).toBe('keep');
    const cut = structuredClone(r);
    expect(pruneRecord(cut, 100)).toBe('update');
    expect(cut.deliveries.map((d) => d.sub)).toEqual(['b']);
    const late = structuredClone(r);
    settleEntry(late.deliveries[1]!, 'delivered', 200, { now: 200 });
    // Delivered after the cut: the event stays with that delivery, as in SQLite and memory.
    expect(pruneRecord(late, 100)).toBe('update');
    expect(late.deliveries.map((d) => d.sub)).toEqual(['b']);
    settleEntry(r.deliveries[1]!, 'delivered', 2, { now: 2 });
    expect(pruneRecord(r, 100)).toBe('delete');
  });
});

describe('JetStream store index (pure)', () => {
  it('due deliveries oldest first, leases push them to their end, a stale or older write is ignored', () => {
    const m = createMirror();
    const e1 = newEventRecord(makeEvent({ seq: 1 }), ['a'], 100, () => undefined);
    const e2 = newEventRecord(makeEvent({ seq: 2 }), ['a'], 50, () => undefined);
    expect([...m.applyEvent('k1', 1, e1)]).toEqual(['a']);
    expect([...m.applyEvent('k2', 2, e2)]).toEqual(['a']);
    expect(m.due('a', 100, 10).map((d) => d.id)).toEqual([deliveryId(2, 0), deliveryId(1, 0)]);
    expect(m.applyLane('a', 3, { [deliveryId(2, 0)]: 500 })).toBe(false);
    expect(m.due('a', 100, 10).map((d) => d.id)).toEqual([deliveryId(1, 0)]);
    expect(m.nextDueAt('a')).toBe(100);
    expect(m.applyLane('a', 4, {})).toBe(true);
    expect(m.due('a', 100, 10)).toHaveLength(2);
    // An older revision of k1 arriving late changes nothing.
    expect([...m.applyEvent('k1', 1, { ...e1, deliveries: [] })]).toEqual([]);
    expect(m.depth()).toEqual({ a: 2 });
    m.applyEvent('k1', 5, undefined);
    m.applyEvent('k1', 4, e1);
    expect(m.depth()).toEqual({ a: 1 });
  });

  it('an enabled subscriber is not disabled again by an older entry arriving late', () => {
    const m = createMirror();
    m.applyDisabled('a', 2, { since: 1, reason: 'HTTP 410 Gone' });
    m.applyDisabled('a', 3, undefined);
    m.applyDisabled('a', 2, { since: 1, reason: 'HTTP 410 Gone' });
    expect(m.disabled()).toEqual({});
  });
});
