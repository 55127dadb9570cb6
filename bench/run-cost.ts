import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hookKeyFromSecret } from '../common/hook-token.js';
import { parseDocuments } from '../common/yaml-docs.js';
import type { Workflow } from '../common/kfp/workflow-types.js';
import { asCreatedByKfp } from '../cli/demo/kfp-api-server.js';
import { injectWorkflow } from '../webhook/inject/index.js';
import { defaultInjectOptions, type StepHooks } from '../webhook/inject/options.js';
import { markdownTable, writeChart, writeResults } from './lib/report.js';
import { runCost, type RunCost } from './lib/run-cost-model.js';
import { lineChart } from './lib/svg-chart.js';
import { FIXTURES_DIR } from './lib/workflows.js';

/**
 * `npm run bench:run-cost`: what notifications cost a run, per `stepHooks` policy, for every shared
 * fixture and for generated pipelines of 1 to 1,000 steps (a chain, a wide fan-out, a ParallelFor):
 * hook executions and pods added per run, how many of them lie on the critical path, and the
 * wall-clock that adds at 3 s and 10 s per pod start, beside kfp-event-handler's 0 (it watches
 * Workflows and adds nothing to a run). Computed from the injected Workflow by the model in
 * bench/lib/run-cost-model.ts (Argo's DAG semantics; no cluster). Deterministic: no rounds needed.
 */

const POLICIES: readonly StepHooks[] = ['all', 'failed', 'none'];
const POD_START_S = [3, 10] as const;
const SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
const SHAPES = ['chain', 'fan-out', 'ParallelFor'] as const;
type Shape = (typeof SHAPES)[number];
const hookKey = hookKeyFromSecret('bench-run-cost-hook-key-0123456789');
const RUN = { runId: '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e', runName: 'bench run', namespace: 'kubeflow' };

/** A KFP v1-shaped pipeline of `n` steps: one container template run by `n` chained tasks, `n` independent tasks, or one task over `n` items. */
function generated(shape: Shape, n: number): Workflow {
  const names = Array.from({ length: n }, (_, i) => `step-${i + 1}`);
  const tasks =
    shape === 'ParallelFor'
      ? [{ name: 'for-each', template: 'op', withItems: names }]
      : names.map((name, i) => ({ name, template: 'op', ...(shape === 'chain' && i > 0 ? { dependencies: [names[i - 1] as string] } : {}) }));
  const compiled: Workflow = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Workflow',
    metadata: { generateName: `${shape.toLowerCase()}-${n}-` },
    spec: { entrypoint: 'pipeline', templates: [{ name: 'pipeline', dag: { tasks } }, { name: 'op', container: { image: 'python:3.12', command: ['python', '-c', 'print(1)'] } }] },
  };
  return asCreatedByKfp(compiled, RUN);
}

function fixtures(): { name: string; wf: Workflow }[] {
  return ['kfp-v1-compiler', 'kfp-v2-argocompiler-2.5.0', 'kfp-v2-compiled-workflows-master'].flatMap((dir) =>
    readdirSync(join(FIXTURES_DIR, dir))
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => ({ name: `${dir}/${f}`, wf: asCreatedByKfp(parseDocuments(readFileSync(join(FIXTURES_DIR, dir, f), 'utf8'))[0] as Workflow, RUN) })),
  );
}

function costUnder(wf: Workflow, stepHooks: StepHooks): RunCost {
  const r = injectWorkflow(wf, defaultInjectOptions({ hookKey, stepHooks }));
  if (r.outcome !== 'injected') throw new Error(`not injected: ${r.reason}`);
  return runCost(r.workflow as Workflow);
}

const cell = (c: RunCost) => `${c.hookExecutions} / ${c.criticalPathHooks}`;
const seconds = (c: RunCost, s: number) => `${c.criticalPathHooks * s}`;

const fixtureRows = fixtures().map(({ name, wf }) => {
  const costs = POLICIES.map((p) => costUnder(wf, p));
  return { name, costs };
});
const generatedRows = SHAPES.flatMap((shape) => SIZES.map((n) => ({ shape, n, costs: POLICIES.map((p) => costUnder(generated(shape, n), p)) })));

const out: string[] = [];
out.push('Every step succeeds. Each cell: hook executions (= pods added, container mode) / of them on the critical path.');
out.push('kfp-event-handler: 0 / 0 for every pipeline (it watches Workflows; it adds nothing to a run).\n');
out.push(markdownTable(['fixture', ...POLICIES.map((p) => `stepHooks: ${p}`), `all: +s at ${POD_START_S[0]} s / ${POD_START_S[1]} s per pod`, `failed: +s at ${POD_START_S[0]} s / ${POD_START_S[1]} s`], fixtureRows.map((r) => [
  r.name,
  ...r.costs.map(cell),
  `${seconds(r.costs[0] as RunCost, POD_START_S[0])} / ${seconds(r.costs[0] as RunCost, POD_START_S[1])}`,
  `${seconds(r.costs[1] as RunCost, POD_START_S[0])} / ${seconds(r.costs[1] as RunCost, POD_START_S[1])}`,
])));
out.push('');
const picked = generatedRows.filter((r) => [1, 10, 100, 1000].includes(r.n));
out.push(markdownTable(['generated', 'steps', ...POLICIES.map((p) => `stepHooks: ${p}`), `all: +s at ${POD_START_S[0]} / ${POD_START_S[1]} s per pod`, `failed: +s at ${POD_START_S[0]} / ${POD_START_S[1]} s`, 'kfp-event-handler'], picked.map((r) => [
  r.shape,
  String(r.n),
  ...r.costs.map(cell),
  `${seconds(r.costs[0] as RunCost, POD_START_S[0])} / ${seconds(r.costs[0] as RunCost, POD_START_S[1])}`,
  `${seconds(r.costs[1] as RunCost, POD_START_S[0])} / ${seconds(r.costs[1] as RunCost, POD_START_S[1])}`,
  '0 / 0',
])));
process.stdout.write(`${out.join('\n')}\n`);

// The issue's budget, checked on every pipeline: under the default (failed) a run whose steps all succeed pays at most 2 executions, 1 on its critical path.
const over = [...fixtureRows.map((r) => ({ name: r.name, c: r.costs[1] as RunCost })), ...generatedRows.map((r) => ({ name: `${r.shape} ${r.n}`, c: r.costs[1] as RunCost }))].filter(
  ({ c }) => c.hookExecutions > 2 || c.criticalPathHooks > 1,
);
process.stdout.write(over.length === 0 ? '\nstepHooks failed: every pipeline within 2 hook executions, 1 on the critical path.\n' : `\nOVER BUDGET under stepHooks failed: ${over.map((o) => `${o.name} ${cell(o.c)}`).join(', ')}\n`);

const at10 = (shape: Shape, policy: number) => generatedRows.filter((r) => r.shape === shape).map((r) => ({ x: r.n, y: (r.costs[policy] as RunCost).criticalPathHooks * POD_START_S[1] }));
const chart = writeChart(
  'run-cost-critical-path-vs-steps.svg',
  lineChart({
    title: 'Time notifications add to a run’s critical path (10 s per pod start; kfp-event-handler: 0)',
    xLabel: 'steps in the pipeline (log scale)',
    yLabel: 'added critical-path time, s (log scale)',
    logX: true,
    logY: true,
    series: [
      { name: 'all, chain', points: at10('chain', 0) },
      { name: 'all, fan-out', points: at10('fan-out', 0) },
      { name: 'all, ParallelFor', points: at10('ParallelFor', 0) },
      { name: 'failed or none, any', points: at10('chain', 1), dashed: true },
    ],
  }),
);
const results = writeResults('run-cost', { podStartSeconds: POD_START_S, policies: POLICIES, fixtures: fixtureRows, generated: generatedRows });
process.stdout.write(`\nchart: ${chart}\nresults: ${results}\n`);
if (over.length > 0) process.exitCode = 1;
