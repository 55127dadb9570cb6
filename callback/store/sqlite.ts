import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KfpEvent } from '../types.js';
import { open, type FileHandle } from 'node:fs/promises';
import { groupCommit, syncBarrier, type GroupCommitStats } from './group-commit.js';
import { createEventCache } from './event-cache.js';
import { createLeases } from './leases.js';
import {
  StoreUnavailableError,
  selectsDeadLetter,
  settleMethods,
  foldStats,
  DAY_MS,
  type AcceptItem,
  type AcceptResult,
  type AttemptLog,
  type AttemptRecord,
  type DeliveryView,
  type EventQuery,
  type SettleFn,
  type ClaimedDelivery,
  type ClaimRequest,
  type DeadLetter,
  type DeadLetterFilter,
  type DeliveryStore,
  type DisabledState,
  type ReplaySelector,
} from './types.js';
import { errorMessage } from '../../common/error-message.js';

/**
 * The SQLite delivery store (better-sqlite3, one file).
 *
 * Durability: WAL journal, and an accept (or an operator's replay, disable, enable) resolves only
 * after the WAL has been fdatasync'ed past its commit: a 202 survives a process crash AND a power
 * loss (as far as the disk honours fsync). That is SQLite's synchronous=FULL guarantee; it is
 * obtained as synchronous=NORMAL (commits only write the WAL) plus our own fdatasync of the WAL on
 * libuv's thread pool, so the event loop keeps serving requests while the disk flushes, and one
 * fsync covers every commit made before it started (group commit, see group-commit.ts). That is
 * the default durability, 'fsync'; at 'write' an accept resolves once its commit is in the page
 * cache (see Durability).
 * Worker bookkeeping (claim, delivered, retry, dead-letter, release) does not wait for a sync. The
 * outcome marks of one event-loop turn are written together at the end of that turn (one
 * transaction), and resolve once written: a process crash loses at most the marks of the turn it
 * interrupts, a power loss the last few written; either way an attempt is repeated, as after a
 * crash mid-send (at-least-once; the receiver dedups on webhook-id). Checkpoints fsync as usual.
 *
 * One process owns the file (locking_mode=EXCLUSIVE): a second `kfp-notify callback` on the same
 * data dir fails at open instead of double-sending. So leases need not be on disk at all (leases.ts):
 * whatever was in flight when the process died is due again at once when the file is reopened.
 */

export interface SqliteStoreOptions {
  file: string;
  /** Cap on the database size; past it accepts fail with StoreUnavailableError (code SQLITE_FULL). */
  maxBytes?: number;
  /** ms since the epoch, used once at open to make the dead process's leases due. */
  now?: number;
  onCommit?: (stats: GroupCommitStats) => void;
  /** Told after each transaction of outcome marks (delivered, retry, dead), with how many it held. */
  onSettle?: (stats: GroupCommitStats) => void;
  /** Flushes the WAL file to disk (default: fdatasync); replaceable so tests can hold it. */
  syncWal?: (walFile: string) => Promise<void>;
  /** When an accept resolves (default 'fsync'); see Durability. */
  durability?: Durability;
}

/**
 * When an accept (and so the hook call's 202) resolves, like PostgreSQL's synchronous_commit:
 * - 'fsync': once the WAL is fdatasync'ed past its commit. Survives a process crash and a power loss.
 * - 'write': once the commit is written to the WAL, i.e. in the OS page cache. Survives a process
 *   crash (the kernel still writes the page cache out), not a power loss or a kernel crash: those
 *   lose the accepts of the last WAL_SYNC_DELAY_MS or so, which the store then fsyncs in the background.
 */
export type Durability = 'fsync' | 'write';
export const DURABILITIES: readonly Durability[] = ['fsync', 'write'];
/** At 'write', how long a commit may wait for a background fsync (PostgreSQL's wal_writer_delay). */
export const WAL_SYNC_DELAY_MS = 200;

const SCHEMA_VERSION = 1;

// Deliveries point at events by their integer seq, not their (random) id: the index that joins
// them then grows by appending, instead of dirtying a random page per insert. The random id is
// indexed once, for deduplication.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL,
  accepted_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_accepted ON events (accepted_at);
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY,
  event_seq INTEGER NOT NULL,
  subscriber TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts INTEGER NOT NULL DEFAULT 0,
  -- pending: when it may be claimed (claims are leased in memory, see leases.ts)
  due_at INTEGER NOT NULL,
  -- set by versions that kept leases here; cleared at open
  leased INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER,
  last_error TEXT,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (state, subscriber, due_at);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_seq);
CREATE TABLE IF NOT EXISTS disabled_subscribers (
  name TEXT PRIMARY KEY,
  since INTEGER NOT NULL,
  reason TEXT NOT NULL
);
`;

// Failure tracking (auto-disable), added after schema version 1: IF NOT EXISTS makes it a no-op on a
// database that has it and adds it to one that does not, so the version need not change.
const FAILING_SCHEMA = `
CREATE TABLE IF NOT EXISTS subscriber_failing (
  name TEXT PRIMARY KEY,
  since INTEGER NOT NULL
);
`;

interface DeadFilterParams {
  subscriber: string | null;
  run: string | null;
  since: number | null;
  until: number | null;
  limit: number;
}

// The dashboard's tables and indexes (added to existing files at open: CREATE ... IF NOT EXISTS).
// The event filters are expression indexes on the stored JSON, each ending in seq so that a filtered
// page is read in keyset order straight off the index.
const DASHBOARD_SCHEMA = `
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY,
  delivery_id INTEGER NOT NULL,
  subscriber TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  outcome TEXT NOT NULL,
  status INTEGER,
  error TEXT,
  next_at INTEGER,
  -- JSON {url, headers, body}, secrets masked before they got here
  request TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
-- Covers the per-subscriber stats, which then never read the rows (and their request bodies).
CREATE INDEX IF NOT EXISTS attempts_recent ON attempts (started_at, subscriber, outcome, duration_ms, status, error);
CREATE INDEX IF NOT EXISTS events_run ON events (json_extract(body, '$.KfpRunId'), seq);
CREATE INDEX IF NOT EXISTS events_pipeline ON events (json_extract(body, '$.PipelineName'), seq);
CREATE INDEX IF NOT EXISTS events_namespace ON events (json_extract(body, '$.Namespace'), seq);
CREATE INDEX IF NOT EXISTS events_type ON events (json_extract(body, '$.EventType'), seq);
`;

/** Event filters and the indexed expression each one compares. */
const EVENT_FILTERS = {
  runId: "json_extract(body, '$.KfpRunId')",
  pipeline: "json_extract(body, '$.PipelineName')",
  namespace: "json_extract(body, '$.Namespace')",
  eventType: "json_extract(body, '$.EventType')",
} as const;

/**
 * One page of the events search (one row more than the limit, to tell whether a next page exists):
 * the SQL, whose shape depends only on which filters are given, and its parameters.
 */
export function eventPageSql(query: EventQuery): { sql: string; params: Record<string, string | number> } {
  const where: string[] = [];
  const params: Record<string, string | number> = { limit: query.limit + 1 };
  for (const [key, expr] of Object.entries(EVENT_FILTERS) as [keyof typeof EVENT_FILTERS, string][]) {
    const v = query[key];
    if (v === undefined) continue;
    where.push(`${expr} = @${key}`);
    params[key] = v;
  }
  // Acceptance times never decrease with seq (the store clamps them), so a time range is a seq range:
  // its two ends are found on the acceptance-time index, and the page is read in seq order as always.
  if (query.from !== undefined) {
    where.push('seq >= (SELECT e.seq FROM events e WHERE e.accepted_at >= @from ORDER BY e.accepted_at, e.seq LIMIT 1)');
    params.from = query.from;
  }
  if (query.to !== undefined) {
    where.push('seq <= (SELECT e.seq FROM events e WHERE e.accepted_at < @to ORDER BY e.accepted_at DESC, e.seq DESC LIMIT 1)');
    params.to = query.to;
  }
  if (query.before !== undefined) (where.push('seq < @before'), (params.before = query.before));
  const sql = `SELECT seq, body, accepted_at FROM events${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT @limit`;
  return { sql, params };
}

interface AttemptRow {
  id: number;
  delivery_id: number;
  subscriber: string;
  started_at: number;
  duration_ms: number;
  outcome: AttemptLog['outcome'];
  status: number | null;
  error: string | null;
  next_at: number | null;
  request: string | null;
}

interface DeliveryViewRow {
  id: number;
  event_id: string;
  subscriber: string;
  state: DeliveryView['state'];
  attempts: number;
  due_at: number;
  last_status: number | null;
  last_error: string | null;
  updated_at: number;
}

interface DeliveryRow {
  id: number;
  event_id: string;
  subscriber: string;
  attempts: number;
  due_at: number;
  last_status: number | null;
  last_error: string | null;
  updated_at: number;
  body: string;
}

interface SettleRow {
  id: number;
  state: 'delivered' | 'pending' | 'dead';
  dueAt: number;
  status: number | null;
  error: string | null;
  now: number;
  attempt: AttemptRecord | undefined;
}

interface Submission {
  item: AcceptItem;
  now: number;
}

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const code = err instanceof Database.SqliteError ? err.code : undefined;
  const msg = errorMessage(err);
  return new StoreUnavailableError(`store unavailable: ${msg}${code ? ` (${code})` : ''}`, code);
}

/** fdatasync of the WAL file through a handle opened on first use (the WAL exists once written). */
function walSyncer(walFile: string, custom?: (walFile: string) => Promise<void>): { sync(): Promise<void>; close(): Promise<void> } {
  if (custom) return { sync: () => custom(walFile), close: async () => {} };
  let handle: Promise<FileHandle> | undefined;
  return {
    async sync() {
      handle ??= open(walFile, 'r').catch((err: unknown) => {
        handle = undefined; // try again next time
        throw err;
      });
      await (await handle).datasync();
    },
    async close() {
      await (await handle?.catch(() => undefined))?.close();
    },
  };
}

function openDatabase(file: string): Database.Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file, { timeout: 1000 });
  try {
    // EXCLUSIVE before WAL: the WAL then needs no shared-memory file, and the first read takes the lock.
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    return db;
  } catch (err) {
    db.close();
    if (err instanceof Database.SqliteError && err.code === 'SQLITE_BUSY') {
      throw new StoreUnavailableError(`${file} is in use by another process (one kfp-notify callback per data dir)`, err.code);
    }
    throw err;
  }
}

export function openSqliteStore(opts: SqliteStoreOptions): DeliveryStore {
  const db = openDatabase(opts.file);
  const version = db.pragma('user_version', { simple: true });
  if (typeof version === 'number' && version > SCHEMA_VERSION) {
    db.close();
    throw new Error(`${opts.file} has schema version ${version}; this kfp-notify knows ${SCHEMA_VERSION}`);
  }
  db.exec(SCHEMA);
  db.exec(FAILING_SCHEMA);
  db.exec(DASHBOARD_SCHEMA);
  // The dedup index is hit at random; keep more of it in memory than SQLite's 2 MiB default.
  db.pragma('cache_size = -16384');
  // Checkpoint every 16 MiB of WAL rather than 4: hot index pages rewritten between checkpoints are copied once.
  db.pragma('wal_autocheckpoint = 4096');
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
  if (opts.maxBytes !== undefined) {
    const pageSize = Number(db.pragma('page_size', { simple: true }));
    db.pragma(`max_page_count = ${Math.max(1, Math.floor(opts.maxBytes / pageSize))}`);
  }
  const openedAt = opts.now ?? Date.now();
  // Acceptance times never go back (a clock stepping back is clamped to the latest time kept), so that
  // acceptance order (seq) is also time order: the events search turns a time range into a seq range.
  let lastAcceptedAt = db.prepare<[], { t: number | null }>('SELECT MAX(accepted_at) AS t FROM events').get()?.t ?? 0;
  const acceptedAt = (now: number): number => (lastAcceptedAt = Math.max(lastAcceptedAt, now));
  db.prepare('UPDATE deliveries SET leased = 0, due_at = MIN(due_at, ?) WHERE state = ? AND leased = 1').run(openedAt, 'pending');

  const q = {
    insertEvent: db.prepare('INSERT OR IGNORE INTO events (id, body, accepted_at) VALUES (?, ?, ?)'),
    insertDelivery: db.prepare(
      'INSERT INTO deliveries (event_seq, subscriber, state, attempts, due_at, last_error, updated_at) VALUES (?, ?, ?, 0, ?, ?, ?)',
    ),
    // Rows only, no event: the rows skipped because they are leased cost an index entry each, and
    // the event of a row that is claimed comes from the event cache (or eventBySeq).
    due: db.prepare<[string, number, number], { id: number; event_seq: number; attempts: number; due_at: number }>(
      `SELECT id, event_seq, attempts, due_at FROM deliveries
       WHERE state = 'pending' AND subscriber = ? AND due_at <= ? ORDER BY due_at, id LIMIT ?`,
    ),
    eventBySeq: db.prepare<[number], { id: string; body: string }>('SELECT id, body FROM events WHERE seq = ?'),
    // The first `limit` pending rows by due time: the earliest not leased is among the first leases + 1.
    nextDue: db.prepare<[string, number], { id: number; due_at: number }>(
      "SELECT id, due_at FROM deliveries WHERE state = 'pending' AND subscriber = ? ORDER BY due_at, id LIMIT ?",
    ),
    // A success also settles a row that disable() moved to the dead letters while it was in flight:
    // it did arrive, and replaying it would send it twice. A failure leaves such a row dead.
    // Positional parameters: binding an object by name cost a third of the UPDATE.
    settle: db.prepare<[SettleRow['state'], number, number | null, string | null, number, number, SettleRow['state']]>(
      `UPDATE deliveries SET state = ?, attempts = attempts + 1, due_at = ?, leased = 0, last_status = ?,
       last_error = ?, updated_at = ? WHERE id = ? AND (state = 'pending' OR (state = 'dead' AND ? = 'delivered'))`,
    ),
    // LIMIT -1: no limit (a replay by filter takes every match).
    dead: db.prepare<[DeadFilterParams], DeliveryRow>(
      `SELECT d.*, e.id AS event_id, e.body FROM deliveries d JOIN events e ON e.seq = d.event_seq
       WHERE d.state = 'dead' AND (@subscriber IS NULL OR d.subscriber = @subscriber)
         AND (@run IS NULL OR json_extract(e.body, '$.KfpRunId') = @run)
         AND (@since IS NULL OR d.updated_at >= @since) AND (@until IS NULL OR d.updated_at < @until)
       ORDER BY d.updated_at, d.id LIMIT @limit`,
    ),
    deadIds: db.prepare<[], { id: number; subscriber: string }>("SELECT id, subscriber FROM deliveries WHERE state = 'dead' ORDER BY id"),
    replay: db.prepare(
      "UPDATE deliveries SET state = 'pending', attempts = 0, due_at = ?, leased = 0, updated_at = ? WHERE id = ? AND state = 'dead'",
    ),
    depth: db.prepare<[], { subscriber: string; n: number }>(
      "SELECT subscriber, COUNT(*) AS n FROM deliveries WHERE state = 'pending' GROUP BY subscriber",
    ),
    disable: db.prepare('INSERT OR REPLACE INTO disabled_subscribers (name, since, reason) VALUES (?, ?, ?)'),
    deadAllPending: db.prepare(
      "UPDATE deliveries SET state = 'dead', leased = 0, last_error = ?, updated_at = ? WHERE state = 'pending' AND subscriber = ?",
    ),
    enable: db.prepare('DELETE FROM disabled_subscribers WHERE name = ?'),
    disabledRows: db.prepare<[], { name: string; since: number; reason: string }>('SELECT name, since, reason FROM disabled_subscribers'),
    event: db.prepare<[string], { body: string }>('SELECT body FROM events WHERE id = ?'),
    pruneDelivered: db.prepare("DELETE FROM deliveries WHERE state = 'delivered' AND updated_at < ?"),
    markFailing: db.prepare('INSERT OR IGNORE INTO subscriber_failing (name, since) VALUES (?, ?)'),
    clearFailing: db.prepare('DELETE FROM subscriber_failing WHERE name = ?'),
    failingRows: db.prepare<[], { name: string; since: number }>('SELECT name, since FROM subscriber_failing'),
    pruneEvents: db.prepare('DELETE FROM events WHERE accepted_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)'),
  };

  // Kept in memory too: accept consults it for every delivery and must not query for it.
  const disabled = new Map<string, DisabledState>(q.disabledRows.all().map((r) => [r.name, { since: r.since, reason: r.reason }]));
  let closed = false;
  const leases = createLeases();
  const events = createEventCache((seq) => q.eventBySeq.get(seq));

  /** Runs fn as one transaction; SQLite errors become StoreUnavailableError. */
  function txn<T>(fn: () => T): T {
    if (closed) throw new StoreUnavailableError('store unavailable: closed');
    try {
      return db.transaction(fn)();
    } catch (err) {
      throw unavailable(err);
    }
  }

  const wal = walSyncer(`${opts.file}-wal`, opts.syncWal);
  const durable = syncBarrier(() => wal.sync().catch((err: unknown) => Promise.reject(unavailable(err))));
  /** A transaction that resolves once it is on disk. */
  async function durableTxn<T>(fn: () => T): Promise<T> {
    const result = txn(fn);
    await durable();
    return result;
  }

  function commitAccepts(batches: ReadonlyArray<readonly Submission[]>): AcceptResult[][] {
    return txn(() =>
      batches.map((subs) =>
        subs.map(({ item, now }) => {
          const { event } = item;
          const row = q.insertEvent.run(event.EventId, JSON.stringify(event), acceptedAt(now));
          const inserted = row.changes > 0;
          if (inserted) {
            for (const name of new Set(item.subscribers)) {
              const off = disabled.get(name);
              q.insertDelivery.run(row.lastInsertRowid, name, off ? 'dead' : 'pending', now, off ? `subscriber disabled: ${off.reason}` : null, now);
            }
          }
          return { eventId: event.EventId, duplicate: !inserted };
        }),
      ),
    );
  }

  // At 'write' the commit resolves unsynced; one fsync follows within WAL_SYNC_DELAY_MS of it, so a
  // power loss costs a bounded window rather than everything since the last checkpoint. When that
  // fsync fails, accepts wait for their own fsync again (and fail with it, a 503) until one succeeds.
  let syncLater: NodeJS.Timeout | undefined;
  let syncFailed = false;
  const writeBehind = async (): Promise<void> => {
    if (syncFailed) {
      await durable();
      syncFailed = false;
      return;
    }
    syncLater ??= setTimeout(() => {
      syncLater = undefined;
      durable().catch(() => (syncFailed = true));
    }, WAL_SYNC_DELAY_MS).unref();
  };
  const committer = groupCommit<Submission, AcceptResult>(commitAccepts, {
    durable: opts.durability === 'write' ? writeBehind : durable,
    ...(opts.onCommit ? { onCommit: opts.onCommit } : {}),
  });

  // Outcome marks of one event-loop turn share one transaction and no fsync: a busy worker settles
  // several sends per turn, and a transaction each cost more than the send itself.
  const settler = groupCommit<SettleRow, void>(
    (batches) => {
      const done = txn(() =>
        batches.map((rows) =>
          rows.map((r) => {
            q.settle.run(r.state, r.dueAt, r.status, r.error, r.now, r.id, r.state);
            if (r.attempt) logAttempt(r.id, r.attempt);
          }),
        ),
      );
      // Only once written: a mark that failed leaves its lease to run out, then the row is retried.
      for (const rows of batches) for (const r of rows) leases.drop(r.id);
      return done;
    },
    opts.onSettle ? { onCommit: opts.onSettle } : {},
  );
  // Reads (queue depth, next due time, dead letters) and the operator's writes call settler.flush()
  // first, so they see every outcome already reported; it is a no-op when none is queued.
  const settle: SettleFn = async (id, state, dueAt, note) => {
    await settler.submit([{ state, dueAt, status: note.status ?? null, error: note.error ?? null, now: note.now, id, attempt: note.attempt }]);
  };

  /** A pending row is claimable when due and not leased (or its lease has ended). */
  function claimOne({ subscriber, limit, leaseMs }: ClaimRequest, now: number): ClaimedDelivery[] {
    if (limit <= 0) return [];
    const out: ClaimedDelivery[] = [];
    for (const r of q.due.all(subscriber, now, limit + leases.count(subscriber))) {
      if ((leases.until(r.id) ?? 0) > now) continue;
      const e = events.get(r.event_seq);
      if (!e) throw new Error(`delivery ${r.id} refers to missing event ${r.event_seq}`);
      leases.hold(subscriber, r.id, now + leaseMs);
      out.push({ delivery: { id: r.id, eventId: e.eventId, subscriber, attempts: r.attempts, dueAt: r.due_at }, event: e.event });
      if (out.length === limit) break;
    }
    return out;
  }

  /** Claims are reads (leases live in memory), so several lanes' claims cost no write at all. */
  function claimAll(requests: readonly ClaimRequest[], now: number): ClaimedDelivery[][] {
    if (closed) throw new StoreUnavailableError('store unavailable: closed');
    try {
      return requests.map((r) => claimOne(r, now));
    } catch (err) {
      throw unavailable(err);
    }
  }

  function deadParams(f: DeadLetterFilter, limit: number): DeadFilterParams {
    return { subscriber: f.subscriber ?? null, run: f.kfpRunId ?? null, since: f.since ?? null, until: f.until ?? null, limit };
  }

  function toDeadLetter(r: DeliveryRow): DeadLetter {
    return {
      id: r.id,
      eventId: r.event_id,
      subscriber: r.subscriber,
      attempts: r.attempts,
      ...(r.last_status !== null ? { lastStatus: r.last_status } : {}),
      ...(r.last_error !== null ? { lastError: r.last_error } : {}),
      deadAt: r.updated_at,
      event: JSON.parse(r.body) as KfpEvent,
    };
  }

  const dash = {
    insertAttempt: db.prepare<[number, number, string, number | null, string | null, number | null, string | null, number]>(
      `INSERT INTO attempts (delivery_id, subscriber, started_at, duration_ms, outcome, status, error, next_at, request)
       SELECT id, subscriber, ?, ?, ?, ?, ?, ?, ? FROM deliveries WHERE id = ?`,
    ),
    attemptsOf: db.prepare<[number], AttemptRow>('SELECT * FROM attempts WHERE delivery_id = ? ORDER BY id'),
    // Without the request: the stats never read it, and parsing a day's bodies would dominate.
    attemptsSince: db.prepare<[number], AttemptRow>(
      'SELECT 0 AS id, 0 AS delivery_id, subscriber, started_at, duration_ms, outcome, status, error, NULL AS next_at, NULL AS request FROM attempts WHERE started_at >= ? ORDER BY started_at',
    ),
    deliveriesOfSeqs: db.prepare<[string], DeliveryViewRow & { event_seq: number }>(
      `SELECT d.*, e.id AS event_id FROM deliveries d JOIN events e ON e.seq = d.event_seq
       WHERE d.event_seq IN (SELECT value FROM json_each(?)) ORDER BY d.subscriber`,
    ),
    deliveriesOfEvent: db.prepare<[string], DeliveryViewRow>(
      'SELECT d.*, e.id AS event_id FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id = ? ORDER BY d.subscriber',
    ),
    delivery: db.prepare<[number], DeliveryViewRow & { body: string }>(
      'SELECT d.*, e.id AS event_id, e.body FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.id = ?',
    ),
    pruneAttempts: db.prepare('DELETE FROM attempts WHERE started_at < ? AND delivery_id NOT IN (SELECT id FROM deliveries)'),
  };
  /** One prepared statement per combination of filters, made on first use. */
  const eventPages = new Map<string, Database.Statement<Record<string, string | number>, { seq: number; body: string; accepted_at: number }>>();
  function eventPage(query: EventQuery) {
    const { sql, params } = eventPageSql(query);
    let stmt = eventPages.get(sql);
    if (!stmt) eventPages.set(sql, (stmt = db.prepare(sql)));
    return stmt.all(params);
  }
  function logAttempt(id: number, a: AttemptRecord): void {
    dash.insertAttempt.run(a.startedAt, a.durationMs, a.outcome, a.status ?? null, a.error ?? null, a.nextAt ?? null, a.request ? JSON.stringify(a.request) : null, id);
  }
  const toAttempt = (r: AttemptRow): AttemptLog => ({
    id: r.id,
    deliveryId: r.delivery_id,
    subscriber: r.subscriber,
    startedAt: r.started_at,
    durationMs: r.duration_ms,
    outcome: r.outcome,
    ...(r.status !== null ? { status: r.status } : {}),
    ...(r.error !== null ? { error: r.error } : {}),
    ...(r.next_at !== null ? { nextAt: r.next_at } : {}),
    ...(r.request !== null ? { request: JSON.parse(r.request) as AttemptLog['request'] } : {}),
  });
  const toDeliveryView = (r: DeliveryViewRow): DeliveryView => ({
    id: r.id,
    eventId: r.event_id,
    subscriber: r.subscriber,
    state: r.state,
    attempts: r.attempts,
    dueAt: r.due_at,
    ...(r.last_status !== null ? { lastStatus: r.last_status } : {}),
    ...(r.last_error !== null ? { lastError: r.last_error } : {}),
    updatedAt: r.updated_at,
  });
  /** Reads see every outcome already reported; SQLite errors become StoreUnavailableError. */
  function read<T>(fn: () => T): T {
    if (closed) throw new StoreUnavailableError('store unavailable: closed');
    settler.flush();
    try {
      return fn();
    } catch (err) {
      throw unavailable(err);
    }
  }

  const dashboard: Pick<DeliveryStore, 'listEvents' | 'eventDeliveries' | 'getDelivery' | 'listAttempts' | 'subscriberStats'> = {
    async listEvents(query) {
      return read(() => {
        const rows = eventPage(query);
        const page = rows.slice(0, query.limit);
        const bySeq = new Map<number, DeliveryView[]>(page.map((r) => [r.seq, []]));
        if (page.length > 0) {
          for (const d of dash.deliveriesOfSeqs.all(JSON.stringify(page.map((r) => r.seq)))) bySeq.get(d.event_seq)?.push(toDeliveryView(d));
        }
        const events = page.map((r) => ({ seq: r.seq, acceptedAt: r.accepted_at, event: JSON.parse(r.body) as KfpEvent, deliveries: bySeq.get(r.seq) ?? [] }));
        const last = page.at(-1);
        return rows.length > query.limit && last ? { events, next: last.seq } : { events };
      });
    },
    async eventDeliveries(eventId) {
      return read(() => dash.deliveriesOfEvent.all(eventId).map(toDeliveryView));
    },
    async getDelivery(id) {
      return read(() => {
        const r = dash.delivery.get(id);
        return r ? { ...toDeliveryView(r), event: JSON.parse(r.body) as KfpEvent } : undefined;
      });
    },
    async listAttempts(deliveryId) {
      return read(() => dash.attemptsOf.all(deliveryId).map(toAttempt));
    },
    async subscriberStats(now) {
      return read(() => {
        const pending = Object.fromEntries(q.depth.all().map((r) => [r.subscriber, r.n]));
        return foldStats(dash.attemptsSince.all(now - DAY_MS).map(toAttempt), pending, now);
      });
    },
  };

  return {
    async accept(items, now) {
      if (items.length === 0) return [];
      return committer.submit(items.map((item) => ({ item, now })));
    },

    async claim(subscriber, { now, limit, leaseMs }) {
      return claimAll([{ subscriber, limit, leaseMs }], now)[0] ?? [];
    },

    async claimMany(requests, now) {
      return claimAll(requests, now);
    },

    async nextDueAt(subscriber) {
      settler.flush();
      // A leased row is due again when its lease ends; the others at their due time.
      const free = q.nextDue.all(subscriber, leases.count(subscriber) + 1).find((r) => leases.until(r.id) === undefined);
      const leaseEnd = leases.earliest(subscriber);
      if (free === undefined) return leaseEnd;
      return leaseEnd === undefined ? free.due_at : Math.min(free.due_at, leaseEnd);
    },

    ...settleMethods(settle),

    async release(ids) {
      // The row still carries the due time it was claimed at (≤ now): without its lease it is due.
      for (const id of ids) leases.drop(id);
    },

    async listDeadLetters(o = {}) {
      settler.flush();
      return q.dead.all(deadParams(o, o.limit ?? 1000)).map(toDeadLetter);
    },

    async replayDeadLetters(selector: ReplaySelector, now) {
      settler.flush();
      return durableTxn(() => {
        const ids =
          'filter' in selector
            ? q.dead.all(deadParams(selector.filter, -1)).map((r) => r.id)
            : q.deadIds
                .all()
                .filter((r) => selectsDeadLetter(selector, { ...r, deadAt: 0 }))
                .map((r) => r.id);
        for (const id of ids) {
          q.replay.run(now, now, id);
          leases.drop(id);
        }
        return ids;
      });
    },

    async queueDepth() {
      settler.flush();
      return Object.fromEntries(q.depth.all().map((r) => [r.subscriber, r.n]));
    },

    async disable(subscriber, reason, now) {
      settler.flush();
      const moved = txn(() => {
        q.disable.run(subscriber, now, reason);
        return q.deadAllPending.run(`subscriber disabled: ${reason}`, now, subscriber).changes;
      });
      leases.dropSubscriber(subscriber);
      // Before the fsync, not after: an accept committed while it runs must already see the subscriber
      // disabled, or its delivery would sit pending in a lane that no longer claims.
      disabled.set(subscriber, { since: now, reason });
      await durable();
      return moved;
    },

    async enable(subscriber) {
      const was = txn(() => {
        q.clearFailing.run(subscriber);
        return q.enable.run(subscriber).changes > 0;
      });
      disabled.delete(subscriber);
      await durable();
      return was;
    },

    async disabledSubscribers() {
      return Object.fromEntries(disabled);
    },

    async getEvent(eventId) {
      const row = q.event.get(eventId);
      return row ? (JSON.parse(row.body) as KfpEvent) : undefined;
    },

    // --- Failure tracking ---
    async markFailing(subscriber, since) {
      txn(() => q.markFailing.run(subscriber, since));
    },

    async clearFailing(subscriber) {
      txn(() => q.clearFailing.run(subscriber));
    },

    async failingSince() {
      return Object.fromEntries(q.failingRows.all().map((r) => [r.name, r.since]));
    },

    async prune(before) {
      settler.flush();
      events.clear();
      return txn(() => {
        q.pruneDelivered.run(before);
        dash.pruneAttempts.run(before);
        return q.pruneEvents.run(before).changes;
      });
    },

    async close() {
      if (closed) return;
      committer.flush();
      settler.flush();
      clearTimeout(syncLater);
      await durable().catch(() => undefined);
      closed = true;
      await wal.close();
      db.close();
    },

    ...dashboard,
  };
}
