import { describe, expect, it } from 'vitest';
import { nextDelay, parseRetryAfter, retryScaleFromEnv, scalePolicy, standardPolicy, STANDARD_SCHEDULE, type RetryDecision } from '../../../callback/retry.js';
import type { RetryPolicy, SendResult } from '../../../callback/types.js';

const exact: RetryPolicy = { schedule: [5, 300, 1800], jitter: 0 };
const res = (r: Partial<SendResult>): SendResult => ({ ok: false, durationMs: 3, ...r });
const mid = (): number => 0.5; // jitter term 2·0.5−1 = 0: the schedule step itself

describe('nextDelay', () => {
  it.each<[string, number, SendResult, RetryDecision]>([
    // [case, attempt just made, outcome, decision]
    ['200', 1, res({ ok: true, status: 200 }), { action: 'done' }],
    ['204 on the last attempt', 4, res({ ok: true, status: 204 }), { action: 'done' }],
    ['a log subscriber (no HTTP status)', 1, res({ ok: true }), { action: 'done' }],
    ['410 Gone disables the subscriber', 1, res({ status: 410 }), { action: 'disable' }],
    ['301 is a failure, never followed', 1, res({ status: 301 }), { action: 'retry', delayMs: 5_000 }],
    ['ok:true with a 302 is still a failure', 1, res({ ok: true, status: 302 }), { action: 'retry', delayMs: 5_000 }],
    ['500 → schedule step 1', 1, res({ status: 500 }), { action: 'retry', delayMs: 5_000 }],
    ['404 → schedule step 2', 2, res({ status: 404 }), { action: 'retry', delayMs: 300_000 }],
    ['timeout → schedule step 3', 3, res({ error: 'timeout after 15000ms' }), { action: 'retry', delayMs: 1_800_000 }],
    ['connection refused after the last step → dead', 4, res({ error: 'ECONNREFUSED' }), { action: 'dead' }],
    ['429 asking for more than the step → what it asked', 1, res({ status: 429, retryAfterSeconds: 120 }), { action: 'retry', delayMs: 120_000 }],
    ['503 asking for less than the step → the step', 2, res({ status: 503, retryAfterSeconds: 10 }), { action: 'retry', delayMs: 300_000 }],
    ['429 asking for a week → capped at the longest step', 1, res({ status: 429, retryAfterSeconds: 604_800 }), { action: 'retry', delayMs: 1_800_000 }],
    ['Retry-After on a 500 is not a throttle', 1, res({ status: 500, retryAfterSeconds: 120 }), { action: 'retry', delayMs: 5_000 }],
    ['429 past the last step → dead', 4, res({ status: 429, retryAfterSeconds: 1 }), { action: 'dead' }],
  ])('%s', (_case, attempt, result, want) => {
    expect(nextDelay({ attempt, result, policy: exact, rand: mid })).toEqual(want);
  });

  it.each([
    // [rand, delay in ms for a 300 s step with jitter 0.2]
    [0, 240_000],
    [0.25, 270_000],
    [0.5, 300_000],
    [0.999, 359_880],
  ])('jitter 0.2: rand %d → %d ms', (r, want) => {
    expect(nextDelay({ attempt: 2, result: res({ status: 500 }), policy: { schedule: [5, 300], jitter: 0.2 }, rand: () => r })).toEqual({ action: 'retry', delayMs: want });
  });

  it('jitter never brings a throttled retry earlier than Retry-After', () => {
    expect(nextDelay({ attempt: 1, result: res({ status: 429, retryAfterSeconds: 60 }), policy: { schedule: [60], jitter: 0.5 }, rand: () => 0 })).toEqual({ action: 'retry', delayMs: 60_000 });
  });

  it("schedule 'none' means one attempt", () => {
    expect(nextDelay({ attempt: 1, result: res({ status: 500 }), policy: { schedule: [], jitter: 0.2 }, rand: mid })).toEqual({ action: 'dead' });
  });

  it('the standard schedule gives ten attempts spanning about three days', () => {
    const policy = standardPolicy();
    const delays: number[] = [];
    for (let attempt = 1; ; attempt++) {
      const d = nextDelay({ attempt, result: res({ status: 500 }), policy, rand: mid });
      if (d.action !== 'retry') {
        expect(d).toEqual({ action: 'dead' });
        break;
      }
      delays.push(d.delayMs / 1000);
    }
    expect(delays).toEqual([5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]);
    // Standard Webhooks quotes the cumulative total as 75:35:05.
    expect(delays.reduce((a, b) => a + b, 0)).toBe(75 * 3600 + 35 * 60 + 5);
  });
});

describe('scaling the schedule for tests', () => {
  it('scalePolicy multiplies each step; the Retry-After cap scales with it', () => {
    const fast = scalePolicy(standardPolicy(), 0.001);
    expect(fast.schedule).toEqual(STANDARD_SCHEDULE.map((s) => s * 0.001));
    expect(nextDelay({ attempt: 1, result: res({ status: 429, retryAfterSeconds: 3600 }), policy: { ...fast, jitter: 0 }, rand: mid })).toEqual({ action: 'retry', delayMs: 86_400 });
  });

  it.each([
    // [KFP_NOTIFY_RETRY_SCALE, scale]
    [undefined, 1],
    ['', 1],
    ['0.001', 0.001],
    [' 2 ', 2],
  ])('KFP_NOTIFY_RETRY_SCALE=%j → %d', (v, want) => {
    expect(retryScaleFromEnv({ KFP_NOTIFY_RETRY_SCALE: v })).toBe(want);
  });

  it.each(['0', '-1', 'fast', 'Infinity'])('KFP_NOTIFY_RETRY_SCALE=%j is refused with a message', (v) => {
    expect(() => retryScaleFromEnv({ KFP_NOTIFY_RETRY_SCALE: v })).toThrow(`KFP_NOTIFY_RETRY_SCALE must be a positive number (got '${v}')`);
  });
});

describe('parseRetryAfter', () => {
  const now = new Date('2025-03-01T12:00:00Z');
  it.each([
    // [header, seconds]
    ['120', 120],
    ['120.5', 120.5],
    ['0', 0],
    ['Sat, 01 Mar 2025 12:02:00 GMT', 120],
    ['Sat, 01 Mar 2025 11:00:00 GMT', 0],
    [undefined, undefined],
    ['', undefined],
    ['soon', undefined],
    ['-5', undefined],
  ])('%j → %j', (header, want) => {
    expect(parseRetryAfter(header, now)).toBe(want);
  });
});
