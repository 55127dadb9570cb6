import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { killAll, startCallbackProcess, type CallbackProcess } from './helpers/callback-process.js';
import { acceptedIds, hookCallMix, hookClient, inParallel, type HookAnswer, type HookCall } from './helpers/hook-load.js';
import { leaksInThisFile } from './helpers/secrets.js';
import { admin, deadLetters, queueDepths, waitFor, workspace } from './helpers/setup.js';
import { deliveredCounts, duplicateDeliveries, mismatchedIds, subscriberSet, type Script, type ScriptedSubscriber } from './helpers/subscriber-server.js';

/**
 * Several real `kfp-notify callback` processes (compiled dist/) on one real nats-server with
 * JetStream (file storage), each with its own data dir but the same hook key and admin token, as
 * the pods of the `ha` overlay. Hook calls are spread over all replicas. Whatever happens to one
 * replica or to NATS, every event answered 202 reaches every subscriber, and an event delivered
 * twice carries the same webhook-id both times.
 */

const ws = workspace('kfp-notify-ha-');
const subscribers = subscriberSet();
let nats: NatsServer;
beforeEach(async () => {
  nats = await startNatsServer();
});
afterEach(async () => {
  await killAll();
  await subscribers.closeAll();
  await nats.dispose();
});
afterAll(() => ws.cleanup());

const up: Script = () => ({ status: 200 });
/** Claims lapse after 3 s here (default 30 s), so a dead replica's deliveries move on quickly. */
const LEASE = '3s';

/** Starts `count` replicas on the same NATS, hook key and admin token; returns them and the admin token. */
async function replicas(name: string, count: number, subs: Record<string, unknown>): Promise<{ procs: CallbackProcess[]; token: string; key: ReturnType<typeof ws.dataDir>['key'] }> {
  const shared = ws.dataDir(`${name}-shared`);
  const subArgs = ws.subscribers(name, subs);
  const procs: CallbackProcess[] = [];
  for (let i = 0; i < count; i++) {
    // Replicas one after the other: the first creates the admin token in its data dir, the others read it.
    const dir = i === 0 ? shared.dir : ws.dataDir(`${name}-replica-${i}`).dir;
    procs.push(
      await startCallbackProcess([
        '--data-dir', dir,
        ...(i === 0 ? [] : ['--hook-key-file', join(shared.dir, 'hook-key'), '--admin-token-file', join(shared.dir, 'admin-token')]),
        '--store', nats.url,
        '--nats-lease', LEASE,
        ...subArgs,
      ]),
    );
  }
  return { procs, token: ws.adminToken(shared.dir), key: shared.key };
}

/** Sends every call (spread round-robin over the live replicas, 48 at a time); calls `interrupt` once, after the `interruptAfter`-th 202. */
async function burst(procs: readonly CallbackProcess[], calls: readonly HookCall[], interruptAfter: number, interrupt: () => void): Promise<HookAnswer[]> {
  const clients = procs.map((p) => hookClient(p.url, 16));
  let accepted = 0;
  try {
    return await inParallel(calls, 48, async (call, i) => {
      const answer = await (clients[i % clients.length] as ReturnType<typeof hookClient>).post(call);
      if (!('error' in answer) && answer.status === 202 && ++accepted === interruptAfter) interrupt();
      return answer;
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Sends again, to `to`, every call not answered 202 (the hook's retries), until all are 202. */
async function retryUntilAccepted(to: CallbackProcess, calls: readonly HookCall[], answers: readonly HookAnswer[]): Promise<HookAnswer[]> {
  let pending = calls.filter((_c, i) => acceptedIds(answers[i] ?? { error: 'none' }).length === 0);
  const got: HookAnswer[] = [];
  const client = hookClient(to.url, 16);
  try {
    for (let round = 0; pending.length > 0; round++) {
      if (round > 200) throw new Error(`${pending.length} hook calls never got a 202`);
      const again = await inParallel(pending, 32, (c) => client.post(c));
      got.push(...again.filter((a) => !('error' in a) && a.status === 202));
      pending = pending.filter((_c, i) => {
        const a = again[i];
        return !a || 'error' in a || a.status !== 202;
      });
      if (pending.length > 0) await new Promise((r) => setTimeout(r, 250));
    }
    return got;
  } finally {
    await client.close();
  }
}

const idsOf = (answers: readonly HookAnswer[]) => new Set(answers.flatMap(acceptedIds));

/** Each subscriber got every accepted event and nothing else; a redelivery has the same webhook-id and body. */
function checkEveryoneGotEverything(subs: Record<string, ScriptedSubscriber>, accepted: ReadonlySet<string>): Record<string, { requests: number; duplicates: number }> {
  const figures: Record<string, { requests: number; duplicates: number }> = {};
  for (const [name, s] of Object.entries(subs)) {
    const delivered = deliveredCounts(s);
    expect([...accepted].filter((id) => !delivered.has(id)), `${name} never got these accepted events`).toEqual([]);
    expect([...delivered.keys()].filter((id) => !accepted.has(id)), `${name} got events nobody sent`).toEqual([]);
    expect(mismatchedIds(s), `${name}: webhook-id differs from the body's EventId`).toEqual([]);
    const dups = duplicateDeliveries(s);
    expect(dups.filter((d) => !d.sameBody), `${name}: a redelivery differs from the first delivery`).toEqual([]);
    figures[name] = { requests: s.attempts.length, duplicates: dups.reduce((n, d) => n + d.copies - 1, 0) };
  }
  return figures;
}

/** A subscriber answering after `delayMs` that records the most requests it ever had open at once. */
function concurrencyMeter(delayMs: number): { script: Script; max(): number } {
  let open = 0;
  let max = 0;
  return {
    script: () => {
      open++;
      max = Math.max(max, open);
      setTimeout(() => open--, delayMs);
      return { status: 200, delayMs };
    },
    max: () => max,
  };
}

async function drained(p: CallbackProcess, token: string): Promise<void> {
  await waitFor('every queue to drain', () => queueDepths(p.url, token), (d) => Object.values(d).every((n) => n === 0), 180_000);
}

describe('high availability: three callback replicas on one JetStream', () => {
  it('SIGKILL of one replica in a burst spread over all three: every 202 reaches every subscriber, duplicates only with the same webhook-id, maxConcurrency held across replicas', async () => {
    const meter = concurrencyMeter(15);
    const slow = await subscribers.start(meter.script);
    // down for the whole first phase: its deliveries pile up (a subscriber down for a while).
    const down = await subscribers.start((_g, n) => (n % 2 === 0 ? 'reset' : { status: 503 }));
    const fast = await subscribers.start(up);
    const retry = { schedule: Array.from({ length: 40 }, () => 0.5), jitter: 0.2 };
    const { procs, token, key } = await replicas('sigkill', 3, {
      slow: { url: slow.url, maxConcurrency: 2, retry },
      down: { url: down.url, maxConcurrency: 4, retry },
      fast: { url: fast.url, maxConcurrency: 8, retry },
    });
    const calls = hookCallMix(1_500, key, 'ha-kill');
    const victim = procs[0] as CallbackProcess;
    const answers = await burst(procs, calls, 600, () => victim.child.kill('SIGKILL'));
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(answers.filter((a) => !('error' in a) && a.status !== 202)).toEqual([]);
    const survivor = procs[1] as CallbackProcess;
    const retried = await retryUntilAccepted(survivor, calls, answers);
    const accepted = new Set([...idsOf(answers), ...idsOf(retried)]);
    expect(deliveredCounts(down).size).toBe(0);

    down.setScript(up);
    await drained(survivor, token);
    const figures = checkEveryoneGotEverything({ slow, down, fast }, accepted);
    // 2 at a time for `slow`, whichever of the three replicas sent them.
    expect(meter.max()).toBeLessThanOrEqual(2);
    // The survivors both sent: deliveries are shared, not owned by the replica that took the call.
    const senders = procs.slice(1).map((p) => p.lines.filter((l) => l.msg === 'delivery failed; will retry').length);
    expect(senders.every((n) => n > 0)).toBe(true);
    console.log(`[figures] HA SIGKILL: ${calls.length} calls, ${accepted.size} events × 3 subscribers; per subscriber ${JSON.stringify(figures)}; max concurrent to slow ${meter.max()}`);
    for (const p of procs.slice(1)) expect(await p.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('nats-server restarted in the middle of a burst: hook calls get 503 with Retry-After meanwhile, /readyz says not ready, and every 202 is delivered', async () => {
    const a = await subscribers.start(up);
    const b = await subscribers.start((_g, n) => (n === 1 ? { status: 500 } : { status: 200 }));
    const retry = { schedule: Array.from({ length: 40 }, () => 0.5), jitter: 0.2 };
    const { procs, token, key } = await replicas('restart', 2, { a: { url: a.url, maxConcurrency: 4, retry }, b: { url: b.url, maxConcurrency: 4, retry } });
    const calls = hookCallMix(1_000, key, 'ha-restart');
    let outage: Promise<void> | undefined;
    const readyDuringOutage: number[] = [];
    const answers = await burst(procs, calls, 300, () => {
      outage = (async () => {
        await nats.kill();
        for (const p of procs) {
          // Not ready while NATS is away (the store's connection has noticed once accepts fail).
          await waitFor('a hook call to be refused', () => fetch(`${p.url}/readyz`).then((r) => r.status), (s) => s === 503, 30_000);
          readyDuringOutage.push(503);
        }
        await nats.start();
      })();
    });
    await outage;
    expect(readyDuringOutage).toEqual([503, 503]);
    const refused = answers.filter((a2): a2 is Extract<HookAnswer, { status: number }> => !('error' in a2) && a2.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => r.headers['retry-after'] !== undefined)).toBe(true);
    expect(answers.filter((a2) => !('error' in a2) && a2.status !== 202 && a2.status !== 503)).toEqual([]);
    for (const p of procs) await waitFor('ready again', () => fetch(`${p.url}/readyz`).then((r) => r.status), (s) => s === 200, 60_000);
    const retried = await retryUntilAccepted(procs[1] as CallbackProcess, calls, answers);
    const accepted = new Set([...idsOf(answers), ...idsOf(retried)]);
    await drained(procs[0] as CallbackProcess, token);
    const figures = checkEveryoneGotEverything({ a, b }, accepted);
    console.log(`[figures] HA NATS restart: ${calls.length} calls, ${refused.length} answered 503 during the outage, ${accepted.size} events; ${JSON.stringify(figures)}`);
  });

  it('a delivery dead-lettered by one replica is listed and replayed from another, and a 410 disables the subscriber for all', async () => {
    const gone = await subscribers.start(() => ({ status: 500 }));
    const { procs, token, key } = await replicas('replay', 2, { gone: { url: gone.url, maxConcurrency: 2, retry: { schedule: [], jitter: 0 } } });
    const [p0, p1] = procs as [CallbackProcess, CallbackProcess];
    // Every call to replica 0: the dead letters are made there (the other replica may send some too).
    const calls = hookCallMix(20, key, 'ha-replay');
    const answers = await burst([p0], calls, Number.MAX_SAFE_INTEGER, () => undefined);
    const accepted = idsOf(answers);
    const dead = await waitFor('all dead-lettered', () => deadLetters(p1.url, token, 'gone'), (rows) => rows.length === accepted.size, 60_000);
    const byP0 = new Set(p0.lines.filter((l) => l.msg === 'delivery failed for the last time; moved to the dead letters').map((l) => String(l.eventId)));
    expect(byP0.size).toBeGreaterThan(0);
    gone.setScript(up);
    const replay = await admin(p1.url, token, 'POST', '/v1/dead-letters/replay', { subscriber: 'gone' });
    expect(replay.body.replayed).toBe(dead.length);
    await drained(p0, token);
    expect([...accepted].filter((id) => !deliveredCounts(gone).has(id) || deliveredCounts(gone).get(id) === 0)).toEqual([]);
    expect(await deadLetters(p0.url, token)).toEqual([]);

    // 410 seen by whichever replica sends: the subscriber is disabled for both, enabled from either.
    gone.setScript(() => ({ status: 410 }));
    const more = hookCallMix(4, key, 'ha-gone');
    await burst([p1], more, Number.MAX_SAFE_INTEGER, () => undefined);
    const subsOf = async (p: CallbackProcess) => ((await admin(p.url, token, 'GET', '/v1/subscribers')).body.subscribers as { name: string; disabled: unknown }[]).find((s) => s.name === 'gone');
    await waitFor('disabled on replica 0', () => subsOf(p0), (s) => Boolean(s?.disabled), 30_000);
    expect((await admin(p0.url, token, 'POST', '/v1/subscribers/gone/enable')).body).toMatchObject({ enabled: true, wasDisabled: true });
    await waitFor('enabled on replica 1', () => subsOf(p1), (s) => !s?.disabled, 30_000);
  });

  it('no secret reached the output of the processes this file ran', () => {
    expect(leaksInThisFile(ws.secrets())).toEqual([]);
  });
});
