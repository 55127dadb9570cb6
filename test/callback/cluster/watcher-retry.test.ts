import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { hookKeyFromSecret } from '../../../common/hook-token.js';
import { startStatusWatcher, type StatusWatcher } from '../../../callback/cluster/watcher.js';
import { createIngest, type Ingest, type IngestResult } from '../../../callback/ingest.js';
import { normalizeHookCall, toWorkflowSnapshot } from '../../../callback/normalize.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import { factsFromWorkflow } from '../../../callback/status-events.js';
import type { KfpEvent } from '../../../callback/types.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import type { StepHooks } from '../../../webhook/inject/options.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { until } from './until.js';
import { admittedWorkflow, withStatus, type NodeSpec, type Wf } from './argo-status.js';
import { simulatedHookCalls } from './hook-sim.js';

/**
 * What the status watcher reports at once and what it leaves to a hook (the Workflow's stepHooks
 * policy), and a run retried from the KFP UI: the status KFP's GenerateRetryExecution writes (failed
 * pods and every `<wf>.onExit` node deleted, failed DAG nodes back to Running, phase Running), then the
 * new attempt's outcome. Against a fake Kubernetes API server and a real SQLite store.
 */

const HOOK_KEY = hookKeyFromSecret('watcher-test-hook-key-0123456789');
const T = (s: number) => new Date(Date.UTC(2030, 0, 1, 10, 0, s)).toISOString().replace('.000Z', 'Z');
const NOW = new Date(Date.UTC(2030, 0, 1, 11)).toISOString();

/** KFP v2 exit_handler.yaml, injected: exit-handler-1 { print-op-2 succeeds, fail-op fails }. */
function injectedRun(name: string, stepHooks: StepHooks): Wf {
  const admitted = admittedWorkflow('kfp-v2-argocompiler-2.5.0/exit_handler.yaml', { name, runId: `run-${name}`, namespace: 'team-a', uid: `uid-${name}` });
  return injectWorkflow(admitted, defaultInjectOptions({ hookKey: HOOK_KEY, stepHooks })).workflow as Wf;
}

type Stage = 'attempt 1 failed' | 'retried' | 'attempt 2 failed';

/** The status as Argo (and, for `retried`, KFP's retry) writes it at each stage. */
function statusAt(wf: Wf, stage: Stage): Wf {
  const w = wf.metadata.name;
  const eh = `${w}.root.exit-handler-1`;
  const running = stage === 'retried';
  const second = stage === 'attempt 2 failed';
  const dagPhase = running ? 'Running' : 'Failed';
  const failEnd = second ? T(60) : T(30);
  const nodes: NodeSpec[] = [
    { name: w, type: 'DAG', templateName: 'entrypoint', phase: dagPhase, children: [`${w}.root`, `${w}.hooks.kfp-notify-running`], startedAt: T(0), ...(running ? {} : { finishedAt: failEnd }) },
    { name: `${w}.hooks.kfp-notify-running`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: w, startedAt: T(0), finishedAt: T(2) },
    { name: `${w}.root`, type: 'DAG', templateName: 'root', phase: dagPhase, boundary: w, children: [eh], startedAt: T(1), ...(running ? {} : { finishedAt: failEnd }) },
    { name: eh, type: 'DAG', templateName: 'comp-exit-handler-1', phase: dagPhase, boundary: `${w}.root`, children: [`${eh}.print-op-2`, `${eh}.fail-op`], startedAt: T(1), ...(running ? {} : { finishedAt: failEnd }) },
    { name: `${eh}.print-op-2`, type: 'DAG', templateName: 'system-container-executor', phase: 'Succeeded', boundary: eh, startedAt: T(1), finishedAt: T(10) },
    // A v2 step is a DAG node: KFP's retry keeps it (reset to Running, startedAt kept) and Argo finishes it again later.
    { name: `${eh}.fail-op`, type: 'DAG', templateName: 'system-container-executor', phase: running ? 'Running' : 'Failed', boundary: eh, children: [`${eh}.fail-op.onExit`], startedAt: T(10), ...(running ? {} : { finishedAt: failEnd, message: 'Error (exit code 1)' }) },
    // Its failure hook of attempt 1 succeeded, so KFP's retry keeps it and Argo never fires it again.
    { name: `${eh}.fail-op.onExit`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: eh, startedAt: T(30), finishedAt: T(31) },
  ];
  if (!running) {
    const exitAt = second ? 61 : 31;
    nodes.push(
      { name: `${w}.onExit`, type: 'DAG', templateName: 'kfp-notify-exit', phase: 'Succeeded', displayName: `${w}.onExit`, children: [`${w}.onExit.notify`], startedAt: T(exitAt), finishedAt: T(exitAt + 2) },
      { name: `${w}.onExit.notify`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: `${w}.onExit`, startedAt: T(exitAt), finishedAt: T(exitAt + 2) },
    );
  }
  return withStatus(wf, { phase: running ? 'Running' : 'Failed', startedAt: T(0), ...(running ? {} : { finishedAt: T(second ? 63 : 33), message: 'fail-op failed' }), nodes });
}

describe('factsFromWorkflow: which facts wait for a hook', () => {
  const kinds = (wf: Wf) => factsFromWorkflow(wf, { now: NOW }).map((f) => `${f.event.EventType}:${f.event.NodeName}:${f.hookExpected ? 'hook' : 'watcher'}`);

  it('stepHooks failed: a step success is the watcher\'s alone; a failure, the run start and end wait for their hooks', () => {
    expect(kinds(statusAt(injectedRun('pol-failed', 'failed'), 'attempt 1 failed'))).toEqual([
      'WorkflowRunning::hook',
      'WorkflowNodeSucceeded:print-op-2:watcher',
      'WorkflowNodeFailed:fail-op:hook',
      'WorkflowFailed::hook',
    ]);
  });

  it('stepHooks all waits for every hook; none for no step hook; a Workflow never injected for none at all', () => {
    expect(kinds(statusAt(injectedRun('pol-all', 'all'), 'attempt 1 failed')).filter((k) => k.endsWith(':watcher'))).toEqual([]);
    expect(kinds(statusAt(injectedRun('pol-none', 'none'), 'attempt 1 failed'))).toEqual([
      'WorkflowRunning::hook',
      'WorkflowNodeSucceeded:print-op-2:watcher',
      'WorkflowNodeFailed:fail-op:watcher',
      'WorkflowFailed::hook',
    ]);
    const plain = admittedWorkflow('kfp-v2-argocompiler-2.5.0/exit_handler.yaml', { name: 'plain', runId: 'run-plain' });
    expect(kinds(statusAt(plain, 'attempt 1 failed')).filter((k) => k.endsWith(':hook'))).toEqual([]);
  });

  it('after a KFP retry, a step whose kept hook node is from the attempt before is the watcher\'s', () => {
    const facts = factsFromWorkflow(statusAt(injectedRun('pol-retry', 'failed'), 'attempt 2 failed'), { now: NOW });
    expect(facts.find((f) => f.event.EventType === 'WorkflowNodeFailed')?.hookExpected).toBe(false);
    // The exit handler runs again in every attempt: the run's end still waits for it.
    expect(facts.find((f) => f.event.EventType === 'WorkflowFailed')?.hookExpected).toBe(true);
  });
});

describe('status watcher and KFP retry, against a fake API server (real SQLite store)', () => {
  let fake: FakeKubeApi;
  let watcher: StatusWatcher | undefined;
  let dir: string;
  let store: ReturnType<typeof openSqliteStore>;
  let ingest: Ingest;
  let results: { events: KfpEvent[]; result: IngestResult }[];

  beforeEach(async () => {
    fake = await startFakeKubeApi();
    dir = mkdtempSync(join(tmpdir(), 'kfp-notify-retry-'));
    store = openSqliteStore({ file: join(dir, 'events.db') });
    const { subscribers } = parseSubscribers({ receiver: 'http://127.0.0.1:9/hook' }, () => undefined);
    const base = createIngest({ store, subscribers: () => subscribers });
    results = [];
    ingest = async (events) => {
      const result = await base(events);
      results.push({ events: [...events], result });
      return result;
    };
  });
  afterEach(async () => {
    await watcher?.stop();
    watcher = undefined;
    await fake.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const kept = () => results.flatMap((r) => r.events.filter((e) => !r.result.duplicates.includes(e.EventId)));
  /** What the hooks Argo fires would deliver for this status, each call looked up as the callback does. */
  const hookCalls = async (wf: Wf) => {
    const workflow = toWorkflowSnapshot(wf);
    for (const fields of simulatedHookCalls(wf)) {
      const r = normalizeHookCall(fields, { receivedAt: new Date(NOW), ...(workflow ? { workflow } : {}) });
      if (!r.ok) throw new Error(r.reason);
      await ingest(r.events);
    }
  };

  it('with a long grace, reports a step success under stepHooks failed without waiting for it', async () => {
    fake.apply(statusAt(injectedRun('at-once', 'failed'), 'attempt 1 failed'));
    watcher = startStatusWatcher({ kubeConfig: fake.kubeConfig(), ingest, graceMs: 3_600_000, log: silentLogger() });
    await until('the step success', () => kept().some((e) => e.EventType === 'WorkflowNodeSucceeded'));
    // The facts the hooks report are still in their (hour-long) grace period.
    expect(kept().map((e) => e.EventType)).toEqual(['WorkflowNodeSucceeded']);
  });

  it('a retried run that fails again: new WorkflowFailed and WorkflowNodeFailed with new ids, nothing else twice', async () => {
    const wf = injectedRun('retried', 'failed');
    const first = statusAt(wf, 'attempt 1 failed');
    await hookCalls(first); // the hooks of attempt 1 deliver first
    fake.apply(first);
    watcher = startStatusWatcher({ kubeConfig: fake.kubeConfig(), ingest, graceMs: 200, log: silentLogger() });
    await until('attempt 1 reported', () => kept().some((e) => e.EventType === 'WorkflowFailed'));
    await until('attempt 1 fully seen by the watcher', () => results.filter((r) => r.events[0]?.Source === 'watcher').flatMap((r) => r.events).length >= 4);
    expect(kept().map((e) => e.EventType).sort()).toEqual(['WorkflowFailed', 'WorkflowNodeFailed', 'WorkflowNodeSucceeded', 'WorkflowRunning']);

    // KFP Retry: the Workflow is Running again without its failed step's outcome and exit nodes.
    fake.apply(statusAt(wf, 'retried'));
    const second = statusAt(wf, 'attempt 2 failed');
    fake.apply(second);
    await until('attempt 2 reported', () => kept().filter((e) => e.EventType === 'WorkflowFailed').length === 2);
    await until('the second failure of the step', () => kept().filter((e) => e.EventType === 'WorkflowNodeFailed').length === 2);
    // The exit handler's call of attempt 2 (and a repeat of every hook) arrives too: all duplicates now.
    await hookCalls(second);
    await hookCalls(second);

    const events = kept();
    expect(events.map((e) => e.EventType).sort()).toEqual([
      'WorkflowFailed',
      'WorkflowFailed',
      'WorkflowNodeFailed',
      'WorkflowNodeFailed',
      'WorkflowNodeSucceeded',
      'WorkflowRunning',
    ]);
    expect(new Set(events.map((e) => e.EventId)).size).toBe(6);
    const failures = events.filter((e) => e.EventType === 'WorkflowNodeFailed');
    expect(failures.map((e) => e.Time)).toEqual([T(30), T(60)]);
    // Each fact is queued for the subscriber exactly once.
    expect(await store.queueDepth()).toEqual({ receiver: 6 });
  });
});
