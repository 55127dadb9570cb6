import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { parseSigningSecret, sign, verify } from '../../../callback/signing.js';

// The published Svix / Standard Webhooks example (style.md example 10).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const newSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

describe('sign', () => {
  it('reproduces the published vector', () => {
    expect(sign({ id: VECTOR.id, timestamp: VECTOR.timestamp, body: VECTOR.body, secrets: [VECTOR.secret] })).toEqual({
      'webhook-id': VECTOR.id,
      'webhook-timestamp': String(VECTOR.timestamp),
      'webhook-signature': VECTOR.signature,
    });
  });

  it('the standardwebhooks package verifies what we sign', () => {
    const secret = newSecret();
    const body = JSON.stringify({ KfpRunId: 'r', Message: 'Failed node wf.train: ünïcode' });
    const headers = sign({ id: 'evt_0123', timestamp: nowSeconds(), body, secrets: [secret] });
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
  });

  it('signs with every secret during rotation; a receiver holding either one verifies', () => {
    const [oldKey, newKey] = [newSecret(), newSecret()];
    const body = '{"EventType":"WorkflowSucceeded"}';
    const headers = sign({ id: 'evt_rot', timestamp: nowSeconds(), body, secrets: [newKey, oldKey] });
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/);
    for (const k of [oldKey, newKey]) expect(() => new Webhook(k).verify(body, { ...headers })).not.toThrow();
    expect(() => new Webhook(newSecret()).verify(body, { ...headers })).toThrow();
  });

  it('a changed body or id no longer verifies with the standardwebhooks package', () => {
    const secret = newSecret();
    const headers = sign({ id: 'evt_1', timestamp: nowSeconds(), body: '{"a":1}', secrets: [secret] });
    expect(() => new Webhook(secret).verify('{"a":2}', { ...headers })).toThrow();
    expect(() => new Webhook(secret).verify('{"a":1}', { ...headers, 'webhook-id': 'evt_2' })).toThrow();
  });

  it('refuses to sign with no secret', () => {
    expect(() => sign({ id: 'x', timestamp: 1, body: '', secrets: [] })).toThrow('at least one secret');
  });
});

describe('verify (what the demo receiver does)', () => {
  it('accepts what the standardwebhooks package signs', () => {
    const secret = newSecret();
    const ts = nowSeconds();
    const signature = new Webhook(secret).sign('evt_9', new Date(ts * 1000), '{"x":1}');
    const headers = { 'webhook-id': 'evt_9', 'webhook-timestamp': String(ts), 'webhook-signature': signature };
    expect(verify({ headers, body: '{"x":1}', secrets: [secret], now: ts })).toBe(true);
  });

  it.each([
    // [case, change]
    ['another secret', { secrets: [newSecret()] }],
    ['another body', { body: '{"x":2}' }],
    ['too old', { now: VECTOR.timestamp + 301 }],
    ['from the future', { now: VECTOR.timestamp - 301 }],
  ])('refuses %s', (_case, change) => {
    const headers = { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature };
    const input = { headers, body: VECTOR.body, secrets: [VECTOR.secret], now: VECTOR.timestamp, ...change };
    expect(verify(input)).toBe(false);
  });

  it('accepts the published vector within tolerance', () => {
    const headers = { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': `v1,bm9wZQ== ${VECTOR.signature}` };
    expect(verify({ headers, body: VECTOR.body, secrets: [VECTOR.secret], now: VECTOR.timestamp + 299 })).toBe(true);
  });

  it('refuses missing headers', () => {
    expect(verify({ headers: {}, body: VECTOR.body, secrets: [VECTOR.secret], now: VECTOR.timestamp })).toBe(false);
  });
});

describe('parseSigningSecret', () => {
  it.each([
    // [secret, reason]
    ['MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'a signing secret must start with whsec_'],
    ['whsec_not base64!', 'a signing secret is whsec_ followed by base64'],
    [`whsec_${Buffer.alloc(16).toString('base64')}`, 'a signing secret must decode to 24–64 bytes (got 16)'],
    [`whsec_${Buffer.alloc(65).toString('base64')}`, 'a signing secret must decode to 24–64 bytes (got 65)'],
  ])('%j → %s', (secret, reason) => {
    expect(parseSigningSecret(secret)).toEqual({ ok: false, reason });
  });

  it('accepts the published example secret (24 bytes)', () => {
    const r = parseSigningSecret(VECTOR.secret);
    expect(r.ok && r.key.length).toBe(24);
  });
});
