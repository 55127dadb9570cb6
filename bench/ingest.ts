import Database from 'better-sqlite3';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hookKeyFromSecret, newHookKeySecret } from '../common/hook-token.js';
import { DB_FILE } from '../callback/runtime.js';
import type { Durability } from '../callback/store/sqlite.js';
import { parseSubscribers } from '../callback/subscribers/parse.js';
import { numericFlags } from './lib/args.js';
import { fdatasyncMs } from './lib/disk.js';
import { ID_PLACEHOLDER, formBody, hookHeaders, hookUrl, nodeExitFields } from './lib/hook-calls.js';
import { post, scrape } from './lib/http.js';
import { assertAllOk, startLoadGenerator, type LoadResult } from './lib/load.js';
import { benchDir, deadline, profiled, script, startNode, startRpcChild } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { interleaved, pause } from './lib/rounds.js';
import { compare, fmt, verdict, type Comparison } from './lib/stats.js';
import type { ReceiversReady } from './servers/receivers.js';

/**
 * Callback ingest with the durable commit: hook calls with valid tokens, each a new event (autocannon
 * puts a fresh id in the node name), one subscriber configured, so every 202 stands for an event and
 * a delivery row committed to a real SQLite file. Four processes take the load in turn:
 *
 * - accept path, worker kept from sending (bench/servers/ingest-only.ts), once per durability
 *   setting: 'fsync' (the default: 202 after the WAL's fdatasync) and 'write' (202 once the commit is
 *   in the page cache). The target is judged on each;
 * - `kfp-notify callback` (the real CLI, default durability), its worker delivering to a fast
 *   receiver in another process;
 * - a bare Fastify POST route parsing the same form body (bench/servers/bare-http.ts): the baseline.
 * Target: ingest rate ≥ 50% of the baseline's, at `connections` concurrent hook calls (10: each waits
 * for its fsync, so the rate is bounded by fsync latency) and at `saturating` (256: enough calls share
 * each fsync that both servers run out of CPU, so the rate is the capacity).
 */

const flags = numericFlags('bench/ingest', { rounds: 5, duration: 3, connections: 10, saturating: 256, warmup: 1 });
deadline(330_000, 'bench/ingest');
const TARGET = 0.5;

const dir = benchDir();
const secret = newHookKeySecret();
const key = hookKeyFromSecret(secret);
const dataDir = (name: string) => {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(join(d, 'hook-key'), `${secret}\n`, { mode: 0o600 });
  return d;
};

const { proc: receivers, ready: rx } = await startRpcChild<ReceiversReady>('servers/receivers.js', { count: 1 }, { name: 'receivers' });
const receiverUrl = rx.urls[0]!;
const { subscribers } = parseSubscribers({ receiver: receiverUrl }, () => undefined);

type AcceptVariant = 'product' | 'write';
const acceptOnly = async (v: AcceptVariant) => {
  const durability: Durability = v === 'product' ? 'fsync' : 'write';
  const name = `ingest-only-${durability}`;
  const dir = dataDir(name);
  return { dir, ...(await startRpcChild<{ url: string }>('servers/ingest-only.js', { dataDir: dir, subscribers, durability }, { name, nodeArgs: profiled() })) };
};
const accepting: Record<AcceptVariant, Awaited<ReturnType<typeof acceptOnly>>> = { product: await acceptOnly('product'), write: await acceptOnly('write') };

const cliDir = dataDir('cli');
writeFileSync(join(cliDir, 'subscribers.yaml'), `receiver: ${receiverUrl}\n`);
const cli = startNode(
  script('servers/cli.js'),
  ['callback', '--no-cluster', '--host', '127.0.0.1', '--port', '0', '--data-dir', cliDir, '--subscribers', join(cliDir, 'subscribers.yaml')],
  { name: 'callback', nodeArgs: profiled(), env: { KUBERNETES_SERVICE_HOST: '' } },
);
const cliUrl = await cli.waitForLog((l) => (l.msg === 'callback listening' && typeof l.url === 'string' ? l.url : undefined));
const { proc: bare, ready: bareReady } = await startRpcChild<{ url: string }>('servers/bare-http.js', {}, { name: 'bare-http', nodeArgs: profiled() });
const load = await startLoadGenerator();

type Variant = AcceptVariant | 'cli' | 'baseline';
type Callback = Exclude<Variant, 'baseline'>;
const callbacks = ['product', 'write', 'cli'] as const;
const bases: Record<Variant, string> = { product: accepting.product.ready.url, write: accepting.write.ready.url, cli: cliUrl, baseline: bareReady.url };
const headers = hookHeaders(key);
const body = formBody(nodeExitFields(`step-${ID_PLACEHOLDER}`));
/** 2xx answers per variant, the sanity call and warm-ups included: what the store must hold afterwards. */
const accepted: Record<Variant, number> = { product: 0, write: 0, cli: 0, baseline: 0 };

for (const v of callbacks) {
  const res = await post(hookUrl(bases[v]), body.replace(ID_PLACEHOLDER, `sanity-${v}`), { headers });
  const answer = JSON.parse(res.text) as { eventIds?: string[]; duplicates?: string[] };
  if (res.status !== 202 || answer.eventIds?.length !== 1 || answer.duplicates?.length !== 0) throw new Error(`${v}: the sanity hook call was not accepted as a new event: ${res.status} ${res.text}`);
  accepted[v]++;
}

async function run(v: Variant, durationS: number, connections: number): Promise<LoadResult> {
  const r = assertAllOk(`ingest, ${v}`, await load.run({ url: hookUrl(bases[v]), method: 'POST', body, headers, connections, durationS, idReplacement: true }));
  accepted[v] += r.ok;
  // Let the CLI's worker drain before the next run, so no run inherits another's deliveries.
  if (v === 'cli') await drained(30_000);
  return r;
}

async function drained(timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await receivers.call<number[]>('received'))[0]! < accepted.cli) {
    if (Date.now() > until) throw new Error(`the callback's worker delivered ${(await receivers.call<number[]>('received'))[0]} of ${accepted.cli} events`);
    await pause(100);
  }
}

interface GroupCommit {
  commits: number;
  calls: number;
  seconds: number;
}

async function groupCommits(base: string): Promise<GroupCommit> {
  const m = await scrape(`${base}/metrics`);
  return { commits: m.kfp_notify_store_commit_batch_size_count ?? NaN, calls: m.kfp_notify_store_commit_batch_size_sum ?? NaN, seconds: m.kfp_notify_store_commit_seconds_sum ?? NaN };
}

interface Level {
  connections: number;
  runs: Record<Variant, LoadResult[]>;
  rps: Record<Callback, Comparison>;
  p99: Record<Callback, Comparison>;
  /** Calls per commit and ms per commit (fsync included at 'fsync') over this level's runs. */
  commits: Record<Callback, { callsPerCommit: number; commitMs: number }>;
}

const variants = ['product', 'write', 'cli', 'baseline'] as const;
const each = <T>(f: (v: Callback) => T): Record<Callback, T> => ({ product: f('product'), write: f('write'), cli: f('cli') });
const levels: Level[] = [];
for (const connections of [flags.connections, flags.saturating]) {
  for (const v of variants) await run(v, flags.warmup, connections);
  const before = { product: await groupCommits(bases.product), write: await groupCommits(bases.write), cli: await groupCommits(bases.cli) };
  const runs = await interleaved(variants, flags.rounds, (v) => run(v, flags.duration, connections));
  const commits = async (v: Callback) => {
    const after = await groupCommits(bases[v]);
    const n = after.commits - before[v].commits;
    return { callsPerCommit: (after.calls - before[v].calls) / n, commitMs: ((after.seconds - before[v].seconds) / n) * 1000 };
  };
  const rps = (v: Variant) => runs[v].map((r) => r.rps);
  const p99 = (v: Variant) => runs[v].map((r) => r.latencyMs.p99);
  const level: Level = {
    connections,
    runs,
    rps: each((v) => compare(rps(v), rps('baseline'))),
    p99: each((v) => compare(p99(v), p99('baseline'))),
    commits: { product: await commits('product'), write: await commits('write'), cli: await commits('cli') },
  };
  levels.push(level);
  process.stderr.write(
    `${connections} connections: ${fmt(level.rps.product.ratio)}× (accept path, fsync), ${fmt(level.rps.write.ratio)}× (accept path, write), ${fmt(level.rps.cli.ratio)}× (CLI)\n`,
  );
}

// Nothing lost: every 202 of the accept path left its delivery pending on disk. Counted by the process,
// then again in the file once the process has exited without closing the store (as after a crash),
// so at 'write' too it is what the file holds, not what the process remembers.
const pendingOf = async (v: AcceptVariant) => (await accepting[v].proc.call<Record<string, number>>('pending'))[subscribers[0]!.name] ?? 0;
const pending = { product: await pendingOf('product'), write: await pendingOf('write') };
const fsync = await fdatasyncMs(accepting.product.dir);
await Promise.all([load.stop(), bare.stop(), accepting.product.proc.stop(), accepting.write.proc.stop(), cli.stop(), receivers.stop()]);
// autocannon drops the calls still in flight when a run ends (at most one per connection): the server
// may have kept those without their 202 being counted, never the other way round.
const inFlightAtEnds = (flags.connections + flags.saturating) * (flags.rounds + 1);
for (const v of ['product', 'write'] as const) {
  const onDisk = pendingInFile(join(accepting[v].dir, DB_FILE));
  if (onDisk !== pending[v] || pending[v] < accepted[v] || pending[v] > accepted[v] + inFlightAtEnds) {
    throw new Error(`the accept path (${v}) answered 202 to ${accepted[v]} calls but ${pending[v]} deliveries are pending (${onDisk} in the file once the process exited)`);
  }
}

function pendingInFile(file: string): number {
  const db = new Database(file);
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const LABELS: Record<Callback, string> = {
  product: 'accept path, `--durability fsync` (default), worker not sending',
  write: 'accept path, `--durability write`, worker not sending',
  cli: '`kfp-notify callback` (fsync), worker delivering to a local receiver',
};
const m = machine();
const ms = (s: { median: number; spread: number }) => `${fmt(s.median)} (±${fmt(s.spread * 50, 2)}%)`;
const table = markdownTable(
  ['connections', 'callback', 'baseline req/s', 'callback req/s', 'ratio (round range)', 'p99 ms: baseline / callback', 'calls per commit, ms per commit', 'target', 'verdict'],
  levels.flatMap((l) =>
    callbacks.map((v) => [
      String(l.connections),
      LABELS[v],
      ms(l.rps[v].baseline),
      ms(l.rps[v].product),
      `${fmt(l.rps[v].ratio)}× (${fmt(l.rps[v].roundRatios.min)}–${fmt(l.rps[v].roundRatios.max)})`,
      `${fmt(l.p99[v].baseline.median)} / ${fmt(l.p99[v].product.median)}`,
      `${fmt(l.commits[v].callsPerCommit)}, ${fmt(l.commits[v].commitMs)}`,
      `≥ ${TARGET}×`,
      v === 'cli' ? `(${verdict(l.rps[v].ratio, TARGET, 'atLeast')})` : verdict(l.rps[v].ratio, TARGET, 'atLeast'),
    ]),
  ),
);
const file = writeResults('ingest', { machine: m, flags, target: TARGET, fdatasyncMs: fsync, accepted, pendingAfter: pending, levels });
process.stdout.write(
  [
    `## Callback ingest with the durable commit, ${flags.rounds} rounds of ${flags.duration} s`,
    '',
    `Machine: ${describeMachine(m)}. fdatasync on this disk (4 KiB appends): p50 ${fmt(fsync.p50)} ms, p99 ${fmt(fsync.p99)} ms.`,
    '',
    table,
    '',
    `Every 202 of the accept path left its delivery in the file (fsync: ${pending.product.toLocaleString('en-US')} pending for ${accepted.product.toLocaleString('en-US')} 202s counted; write: ${pending.write.toLocaleString('en-US')} for ${accepted.write.toLocaleString('en-US')}; the difference is calls cut off by the end of a run). The CLI's receiver got all ${accepted.cli.toLocaleString('en-US')} events.`,
    `±: half the range of the rounds, as a % of the median. Raw results: ${file}`,
    '',
  ].join('\n'),
);
