import { afterEach, describe, expect, it } from 'vitest';
import { MASK, maskHeaders, sentRequest } from '../../../callback/attempt-log.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import { makeEvent } from './events.js';
import { httpSubscriber, newSigningSecret, startEngine } from './harness.js';
import { answer, startReceiver, until } from './receiver.js';

describe('masking what the attempt log keeps', () => {
  it('masks the signature, Authorization and the headers named as from Secrets, whatever their case, and keeps the rest', () => {
    const headers = { 'Webhook-Signature': 'v1,abc', authorization: 'Bearer t0k', 'x-api-key': 'k3y', 'x-team': 'ml', 'content-type': 'application/json' };
    expect(maskHeaders(headers, ['x-api-key'])).toEqual({
      'Webhook-Signature': MASK,
      authorization: MASK,
      'x-api-key': MASK,
      'x-team': 'ml',
      'content-type': 'application/json',
    });
  });

  it('keeps only the origin of the URL: a path or query can be the credential', () => {
    const r = sentRequest({ url: 'https://hooks.slack.com/services/T0/B0/s3cr3t?x=1', headers: {}, body: '{}' }, {});
    expect(r).toEqual({ url: 'https://hooks.slack.com', headers: {}, body: '{}' });
  });

  it('the parser names the headers whose value came from a secretKeyRef (lower case), and only those', () => {
    const { subscribers, errors } = parseSubscribers(
      { ops: { url: 'https://example.com/h', headers: { 'X-Api-Key': { secretKeyRef: { name: 's', key: 'k' } }, 'X-Team': 'ml' } }, plain: { url: 'https://example.com/p', headers: { 'X-Team': 'ml' } } },
      (ref) => (ref.name === 's' && ref.key === 'k' ? 'from-the-secret' : undefined),
    );
    expect(errors).toEqual([]);
    const byName = Object.fromEntries(subscribers.map((s) => [s.name, s]));
    expect(byName.ops?.secretHeaders).toEqual(['x-api-key']);
    expect(byName.ops?.headers['x-api-key']).toBe('from-the-secret');
    expect(byName.plain?.secretHeaders).toBeUndefined();
  });
});

describe('the worker logs each attempt with its outcome mark (real SQLite, real receiver)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a retried then delivered delivery has two attempts: status, next time, and the exact body and headers, secrets masked', async () => {
    let n = 0;
    const rx = await startReceiver((got, res, req) => (++n === 1 ? answer(503)(got, res, req) : answer(204)(got, res, req)));
    cleanups.push(() => rx.close());
    const sub = httpSubscriber('ops', rx.url, {
      headers: { 'x-api-key': 'from-the-secret', authorization: 'Bearer plain-config', 'x-team': 'ml' },
      secretHeaders: ['x-api-key'],
      signingKeys: [newSigningSecret()],
    });
    const engine = startEngine([sub], { retryScale: 0.001 });
    cleanups.push(() => engine.close());
    const event = makeEvent({ seq: 1 });
    await engine.ingest([event]);
    const [d] = await engine.store.eventDeliveries(event.EventId);
    const id = d?.id ?? -1;
    await until(async () => (await engine.store.getDelivery(id))?.state === 'delivered', 'the delivery to succeed');
    await until(async () => (await engine.store.listAttempts(id)).length === 2, 'both attempts logged');
    const [first, second] = await engine.store.listAttempts(id);
    expect(first).toMatchObject({ deliveryId: id, subscriber: 'ops', status: 503, outcome: 'retry' });
    expect(first?.nextAt).toBeGreaterThanOrEqual(first?.startedAt ?? Infinity);
    expect(second).toMatchObject({ status: 204, outcome: 'delivered' });
    expect(second?.nextAt).toBeUndefined();
    // What the receiver got, byte for byte, except the masked values.
    const got = rx.received[1];
    expect(second?.request?.body).toBe(got?.body);
    expect(second?.request?.url).toBe(new URL(rx.url).origin);
    const sentHeaders = second?.request?.headers ?? {};
    expect(sentHeaders['webhook-signature']).toBe(MASK);
    expect(sentHeaders['x-api-key']).toBe(MASK);
    expect(sentHeaders.authorization).toBe(MASK);
    expect(sentHeaders['x-team']).toBe('ml');
    expect(sentHeaders['webhook-id']).toBe(got?.headers['webhook-id']);
    expect(JSON.stringify(await engine.store.listAttempts(id))).not.toMatch(/from-the-secret|plain-config|v1,/);
  });
});
