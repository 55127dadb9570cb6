import { mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { eventPageSql, openSqliteStore } from '../../../callback/store/sqlite.js';
import { StoreUnavailableError, type DeliveryStore } from '../../../callback/store/types.js';
import { syncBarrier, type GroupCommitStats } from '../../../callback/store/group-commit.js';
import { makeEvent } from './events.js';
import { until } from './receiver.js';
import { storeContract } from './store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-store-'));
let n = 0;
const newFile = () => join(dir, `store-${n++}.db`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract({ name: 'sqlite (real file)', open: () => openSqliteStore({ file: newFile() }) });
storeContract({ name: "sqlite (real file, durability 'write')", open: () => openSqliteStore({ file: newFile(), durability: 'write' }) });

describe('SQLite store: what only a file can show', () => {
  const T0 = 1_800_000_000_000;
  const open: DeliveryStore[] = [];
  const track = (s: DeliveryStore) => (open.push(s), s);
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  it('events, queue, dead letters and disabled state survive close and reopen', async () => {
    const file = newFile();
    const s1 = openSqliteStore({ file });
    const e1 = makeEvent({ seq: 1 });
    const e2 = makeEvent({ seq: 2 });
    await s1.accept([{ event: e1, subscribers: ['a', 'b'] }, { event: e2, subscribers: ['a'] }], T0);
    const [c] = await s1.claim('b', { now: T0, limit: 1, leaseMs: 1000 });
    await s1.deadLetter(c?.delivery.id ?? -1, { now: T0 + 1, status: 500, error: 'HTTP 500' });
    await s1.disable('c', 'HTTP 410 Gone', T0 + 2);
    await s1.close();

    const s2 = track(openSqliteStore({ file }));
    expect(await s2.queueDepth()).toEqual({ a: 2 });
    expect((await s2.listDeadLetters()).map((d) => [d.subscriber, d.lastStatus, d.event.EventId])).toEqual([['b', 500, e1.EventId]]);
    expect(Object.keys(await s2.disabledSubscribers())).toEqual(['c']);
    expect((await s2.accept([{ event: e1, subscribers: ['a'] }], T0 + 3))[0]?.duplicate).toBe(true);
  });

  it('a failing mark survives close and reopen; a version-1 database without its table gets one', async () => {
    const file = newFile();
    const first = openSqliteStore({ file });
    await first.markFailing('ops', 1_800_000_000_000);
    await first.close();
    const second = openSqliteStore({ file });
    expect(await second.failingSince()).toEqual({ ops: 1_800_000_000_000 });
    await second.close();
    // As a database written before failure tracking existed: same schema version, no table.
    const old = new Database(file);
    old.exec('DROP TABLE subscriber_failing');
    expect(old.pragma('user_version', { simple: true })).toBe(1);
    old.close();
    const third = openSqliteStore({ file });
    expect(await third.failingSince()).toEqual({});
    await third.markFailing('ops', 5);
    expect(await third.failingSince()).toEqual({ ops: 5 });
    await third.close();
  });

  it('a delivery leased when the process went away is due at once after reopening', async () => {
    const file = newFile();
    const s1 = openSqliteStore({ file });
    await s1.accept([{ event: makeEvent({ seq: 3 }), subscribers: ['a'] }], T0);
    const [c] = await s1.claim('a', { now: T0, limit: 1, leaseMs: 3_600_000 });
    await s1.close(); // no release: as if the process died mid-send

    const s2 = track(openSqliteStore({ file, now: T0 + 10 }));
    const again = await s2.claim('a', { now: T0 + 10, limit: 1, leaseMs: 1000 });
    expect(again.map((x) => [x.delivery.id, x.delivery.attempts])).toEqual([[c?.delivery.id, 0]]);
  });

  it('every events search reads an index in keyset order: no table scan, no sort', async () => {
    const file = newFile();
    const s1 = openSqliteStore({ file });
    await s1.accept([{ event: makeEvent({ seq: 1 }), subscribers: ['a'] }], T0);
    await s1.close();
    const db = new Database(file, { readonly: true });
    try {
      const plan = (q: Parameters<typeof eventPageSql>[0]) => {
        const { sql, params } = eventPageSql(q);
        return db
          .prepare<Record<string, string | number>, { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
          .all(params)
          .map((r) => r.detail)
          .join('; ');
      };
      const cases: [Parameters<typeof eventPageSql>[0], RegExp][] = [
        [{ limit: 50 }, /^SCAN events$/],
        [{ limit: 50, before: 1000 }, /^SEARCH events USING INTEGER PRIMARY KEY \(rowid<\?\)$/],
        [{ limit: 50, runId: 'r' }, /USING INDEX events_run \(<expr>=\?\)/],
        [{ limit: 50, pipeline: 'p', before: 10 }, /USING INDEX events_pipeline \(<expr>=\? AND seq<\?\)/],
        [{ limit: 50, namespace: 'n' }, /USING INDEX events_namespace/],
        [{ limit: 50, eventType: 'WorkflowFailed' }, /USING INDEX events_type/],
      ];
      for (const [q, want] of cases) {
        const p = plan(q);
        expect(p, JSON.stringify(q)).toMatch(want);
        expect(p, JSON.stringify(q)).not.toMatch(/TEMP B-TREE/);
      }
      // A time range: its ends found on the acceptance-time index, the page read by seq.
      const ranged = plan({ limit: 50, from: T0, to: T0 + 1 });
      expect(ranged).toMatch(/^SEARCH events USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)/);
      expect(ranged).toMatch(/SEARCH e USING COVERING INDEX events_accepted \(accepted_at>\?\)/);
      expect(ranged).toMatch(/SEARCH e USING COVERING INDEX events_accepted \(accepted_at<\?\)/);
      expect(ranged).not.toMatch(/TEMP B-TREE|SCAN/);
      expect(plan({ limit: 50, runId: 'r', from: T0 })).toMatch(/^SEARCH events USING INDEX events_run \(<expr>=\? AND seq>\?\)/);
    } finally {
      db.close();
    }
  });

  it('a second store on the same file is refused while the first is open', async () => {
    const file = newFile();
    track(openSqliteStore({ file }));
    let err: unknown;
    try {
      track(openSqliteStore({ file }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(String(err)).toMatch(/in use by another process/);
  });

  it('a full database rejects the accept with SQLITE_FULL and keeps nothing of it', async () => {
    const s = track(openSqliteStore({ file: newFile(), maxBytes: 192 * 1024 }));
    const big = 'x'.repeat(4000);
    let err: unknown;
    let kept = 0;
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        await s.accept([{ event: makeEvent({ seq: 100 + i, Message: big }), subscribers: ['a'] }], T0);
        kept++;
      } catch (e) {
        err = e;
      }
    }
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).code).toBe('SQLITE_FULL');
    // The failed accept left neither its event nor a delivery behind.
    expect(await s.getEvent(makeEvent({ seq: 100 + kept }).EventId)).toBeUndefined();
    expect(await s.queueDepth()).toEqual({ a: kept });
  });

  it('concurrent accepts share commits (group commit) and each resolves with its own result', async () => {
    const commits: GroupCommitStats[] = [];
    const s = track(openSqliteStore({ file: newFile(), onCommit: (c) => commits.push(c) }));
    const events = Array.from({ length: 40 }, (_, i) => makeEvent({ seq: 200 + i }));
    const results = await Promise.all(events.map((e) => s.accept([{ event: e, subscribers: ['a'] }], T0)));
    expect(results.map((r) => r[0]?.eventId)).toEqual(events.map((e) => e.EventId));
    expect(commits.reduce((sum, c) => sum + c.size, 0)).toBe(40);
    expect(commits.length).toBeLessThan(40);
    expect(await s.queueDepth()).toEqual({ a: 40 });
  });

  it('an accept resolves only after the WAL sync that follows its commit, and fails if that sync fails', async () => {
    const syncs: { walFile: string; release: (err?: Error) => void }[] = [];
    let held = true;
    const s = track(
      openSqliteStore({
        file: newFile(),
        syncWal: (walFile) =>
          held ? new Promise<void>((resolve, reject) => syncs.push({ walFile, release: (err) => (err ? reject(err) : resolve()) })) : Promise.resolve(),
      }),
    );
    let settled = false;
    const accepted = s.accept([{ event: makeEvent({ seq: 300 }), subscribers: ['a'] }], T0).finally(() => (settled = true));
    await until(() => syncs.length === 1, 'the WAL sync to start');
    expect(syncs[0]?.walFile).toMatch(/\.db-wal$/);
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    syncs[0]?.release();
    expect((await accepted)[0]?.duplicate).toBe(false);

    const failing = s.accept([{ event: makeEvent({ seq: 301 }), subscribers: ['a'] }], T0);
    await until(() => syncs.length === 2, 'the second WAL sync');
    syncs[1]?.release(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(failing).rejects.toBeInstanceOf(StoreUnavailableError);
    held = false;
  });

  /** A store at durability 'write' whose WAL syncs each wait to be released (with an error, or not). */
  function writeStore(file: string) {
    const syncs: ((err?: Error) => void)[] = [];
    const s = openSqliteStore({
      file,
      durability: 'write',
      syncWal: () => new Promise<void>((resolve, reject) => syncs.push((err) => (err ? reject(err) : resolve()))),
    });
    /** Closing waits for one last sync: release it. */
    const close = async () => {
      const last = syncs.length;
      const closing = s.close();
      await until(() => syncs.length === last + 1, 'the sync at close');
      syncs[last]?.();
      await closing;
    };
    return { s, syncs, close };
  }

  it("at durability 'write', an accept resolves without waiting for a WAL sync, and one follows in the background", async () => {
    const file = newFile();
    const { s, syncs, close } = writeStore(file);
    const e = makeEvent({ seq: 400 });
    // With every sync held, this would never resolve if the accept waited for one.
    expect((await s.accept([{ event: e, subscribers: ['a'] }], T0))[0]?.duplicate).toBe(false);
    expect(syncs).toHaveLength(0);
    await until(() => syncs.length === 1, 'the background WAL sync');
    syncs[0]?.();
    await close();
    const reopened = track(openSqliteStore({ file }));
    expect(await reopened.getEvent(e.EventId)).toEqual(e);
    expect(await reopened.queueDepth()).toEqual({ a: 1 });
  });

  it("at durability 'write', after a background WAL sync fails, accepts wait for their own sync (and fail with it) until one succeeds", async () => {
    const { s, syncs, close } = writeStore(newFile());
    const eio = () => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    await s.accept([{ event: makeEvent({ seq: 410 }), subscribers: ['a'] }], T0);
    await until(() => syncs.length === 1, 'the background WAL sync');
    syncs[0]?.(eio());

    const failing = s.accept([{ event: makeEvent({ seq: 411 }), subscribers: ['a'] }], T0);
    await until(() => syncs.length === 2, "the accept's own WAL sync");
    syncs[1]?.(eio());
    await expect(failing).rejects.toBeInstanceOf(StoreUnavailableError);

    let settled = false;
    const waiting = s.accept([{ event: makeEvent({ seq: 412 }), subscribers: ['a'] }], T0).finally(() => (settled = true));
    await until(() => syncs.length === 3, "the next accept's own WAL sync");
    expect(settled).toBe(false);
    syncs[2]?.();
    expect((await waiting)[0]?.duplicate).toBe(false);

    // Synced again: the next accept resolves without one.
    expect((await s.accept([{ event: makeEvent({ seq: 413 }), subscribers: ['a'] }], T0))[0]?.duplicate).toBe(false);
    expect(syncs).toHaveLength(3);
    await until(() => syncs.length === 4, 'the background WAL sync');
    syncs[3]?.();
    await close();
  });
});

describe('syncBarrier', () => {
  function recorder(maxRunning: number) {
    const flushes: (() => void)[] = [];
    const sync = syncBarrier(() => new Promise<void>((resolve) => flushes.push(resolve)), maxRunning);
    return { flushes, sync };
  }

  it('resolves a caller only after a flush that started after its call; with one at a time, later callers share the next', async () => {
    const { flushes, sync } = recorder(1);
    const order: string[] = [];
    const a = sync().then(() => order.push('a'));
    expect(flushes).toHaveLength(1);
    const b = sync().then(() => order.push('b'));
    const c = sync().then(() => order.push('c'));
    expect(flushes).toHaveLength(1); // b and c wait for the next flush, not the running one
    flushes[0]?.();
    await a;
    expect(order).toEqual(['a']);
    await until(() => flushes.length === 2, 'the shared second flush');
    flushes[1]?.();
    await Promise.all([b, c]);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(flushes).toHaveLength(2);
  });

  it('overlaps up to maxRunning flushes, and an earlier flush ending never resolves a later caller', async () => {
    const { flushes, sync } = recorder(2);
    const order: string[] = [];
    const a = sync().then(() => order.push('a'));
    const b = sync().then(() => order.push('b'));
    expect(flushes).toHaveLength(2); // b did not wait for a's flush to end
    const c = sync().then(() => order.push('c'));
    expect(flushes).toHaveLength(2); // c waits: two are running
    flushes[0]?.();
    await a;
    await new Promise((r) => setTimeout(r, 5));
    expect(order).toEqual(['a']);
    await until(() => flushes.length === 3, "c's own flush");
    flushes[2]?.();
    await c;
    expect(order).toEqual(['a', 'c']);
    flushes[1]?.();
    await b;
    expect(order).toEqual(['a', 'c', 'b']);
  });
});
