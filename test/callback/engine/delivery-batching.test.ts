import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { createSender } from '../../../callback/sender.js';
import { openMemoryStore } from '../../../callback/store/memory.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import type { DeliveryStore } from '../../../callback/store/types.js';
import { startWorker } from '../../../callback/worker.js';
import { makeEvent } from './events.js';
import { httpSubscriber } from './harness.js';
import { answer, startReceiver, until } from './receiver.js';

/**
 * The worker's bookkeeping in bulk: outcome marks of one turn share one SQLite transaction, lanes
 * claim for all their slots plus a reserve in one read, and what that costs in a crash. Real SQLite
 * files in temp dirs; the crash is a real process (the compiled dist/) killed with SIGKILL.
 */

const T0 = Date.UTC(2026, 0, 1);
const DIST_SQLITE = pathToFileURL(resolve('dist/callback/store/sqlite.js')).href;

describe('batched delivery bookkeeping (real SQLite files)', () => {
  const dirs: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function newFile(): string {
    const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-batch-'));
    dirs.push(dir);
    return join(dir, 'callback.db');
  }

  it('marks made in one turn are written in one transaction, each caller resolving once it is written', async () => {
    const file = newFile();
    const commits: number[] = [];
    const store = openSqliteStore({ file, onSettle: ({ size }) => commits.push(size) });
    const events = Array.from({ length: 20 }, (_, i) => makeEvent({ seq: 500 + i }));
    await store.accept(events.map((event) => ({ event, subscribers: ['a'] })), T0);
    const claimed = await store.claim('a', { now: T0, limit: 20, leaseMs: 60_000 });
    expect(claimed).toHaveLength(20);
    await Promise.all(
      claimed.map((c, i) =>
        i % 2 === 0
          ? store.markDelivered(c.delivery.id, { now: T0 + 1, status: 204 })
          : store.scheduleRetry(c.delivery.id, T0 + 5000, { now: T0 + 1, status: 500, error: 'HTTP 500' }),
      ),
    );
    expect(commits).toEqual([20]);
    expect(await store.queueDepth()).toEqual({ a: 10 });
    await store.close();

    const reopened = openSqliteStore({ file, now: T0 + 5000 });
    const again = await reopened.claim('a', { now: T0 + 5000, limit: 20, leaseMs: 60_000 });
    expect(again.map((c) => c.delivery.attempts)).toEqual(Array(10).fill(1));
    await reopened.close();
  });

  it('a mark that resolved survives SIGKILL; marks of the turn the process died in are lost, so those attempts repeat', () => {
    const file = newFile();
    const seed = openSqliteStore({ file });
    const events = Array.from({ length: 6 }, (_, i) => makeEvent({ seq: 600 + i }));
    return seed
      .accept(events.map((event) => ({ event, subscribers: ['a'] })), T0)
      .then(() => seed.close())
      .then(async () => {
        // Child: claim 3, mark them delivered; with "awaited" it waits for the marks, otherwise it
        // dies in the same turn it made them. Either way it dies by SIGKILL, with no close().
        const script = `
          const { openSqliteStore } = await import(${JSON.stringify(DIST_SQLITE)});
          const s = openSqliteStore({ file: process.env.DB });
          const claimed = await s.claim('a', { now: Date.now(), limit: 3, leaseMs: 60000 });
          const marks = claimed.map((c) => s.markDelivered(c.delivery.id, { now: Date.now(), status: 204 }));
          if (process.env.MODE === 'awaited') await Promise.all(marks);
          process.kill(process.pid, 'SIGKILL');`;
        const run = (mode: string) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, DB: file, MODE: mode }, encoding: 'utf8' });

        const awaited = run('awaited');
        expect([awaited.signal, awaited.stderr]).toEqual(['SIGKILL', '']);
        let store = openSqliteStore({ file });
        expect(await store.queueDepth()).toEqual({ a: 3 });
        await store.close();

        const sameTurn = run('same-turn');
        expect([sameTurn.signal, sameTurn.stderr]).toEqual(['SIGKILL', '']);
        store = openSqliteStore({ file });
        expect(await store.queueDepth()).toEqual({ a: 3 });
        // The three it was sending are due again at once, attempts uncounted: they will be sent again.
        const due = await store.claim('a', { now: Date.now(), limit: 10, leaseMs: 60_000 });
        expect(due.map((c) => c.delivery.attempts)).toEqual([0, 0, 0]);
        expect(due.map((c) => c.event.EventId)).toEqual(events.slice(3).map((e) => e.EventId));
        await store.close();
      });
  });

  for (const [name, open] of [
    ['sqlite', (file: string) => openSqliteStore({ file })],
    ['memory', () => openMemoryStore()],
  ] as const) {
    it(`claimMany (${name}): one list per subscriber, in order, each up to its limit and leased`, async () => {
      const store: DeliveryStore = open(newFile());
      cleanups.push(() => store.close());
      const events = Array.from({ length: 5 }, (_, i) => makeEvent({ seq: 700 + i }));
      for (const [i, event] of events.entries()) await store.accept([{ event, subscribers: ['a', 'b', 'c'] }], T0 + i);
      const got = await store.claimMany(
        [
          { subscriber: 'b', limit: 2, leaseMs: 1000 },
          { subscriber: 'a', limit: 10, leaseMs: 1000 },
          { subscriber: 'nobody', limit: 3, leaseMs: 1000 },
          { subscriber: 'c', limit: 0, leaseMs: 1000 },
        ],
        T0 + 10,
      );
      expect(got.map((list) => list.map((c) => c.event.EventId))).toEqual([events.slice(0, 2).map((e) => e.EventId), events.map((e) => e.EventId), [], []]);
      // Leased until T0 + 1010: nothing of a or the first two of b again before then, then due again.
      expect(await store.claimMany([{ subscriber: 'a', limit: 10, leaseMs: 1000 }, { subscriber: 'b', limit: 10, leaseMs: 1000 }], T0 + 20)).toEqual([
        [],
        expect.objectContaining({ length: 3 }),
      ]);
      expect(await store.nextDueAt('a')).toBe(T0 + 1010);
      expect((await store.claim('a', { now: T0 + 1010, limit: 10, leaseMs: 1000 })).map((c) => c.delivery.attempts)).toEqual([0, 0, 0, 0, 0]);
    });
  }

  it('a busy lane claims once per batch of sends, not once per send, and delivers each event exactly once', async () => {
    const rx = await startReceiver(answer(204));
    cleanups.push(rx.close);
    const store = openSqliteStore({ file: newFile() });
    let claims = 0;
    const counting: DeliveryStore = {
      ...store,
      claimMany: (requests, now) => {
        claims++;
        return store.claimMany(requests, now);
      },
    };
    const sender = createSender();
    const sub = httpSubscriber('busy', rx.url, { maxConcurrency: 4 });
    const events = Array.from({ length: 80 }, (_, i) => makeEvent({ seq: 800 + i }));
    await store.accept(events.map((event) => ({ event, subscribers: [sub.name] })), Date.now());
    const worker = startWorker({ store: counting, send: sender.send, log: silentLogger() }, [sub]);
    cleanups.push(async () => {
      await worker.stop();
      await sender.close();
      await store.close();
    });
    await until(async () => Object.keys(await store.queueDepth()).length === 0, 'every delivery settled');
    expect(rx.received.map((r) => r.headers['webhook-id']).sort()).toEqual(events.map((e) => e.EventId).sort());
    // Each claim takes the free slots plus a reserve of 4: at most one claim per 4 sends (plus the last, empty one).
    expect(claims).toBeLessThanOrEqual(80 / 4 + 2);
  });
});
