import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killAll, startCallbackProcess, type CallbackProcess } from './helpers/callback-process.js';
import { leaksInThisFile } from './helpers/secrets.js';
import { acceptedIds, hookCallMix, hookClient, inParallel, type HookAnswer, type HookCall } from './helpers/hook-load.js';
import { queueDepths, waitFor, workspace } from './helpers/setup.js';
import { deliveredCounts, duplicateDeliveries, mismatchedIds, subscriberSet, type ScriptedSubscriber } from './helpers/subscriber-server.js';

/**
 * A real `kfp-notify callback` process (compiled dist/) is killed with SIGKILL, or stopped with
 * SIGTERM, in the middle of a burst of hook calls made from real injected KFP fixtures, while its
 * subscribers are slow, down or hanging, so thousands of deliveries are pending or in flight.
 * A new process on the same data dir must then deliver every event that was answered 202 to every
 * subscriber; anything delivered twice must carry the same webhook-id (and body).
 * Hook calls that got no answer are sent again after the restart, as the notifier's curl retries.
 */

const ws = workspace('kfp-notify-crash-');
const subscribers = subscriberSet();
afterEach(async () => {
  await killAll();
  await subscribers.closeAll();
});
afterAll(() => ws.cleanup());

const up = () => ({ status: 200 });
const subscriber = subscribers.start;

/** Sends every call (48 at a time) and calls `interrupt` once, right after the `interruptAfter`-th 202. */
async function burst(p: CallbackProcess, calls: readonly HookCall[], interruptAfter: number, interrupt: () => void): Promise<HookAnswer[]> {
  const client = hookClient(p.url, 32);
  let accepted = 0;
  try {
    return await inParallel(calls, 48, async (call) => {
      const answer = await client.post(call);
      if (!('error' in answer) && answer.status === 202 && ++accepted === interruptAfter) interrupt();
      return answer;
    });
  } finally {
    await client.close();
  }
}

/** Sends again every call that was not answered 202, as the hook would; all must now be 202. */
async function retryUnanswered(p: CallbackProcess, calls: readonly HookCall[], answers: readonly HookAnswer[]): Promise<HookAnswer[]> {
  const again = calls.filter((_c, i) => acceptedIds(answers[i] ?? { error: 'none' }).length === 0);
  const client = hookClient(p.url, 16);
  try {
    const retried = await inParallel(again, 32, (c) => client.post(c));
    expect(retried.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
    return retried;
  } finally {
    await client.close();
  }
}

const idsOf = (answers: readonly HookAnswer[]) => new Set(answers.flatMap(acceptedIds));

/**
 * Every call was answered 202 in the end (retried after the restart if need be), so `accepted` is
 * every event any call carried: each subscriber must have all of them and nothing else.
 */
function checkEveryoneGotEverything(subs: Record<string, ScriptedSubscriber>, accepted: ReadonlySet<string>) {
  const figures: Record<string, { requests: number; duplicates: number; resent: number }> = {};
  for (const [name, s] of Object.entries(subs)) {
    const delivered = deliveredCounts(s);
    const missing = [...accepted].filter((id) => !delivered.has(id));
    expect(missing, `${name} never got these accepted events`).toEqual([]);
    expect([...delivered.keys()].filter((id) => !accepted.has(id)), `${name} got events nobody sent`).toEqual([]);
    expect(mismatchedIds(s), `${name}: webhook-id differs from the body's EventId`).toEqual([]);
    const dups = duplicateDeliveries(s);
    expect(dups.filter((d) => !d.sameBody), `${name}: a redelivery differs from the first delivery`).toEqual([]);
    // resent: events whose request reached this subscriber more than once, whatever it answered.
    const seen = new Map<string, number>();
    for (const a of s.attempts) seen.set(a.eventId, (seen.get(a.eventId) ?? 0) + 1);
    figures[name] = { requests: s.attempts.length, duplicates: dups.reduce((n, d) => n + d.copies - 1, 0), resent: [...seen.values()].filter((n) => n > 1).length };
  }
  return figures;
}

describe('crash and shutdown under load: a real kfp-notify callback process on a SQLite data dir', () => {
  it('SIGKILL with 3,000 hook calls accepted and deliveries pending: after a restart every accepted event reaches every subscriber, duplicates carry the same webhook-id', async () => {
    const { dir, key } = ws.dataDir('sigkill');
    // Phase 1: one subscriber slow (2 at a time, 20 ms each), one down (503 or a reset), one that
    // never answers (its deliveries stay in flight until the kill).
    const slow = await subscriber(() => ({ status: 200, delayMs: 20 }));
    const down = await subscriber((_g, n) => (n % 3 === 0 ? 'reset' : { status: 503 }));
    const hung = await subscriber(() => 'hang');
    const retry = { schedule: Array.from({ length: 40 }, () => 0.5), jitter: 0.2 };
    const args = [
      '--data-dir', dir,
      ...ws.subscribers('sigkill', {
        slow: { url: slow.url, maxConcurrency: 2, retry },
        down: { url: down.url, maxConcurrency: 4, retry },
        hung: { url: hung.url, maxConcurrency: 8, timeout: '60s', retry },
      }),
    ];
    const first = await startCallbackProcess(args);
    const calls = hookCallMix(3_600, key, 'crash');

    const started = performance.now();
    const answers = await burst(first, calls, 3_000, () => first.child.kill('SIGKILL'));
    const phase1Ms = performance.now() - started;
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // Every answer before the kill was a 202; after it, calls could not connect (retried below).
    expect(answers.filter((a) => !('error' in a) && a.status !== 202)).toEqual([]);
    const accepted1 = answers.filter((a) => !('error' in a)).length;
    expect(accepted1).toBeGreaterThanOrEqual(3_000);
    const acceptedIds1 = idsOf(answers);
    // Thousands were still owed when the process died.
    expect(deliveredCounts(slow).size).toBeLessThan(acceptedIds1.size - 1_000);
    expect(deliveredCounts(down).size).toBe(0);
    expect(hung.attempts.length).toBe(8);

    // Phase 2: everyone answers at once; a new process on the same data dir.
    for (const s of [slow, down, hung]) s.setScript(up);
    const restartedAt = performance.now();
    const second = await startCallbackProcess(args);
    const retried = await retryUnanswered(second, calls, answers);
    const accepted = new Set([...acceptedIds1, ...idsOf(retried)]);
    const token = ws.adminToken(dir);
    await waitFor('every queue to drain', () => queueDepths(second.url, token), (d) => Object.values(d).every((n) => n === 0), 120_000);
    const drainMs = performance.now() - restartedAt;

    const figures = checkEveryoneGotEverything({ slow, down, hung }, accepted);
    // The 8 sends in flight to `hung` at the kill are sent again with the same id: at-least-once.
    expect(hung.attempts.filter((a) => a.answer === 'hang').every((a) => deliveredCounts(hung).get(a.eventId) === 1)).toBe(true);
    console.log(
      `[figures] SIGKILL: ${calls.length} calls, ${accepted1} answered 202 before the kill (${Math.round(phase1Ms)} ms), ` +
        `${calls.length - accepted1} retried after restart, ${accepted.size} events × 3 subscribers, drained ${Math.round(drainMs)} ms after restart; ` +
        `per subscriber ${JSON.stringify(figures)}`,
    );
    expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM during a burst: in-flight hook calls and sends finish, the process exits 0, and a restart delivers the rest; nothing lost, nothing sent twice', async () => {
    const { dir, key } = ws.dataDir('sigterm');
    // steady answers in 50 ms; flaky fails each event's first attempt, so retries are pending.
    const steady = await subscriber(() => ({ status: 200, delayMs: 50 }));
    const flaky = await subscriber((_g, n) => (n === 1 ? { status: 500 } : { status: 200 }));
    const args = [
      '--data-dir', dir,
      ...ws.subscribers('sigterm', {
        steady: { url: steady.url, maxConcurrency: 4, retry: { schedule: [0.2, 0.2, 0.2], jitter: 0 } },
        flaky: { url: flaky.url, maxConcurrency: 4, retry: { schedule: [0.2, 0.2, 0.2], jitter: 0 } },
      }),
    ];
    const first = await startCallbackProcess(args);
    const calls = hookCallMix(2_000, key, 'term');
    let signalledAt = 0;
    const answers = await burst(first, calls, 1_000, () => {
      signalledAt = performance.now();
      first.child.kill('SIGTERM');
    });
    const exit = await first.exited;
    const shutdownMs = performance.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(first.lines.some((l) => l.msg === 'callback stopped')).toBe(true);
    // 202, or — once closing — 503 or a refused/closed connection: the hook retries those.
    expect(answers.filter((a) => !('error' in a) && a.status !== 202 && a.status !== 503)).toEqual([]);
    const acceptedIds1 = idsOf(answers);
    // Sends in flight at the signal completed before the exit: each attempt the subscriber saw was answered.
    const steadyBefore = deliveredCounts(steady).size;
    expect(steadyBefore).toBeGreaterThan(0);
    expect(steadyBefore).toBeLessThan(acceptedIds1.size);

    for (const s of [steady, flaky]) s.setScript(up);
    const second = await startCallbackProcess(args);
    const retried = await retryUnanswered(second, calls, answers);
    const accepted = new Set([...acceptedIds1, ...idsOf(retried)]);
    const token = ws.adminToken(dir);
    await waitFor('every queue to drain', () => queueDepths(second.url, token), (d) => Object.values(d).every((n) => n === 0), 120_000);

    const figures = checkEveryoneGotEverything({ steady, flaky }, accepted);
    // A graceful stop waits for the sends in flight and records them: nothing is delivered twice.
    expect(figures.steady?.duplicates).toBe(0);
    expect(figures.flaky?.duplicates).toBe(0);
    console.log(
      `[figures] SIGTERM: ${calls.length} calls, ${answers.filter((a) => !('error' in a) && a.status === 202).length} answered 202, ` +
        `${answers.filter((a) => !('error' in a) && a.status === 503).length} answered 503 while closing, ${answers.filter((a) => 'error' in a).length} refused/cut; ` +
        `exit 0 after ${Math.round(shutdownMs)} ms; ${accepted.size} events × 2 subscribers; per subscriber ${JSON.stringify(figures)}`,
    );
    expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('no secret reached the output of the processes this file ran', () => {
    expect(leaksInThisFile(ws.secrets())).toEqual([]);
  });
});
