import type { ServerResponse } from 'node:http';
import { startReceiver, type Received, type Receiver } from '../../callback/engine/receiver.js';

/**
 * A real HTTP subscriber on 127.0.0.1 whose every answer is decided by a script and written down, so
 * a test can replay, per event, what the subscriber said to each attempt and judge the callback's
 * reaction against the retry policy. Built on test/callback/engine/receiver.ts.
 */

export type Answer =
  | { status: number; headers?: Record<string, string>; /** answer after this long (a slow subscriber) */ delayMs?: number }
  /** The connection is destroyed without an answer. */
  | 'reset'
  /** No answer until `release()` (or the server closes): the attempt times out or stays in flight. */
  | 'hang';

export interface Attempt {
  /** From the body, not the header: the two must agree (checked by `mismatchedIds`). */
  eventId: string;
  webhookId: string;
  answer: Answer;
  /** performance.now() when the request was complete. */
  at: number;
  got: Received;
}

export interface ScriptedSubscriber {
  url: string;
  attempts: Attempt[];
  /** Answers every request still hanging with `status` (default 200). */
  release(status?: number): void;
  /** Changes how later requests are answered (a subscriber that comes back, or goes down). */
  setScript(script: Script): void;
  close(): Promise<void>;
}

/** How to answer a request: `attemptOfEvent` is 1 for the first request this subscriber saw for that event. */
export type Script = (got: Received, attemptOfEvent: number, eventId: string) => Answer;

export async function startScriptedSubscriber(initial: Script): Promise<ScriptedSubscriber> {
  let script = initial;
  const attempts: Attempt[] = [];
  const perEvent = new Map<string, number>();
  const hanging: { res: ServerResponse; attempt: Attempt }[] = [];
  const rx: Receiver = await startReceiver((got, res, req) => {
    let eventId = '';
    try {
      // The documented JSON event carries EventId; a structured CloudEvent carries it as `id`.
      const body = JSON.parse(got.body) as { EventId?: unknown; id?: unknown };
      eventId = String(body.EventId ?? body.id ?? '');
    } catch {
      eventId = '';
    }
    const n = (perEvent.get(eventId) ?? 0) + 1;
    perEvent.set(eventId, n);
    const answer = script(got, n, eventId);
    const attempt: Attempt = { eventId, webhookId: String(got.headers['webhook-id'] ?? ''), answer, at: got.at, got };
    attempts.push(attempt);
    if (answer === 'reset') req.socket.destroy();
    else if (answer === 'hang') hanging.push({ res, attempt });
    else {
      const send = () => {
        if (!res.destroyed) res.writeHead(answer.status, answer.headers ?? {}).end(answer.status >= 400 ? `status ${answer.status}` : '');
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    }
  });
  return {
    url: rx.url,
    attempts,
    release(status = 200) {
      for (const { res, attempt } of hanging.splice(0)) {
        if (res.destroyed || !res.socket || res.socket.destroyed) continue; // the caller gave up: it stays a hang
        res.writeHead(status).end();
        attempt.answer = { status };
      }
    },
    setScript(next) {
      script = next;
    },
    close: rx.close,
  };
}

export const ok = (a: Answer): boolean => typeof a === 'object' && a.status >= 200 && a.status < 300;

/** Event ids this subscriber answered with a 2xx, with how many times each. */
export function deliveredCounts(s: Pick<ScriptedSubscriber, 'attempts'>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of s.attempts) if (ok(a.answer)) counts.set(a.eventId, (counts.get(a.eventId) ?? 0) + 1);
  return counts;
}

/** Requests whose `webhook-id` header is not the EventId of their body (must be none). */
export function mismatchedIds(s: Pick<ScriptedSubscriber, 'attempts'>): Attempt[] {
  return s.attempts.filter((a) => a.webhookId === '' || a.webhookId !== a.eventId);
}

/** Events delivered (2xx) more than once, and whether every copy had the same body. */
export function duplicateDeliveries(s: Pick<ScriptedSubscriber, 'attempts'>): { eventId: string; copies: number; sameBody: boolean }[] {
  const bodies = new Map<string, string[]>();
  for (const a of s.attempts) if (ok(a.answer)) bodies.set(a.eventId, [...(bodies.get(a.eventId) ?? []), a.got.body]);
  return [...bodies.entries()].filter(([, b]) => b.length > 1).map(([eventId, b]) => ({ eventId, copies: b.length, sameBody: b.every((x) => x === b[0]) }));
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The subscribers one test file starts, closed together in its afterEach or afterAll. */
export function subscriberSet(): { start(script: Script): Promise<ScriptedSubscriber>; closeAll(): Promise<void> } {
  const started: ScriptedSubscriber[] = [];
  return {
    async start(script) {
      const s = await startScriptedSubscriber(script);
      started.push(s);
      return s;
    },
    closeAll: async () => {
      await Promise.all(started.splice(0).map((s) => s.close()));
    },
  };
}
