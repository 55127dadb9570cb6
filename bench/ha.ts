import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hookKeyFromSecret, newHookKeySecret } from '../common/hook-token.js';
import { startNatsServer } from '../test/helpers/nats-server.js';
import { numericFlags } from './lib/args.js';
import { ID_PLACEHOLDER, formBody, hookHeaders, hookUrl, nodeExitFields } from './lib/hook-calls.js';
import { assertAllOk, startLoadGenerator } from './lib/load.js';
import { benchDir, deadline, memoryOf, script, startNode, startRpcChild, type Proc } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { interleaved, pause } from './lib/rounds.js';
import { compare, fmt, type Comparison } from './lib/stats.js';
import type { ReceiversReady } from './servers/receivers.js';

/**
 * The callback on NATS JetStream with 1, 2 and 3 replicas beside the SQLite store (the baseline), in
 * one run, each variant a set of real `kfp-notify callback` processes with 3 subscribers on one
 * receiver process, against one real nats-server (JetStream, file storage) on loopback:
 * - ingest: hook calls (each a new event) for `duration` s at `connections` connections spread evenly
 *   over the replicas; 202s per second, the worker delivering meanwhile;
 * - fan-out: a burst of `burst` events, time until all burst × 3 deliveries reached the receiver;
 * - memory: `pending` events accepted for one subscriber that refuses connections, then each
 *   replica's RSS (and the SQLite process's).
 * Ratios are medians of rounds run interleaved (A B C D, D C B A, ...).
 */

const flags = numericFlags('bench/ha', { rounds: 3, duration: 3, connections: 32, burst: 2000, pending: 100_000, warmup: 300 });
deadline(900_000, 'bench/ha');

const dir = benchDir();
const secret = newHookKeySecret();
const key = hookKeyFromSecret(secret);
const nats = await startNatsServer();
const { proc: receivers, ready: rx } = await startRpcChild<ReceiversReady>('servers/receivers.js', { count: 1 }, { name: 'receivers' });
const SUBSCRIBERS = 3;
// One load generator per replica (autocannon runs one load per process), each driving its replica.
const loads = await Promise.all([0, 1, 2].map(() => startLoadGenerator()));

interface Cluster {
  name: string;
  urls: string[];
  procs: Proc[];
  token: string;
}

/** `replicas` callback processes (0 replicas = one on SQLite), with the subscribers given as ConfigMap data. */
async function startCluster(name: string, replicas: number, subscribersYaml: string, extra: readonly string[] = []): Promise<Cluster> {
  const root = join(dir, name);
  const procs: Proc[] = [];
  const urls: string[] = [];
  const count = Math.max(1, replicas);
  for (let i = 0; i < count; i++) {
    const d = join(root, `r${i}`);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileSync(join(d, 'hook-key'), `${secret}\n`, { mode: 0o600 });
    writeFileSync(join(d, 'subscribers.yaml'), subscribersYaml);
    const store = replicas === 0 ? [] : ['--store', nats.url, '--nats-prefix', name];
    const shared = i === 0 ? [] : ['--admin-token-file', join(root, 'r0', 'admin-token')];
    const p = startNode(
      script('servers/cli.js'),
      ['callback', '--no-cluster', '--host', '127.0.0.1', '--port', '0', '--data-dir', d, '--subscribers', join(d, 'subscribers.yaml'), ...store, ...shared, ...extra],
      { name: `${name}-r${i}`, env: { KUBERNETES_SERVICE_HOST: '' } },
    );
    urls.push(await p.waitForLog((l) => (l.msg === 'callback listening' && typeof l.url === 'string' ? l.url : undefined)));
    procs.push(p);
  }
  return { name, urls, procs, token: readFileSync(join(root, 'r0', 'admin-token'), 'utf8').trim() };
}

const toReceiver = Array.from({ length: SUBSCRIBERS }, (_, i) => `r${i}:\n  url: ${rx.urls[0]}\n  maxConcurrency: 16\n`).join('');
const variants = ['sqlite', 'nats-1', 'nats-2', 'nats-3'] as const;
type Variant = (typeof variants)[number];
const replicasOf: Record<Variant, number> = { sqlite: 0, 'nats-1': 1, 'nats-2': 2, 'nats-3': 3 };
const clusters = {} as Record<Variant, Cluster>;
for (const v of variants) clusters[v] = await startCluster(v, replicasOf[v], toReceiver);

const headers = hookHeaders(key);
const body = formBody(nodeExitFields(`step-${ID_PLACEHOLDER}`));
/** Events answered 202 over the whole run: the receiver must get each SUBSCRIBERS times. */
let accepted = 0;

async function drained(timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await receivers.call<number[]>('received'))[0]! < accepted * SUBSCRIBERS) {
    if (Date.now() > until) throw new Error(`receiver got ${(await receivers.call<number[]>('received'))[0]} of ${accepted * SUBSCRIBERS} deliveries`);
    await pause(50);
  }
}

/** Hook calls spread over the replicas: for `durationS`, or `amount` in all. Returns 202s and seconds. */
async function hookLoad(c: Cluster, opts: { durationS: number; connections: number; amount?: number }): Promise<{ ok: number; seconds: number }> {
  const n = c.urls.length;
  const started = performance.now();
  const results = await Promise.all(
    c.urls.map((u, i) =>
      loads[i]!.run({
        url: hookUrl(u),
        method: 'POST',
        body,
        headers,
        connections: Math.max(1, Math.round(opts.connections / n)),
        durationS: opts.durationS,
        ...(opts.amount !== undefined ? { amount: Math.ceil(opts.amount / n) } : {}),
        idReplacement: true,
      }),
    ),
  );
  for (const r of results) assertAllOk(`ha ${c.name}`, r);
  const ok = results.reduce((a, r) => a + r.ok, 0);
  accepted += ok;
  return { ok, seconds: opts.amount !== undefined ? (performance.now() - started) / 1000 : Math.max(...results.map((r) => r.durationS)) };
}

async function ingest(v: Variant, durationS: number): Promise<number> {
  const r = await hookLoad(clusters[v], { durationS, connections: flags.connections });
  await drained();
  return r.ok / r.seconds;
}

async function fanout(v: Variant): Promise<number> {
  const started = performance.now();
  await hookLoad(clusters[v], { durationS: 60, connections: flags.connections, amount: flags.burst });
  await drained();
  return (flags.burst * SUBSCRIBERS) / ((performance.now() - started) / 1000);
}

// Warm-up: a fixed number of calls per variant (a timed one can end before the first answer on a busy machine).
for (const v of variants) {
  await hookLoad(clusters[v], { durationS: 60, connections: flags.connections, amount: flags.warmup });
  await drained();
}
const ingestRuns = await interleaved(variants, flags.rounds, (v) => ingest(v, flags.duration));
const fanoutRuns = await interleaved(variants, flags.rounds, (v) => fanout(v));
const ingestCmp = Object.fromEntries(variants.map((v) => [v, compare(ingestRuns[v], ingestRuns.sqlite)])) as Record<Variant, Comparison>;
const fanoutCmp = Object.fromEntries(variants.map((v) => [v, compare(fanoutRuns[v], fanoutRuns.sqlite)])) as Record<Variant, Comparison>;
for (const v of variants) await Promise.all(clusters[v].procs.map((p) => p.stop()));

// Memory: `pending` events for a subscriber that refuses connections (nothing is delivered), on SQLite
// and on 3 replicas; RSS of each process once every replica counts them all as pending.
const refused = `down:\n  url: http://127.0.0.1:9/\n  maxConcurrency: 4\n`;
async function depthOf(c: Cluster, url: string): Promise<number> {
  const res = await fetch(`${url}/v1/subscribers`, { headers: { authorization: `Bearer ${c.token}` } });
  const j = (await res.json()) as { subscribers: { name: string; queueDepth: number }[] };
  return j.subscribers.find((s) => s.name === 'down')?.queueDepth ?? 0;
}
const memory: Record<string, { replica: number; pending: number; rssMiB: number; peakMiB: number }[]> = {};
for (const [name, replicas] of [['mem-nats-3', 3], ['mem-sqlite', 0]] as const) {
  // SQLite at --durability write: only to load it faster; what it holds in memory is the same.
  const c = await startCluster(name, replicas, refused, replicas === 0 ? ['--durability', 'write'] : []);
  const before = accepted;
  const r = await hookLoad(c, { durationS: 600, connections: 64, amount: flags.pending });
  accepted = before; // nothing of these reaches the receiver
  const until = Date.now() + 120_000;
  for (const u of c.urls) while ((await depthOf(c, u)) < r.ok && Date.now() < until) await pause(200);
  memory[name] = await Promise.all(c.urls.map(async (u, i) => ({ replica: i, pending: await depthOf(c, u), ...memoryOf(c.procs[i]!.pid) })));
  await Promise.all(c.procs.map((p) => p.stop()));
}

await Promise.all([...loads.map((l) => l.stop()), receivers.stop()]);
await nats.dispose();

const m = machine();
const spread = (s: { median: number; spread: number }) => `${fmt(s.median)} (±${fmt(s.spread * 50, 2)}%)`;
const LABEL: Record<Variant, string> = { sqlite: 'SQLite, 1 process (baseline)', 'nats-1': 'JetStream, 1 replica', 'nats-2': 'JetStream, 2 replicas', 'nats-3': 'JetStream, 3 replicas' };
const table = markdownTable(
  ['store', 'ingest 202/s', 'ratio to SQLite (round range)', 'fan-out deliveries/s', 'ratio to SQLite (round range)'],
  variants.map((v) => [
    LABEL[v],
    spread(ingestCmp[v].product),
    `${fmt(ingestCmp[v].ratio)}× (${fmt(ingestCmp[v].roundRatios.min)}–${fmt(ingestCmp[v].roundRatios.max)})`,
    spread(fanoutCmp[v].product),
    `${fmt(fanoutCmp[v].ratio)}× (${fmt(fanoutCmp[v].roundRatios.min)}–${fmt(fanoutCmp[v].roundRatios.max)})`,
  ]),
);
const memTable = markdownTable(
  ['store', 'process', 'pending deliveries it sees', 'RSS MiB', 'peak RSS MiB'],
  Object.entries(memory).flatMap(([name, rows]) => rows.map((r) => [name === 'mem-sqlite' ? 'SQLite (`--durability write`)' : 'JetStream, 3 replicas', `replica ${r.replica}`, r.pending.toLocaleString('en-US'), fmt(r.rssMiB), fmt(r.peakMiB)])),
);
const file = writeResults('ha', { machine: m, flags, ingest: ingestCmp, fanout: fanoutCmp, memory });
process.stdout.write(
  [
    `## The callback on NATS JetStream: 1, 2, 3 replicas beside SQLite, ${flags.rounds} rounds`,
    '',
    `Machine: ${describeMachine(m)}. One nats-server (JetStream, file storage) on loopback; ${SUBSCRIBERS} subscribers on one receiver process; ingest ${flags.duration} s at ${flags.connections} connections spread over the replicas; fan-out: a burst of ${flags.burst} events until all ${flags.burst * SUBSCRIBERS} deliveries arrived.`,
    '',
    table,
    '',
    `Memory with ${flags.pending.toLocaleString('en-US')} events pending for a subscriber that refuses connections:`,
    '',
    memTable,
    '',
    `±: half the range of the rounds, as a % of the median. Raw results: ${file}`,
    '',
  ].join('\n'),
);
