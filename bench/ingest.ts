import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hookKeyFromSecret, newHookKeySecret } from '../common/hook-token.js';
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
 * a delivery row fdatasync'ed to a real SQLite file. Three processes take the load in turn:
 *
 * - accept path, worker kept from sending (bench/servers/ingest-only.ts): the target is judged here;
 * - `kfp-notify callback` (the real CLI), its worker delivering to a fast receiver in another process;
 * - a bare Fastify POST route parsing the same form body (bench/servers/bare-http.ts): the baseline.
 * Target: ingest rate ≥ 50% of the baseline's, at `connections` concurrent hook calls (10: each waits
 * for its fsync, so the rate is bounded by fsync latency) and at `saturating` (256: enough calls share
 * each fsync that both servers run out of CPU, so the rate is the capacity).
 */

const flags = numericFlags('bench/ingest', { rounds: 5, duration: 3, connections: 10, saturating: 256, warmup: 1 });
deadline(240_000, 'bench/ingest');
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

const ingestDir = dataDir('ingest-only');
const { proc: ingestOnly, ready: ingestReady } = await startRpcChild<{ url: string }>('servers/ingest-only.js', { dataDir: ingestDir, subscribers }, { name: 'ingest-only', nodeArgs: profiled() });

const cliDir = dataDir('cli');
writeFileSync(join(cliDir, 'subscribers.yaml'), `receiver: ${receiverUrl}\n`);
const cli = startNode(
  script('servers/cli.js'),
  ['callback', '--no-cluster', '--host', '127.0.0.1', '--port', '0', '--data-dir', cliDir, '--subscribers', join(cliDir, 'subscribers.yaml')],
  { name: 'callback', nodeArgs: profiled(), env: { KUBERNETES_SERVICE_HOST: '' } },
);
const cliUrl = await cli.waitForLog((l) => (l.msg === 'callback listening' && typeof l.url === 'string' ? l.url : undefined));
const { proc: bare, ready: bareReady } = await startRpcChild<{ url: string }>('servers/bare-http.js', {}, { name: 'bare-http' });
const load = await startLoadGenerator();

type Variant = 'product' | 'cli' | 'baseline';
const bases: Record<Variant, string> = { product: ingestReady.url, cli: cliUrl, baseline: bareReady.url };
const headers = hookHeaders(key);
const body = formBody(nodeExitFields(`step-${ID_PLACEHOLDER}`));
/** 2xx answers per variant, the sanity call and warm-ups included: what the store must hold afterwards. */
const accepted: Record<Variant, number> = { product: 0, cli: 0, baseline: 0 };

for (const v of ['product', 'cli'] as const) {
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
  rps: Record<'product' | 'cli', Comparison>;
  p99: Record<'product' | 'cli', Comparison>;
  /** Calls per commit (fsync) and ms per commit over this level's runs. */
  commits: Record<'product' | 'cli', { callsPerCommit: number; commitMs: number }>;
}

const variants = ['product', 'cli', 'baseline'] as const;
const levels: Level[] = [];
for (const connections of [flags.connections, flags.saturating]) {
  for (const v of variants) await run(v, flags.warmup, connections);
  const before = { product: await groupCommits(bases.product), cli: await groupCommits(bases.cli) };
  const runs = await interleaved(variants, flags.rounds, (v) => run(v, flags.duration, connections));
  const commits = async (v: 'product' | 'cli') => {
    const after = await groupCommits(bases[v]);
    const n = after.commits - before[v].commits;
    return { callsPerCommit: (after.calls - before[v].calls) / n, commitMs: ((after.seconds - before[v].seconds) / n) * 1000 };
  };
  const rps = (v: Variant) => runs[v].map((r) => r.rps);
  const p99 = (v: Variant) => runs[v].map((r) => r.latencyMs.p99);
  const level: Level = {
    connections,
    runs,
    rps: { product: compare(rps('product'), rps('baseline')), cli: compare(rps('cli'), rps('baseline')) },
    p99: { product: compare(p99('product'), p99('baseline')), cli: compare(p99('cli'), p99('baseline')) },
    commits: { product: await commits('product'), cli: await commits('cli') },
  };
  levels.push(level);
  process.stderr.write(`${connections} connections: ${fmt(level.rps.product.ratio)}× (accept path), ${fmt(level.rps.cli.ratio)}× (CLI)\n`);
}

// Nothing lost: every 202 of the accept path left its delivery pending on disk.
const pending = (await ingestOnly.call<Record<string, number>>('pending'))[subscribers[0]!.name] ?? 0;
const fsync = await fdatasyncMs(ingestDir);
await Promise.all([load.stop(), bare.stop(), ingestOnly.stop(), cli.stop(), receivers.stop()]);
// autocannon drops the calls still in flight when a run ends (at most one per connection): the server
// may have kept those without their 202 being counted, never the other way round.
const inFlightAtEnds = (flags.connections + flags.saturating) * (flags.rounds + 1);
if (pending < accepted.product || pending > accepted.product + inFlightAtEnds) {
  throw new Error(`the accept path answered 202 to ${accepted.product} calls but ${pending} deliveries are pending`);
}

const m = machine();
const ms = (s: { median: number; spread: number }) => `${fmt(s.median)} (±${fmt(s.spread * 50, 2)}%)`;
const table = markdownTable(
  ['connections', 'callback', 'baseline req/s', 'callback req/s', 'ratio (round range)', 'p99 ms: baseline / callback', 'calls per fsync, ms per commit', 'target', 'verdict'],
  levels.flatMap((l) =>
    (['product', 'cli'] as const).map((v) => [
      String(l.connections),
      v === 'product' ? 'accept path, worker not sending' : '`kfp-notify callback`, worker delivering to a local receiver',
      ms(l.rps[v].baseline),
      ms(l.rps[v].product),
      `${fmt(l.rps[v].ratio)}× (${fmt(l.rps[v].roundRatios.min)}–${fmt(l.rps[v].roundRatios.max)})`,
      `${fmt(l.p99[v].baseline.median)} / ${fmt(l.p99[v].product.median)}`,
      `${fmt(l.commits[v].callsPerCommit)}, ${fmt(l.commits[v].commitMs)}`,
      `≥ ${TARGET}×`,
      v === 'product' ? verdict(l.rps[v].ratio, TARGET, 'atLeast') : `(${verdict(l.rps[v].ratio, TARGET, 'atLeast')})`,
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
    `Every 202 of the accept path left its delivery on disk (${pending.toLocaleString('en-US')} pending for ${accepted.product.toLocaleString('en-US')} 202s counted; the difference is calls cut off by the end of a run). The CLI's receiver got all ${accepted.cli.toLocaleString('en-US')} events.`,
    `±: half the range of the rounds, as a % of the median. Raw results: ${file}`,
    '',
  ].join('\n'),
);
