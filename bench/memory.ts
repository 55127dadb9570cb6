import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { DB_FILE } from '../callback/runtime.js';
import { openSqliteStore } from '../callback/store/sqlite.js';
import { newHookKeySecret } from '../common/hook-token.js';
import { numericFlags } from './lib/args.js';
import { nodeEvents } from './lib/hook-calls.js';
import { benchDir, deadline, memoryOf, profiled, script, startNode, startRpcChild } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { interleaved, pause } from './lib/rounds.js';
import { fmt, summarize, verdict } from './lib/stats.js';
import type { ReceiversReady } from './servers/receivers.js';

/**
 * Memory: `kfp-notify callback` (the real CLI) started on a data dir holding 100,000 pending
 * deliveries (10,000 events × 10 subscribers), its RSS sampled from /proc for a while, three ways:
 * - empty: the same process on an empty store (the reference);
 * - down: every subscriber refuses connections, so the worker attempts and reschedules all the time;
 * - stalled: every subscriber holds requests past the 15 s timeout, so 40 sends stay in flight.
 * Target: RSS ≤ 150 MB (10^6 bytes) with the deliveries pending; judged on the highest peak (VmHWM).
 */

const flags = numericFlags('bench/memory', { rounds: 5, seconds: 8, events: 10_000, subscribers: 10 });
deadline(280_000, 'bench/memory');
const TARGET_MB = 150;
const MB = 1e6 / 2 ** 20; // MiB per MB

const dir = benchDir();
const template = join(dir, 'template');
mkdirSync(template, { recursive: true, mode: 0o700 });
const names = Array.from({ length: flags.subscribers }, (_, i) => `sub-${i}`);
{
  const store = openSqliteStore({ file: join(template, DB_FILE) });
  const events = nodeEvents(flags.events);
  for (let i = 0; i < events.length; i += 1000) {
    await store.accept(events.slice(i, i + 1000).map((event) => ({ event, subscribers: names })), Date.now());
  }
  const depth = Object.values(await store.queueDepth()).reduce((a, b) => a + b, 0);
  await store.close();
  if (depth !== flags.events * flags.subscribers) throw new Error(`the template store holds ${depth} pending deliveries`);
}
const pendingAtStart = flags.events * flags.subscribers;
const dbBytes = statSync(join(template, DB_FILE)).size;

/** A port nothing listens on: connections to it are refused at once. */
async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise((resolve) => s.close(resolve));
  return port;
}
const downUrl = `http://127.0.0.1:${await refusedPort()}/hook`;
const { proc: receivers, ready: rx } = await startRpcChild<ReceiversReady>('servers/receivers.js', { count: flags.subscribers }, { name: 'receivers' });
await receivers.call('reset', Object.fromEntries(names.map((_, i) => [i, 600_000])));

type Variant = 'empty' | 'down' | 'stalled';
interface RunResult {
  peakMiB: number;
  maxSampledMiB: number;
  endMiB: number;
  pendingAtEnd: number;
}

let runNo = 0;
async function run(v: Variant): Promise<RunResult> {
  const dataDir = join(dir, `run-${++runNo}`);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (v !== 'empty') for (const f of [DB_FILE, `${DB_FILE}-wal`]) if (existsSync(join(template, f))) cpSync(join(template, f), join(dataDir, f));
  writeFileSync(join(dataDir, 'hook-key'), `${newHookKeySecret()}\n`, { mode: 0o600 });
  const urls = v === 'stalled' ? rx.urls : names.map(() => downUrl);
  writeFileSync(join(dataDir, 'subscribers.yaml'), names.map((n, i) => `${n}: ${urls[i]}\n`).join(''));
  const cli = startNode(
    script('servers/cli.js'),
    ['callback', '--no-cluster', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--subscribers', join(dataDir, 'subscribers.yaml')],
    { name: `callback-${v}`, nodeArgs: profiled(), env: { KUBERNETES_SERVICE_HOST: '' } },
  );
  try {
    const url = await cli.waitForLog((l) => (l.msg === 'callback listening' && typeof l.url === 'string' ? l.url : undefined));
    let maxSampled = 0;
    const until = Date.now() + flags.seconds * 1000;
    while (Date.now() < until) {
      maxSampled = Math.max(maxSampled, memoryOf(cli.pid).rssMiB);
      await pause(200);
    }
    const mem = memoryOf(cli.pid);
    const pendingAtEnd = await pending(url, readFileSync(join(dataDir, 'admin-token'), 'utf8').trim());
    return { peakMiB: mem.peakMiB, maxSampledMiB: Math.max(maxSampled, mem.rssMiB), endMiB: mem.rssMiB, pendingAtEnd };
  } finally {
    await receivers.call('reset', Object.fromEntries(names.map((_, i) => [i, 600_000])));
    await cli.stop(3000);
  }
}

async function pending(base: string, adminToken: string): Promise<number> {
  const res = await request(`${base}/v1/subscribers`, { headers: { authorization: `Bearer ${adminToken}` } });
  const body = (await res.body.json()) as { subscribers: { queueDepth: number }[] };
  return body.subscribers.reduce((a, s) => a + s.queueDepth, 0);
}

const runs = await interleaved(['empty', 'down', 'stalled'] as const, flags.rounds, async (v) => {
  const r = await run(v);
  process.stderr.write(`${v}: peak ${fmt(r.peakMiB / MB)} MB, end ${fmt(r.endMiB / MB)} MB, ${r.pendingAtEnd} pending\n`);
  return r;
});
await receivers.stop();

const m = machine();
const mb = (mib: number) => fmt(mib / MB);
const rows = (['empty', 'down', 'stalled'] as const).map((v) => {
  const peak = summarize(runs[v].map((r) => r.peakMiB));
  const end = summarize(runs[v].map((r) => r.endMiB));
  const left = summarize(runs[v].map((r) => r.pendingAtEnd));
  return [
    v === 'empty' ? 'empty store (reference)' : v === 'down' ? '100k pending, subscribers refusing connections' : '100k pending, subscribers stalled (40 sends in flight)',
    v === 'empty' ? '0' : pendingAtStart.toLocaleString('en-US'),
    v === 'empty' ? '0' : fmt(left.median),
    `${mb(peak.median)} (max ${mb(peak.max)})`,
    `${mb(end.median)} (max ${mb(end.max)})`,
    v === 'empty' ? '—' : `≤ ${TARGET_MB} MB`,
    v === 'empty' ? '—' : verdict(peak.max / MB, TARGET_MB, 'atMost'),
  ];
});
const table = markdownTable(['callback process', 'pending at start', 'pending at end (median)', 'peak RSS, MB: median (max)', `RSS after ${flags.seconds} s, MB`, 'target', 'verdict'], rows);
const file = writeResults('memory', { machine: m, flags, targetMB: TARGET_MB, dbBytes, pendingAtStart, runs });
process.stdout.write(
  [
    `## Memory with ${pendingAtStart.toLocaleString('en-US')} pending deliveries, ${flags.rounds} runs each, ${flags.seconds} s sampled`,
    '',
    `Machine: ${describeMachine(m)}. SQLite file: ${fmt(dbBytes / 1e6)} MB.`,
    '',
    table,
    '',
    `Peak: VmHWM of the callback process (the kernel's own high-water mark). Raw results: ${file}`,
    '',
  ].join('\n'),
);
