import { performance } from 'node:perf_hooks';
import { hookKeyFromSecret } from '../common/hook-token.js';
import { defaultInjectOptions, injectWorkflow } from '../webhook/inject/index.js';
import { numericFlags } from './lib/args.js';
import { deadline } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { interleaved } from './lib/rounds.js';
import { compare, fmt, verdict, type Comparison } from './lib/stats.js';
import { TYPICAL_FIXTURE, generatedWorkflow, typicalWorkflow } from './lib/workflows.js';

/**
 * The injector alone, in process: injectWorkflow(wf) against one JSON.parse + JSON.stringify of the
 * same Workflow (what any webhook pays at the least to read a Workflow and write one back).
 * Target: ≤ 2× that cost. Each round times a fixed number of calls of each side, alternating.
 *
 * Diagnostic, timed the same way: injectWorkflow given the `inputBytes` size hint, as the webhook
 * calls it (the request's length), which spares it the one serialization of the input it otherwise
 * makes for the size guard. (An earlier diagnostic timed structuredClone, compare and stringify of the
 * whole Workflow: the injector no longer makes those passes.)
 */

const TARGET = 2;
const flags = numericFlags('bench/injector', { rounds: 7, ms: 250 });
deadline(180_000, 'bench/injector');

// One option set for every size: the size limit is raised so that the largest Workflows are injected
// (and so measured) rather than skipped as too large; a size limit only changes the outcome, not the work.
const opts = { ...defaultInjectOptions({ hookKey: hookKeyFromSecret('bench-hook-key-not-a-secret-0123456789') }), sizeLimitBytes: 64 * 2 ** 20 };

let sink = 0; // results land here so no call can be optimized away

function timePerCall(fn: () => unknown, calls: number): number {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    const r = fn();
    sink += r === undefined ? 0 : 1;
  }
  return ((performance.now() - t0) * 1000) / calls; // µs
}

/** How many calls fill about `ms` (after a first warm-up pass). */
function callsFor(fn: () => unknown, ms: number): number {
  timePerCall(fn, 3);
  const us = timePerCall(fn, 5);
  return Math.max(5, Math.ceil((ms * 1000) / us));
}

interface Case {
  name: string;
  wf: Record<string, unknown>;
}

const cases: Case[] = [{ name: `typical (${TYPICAL_FIXTURE.split('/').pop()})`, wf: typicalWorkflow() }, ...[10, 100, 500, 2000].map((n) => ({ name: `generated, ${n} steps`, wf: generatedWorkflow(n) }))];

const PASSES = ['hinted'] as const;

interface Row {
  name: string;
  bytes: number;
  patchOps: number;
  cmp: Comparison;
  /** injectWorkflow with the size hint, against the baseline. */
  passes: Record<(typeof PASSES)[number], Comparison>;
}

const rows: Row[] = [];
for (const c of cases) {
  const text = JSON.stringify(c.wf);
  const first = injectWorkflow(c.wf, opts);
  if (first.outcome !== 'injected') throw new Error(`${c.name}: expected the Workflow to be injected, got: ${first.reason}`);
  const hinted = { ...opts, inputBytes: Buffer.byteLength(text) };
  const ops = {
    product: () => injectWorkflow(c.wf, opts),
    baseline: () => JSON.stringify(JSON.parse(text)),
    hinted: () => injectWorkflow(c.wf, hinted),
  };
  const variants = ['product', 'baseline', ...PASSES] as const;
  const calls = Object.fromEntries(variants.map((v) => [v, callsFor(ops[v], flags.ms)])) as Record<(typeof variants)[number], number>;
  const runs = await interleaved(variants, flags.rounds, async (v) => timePerCall(ops[v], calls[v]));
  const passes = Object.fromEntries(PASSES.map((p) => [p, compare(runs[p], runs.baseline)])) as Row['passes'];
  rows.push({ name: c.name, bytes: Buffer.byteLength(text), patchOps: first.patch.length, cmp: compare(runs.product, runs.baseline), passes });
}

const m = machine();
const table = markdownTable(
  ['Workflow', 'JSON bytes', 'baseline: JSON.parse + stringify, µs', 'injectWorkflow, µs', 'ratio (round range)', 'target', 'verdict', 'diagnostic: with the inputBytes hint, × baseline (round range)'],
  rows.map((r) => [
    r.name,
    r.bytes.toLocaleString('en-US'),
    `${fmt(r.cmp.baseline.median)} (±${fmt(r.cmp.baseline.spread * 50, 2)}%)`,
    `${fmt(r.cmp.product.median)} (±${fmt(r.cmp.product.spread * 50, 2)}%)`,
    `${fmt(r.cmp.ratio)}× (${fmt(r.cmp.roundRatios.min)}–${fmt(r.cmp.roundRatios.max)})`,
    `≤ ${TARGET}×`,
    verdict(r.cmp.ratio, TARGET, 'atMost'),
    `${fmt(r.passes.hinted.ratio)}× (${fmt(r.passes.hinted.roundRatios.min)}–${fmt(r.passes.hinted.roundRatios.max)})`,
  ]),
);
const file = writeResults('injector', { machine: m, flags, target: `injectWorkflow ≤ ${TARGET}× JSON.parse+stringify`, rows, sink });
process.stdout.write(`## Injector alone (in process), ${flags.rounds} rounds\n\nMachine: ${describeMachine(m)}\n\n${table}\n\n±: half the range of the rounds, as a % of the median. Raw results: ${file}\n`);
