import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { recordOutput, startCallbackProcess } from './helpers/callback-process.js';
import { acceptedIds, hookCallMix, hookClient, inParallel, seeded, seedFromEnv, type HookCall } from './helpers/hook-load.js';
import { leaksInThisFile } from './helpers/secrets.js';
import { admin, deadLetters, fileFixtures, queueDepths, waitFor, type DeadLetterRow } from './helpers/setup.js';
import { deliveredCounts, median, mismatchedIds, ok, type Answer, type Attempt, type ScriptedSubscriber } from './helpers/subscriber-server.js';

/**
 * Subscriber chaos against a real `kfp-notify callback` process: beside a healthy subscriber, one
 * answers 5xx at random, one times out at random, one resets connections at random, one answers 429
 * with Retry-After, one answers 410 Gone, one never answers. Retry waits are compressed with
 * --retry-scale 0.001 (the schedules below are in seconds, so 5 means 5 ms). For every event and
 * every subscriber, what the subscriber answered to each attempt is replayed against the policy:
 * a 2xx ends the attempts; N failures (N = schedule length + 1) make exactly one dead letter with N
 * attempts; a 410 disables the subscriber and dead-letters the rest without sending. Dead letters
 * are then replayed (admin API and `kfp-notify dlq replay`) until every subscriber has every event
 * exactly once. Random answers come from a seeded generator (the seed is printed; KFP_NOTIFY_SEED
 * sets it): the same seed gives the same sequence of draws, though which request gets which draw
 * depends on the order requests arrive in.
 */

const SEED = seedFromEnv();
const { ws, subscribers } = fileFixtures('kfp-notify-chaos-');

const SCHEDULES = {
  flaky: [5, 10, 20, 40, 80],
  timeouts: [5, 10, 20],
  resets: [5, 10, 20],
  throttled: [5, 2000],
};
const RETRY_AFTER_S = 1;

function status(a: Answer): number | null {
  return typeof a === 'object' ? a.status : null;
}

/** Checks one subscriber's attempts for one event against the retry policy; returns the problems. */
function judge(eventId: string, attempts: readonly Attempt[], maxAttempts: number, dead: DeadLetterRow | undefined): string[] {
  const problems: string[] = [];
  const firstOk = attempts.findIndex((a) => ok(a.answer));
  if (firstOk >= 0) {
    if (attempts.length !== firstOk + 1) problems.push(`${eventId}: ${attempts.length - firstOk - 1} attempt(s) after a 2xx`);
    if (dead) problems.push(`${eventId}: dead-lettered although delivered`);
  } else {
    if (attempts.length !== maxAttempts) problems.push(`${eventId}: ${attempts.length} attempts, the policy allows ${maxAttempts}`);
    if (!dead) problems.push(`${eventId}: every attempt failed but there is no dead letter`);
    else {
      if (dead.attempts !== maxAttempts) problems.push(`${eventId}: dead letter says ${dead.attempts} attempts`);
      const last = attempts.at(-1);
      if (last && dead.lastStatus !== status(last.answer)) problems.push(`${eventId}: dead letter's last status ${dead.lastStatus}, subscriber answered ${status(last.answer)}`);
      if (last?.answer === 'hang' && !/timeout/.test(dead.lastError ?? '')) problems.push(`${eventId}: last attempt timed out but lastError is ${dead.lastError}`);
    }
  }
  return problems;
}

function attemptsByEvent(s: ScriptedSubscriber): Map<string, Attempt[]> {
  const by = new Map<string, Attempt[]>();
  for (const a of s.attempts) by.set(a.eventId, [...(by.get(a.eventId) ?? []), a]);
  return by;
}

describe(`subscriber chaos against a real kfp-notify callback process (seed ${SEED})`, () => {
  it('delivers or dead-letters every event exactly as the retry policy says, replays dead letters, and keeps the healthy subscriber unaffected', async () => {
    const rand = seeded(SEED);
    const start = subscribers.start;
    const healthy = await start(() => ({ status: 200 }));
    const flaky = await start(() => (rand() < 0.6 ? { status: [500, 502, 503, 504][Math.floor(rand() * 4)] ?? 500 } : { status: 200 }));
    const timeouts = await start(() => (rand() < 0.4 ? 'hang' : { status: 200 }));
    const resets = await start(() => (rand() < 0.5 ? 'reset' : { status: 204 }));
    const throttled = await start((_g, n) => (n === 1 ? { status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } } : { status: 200 }));
    let goneServed = 0;
    const gone = await start(() => (++goneServed <= 20 ? { status: 200 } : goneServed === 21 ? { status: 410 } : { status: 200 }));
    const stuck = await start(() => 'hang');

    const { dir, key } = ws.dataDir('chaos');
    const file = ws.subscribers('chaos', { healthy: healthy.url });
    const cb = await startCallbackProcess(['--data-dir', dir, '--retry-scale', '0.001', ...file]);
    const token = ws.adminToken(dir);
    const client = hookClient(cb.url, 16);
    /** Sends the calls; returns, per event, when the hook call that carried it was sent (performance.now()). */
    const send = async (calls: readonly HookCall[]) => {
      const sentAt = new Map<string, number>();
      // Paced (two calls at a time), so latency measures isolation, not the backlog of a burst.
      await inParallel(calls, 2, async (c) => {
        const at = performance.now();
        const answer = await client.post(c);
        expect(answer).toMatchObject({ status: 202 });
        for (const id of acceptedIds(answer)) sentAt.set(id, at);
      });
      return sentAt;
    };
    /** Hook call sent → the healthy subscriber has the event, per event. */
    const latencies = (sentAt: Map<string, number>) => {
      const firstSeen = new Map<string, number>();
      for (const a of healthy.attempts) if (!firstSeen.has(a.eventId)) firstSeen.set(a.eventId, a.at);
      return [...sentAt].map(([id, at]) => (firstSeen.get(id) ?? Infinity) - at);
    };

    // Baseline: the healthy subscriber alone.
    const baseline = await send(hookCallMix(150, key, 'baseline'));
    await waitFor('the baseline deliveries', () => deliveredCounts(healthy).size, (n) => n === baseline.size);
    const baselineMedian = median(latencies(baseline));

    // Chaos: the same healthy subscriber beside six bad ones (the file is watched; no restart).
    const retry = (schedule: number[]) => ({ schedule, jitter: 0.2 });
    writeFileSync(
      file[1] ?? '',
      JSON.stringify({
        healthy: healthy.url,
        flaky: { url: flaky.url, retry: retry(SCHEDULES.flaky) },
        // 400 ms: long enough that a prompt 200 is never late, even on a loaded CI machine.
        timeouts: { url: timeouts.url, timeout: '400ms', maxConcurrency: 64, retry: retry(SCHEDULES.timeouts) },
        resets: { url: resets.url, retry: retry(SCHEDULES.resets) },
        throttled: { url: throttled.url, retry: { schedule: SCHEDULES.throttled, jitter: 0 } },
        gone: { url: gone.url, maxConcurrency: 1, retry: retry([5, 5]) },
        stuck: { url: stuck.url, timeout: '60s', maxConcurrency: 2 },
      }),
    );
    await waitFor('the new subscribers to load', () => queueDepths(cb.url, token), (d) => Object.keys(d).length === 7);
    const chaos = await send(hookCallMix(300, key, 'chaos'));
    const events = [...chaos.keys()];

    // Isolation: healthy gets everything while `stuck` holds both its slots and `throttled` waits out Retry-After.
    await waitFor('healthy to get every chaos event', () => events.filter((id) => !deliveredCounts(healthy).has(id)).length, (n) => n === 0);
    expect(stuck.attempts.map((a) => a.answer)).toEqual(['hang', 'hang']);
    const chaosMedian = median(latencies(chaos));
    expect(chaosMedian).toBeLessThan(Math.max(100, 10 * baselineMedian));

    // Every bad subscriber settles: nothing pending but stuck's events.
    await waitFor('the bad subscribers to settle', () => queueDepths(cb.url, token), (d) => ['flaky', 'timeouts', 'resets', 'throttled', 'gone'].every((n) => (d[n] ?? 0) === 0), 60_000);
    const dead = await deadLetters(cb.url, token);
    const deadFor = (sub: string) => new Map(dead.filter((d) => d.subscriber === sub).map((d) => [d.eventId, d]));

    // Random failures: each event's fate follows from what the subscriber answered, attempt by attempt.
    const policyFigures: Record<string, { attempts: number; dead: number }> = {};
    for (const [name, s, schedule] of [
      ['flaky', flaky, SCHEDULES.flaky],
      ['timeouts', timeouts, SCHEDULES.timeouts],
      ['resets', resets, SCHEDULES.resets],
    ] as const) {
      const by = attemptsByEvent(s);
      const deadHere = deadFor(name);
      const problems = events.flatMap((id) => judge(id, by.get(id) ?? [], schedule.length + 1, deadHere.get(id)));
      expect(problems, name).toEqual([]);
      expect(deadHere.size, `${name}: dead letters for events never sent`).toBe(events.filter((id) => !(by.get(id) ?? []).some((a) => ok(a.answer))).length);
      policyFigures[name] = { attempts: s.attempts.filter((a) => chaos.has(a.eventId)).length, dead: deadHere.size };
    }

    // Each retry was scheduled at the schedule's step for that attempt, ± its jitter (the process logs
    // every decision); a 429's wait is what Retry-After asked (1 s, not the 5 ms step: within the longest step).
    const decisions = cb.lines.filter((l) => l.msg === 'delivery failed; will retry' && chaos.has(String(l.eventId)));
    const offPolicy = decisions.filter((l) => {
      const sub = String(l.subscriber) as keyof typeof SCHEDULES;
      const stepMs = (SCHEDULES[sub]?.[Number(l.attempt) - 1] ?? Number.NaN) * 0.001 * 1000;
      const ms = Number(l.retryInMs);
      if (sub === 'throttled') return ms !== RETRY_AFTER_S * 1000;
      return !(ms >= Math.floor(stepMs * 0.8) && ms <= Math.ceil(stepMs * 1.2));
    });
    expect(offPolicy).toEqual([]);
    expect(decisions.filter((l) => l.subscriber === 'throttled')).toHaveLength(events.length);
    // ...and the subscriber saw the second attempt at least that long after the first.
    const waits = [...attemptsByEvent(throttled)].filter(([id]) => chaos.has(id)).map(([, a]) => (a[1]?.at ?? Infinity) - (a[0]?.at ?? 0));
    expect(waits).toHaveLength(events.length);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000 - 50);
    expect(deadFor('throttled').size).toBe(0);
    // ...and the healthy subscriber had each event before the throttled one's retry of it.
    const healthyAt = new Map(healthy.attempts.map((a) => [a.eventId, a.at]));
    expect(events.filter((id) => (healthyAt.get(id) ?? Infinity) > (attemptsByEvent(throttled).get(id)?.[1]?.at ?? 0))).toEqual([]);

    // 410: disabled at once; nothing more sent; everything it did not get is a dead letter.
    const goneAttempts = gone.attempts.length;
    expect(gone.attempts.filter((a) => status(a.answer) === 410)).toHaveLength(1);
    expect(goneAttempts).toBe(21);
    const subs = (await admin(cb.url, token, 'GET', '/v1/subscribers')).body.subscribers as { name: string; disabled: { reason: string } | null }[];
    expect(subs.find((s) => s.name === 'gone')?.disabled?.reason).toBe('HTTP 410 Gone');
    const goneDead = deadFor('gone');
    const goneGot = new Set(deliveredCounts(gone).keys());
    expect(events.filter((id) => chaos.has(id) && !goneGot.has(id) && !goneDead.has(id))).toEqual([]);
    expect([...goneDead.values()].filter((d) => d.lastStatus !== 410 && !/subscriber disabled: HTTP 410 Gone/.test(d.lastError ?? ''))).toEqual([]);

    // Replay: the API by ids (flaky) and by subscriber (resets), the CLI by subscriber (timeouts) and, once re-enabled, gone.
    for (const s of [flaky, timeouts, resets, gone]) s.setScript(() => ({ status: 200 }));
    const flakyIds = [...deadFor('flaky').values()].map((d) => d.id);
    if (flakyIds.length > 0) expect((await admin(cb.url, token, 'POST', '/v1/dead-letters/replay', { ids: flakyIds })).body).toMatchObject({ replayed: flakyIds.length });
    expect((await admin(cb.url, token, 'POST', '/v1/dead-letters/replay', { subscriber: 'resets' })).body).toMatchObject({ replayed: deadFor('resets').size });
    const dlq = async (...args: string[]) => {
      const r = await runCli(['dlq', ...args, '--url', cb.url, '--data-dir', dir]);
      recordOutput(r.stdout + r.stderr);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    expect(await dlq('replay', '--subscriber', 'timeouts')).toMatch(new RegExp(`^replayed ${deadFor('timeouts').size} dead letter`));
    expect((await admin(cb.url, token, 'POST', '/v1/subscribers/gone/enable')).body).toMatchObject({ enabled: true, wasDisabled: true });
    expect(await dlq('replay', '--subscriber', 'gone')).toMatch(new RegExp(`^replayed ${goneDead.size} dead letter`));
    stuck.setScript(() => ({ status: 200 }));
    stuck.release(200);

    // In the end every subscriber has every event (baseline ones included for healthy), each exactly once.
    await waitFor('every queue to drain', () => queueDepths(cb.url, token), (d) => Object.values(d).every((n) => n === 0), 90_000);
    expect(await deadLetters(cb.url, token)).toEqual([]);
    expect(await dlq('list')).toBe('no dead letters\n');
    for (const [name, s] of Object.entries({ healthy, flaky, timeouts, resets, throttled, gone, stuck })) {
      const counts = deliveredCounts(s);
      expect(events.filter((id) => counts.get(id) !== 1), `${name}: events not delivered exactly once`).toEqual([]);
      expect(mismatchedIds(s), name).toEqual([]);
    }
    await client.close();
    console.log(
      `[figures] chaos: ${events.length} events × 7 subscribers; healthy median latency ${baselineMedian.toFixed(1)} ms alone, ${chaosMedian.toFixed(1)} ms beside the chaos; ` +
        `random failures ${JSON.stringify(policyFigures)}; throttled retries waited ${Math.round(Math.min(...waits))}–${Math.round(Math.max(...waits))} ms for Retry-After ${RETRY_AFTER_S}; ` +
        `gone: 20 delivered, 410 on request 21, ${goneDead.size} dead-lettered unsent, all replayed`,
    );
  });

  it('no secret reached the output of the processes this file ran', () => {
    expect(leaksInThisFile(ws.secrets())).toEqual([]);
  });
});
