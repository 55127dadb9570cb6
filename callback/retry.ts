import type { RetryPolicy, SendResult } from './types.js';

/**
 * What to do after one delivery attempt. Pure: the worker passes the attempt number, the outcome,
 * the subscriber's policy and a random source, and schedules (or dead-letters) accordingly.
 *
 * Rules (Standard Webhooks, docs/subscribers.md):
 * - 2xx → done. Any other status is a failure; 3xx included (redirects are never followed).
 * - 410 Gone → disable: the receiver says the endpoint is gone for good.
 * - `permanent` (a transport's verdict: a KFP 400, a trigger loop) → dead at once: retrying cannot help.
 * - 429 / 503 with Retry-After → wait at least what the receiver asked and at least the schedule's
 *   next step, at most the schedule's longest step (our own patience bounds theirs).
 * - everything else (other statuses, timeouts, connection errors) → the schedule's next step ± jitter.
 * - no step left → dead (dead-letter queue, replayable with `kfp-notify dlq`).
 */

/** Standard Webhooks' example schedule, after an immediate first attempt: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h. */
export const STANDARD_SCHEDULE: readonly number[] = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
export const DEFAULT_JITTER = 0.2;

export function standardPolicy(): RetryPolicy {
  return { schedule: [...STANDARD_SCHEDULE], jitter: DEFAULT_JITTER };
}

export type RetryDecision = { action: 'retry'; delayMs: number } | { action: 'dead' } | { action: 'disable' } | { action: 'done' };

export interface RetryInput {
  /** The attempt that just finished: 1 for the first. */
  attempt: number;
  result: SendResult;
  policy: RetryPolicy;
  /** Uniform in [0, 1): Math.random in production, a constant in tests. */
  rand: () => number;
}

const THROTTLE_STATUSES = new Set([429, 503]);

function succeeded(r: SendResult): boolean {
  // A response decides by its status; without one (a `log` subscriber), by `ok`.
  return r.status === undefined ? r.ok : r.status >= 200 && r.status < 300;
}

export function nextDelay({ attempt, result, policy, rand }: RetryInput): RetryDecision {
  if (succeeded(result)) return { action: 'done' };
  if (result.status === 410) return { action: 'disable' };
  if (result.permanent) return { action: 'dead' };
  const step = policy.schedule[attempt - 1];
  if (step === undefined || attempt < 1) return { action: 'dead' };
  const jitter = Math.min(Math.max(policy.jitter, 0), 1);
  let seconds = step * (1 + jitter * (2 * rand() - 1));
  const retryAfter = result.retryAfterSeconds;
  if (result.status !== undefined && THROTTLE_STATUSES.has(result.status) && retryAfter !== undefined && retryAfter > 0) {
    const longest = Math.max(...policy.schedule);
    seconds = Math.max(seconds, Math.min(retryAfter, longest));
  }
  return { action: 'retry', delayMs: Math.max(0, Math.round(seconds * 1000)) };
}

/**
 * A Retry-After header → seconds to wait, or undefined when absent or unreadable. Accepts
 * delay-seconds ("120", "120.5") and an HTTP-date (RFC 9110 §10.2.3), measured from `now`.
 */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, (at - now.getTime()) / 1000);
}

/** Multiply every step (tests compress days into milliseconds with e.g. 0.001). */
export function scalePolicy(policy: RetryPolicy, scale: number): RetryPolicy {
  return { ...policy, schedule: policy.schedule.map((s) => s * scale) };
}

/** KFP_NOTIFY_RETRY_SCALE from an environment: unset → 1; a positive number; anything else throws. */
export function retryScaleFromEnv(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env.KFP_NOTIFY_RETRY_SCALE?.trim();
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`KFP_NOTIFY_RETRY_SCALE must be a positive number (got '${raw}')`);
  return n;
}
