import { describe, expect, it } from 'vitest';
import { createMirror } from '../../../callback/store/jetstream/mirror.js';
import {
  ATTEMPT_LOG_KEEP,
  deliveryId,
  fromKeyToken,
  keyToken,
  logAttempt,
  newEventRecord,
  pruneRecord,
  serializeRecord,
  settleEntry,
  splitDeliveryId,
} from '../../../callback/store/jetstream/records.js';
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

describe('JetStream store attempt log (pure)', () => {
  const attempt = (startedAt: number, body = 'x') => ({
    startedAt,
    durationMs: 1,
    outcome: 'retry' as const,
    status: 503,
    request: { url: 'https://hooks.example', headers: { authorization: '[masked]' }, body },
  });

  it('keeps the latest attempts of a delivery, numbered from 1 across the ones it dropped', () => {
    const d = newEventRecord(makeEvent({ seq: 4 }), ['a'], 0, () => undefined).deliveries[0]!;
    for (let t = 1; t <= ATTEMPT_LOG_KEEP + 5; t++) logAttempt(d, attempt(t));
    expect(d.log).toHaveLength(ATTEMPT_LOG_KEEP);
    expect(d.log?.[0]).toMatchObject({ n: 6, startedAt: 6 });
    expect(d.log?.at(-1)).toMatchObject({ n: ATTEMPT_LOG_KEEP + 5, startedAt: ATTEMPT_LOG_KEEP + 5 });
  });

  it('an entry over the budget loses the requests of its oldest attempts first, never their outcomes', () => {
    const r = newEventRecord(makeEvent({ seq: 5 }), ['a', 'b'], 0, () => undefined);
    const big = 'y'.repeat(1000);
    for (let t = 1; t <= 6; t++) logAttempt(r.deliveries[t % 2]!, attempt(t, big));
    const whole = serializeRecord(structuredClone(r), 1_000_000);
    expect(JSON.parse(whole)).toEqual(r);
    const budget = Buffer.byteLength(whole) - 2500;
    const json = serializeRecord(r, budget);
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(budget);
    const logs = r.deliveries.flatMap((d) => d.log ?? []).sort((x, y) => x.startedAt - y.startedAt);
    expect(logs.map((a) => [a.startedAt, a.request !== undefined])).toEqual([
      [1, false],
      [2, false],
      [3, false],
      [4, true],
      [5, true],
      [6, true],
    ]);
    expect(logs.every((a) => a.status === 503 && a.outcome === 'retry')).toBe(true);
    expect(JSON.parse(json)).toEqual(r);
  });
});

describe('JetStream store index (pure)', () => {
  it('lists events latest first by entry sequence, skips deleted ones, pages before a sequence, and keeps the search fields', () => {
    const m = createMirror();
    const ev = (seq: number, at: number) => newEventRecord(makeEvent({ seq, KfpRunId: `run-${seq}` }), [], at, () => undefined);
    m.applyEvent('k3', 3, ev(3, 30));
    m.applyEvent('k1', 1, ev(1, 10));
    m.applyEvent('k2', 2, ev(2, 20));
    m.applyEvent('k4', 4, ev(4, 40));
    m.applyEvent('k2', 5, undefined);
    const keys = (before?: number) => [...m.latestFirst(before)].map(([k]) => k);
    expect(keys()).toEqual(['k4', 'k3', 'k1']);
    expect(keys(4)).toEqual(['k3', 'k1']);
    expect(keys(1)).toEqual([]);
    // Re-created after its deletion: a new entry, listed at its new place.
    m.applyEvent('k2', 6, ev(2, 60));
    expect(keys()).toEqual(['k2', 'k4', 'k3', 'k1']);
    expect(m.eventInfo('k3')).toEqual({ seq: 3, acceptedAt: 30, fields: expect.objectContaining({ KfpRunId: 'run-3' }) });
    expect(m.lastAcceptedAt()).toBe(60);
  });

  it('a cleared failing mark is not brought back by an older entry arriving late', () => {
    const m = createMirror();
    m.applyFailing('a', 2, 100);
    m.applyFailing('b', 3, 200);
    expect(m.failing()).toEqual({ a: 100, b: 200 });
    m.applyFailing('a', 4, undefined);
    m.applyFailing('a', 2, 100);
    expect(m.failing()).toEqual({ b: 200 });
  });

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
