import { numericFlags } from './lib/args.js';
import { benchDir, deadline, profiled, startRpcChild } from './lib/procs.js';
import { CHARTS_DIR, describeMachine, machine, markdownTable, writeChart, writeResults } from './lib/report.js';
import { interleaved } from './lib/rounds.js';
import { compare, fmt, summarize, verdict, type Comparison } from './lib/stats.js';
import { barChart } from './lib/svg-chart.js';
import type { FanoutResult, FanoutRun } from './servers/engine.js';
import type { ReceiversReady } from './servers/receivers.js';

/**
 * Fan-out on loopback: deliveries per second of the real worker (SQLite queue, undici sender, default
 * subscriber settings: 4 at once each) against a bare undici client (`request`) posting the same
 * bodies to the same receivers, for 1, 10 and 100 subscribers; also, as diagnostics, the product's
 * sender alone and a bare client at undici's dispatch level (the API the sender uses). Both run in one engine process
 * (bench/servers/engine.ts); the receivers, answering 204 at once, run in another.
 * Target, at 10 subscribers: ≥ 50% of the bare client's rate.
 */

const flags = numericFlags('bench/fanout', { rounds: 5, deliveries: 8000 });
deadline(360_000, 'bench/fanout');
const COUNTS = [1, 10, 100];
const TARGET = { subscribers: 10, ratio: 0.5 };

const { proc: receivers, ready: rx } = await startRpcChild<ReceiversReady>('servers/receivers.js', { count: Math.max(...COUNTS) }, { name: 'receivers' });
const { proc: engine } = await startRpcChild<{ pid: number }>('servers/engine.js', { dir: benchDir() }, { name: 'engine', nodeArgs: profiled() });

type Variant = 'product' | 'baseline' | 'sender' | 'bareDispatch';

/** One timed run; the receivers must have got exactly what the engine says it delivered. */
async function run(v: Variant, subscribers: number, deliveries: number): Promise<number> {
  await receivers.call('reset');
  const spec: FanoutRun = { urls: rx.urls.slice(0, subscribers), events: Math.max(1, Math.round(deliveries / subscribers)) };
  const r = await engine.call<FanoutResult>(v, spec);
  const got = (await receivers.call<number[]>('received')).reduce((a, b) => a + b, 0);
  const want = spec.events * subscribers;
  if (r.failed > 0 || r.deliveries !== want || got < want) throw new Error(`${v}, ${subscribers} subscribers: ${r.deliveries} delivered, ${got} received of ${want}, ${r.failed} failed`);
  return r.deliveries / r.seconds;
}

interface Row {
  subscribers: number;
  events: number;
  cmp: Comparison;
  /** The product's sender alone against the bare client (a diagnostic). */
  sender: Comparison;
  /** The worker against the bare client at undici's dispatch level (a diagnostic). */
  dispatch: Comparison;
  runs: Record<Variant, number[]>;
}

const rows: Row[] = [];
for (const n of COUNTS) {
  const variants = ['product', 'baseline', 'sender', 'bareDispatch'] as const;
  for (const v of variants) await run(v, n, flags.deliveries / 4); // warm-up
  const runs = await interleaved(variants, flags.rounds, (v) => run(v, n, flags.deliveries));
  const cmp = compare(runs.product, runs.baseline);
  rows.push({ subscribers: n, events: Math.round(flags.deliveries / n), cmp, sender: compare(runs.sender, runs.baseline), dispatch: compare(runs.product, runs.bareDispatch), runs });
  process.stderr.write(`${n} subscribers: ${fmt(cmp.product.median)} vs ${fmt(cmp.baseline.median)} deliveries/s (${fmt(cmp.ratio)}×)\n`);
}
const storeUs: number[] = [];
for (let r = 0; r < flags.rounds; r++) storeUs.push(await engine.call<number>('store', { subscribers: TARGET.subscribers, events: flags.deliveries / TARGET.subscribers }));
const store = summarize(storeUs);
await Promise.all([engine.stop(), receivers.stop()]);

const m = machine();
const ms = (s: { median: number; spread: number }) => `${fmt(s.median)} (±${fmt(s.spread * 50, 2)}%)`;
const table = markdownTable(
  [
    'subscribers',
    'events × subscribers',
    'bare undici, deliveries/s',
    'worker, deliveries/s',
    'ratio (round range)',
    'target',
    'verdict',
    'diagnostic: sender alone, deliveries/s (ratio)',
    'diagnostic: bare undici dispatch, deliveries/s; worker ÷ it (round range)',
  ],
  rows.map((r) => [
    String(r.subscribers),
    `${r.events} × ${r.subscribers}`,
    ms(r.cmp.baseline),
    ms(r.cmp.product),
    `${fmt(r.cmp.ratio)}× (${fmt(r.cmp.roundRatios.min)}–${fmt(r.cmp.roundRatios.max)})`,
    r.subscribers === TARGET.subscribers ? `≥ ${TARGET.ratio}×` : '—',
    r.subscribers === TARGET.subscribers ? verdict(r.cmp.ratio, TARGET.ratio, 'atLeast') : '—',
    `${fmt(r.sender.product.median)} (${fmt(r.sender.ratio)}×)`,
    `${ms(r.dispatch.baseline)}; ${fmt(r.dispatch.ratio)}× (${fmt(r.dispatch.roundRatios.min)}–${fmt(r.dispatch.roundRatios.max)})`,
  ]),
);
const chart = writeChart(
  'delivery-rate-vs-subscribers.svg',
  barChart({
    title: 'Delivery rate against subscriber count (loopback, 204 receivers)',
    xLabel: 'subscribers',
    yLabel: 'deliveries per second',
    categories: rows.map((r) => String(r.subscribers)),
    series: [
      { name: 'kfp-notify worker', values: rows.map((r) => r.cmp.product.median) },
      { name: 'bare undici client', values: rows.map((r) => r.cmp.baseline.median) },
      { name: 'bare undici dispatch', values: rows.map((r) => r.dispatch.baseline.median) },
    ],
  }),
);
const file = writeResults('fanout', { machine: m, flags, target: TARGET, rows, storeUsPerDelivery: storeUs });
process.stdout.write(
  [
    `## Fan-out on loopback, ${flags.rounds} rounds of ${flags.deliveries} deliveries`,
    '',
    `Machine: ${describeMachine(m)}`,
    '',
    table,
    '',
    `Diagnostic: the store's bookkeeping alone (each lane claims its 4 slots in one pass, the outcomes of a pass are marked together; no HTTP), ${TARGET.subscribers} subscribers: ${fmt(store.median)} µs per delivery (±${fmt(store.spread * 50, 2)}%), a ceiling of ${fmt(1e6 / store.median)} deliveries/s.`,
    `±: half the range of the rounds, as a % of the median. Chart: ${chart.replace(`${CHARTS_DIR}/`, 'docs/charts/')}. Raw results: ${file}`,
    '',
  ].join('\n'),
);
