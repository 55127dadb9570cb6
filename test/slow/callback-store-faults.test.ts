import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { fixedSubscribers, startCallback, type CallbackRuntime } from '../../callback/runtime.js';
import { openSqliteStore } from '../../callback/store/sqlite.js';
import { makeEvent } from '../callback/engine/events.js';
import { httpSubscriber } from '../callback/engine/harness.js';
import { runCli } from '../helpers/cli.js';
import { killAll, recordOutput, startCallbackProcess, type CallbackProcess } from './helpers/callback-process.js';
import { fillDisk, holdWriteLock, mountTmpfs, unmount } from './helpers/faults.js';
import { acceptedIds, hookCallMix, hookClient, inParallel, type HookAnswer, type HookCall } from './helpers/hook-load.js';
import { leaksInThisFile } from './helpers/secrets.js';
import { waitFor, workspace } from './helpers/setup.js';
import { deliveredCounts, subscriberSet } from './helpers/subscriber-server.js';

/**
 * Store faults: the disk full and the database locked must make the callback refuse (503 +
 * Retry-After, so the hook retries) or refuse to start, never answer 2xx for an event it did not
 * keep; once the fault clears, calls succeed again and everything answered 202 is delivered.
 */

const ws = workspace('kfp-notify-store-faults-');
const subscribers = subscriberSet();
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await c();
  await subscribers.closeAll();
});
afterAll(() => ws.cleanup());

const subscriber = () => subscribers.start(() => ({ status: 200 }));

async function post(url: string, calls: readonly HookCall[]): Promise<HookAnswer[]> {
  const client = hookClient(url, 8);
  try {
    return await inParallel(calls, 8, (c) => client.post(c));
  } finally {
    await client.close();
  }
}

const refusedAsUnavailable = (a: HookAnswer) =>
  !('error' in a) && a.status === 503 && a.headers['retry-after'] === '1' && /^store unavailable: /.test(String((a.body as { error?: unknown }).error));

/** Whether this machine lets the test mount a tmpfs (root, or CAP_SYS_ADMIN): probed once. */
const mountProblem = (() => {
  const probe = join(ws.root, 'mount-probe');
  const why = mountTmpfs(probe, 1 << 20);
  unmount(probe);
  return why;
})();

describe('store faults: a real kfp-notify callback and its SQLite file', () => {
  it.skipIf(mountProblem !== undefined)(
    `the disk full (a 16 MiB tmpfs filled to the last byte): hook calls get 503 + Retry-After, never 202; once space is freed they succeed and every 202 is delivered${mountProblem ? ` [skipped: ${mountProblem}]` : ''}`,
    async () => {
      const disk = join(ws.root, 'small-disk');
      expect(mountTmpfs(disk, 16 << 20)).toBeUndefined();
      cleanups.push(() => unmount(disk));
      const rx = await subscriber();
      const { dir, key } = ws.dataDir('data', disk);
      const args = ['--data-dir', dir, ...ws.subscribers('disk-full', { rx: rx.url })];
      const cb = await startCallbackProcess(args);
      ws.adminToken(dir); // remembered for the secrets check: the tmpfs is gone by then
      const before = await post(cb.url, hookCallMix(100, key, 'before-full'));
      expect(before.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
      const beforeIds = before.flatMap(acceptedIds);
      await waitFor('the first events', () => beforeIds.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);

      const filler = join(disk, 'filler');
      const filled = fillDisk(filler);
      const whileFull = hookCallMix(200, key, 'while-full');
      const answers = await post(cb.url, whileFull);
      const refused = answers.filter(refusedAsUnavailable).length;
      const accepted = answers.flatMap(acceptedIds);
      // Refused as unavailable (the hook retries), or accepted and therefore kept (checked below): nothing else.
      expect(answers.filter((a) => !refusedAsUnavailable(a) && !('status' in a && a.status === 202))).toEqual([]);
      expect(refused).toBe(answers.length);
      expect((await fetch(`${cb.url}/healthz`)).status).toBe(200);

      rmSync(filler);
      const retried = await post(cb.url, whileFull.filter((_c, i) => acceptedIds(answers[i] ?? { error: '' }).length === 0));
      expect(retried.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
      const all = [...beforeIds, ...accepted, ...retried.flatMap(acceptedIds)];
      await waitFor('every accepted event', () => all.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);
      // Kept on disk, not just in memory: after a restart, the same calls are duplicates.
      expect(await cb.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      const again = await startCallbackProcess(args);
      const dup = await post(again.url, whileFull);
      expect(dup.filter((a) => 'error' in a || (a.body as { duplicates?: unknown[] }).duplicates?.length !== acceptedIds(a).length)).toEqual([]);
      const reason = answers.map((a) => ('error' in a ? '' : String((a.body as { error?: unknown }).error))).find((r) => r !== '');
      console.log(`[figures] disk full (tmpfs 16 MiB, ${(filled / 2 ** 20).toFixed(1)} MiB of filler): ${refused}/${answers.length} calls answered 503 + Retry-After: 1 while full (${JSON.stringify(reason)}), 0 answered 202; after freeing space ${retried.length} retried calls answered 202; ${all.length} events delivered`);
    },
  );

  it('the store at its size cap (maxStoreBytes, for machines where a tmpfs cannot be mounted): 503 past the cap, 202 before it, every 202 delivered; a larger cap recovers', async () => {
    const rx = await subscriber();
    const { dir, key } = ws.dataDir('capped');
    const start = (maxStoreBytes?: number) =>
      startCallback({
        dataDir: dir,
        log: silentLogger(),
        listen: { host: '127.0.0.1', port: 0 },
        subscribers: fixedSubscribers([httpSubscriber('rx', rx.url)]),
        ...(maxStoreBytes !== undefined ? { maxStoreBytes } : {}),
      });
    let rt: CallbackRuntime = await start(256 * 1024);
    cleanups.push(() => rt.close());
    const calls = hookCallMix(1_500, key, 'capped');
    const answers = await post(rt.url ?? '', calls);
    const refused = answers.filter(refusedAsUnavailable).length;
    expect(answers.filter((a) => !refusedAsUnavailable(a) && !('status' in a && a.status === 202))).toEqual([]);
    expect(refused).toBeGreaterThan(0);
    const accepted = answers.flatMap(acceptedIds);
    await waitFor('every accepted event', () => accepted.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);

    await rt.close();
    rt = await start();
    const retried = await post(rt.url ?? '', calls.filter((_c, i) => acceptedIds(answers[i] ?? { error: '' }).length === 0));
    expect(retried.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
    const all = [...accepted, ...retried.flatMap(acceptedIds)];
    await waitFor('every event', () => all.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);
    console.log(`[figures] size cap 256 KiB: ${answers.length - refused} calls answered 202, ${refused} answered 503 + Retry-After: 1; after raising the cap all ${retried.length} retries answered 202; ${all.length} events delivered`);
  });

  it('the database locked by another process at start: the callback refuses to start (exit 1, a clear message) rather than accept; once the lock is gone it starts and delivers what it had kept', async () => {
    const rx = await subscribers.start(() => ({ status: 503 }));
    const { dir, key } = ws.dataDir('locked-at-start');
    const args = ['--data-dir', dir, ...ws.subscribers('locked-at-start', { rx: { url: rx.url, retry: { schedule: [0.2, 0.2, 0.2, 0.2, 0.2, 0.2], jitter: 0 } } })];
    const first = await startCallbackProcess(args);
    const kept = (await post(first.url, hookCallMix(50, key, 'kept'))).flatMap(acceptedIds);
    expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const holder = holdWriteLock(join(dir, 'callback.db'));
    cleanups.push(() => holder.release());
    await holder.locked;
    const refused = await runCli(['callback', '--no-cluster', '--port', '0', ...args], { timeoutMs: 15_000 });
    recordOutput(refused.stdout + refused.stderr);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is in use by another process (one kfp-notify callback per data dir)');
    expect(refused.stdout).not.toContain('callback listening');

    await holder.release();
    rx.setScript(() => ({ status: 200 }));
    const second = await startCallbackProcess(args);
    await waitFor('the events kept before the lock', () => kept.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);
    const after = await post(second.url, hookCallMix(20, key, 'after-lock'));
    expect(after.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
  });

  it('the database wanted by another process while the callback runs: that process gets SQLITE_BUSY, the callback keeps answering 202 and delivering', async () => {
    const rx = await subscriber();
    const { dir, key } = ws.dataDir('locked-while-running');
    const cb: CallbackProcess = await startCallbackProcess(['--data-dir', dir, ...ws.subscribers('locked-while-running', { rx: rx.url })]);
    const sending = post(cb.url, hookCallMix(300, key, 'busy'));
    const intruder = holdWriteLock(join(dir, 'callback.db'));
    cleanups.push(() => intruder.release());
    await expect(intruder.locked).rejects.toThrow(/SQLITE_BUSY/);
    const answers = await sending;
    expect(answers.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
    const ids = answers.flatMap(acceptedIds);
    await waitFor('every event', () => ids.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);
  });

  it('a slow disk: deliveries accepted while a 410-disable is still syncing go to the dead letters too, never to a queue nobody drains (real SQLite, the WAL fsync held)', async () => {
    const held: (() => void)[] = [];
    let holding = false;
    const letGo = () => {
      holding = false;
      for (const release of held.splice(0)) release();
    };
    const root = mkdtempSync(join(tmpdir(), 'kfp-notify-slow-disk-'));
    const store = openSqliteStore({
      file: join(root, 'callback.db'),
      // The WAL fsync of this store, held while `holding` is set: a disk that takes its time.
      syncWal: () => (holding ? new Promise<void>((resolve) => held.push(resolve)) : Promise.resolve()),
    });
    try {
      await store.accept([{ event: makeEvent({ seq: 1 }), subscribers: ['gone'] }], 1_000);
      holding = true;
      const disabling = store.disable('gone', 'HTTP 410 Gone', 2_000);
      // While disable() waits for its fsync, a hook call is accepted for the same subscriber.
      await new Promise((r) => setImmediate(r));
      const accepting = store.accept([{ event: makeEvent({ seq: 2 }), subscribers: ['gone'] }], 2_001);
      await new Promise((r) => setImmediate(r));
      letGo();
      expect(await disabling).toBe(1);
      await accepting;
      expect(await store.queueDepth()).toEqual({});
      expect((await store.listDeadLetters()).map((d) => [d.eventId, d.lastError])).toEqual([
        [makeEvent({ seq: 1 }).EventId, 'subscriber disabled: HTTP 410 Gone'],
        [makeEvent({ seq: 2 }).EventId, 'subscriber disabled: HTTP 410 Gone'],
      ]);
    } finally {
      letGo();
      await store.close();
      rmSync(root, { recursive: true, force: true });
    }
  }, 10_000);

  it('no secret reached the output of the processes this file ran', () => {
    expect(leaksInThisFile(ws.secrets())).toEqual([]);
  });
});
