import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { loadHookKeys } from '../common/data-dir.js';
import { silentLogger } from '../common/logger.js';
import { parseDocuments } from '../common/yaml-docs.js';
import type { Workflow } from '../common/kfp/workflow-types.js';
import { startClusterServices } from '../callback/cluster/services.js';
import { fixedSubscribers, startCallback } from '../callback/runtime.js';
import { parseSubscribers } from '../callback/subscribers/parse.js';
import { argoStatus } from '../cli/demo/argo-status.js';
import { hookRequest } from '../cli/demo/hook-request.js';
import { asCreatedByKfp } from '../cli/demo/kfp-api-server.js';
import { simulateRun } from '../cli/demo/simulate-run.js';
import { startWorkflowApiServer } from '../cli/demo/workflow-api-server.js';
import { injectWorkflow } from '../webhook/inject/index.js';
import { defaultInjectOptions, type StepHooks } from '../webhook/inject/options.js';
import { numericFlags } from './lib/args.js';
import { deadline } from './lib/procs.js';
import { markdownTable, writeResults } from './lib/report.js';
import { fmt, quantile, summarize } from './lib/stats.js';
import { FIXTURES_DIR } from './lib/workflows.js';

/**
 * `npm run bench:watcher-delay`: how long a fact the status watcher reports at once (a step's success
 * under `stepHooks: failed`) takes from the Workflow status update to the subscriber, beside the hook
 * path's delay for the same fact (a node-exit hook call under `stepHooks: all`, from the POST to the
 * subscriber), measured in the same process, rounds interleaved. The real callback (SQLite store,
 * fsync, real HTTP subscriber) and its real cluster side (watcher and enricher over
 * @kubernetes/client-node) against a local stand-in for the Kubernetes API (cli/demo/workflow-api-server.ts),
 * with a --watch-grace of 60 s that the measured fact must not wait for.
 */

const flags = numericFlags('bench/watcher-delay', { rounds: 30 });
deadline(300_000, 'bench/watcher-delay');
const FIXTURE = 'kfp-v2-argocompiler-2.5.0/hello_world.yaml';

const arrivals = new Map<string, number>();
const waiters = new Map<string, () => void>();
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const at = performance.now();
    const e = JSON.parse(body) as { EventType: string; KfpRunId: string };
    const key = `${e.KfpRunId}/${e.EventType}`;
    arrivals.set(key, at);
    waiters.get(key)?.();
    res.writeHead(204).end();
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
const arrival = (key: string): Promise<number> =>
  new Promise((resolve) => {
    const known = arrivals.get(key);
    if (known !== undefined) return resolve(known);
    waiters.set(key, () => resolve(arrivals.get(key) as number));
  });

const dataDir = mkdtempSync(join(tmpdir(), 'kfp-notify-watcher-delay-'));
const api = await startWorkflowApiServer();
const registry = new Registry();
const cluster = await startClusterServices({ kubeConfig: api.kubeConfig(), log: silentLogger(), registry, watchGraceMs: 60_000 });
const { subscribers } = parseSubscribers({ receiver: receiverUrl }, () => undefined);
const callback = await startCallback({ dataDir, log: silentLogger(), listen: { host: '127.0.0.1', port: 0 }, subscribers: fixedSubscribers(subscribers), registry, cluster });
const hookKey = loadHookKeys({ dataDir })[0];
if (!hookKey) throw new Error('no hook key');
const compiled = parseDocuments(readFileSync(join(FIXTURES_DIR, FIXTURE), 'utf8'))[0] as Workflow;

/** One run of the fixture, injected under the policy, played to its end. */
function played(stepHooks: StepHooks, i: number) {
  const runId = randomUUID();
  const namespace = 'kubeflow';
  const created = asCreatedByKfp(compiled, { runId, runName: `delay ${i}`, namespace });
  const injected = injectWorkflow(created, defaultInjectOptions({ hookKey: hookKey as NonNullable<typeof hookKey>, callbackUrl: callback.url ?? '', stepHooks })).workflow as Workflow;
  const workflowName = `hello-world-${stepHooks}-${i}`;
  const workflowUid = randomUUID();
  const run = simulateRun(injected, { workflowName, workflowUid, namespace });
  const object = { ...injected, metadata: { ...injected.metadata, name: workflowName, namespace, uid: workflowUid } };
  return { runId, injected, run, finished: { ...object, status: argoStatus(run, workflowName, 'finished', new Date()) } };
}

const watcherMs: number[] = [];
const hookMs: number[] = [];
for (let i = 0; i < flags.rounds; i++) {
  // Watcher path: the status update is the only thing that reports the step's success.
  const w = played('failed', i);
  const applied = performance.now();
  api.apply(w.finished);
  watcherMs.push((await arrival(`${w.runId}/WorkflowNodeSucceeded`)) - applied);

  // Hook path (baseline): the status is there first (as Argo writes it before the hook pod runs), then the call.
  const h = played('all', i);
  api.apply(h.finished);
  const firing = h.run.firings.find((f) => f.parameters.event === 'node-exit');
  if (!firing) throw new Error('no node-exit firing');
  const req = hookRequest(h.injected, firing);
  const posted = performance.now();
  const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body });
  if (res.status !== 202) throw new Error(`hook call answered ${res.status}`);
  hookMs.push((await arrival(`${h.runId}/WorkflowNodeSucceeded`)) - posted);
}

const row = (name: string, v: number[]) => [name, fmt(quantile(v, 0.5)), fmt(quantile(v, 0.95)), fmt(Math.max(...v))];
process.stdout.write(
  `${markdownTable(['path (status update or hook call → subscriber)', 'median ms', 'p95 ms', 'max ms'], [row('watcher, reported at once', watcherMs), row('hook call (baseline)', hookMs)])}\n`,
);
process.stdout.write(`\nratio of medians, watcher / hook: ${fmt(quantile(watcherMs, 0.5) / quantile(hookMs, 0.5))} (${flags.rounds} rounds each, interleaved)\n`);
const results = writeResults('watcher-delay', { rounds: flags.rounds, watcher: summarize(watcherMs), hook: summarize(hookMs), watcherMs, hookMs });
process.stdout.write(`results: ${results}\n`);

await callback.close();
await api.close();
receiver.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
