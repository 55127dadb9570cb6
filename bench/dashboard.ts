import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { buildApp } from '../callback/app.js';
import { openSqliteStore } from '../callback/store/sqlite.js';
import type { DeliveryStore } from '../callback/store/types.js';
import type { KfpEvent } from '../callback/types.js';
import { silentLogger } from '../common/logger.js';
import { numericFlags } from './lib/args.js';
import { benchDir, deadline } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { compare, fmt } from './lib/stats.js';

/**
 * The delivery dashboard with 100,000 events stored: how long each view's page load takes (the
 * requests the page makes for it, over loopback, logged in), against the same views on a store of
 * 1,000 events, measured in the same rounds. A ratio near 1 means the view's queries do not grow
 * with the store (they run on indexes, keyset-paged). The events were accepted over 7 days, each
 * routed to two subscribers; one subscriber's deliveries were all attempted once and delivered (an
 * attempt logged each), 1% of the other's dead-lettered, the rest pending.
 */

const flags = numericFlags('bench/dashboard', { rounds: 15, events: 100_000, baseline: 1_000 });
deadline(600_000, 'bench/dashboard');
const DAY = 86_400_000;
const NOW = Date.now();
const ADMIN = 'bench-admin-token';

function event(i: number): KfpEvent {
  const run = `run-${Math.floor(i / 100)}`;
  return {
    KfpRunId: run,
    WorkflowName: `wf-${run}`,
    NodeName: `step-${i % 100}`,
    EventType: i % 100 === 99 ? 'WorkflowSucceeded' : 'WorkflowNodeSucceeded',
    Message: `Succeeded node wf-${run}.step-${i % 100}`,
    EventId: `evt_${i.toString(16).padStart(32, '0')}`,
    Namespace: `team-${i % 5}`,
    PipelineName: `pipeline-${i % 10}`,
    RunName: `nightly ${run}`,
    Phase: 'Succeeded',
    Time: new Date(NOW - DAY * 7 + i).toISOString(),
    ArgoNodeName: `wf-${run}.step-${i % 100}`,
    WorkflowUid: `uid-${run}`,
    Source: 'hook',
    RecurringRunName: '',
    RunUrl: '',
  };
}

async function fill(store: DeliveryStore, n: number): Promise<void> {
  const step = (7 * DAY) / n;
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ event: event(i + k), subscribers: ['ops', 'flaky'] }));
    await store.accept(batch, Math.round(NOW - 7 * DAY + i * step));
  }
  for (;;) {
    const claimed = await store.claim('ops', { now: NOW, limit: 1000, leaseMs: 60_000 });
    if (claimed.length === 0) break;
    await Promise.all(
      claimed.map((c, k) => {
        const at = NOW - 7 * DAY + (c.delivery.id / 2) * step;
        const body = JSON.stringify(c.event);
        const request = { url: 'https://ops.example.com', headers: { 'content-type': 'application/json', 'webhook-id': c.event.EventId, 'webhook-signature': '[masked]' }, body };
        return store.markDelivered(c.delivery.id, { now: at + 20, status: 204, attempt: { startedAt: at, durationMs: 5 + (k % 50), outcome: 'delivered', status: 204, request } });
      }),
    );
  }
  const flaky = await store.claim('flaky', { now: NOW, limit: Math.ceil(n / 100), leaseMs: 60_000 });
  await Promise.all(flaky.map((c) => store.deadLetter(c.delivery.id, { now: NOW - 1000, status: 500, error: 'HTTP 500', attempt: { startedAt: NOW - 1000, durationMs: 30, outcome: 'dead', status: 500 } })));
  await store.release(flaky.map((c) => c.delivery.id), NOW);
}

interface Site {
  url: string;
  cookie: string;
  close(): Promise<void>;
  middleSeq: number;
  deliveryId: number;
  store: DeliveryStore;
}

async function site(n: number): Promise<Site> {
  const store = openSqliteStore({ file: join(benchDir(), `dashboard-${n}.db`), durability: 'write' });
  await fill(store, n);
  const app = buildApp({
    log: silentLogger(),
    hookKeys: [],
    adminToken: ADMIN,
    ingest: async () => ({ eventIds: [], duplicates: [] }),
    store,
    subscribers: () => [],
    notify: () => {},
    registry: new Registry(),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const login = await request(`${url}/ui/login`, {
    method: 'POST',
    headers: { origin: url, 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${ADMIN}`,
  });
  await login.body.dump();
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
  const middle = await store.listEvents({ limit: 1, before: Math.floor(n / 2) });
  const [d] = await store.eventDeliveries(middle.events[0]?.event.EventId ?? '');
  return {
    url,
    cookie,
    middleSeq: middle.events[0]?.seq ?? 1,
    deliveryId: d?.id ?? 1,
    store,
    async close() {
      await app.close();
      await store.close();
    },
  };
}

async function get(s: Site, path: string): Promise<void> {
  const res = await request(`${s.url}${path}`, { headers: { cookie: s.cookie } });
  if (res.statusCode !== 200) throw new Error(`${path}: HTTP ${res.statusCode}: ${await res.body.text()}`);
  await res.body.dump();
}

/** Each view: the requests its page load makes. */
const VIEWS: Record<string, (s: Site) => string[]> = {
  'events, first page (50)': () => ['/ui/', '/ui/api/session', '/ui/api/events'],
  'events, search by run id': () => ['/ui/api/events?runId=run-7'],
  'events, search by pipeline + namespace': () => ['/ui/api/events?pipeline=pipeline-3&namespace=team-3'],
  'events, a page in the middle (keyset)': (s) => [`/ui/api/events?before=${s.middleSeq}`],
  'events, last 24 h': () => [`/ui/api/events?from=${NOW - DAY}&to=${NOW}`],
  'a delivery with its attempts': (s) => [`/ui/api/deliveries/${s.deliveryId}`],
  'subscribers with stats (last hour/day; served from the 4 s cache when warm)': () => ['/ui/api/subscribers'],
};

async function load(s: Site, paths: string[]): Promise<number> {
  const t = performance.now();
  for (const p of paths) await get(s, p);
  return performance.now() - t;
}

/**
 * What the attempt log costs the delivery hot path: the store's bookkeeping per delivery (claim 4 at a
 * time, settle each as delivered, the marks of a turn in one transaction, as the worker does) with an
 * attempt record on each mark (a 1 KB body and five headers, as the worker sends) against the same
 * without, in interleaved rounds on fresh files. No HTTP: this isolates the store's share.
 */
type AttemptVariant = 'without' | 'with' | 'noRequest';
async function bookkeepingUs(variant: AttemptVariant, n: number, file: string): Promise<number> {
  const store = openSqliteStore({ file, durability: 'write' });
  for (let i = 0; i < n; i += 1000) await store.accept(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ event: event(i + k), subscribers: ['a'] })), NOW);
  const t = performance.now();
  for (;;) {
    const claimed = await store.claim('a', { now: NOW, limit: 4, leaseMs: 60_000 });
    if (claimed.length === 0) break;
    await Promise.all(
      claimed.map((c) => {
        const request = { url: 'https://ops.example.com', headers: { 'content-type': 'application/json', 'webhook-id': c.event.EventId, 'webhook-timestamp': '1800000000', 'webhook-signature': '[masked]', 'x-team': 'ml' }, body: JSON.stringify(c.event) };
        const note = { now: NOW, status: 204 };
        const attempt = { startedAt: NOW, durationMs: 3, outcome: 'delivered' as const, status: 204 };
        if (variant === 'without') return store.markDelivered(c.delivery.id, note);
        return store.markDelivered(c.delivery.id, { ...note, attempt: variant === 'with' ? { ...attempt, request } : attempt });
      }),
    );
  }
  const us = ((performance.now() - t) * 1000) / n;
  await store.close();
  return us;
}
const hot: Record<AttemptVariant, number[]> = { with: [], without: [], noRequest: [] };
for (let i = 0; i < flags.rounds; i++) {
  const order: AttemptVariant[] = i % 2 === 0 ? ['with', 'without', 'noRequest'] : ['noRequest', 'without', 'with'];
  for (const v of order) hot[v].push(await bookkeepingUs(v, 5000, join(benchDir(), `hot-${i}-${v}.db`)));
}
const hotCmp = compare(hot.with, hot.without);
const hotBare = compare(hot.noRequest, hot.without);

/**
 * What the event-search indexes cost an accept: the events table's INSERT (as the store does it, in
 * transactions of 100 events) with and without the four expression indexes, in interleaved rounds.
 */
function insertUs(withIndexes: boolean, n: number, file: string): number {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, accepted_at INTEGER NOT NULL); CREATE INDEX events_accepted ON events (accepted_at);');
  if (withIndexes) {
    for (const f of ['KfpRunId', 'PipelineName', 'Namespace', 'EventType']) db.exec(`CREATE INDEX events_${f} ON events (json_extract(body, '$.${f}'), seq)`);
  }
  const insert = db.prepare('INSERT OR IGNORE INTO events (id, body, accepted_at) VALUES (?, ?, ?)');
  const bodies = Array.from({ length: n }, (_, i) => JSON.stringify(event(i)));
  const t = performance.now();
  for (let i = 0; i < n; i += 100) {
    db.transaction(() => {
      for (let k = i; k < Math.min(n, i + 100); k++) insert.run(`evt_${k}`, bodies[k], NOW);
    })();
  }
  const us = ((performance.now() - t) * 1000) / n;
  db.close();
  return us;
}
const idx: { with: number[]; without: number[] } = { with: [], without: [] };
for (let i = 0; i < flags.rounds; i++) {
  const order = i % 2 === 0 ? ([true, false] as const) : ([false, true] as const);
  for (const w of order) idx[w ? 'with' : 'without'].push(insertUs(w, 20_000, join(benchDir(), `idx-${i}-${w}.db`)));
}
const idxCmp = compare(idx.with, idx.without);

process.stderr.write(`filling ${flags.events} and ${flags.baseline} events...\n`);
const big = await site(flags.events);
const small = await site(flags.baseline);
const results: Record<string, { big: number[]; small: number[] }> = {};
for (const [name, paths] of Object.entries(VIEWS)) {
  for (const s of [big, small]) await load(s, paths(s)); // warm-up
  const r = (results[name] = { big: [] as number[], small: [] as number[] });
  for (let i = 0; i < flags.rounds; i++) {
    // Alternate the order, so a slow stretch of the machine hits both sides.
    const order = i % 2 === 0 ? ([['big', big], ['small', small]] as const) : ([['small', small], ['big', big]] as const);
    for (const [k, s] of order) r[k].push(await load(s, paths(s)));
  }
}
// The route serves one computation of the stats for STATS_TTL_MS (a page load mostly gets that);
// this is the computation itself, as every STATS_TTL_MS pays it.
{
  const r = (results['subscribers stats, one computation (uncached; in process)'] = { big: [] as number[], small: [] as number[] });
  for (let i = 0; i < flags.rounds; i++) {
    const order = i % 2 === 0 ? ([['big', big], ['small', small]] as const) : ([['small', small], ['big', big]] as const);
    for (const [k, s] of order) {
      const t = performance.now();
      await s.store.subscriberStats(NOW);
      r[k].push(performance.now() - t);
    }
  }
}
await big.close();
await small.close();

const rows = Object.entries(results).map(([name, r]) => {
  const c = compare(r.big, r.small);
  return [name, `${fmt(c.baseline.median)} ms`, `${fmt(c.product.median)} ms`, `${fmt(c.ratio)}× (${fmt(c.roundRatios.min)}–${fmt(c.roundRatios.max)})`];
});
const m = machine();
process.stdout.write(
  [
    `## Dashboard page loads, ${flags.events.toLocaleString('en')} events stored vs ${flags.baseline.toLocaleString('en')}, ${flags.rounds} rounds (medians)`,
    '',
    `Machine: ${describeMachine(m)}`,
    '',
    markdownTable(['view (requests of its page load)', `${flags.baseline.toLocaleString('en')} events`, `${flags.events.toLocaleString('en')} events`, 'ratio (round range)'], rows),
    '',
    `Attempt logging on the hot path (the store's bookkeeping per delivery, 5,000 deliveries, no HTTP): ${fmt(hotCmp.baseline.median)} µs without an attempt record, ${fmt(hotCmp.product.median)} µs with one: ${fmt(hotCmp.ratio)}× (round range ${fmt(hotCmp.roundRatios.min)}–${fmt(hotCmp.roundRatios.max)}); with a record but no request kept: ${fmt(hotBare.product.median)} µs, ${fmt(hotBare.ratio)}× (${fmt(hotBare.roundRatios.min)}–${fmt(hotBare.roundRatios.max)}).`,
    '',
    `Event-search indexes on the accept path (INSERT of 20,000 events, 100 a transaction, no fsync): ${fmt(idxCmp.baseline.median)} µs per event without the four indexes, ${fmt(idxCmp.product.median)} µs with them: ${fmt(idxCmp.ratio)}× (round range ${fmt(idxCmp.roundRatios.min)}–${fmt(idxCmp.roundRatios.max)}).`,
    '',
    `Raw results: ${writeResults('dashboard', { machine: m, flags, results, hot, idx })}`,
    '',
  ].join('\n'),
);
