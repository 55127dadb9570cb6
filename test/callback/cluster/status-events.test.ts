import { describe, expect, it } from 'vitest';
import { hookKeyFromSecret } from '../../../common/hook-token.js';
import { eventsFromWorkflow, isFinished, isTerminated } from '../../../callback/status-events.js';
import { normalizeHookCall, toWorkflowSnapshot } from '../../../callback/normalize.js';
import type { KfpEvent } from '../../../callback/types.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import { admittedWorkflow, withStatus, type NodeSpec, type Wf } from './argo-status.js';
import { simulatedHookCalls } from './hook-sim.js';

const NOW = '2025-06-03T12:00:00Z';
const T0 = '2025-06-03T10:00:05Z';
const T1 = '2025-06-03T10:01:00Z';
const T2 = '2025-06-03T10:02:00Z';
const T3 = '2025-06-03T10:03:00Z';
const T4 = '2025-06-03T10:04:00Z';

const injectOpts = defaultInjectOptions({ hookKey: hookKeyFromSecret('watcher-test-hook-key-0123456789') });

function injected(wf: Wf): Wf {
  const r = injectWorkflow(wf, injectOpts);
  expect(r.outcome, r.reason).toBe('injected');
  return r.workflow as Wf;
}

/** The events the hook path makes of the calls Argo would have made for this run (each call looks the Workflow up, for its attempt). */
function hookEvents(wf: Wf): KfpEvent[] {
  const workflow = toWorkflowSnapshot(wf);
  return simulatedHookCalls(wf).flatMap((fields) => {
    const r = normalizeHookCall(fields, { receivedAt: new Date(NOW), ...(workflow ? { workflow } : {}) });
    if (!r.ok) throw new Error(`hook call refused: ${r.reason} (${JSON.stringify(fields)})`);
    return r.events;
  });
}

const summary = (events: readonly KfpEvent[]) =>
  events.map((e) => ({ id: e.EventId, type: e.EventType, node: e.NodeName, argoNode: e.ArgoNodeName })).sort((a, b) => a.id.localeCompare(b.id));

// KFP v1 `dsl.ExitHandler` (basic.yaml): exit-handler-1 { get-frequent → save }, onExit: exiting.
function v1ExitHandlerNodes(wfName: string, o: { injected: boolean; save: 'Succeeded' | 'Failed' }): NodeSpec[] {
  const w = wfName;
  const eh = `${w}.exit-handler-1`;
  const hook = (name: string, boundary?: string): NodeSpec => ({ name, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', ...(boundary ? { boundary } : {}), displayName: name.slice(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1) });
  const failed = o.save === 'Failed';
  const nodes: NodeSpec[] = [
    { name: w, type: 'DAG', templateName: 'save-most-frequent', phase: o.save, children: [eh, ...(o.injected ? [`${w}.hooks.kfp-notify-running`] : [])], startedAt: T0, finishedAt: T3 },
    { name: eh, type: 'DAG', templateName: 'exit-handler-1', phase: o.save, boundary: w, children: [`${eh}.get-frequent`], startedAt: T0, finishedAt: T3 },
    { name: `${eh}.get-frequent`, type: 'Pod', templateName: 'get-frequent', phase: 'Succeeded', boundary: eh, children: [o.injected ? `${eh}.get-frequent.onExit` : `${eh}.save`], startedAt: T0, finishedAt: T1 },
    { name: `${eh}.save`, type: 'Pod', templateName: 'save', phase: o.save, boundary: eh, startedAt: T1, finishedAt: T2, ...(failed ? { message: 'Error (exit code 1)' } : {}) },
  ];
  if (o.injected) {
    nodes.push(
      { ...hook(`${w}.hooks.kfp-notify-running`, w), displayName: `${w}.hooks.kfp-notify-running` },
      { ...hook(`${eh}.get-frequent.onExit`, eh), children: [`${eh}.save`] },
      hook(`${eh}.save.onExit`, eh),
      { name: `${w}.onExit`, type: 'DAG', templateName: 'kfp-notify-exit', phase: 'Succeeded', displayName: `${w}.onExit`, children: [`${w}.onExit.user-exit`], startedAt: T3, finishedAt: T4 },
      { name: `${w}.onExit.user-exit`, type: 'Pod', templateName: 'exiting', phase: 'Succeeded', boundary: `${w}.onExit`, children: [`${w}.onExit.user-exit.onExit`], startedAt: T3, finishedAt: T4 },
      hook(`${w}.onExit.user-exit.onExit`, `${w}.onExit`),
    );
  } else {
    nodes.push({ name: `${w}.onExit`, type: 'Pod', templateName: 'exiting', phase: 'Succeeded', displayName: `${w}.onExit`, startedAt: T3, finishedAt: T4 });
  }
  return nodes;
}

/** The injected exit wrapper of a pipeline without its own exit handler: `<wf>.onExit` → `notify`. */
function notifyExitNodes(w: string): NodeSpec[] {
  return [
    { name: `${w}.onExit`, type: 'DAG', templateName: 'kfp-notify-exit', phase: 'Succeeded', displayName: `${w}.onExit`, children: [`${w}.onExit.notify`], startedAt: T3, finishedAt: T4 },
    { name: `${w}.onExit.notify`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: `${w}.onExit`, startedAt: T3, finishedAt: T4 },
  ];
}

describe('eventsFromWorkflow: a KFP v1 ExitHandler run (basic.yaml)', () => {
  const admitted = admittedWorkflow('kfp-v1-compiler/basic.yaml', { name: 'save-most-frequent-x7k2p', runId: '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e', runName: 'nightly-word-count' });

  it('reports every fact of a finished, injected run exactly as the hooks do: same ids, same step names', () => {
    const wf = withStatus(injected(admitted), { phase: 'Succeeded', startedAt: T0, finishedAt: T4, nodes: v1ExitHandlerNodes(admitted.metadata.name, { injected: true, save: 'Succeeded' }) });
    const events = eventsFromWorkflow(wf, { now: NOW });
    expect(events.map((e) => [e.EventType, e.NodeName, e.ArgoNodeName])).toEqual([
      ['WorkflowRunning', '', ''],
      ['WorkflowNodeSucceeded', 'get-frequent', 'save-most-frequent-x7k2p.exit-handler-1.get-frequent'],
      ['WorkflowNodeSucceeded', 'save', 'save-most-frequent-x7k2p.exit-handler-1.save'],
      // the user's exit op, run by the exit wrapper; named as KFP names the template
      ['WorkflowNodeSucceeded', 'exiting', 'save-most-frequent-x7k2p.onExit.user-exit'],
      ['WorkflowSucceeded', '', ''],
    ]);
    expect(summary(events)).toEqual(summary(hookEvents(wf)));
    for (const e of events) {
      expect(e).toMatchObject({ KfpRunId: admitted.metadata.labels['pipeline/runid'], WorkflowName: 'save-most-frequent-x7k2p', Namespace: 'kubeflow', PipelineName: 'Save Most Frequent', RunName: 'nightly-word-count', WorkflowUid: admitted.metadata.uid, Source: 'watcher' });
    }
    expect(events[1]?.Time).toBe(T1);
    expect(events.at(-1)?.Time).toBe(T4);
  });

  it('reports a failed step with its message, and the run as failed, with the hook path ids', () => {
    const wf = withStatus(injected(admitted), { phase: 'Failed', startedAt: T0, finishedAt: T4, message: "child 'save-most-frequent-x7k2p-1' failed", nodes: v1ExitHandlerNodes(admitted.metadata.name, { injected: true, save: 'Failed' }) });
    const events = eventsFromWorkflow(wf, { now: NOW });
    const failed = events.find((e) => e.EventType === 'WorkflowNodeFailed');
    expect(failed).toMatchObject({ NodeName: 'save', Phase: 'Failed', Message: 'Failed node save-most-frequent-x7k2p.exit-handler-1.save: save: Error (exit code 1)' });
    const end = events.at(-1);
    expect(end).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Failed' });
    // worded like the exit hook's failure summary: the failed step, not DAG propagation noise
    expect(end?.Message).toBe('save: Error (exit code 1)');
    expect(summary(events)).toEqual(summary(hookEvents(wf)));
  });

  it('reports a Workflow the webhook never saw, its exit op (the `<wf>.onExit` node itself) included', () => {
    const wf = withStatus(admitted, { phase: 'Succeeded', startedAt: T0, finishedAt: T4, nodes: v1ExitHandlerNodes(admitted.metadata.name, { injected: false, save: 'Succeeded' }) });
    expect(eventsFromWorkflow(wf, { now: NOW }).map((e) => `${e.EventType}:${e.NodeName}:${e.ArgoNodeName}`)).toEqual([
      'WorkflowRunning::',
      'WorkflowNodeSucceeded:get-frequent:save-most-frequent-x7k2p.exit-handler-1.get-frequent',
      'WorkflowNodeSucceeded:save:save-most-frequent-x7k2p.exit-handler-1.save',
      'WorkflowNodeSucceeded:exiting:save-most-frequent-x7k2p.onExit',
      'WorkflowSucceeded::',
    ]);
  });

  it('reports what has happened so far in a running Workflow, and nothing before it starts', () => {
    const nodes = v1ExitHandlerNodes(admitted.metadata.name, { injected: true, save: 'Succeeded' })
      .filter((n) => !n.name.includes('.save') && !n.name.includes('onExit'))
      .map((n) => (n.type === 'DAG' ? { ...n, phase: 'Running' as const } : n));
    const wf = withStatus(injected(admitted), { phase: 'Running', startedAt: T0, nodes });
    const events = eventsFromWorkflow(wf, { now: NOW });
    expect(events.map((e) => `${e.EventType}:${e.NodeName}`)).toEqual(['WorkflowRunning:', 'WorkflowNodeSucceeded:get-frequent']);
    expect(isFinished(wf)).toBe(false);
    expect(eventsFromWorkflow(withStatus(admitted, { phase: 'Pending', startedAt: T0, nodes: [] }), { now: NOW })).toEqual([]);
  });
});

describe('eventsFromWorkflow: terminated runs', () => {
  // KFP v2 ExitHandler (exit_handler.yaml): exit-handler-1 { fail-op, print-op-2 }, KFP's own exit hook runs print-op.
  const admitted = admittedWorkflow('kfp-v2-argocompiler-2.5.0/exit_handler.yaml', { name: 'pipeline-with-exit-handler-abc12', runId: '8e1d9b2a-1c44-4a0f-9d3e-5b6c7d8e9f00' });
  const w = admitted.metadata.name;
  const eh = `${w}.root.exit-handler-1`;
  const kfpExitHook = `${eh}.onExit`;
  const nodes: NodeSpec[] = [
    { name: w, type: 'DAG', templateName: 'entrypoint', phase: 'Failed', children: [`${w}.root-driver`], finishedAt: T3 },
    { name: `${w}.root-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: w, children: [`${w}.root`], finishedAt: T0 },
    { name: `${w}.root`, type: 'DAG', templateName: 'root', phase: 'Failed', boundary: w, children: [`${eh}-driver`], finishedAt: T3 },
    { name: `${eh}-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: `${w}.root`, children: [eh], finishedAt: T0 },
    { name: eh, type: 'DAG', templateName: 'comp-exit-handler-1', phase: 'Failed', boundary: `${w}.root`, children: [`${eh}.fail-op-driver`, `${eh}.print-op-2-driver`, kfpExitHook], finishedAt: T2 },
    { name: `${eh}.fail-op-driver`, type: 'Pod', templateName: 'system-container-driver', phase: 'Succeeded', boundary: eh, children: [`${eh}.fail-op`], finishedAt: T1 },
    { name: `${eh}.fail-op`, type: 'DAG', templateName: 'system-container-executor', phase: 'Failed', boundary: eh, children: [`${eh}.fail-op.executor`], message: 'Step exceeded its deadline', finishedAt: T2 },
    { name: `${eh}.fail-op.executor`, type: 'Pod', templateName: 'system-container-impl', phase: 'Failed', boundary: `${eh}.fail-op`, message: 'Step exceeded its deadline', finishedAt: T2 },
    { name: `${eh}.print-op-2-driver`, type: 'Pod', templateName: 'system-container-driver', phase: 'Succeeded', boundary: eh, children: [`${eh}.print-op-2`], finishedAt: T1 },
    { name: `${eh}.print-op-2`, type: 'Skipped', templateName: 'system-container-executor', phase: 'Omitted', boundary: eh, message: 'omitted: depends condition not met', finishedAt: T2 },
    { name: kfpExitHook, type: 'DAG', templateName: 'exit-hook-root-print-op', phase: 'Succeeded', boundary: `${w}.root`, children: [`${kfpExitHook}.print-op-driver`], finishedAt: T3 },
    { name: `${kfpExitHook}.print-op-driver`, type: 'Pod', templateName: 'system-container-driver', phase: 'Succeeded', boundary: kfpExitHook, children: [`${kfpExitHook}.print-op`], finishedAt: T3 },
    { name: `${kfpExitHook}.print-op`, type: 'DAG', templateName: 'system-container-executor', phase: 'Succeeded', boundary: kfpExitHook, finishedAt: T3 },
  ];

  it("reports KFP's terminate (activeDeadlineSeconds: 0) as WorkflowFailed, phase Terminated, with the steps that ran", () => {
    const wf = withStatus(admitted, { phase: 'Failed', startedAt: T0, finishedAt: T3, message: 'Step exceeded its deadline', nodes });
    wf.spec.activeDeadlineSeconds = 0;
    expect(isTerminated(wf)).toBe(true);
    const events = eventsFromWorkflow(wf, { now: NOW });
    expect(events.map((e) => [e.EventType, e.NodeName, e.Phase])).toEqual([
      ['WorkflowRunning', '', 'Running'],
      ['WorkflowNodeFailed', 'fail-op', 'Failed'], // drivers, executor pods and the Omitted step report nothing
      ['WorkflowNodeSucceeded', 'print-op', 'Succeeded'], // KFP's own exit task, inside its exit-hook DAG
      ['WorkflowFailed', '', 'Terminated'],
    ]);
    expect(events[1]?.Message).toBe(`Failed node ${eh}.fail-op: fail-op: Step exceeded its deadline`);
    expect(events[1]?.PipelineName).toBe('pipeline-with-exit-handler');
  });

  it('reports `argo terminate` (spec.shutdown) the same way, and a plain failure as Failed', () => {
    const wf = withStatus(admitted, { phase: 'Failed', startedAt: T0, finishedAt: T3, message: "Stopped with strategy 'Terminate'", nodes });
    expect(eventsFromWorkflow(wf, { now: NOW }).at(-1)).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Failed' });
    wf.spec.shutdown = 'Terminate';
    const end = eventsFromWorkflow(wf, { now: NOW }).at(-1);
    expect(end).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Terminated' });
    expect(end?.EventId).toBe(eventsFromWorkflow({ ...wf, spec: { ...wf.spec, shutdown: undefined } }, { now: NOW }).at(-1)?.EventId);
  });

  it('reports a Workflow that failed validation (no node ever ran) as WorkflowFailed only', () => {
    const wf = withStatus(admitted, { phase: 'Failed', startedAt: T0, finishedAt: T0, message: 'invalid spec: templates.root.tasks.x failed to resolve {{workflow.labels.nope}}', nodes: [] });
    const events = eventsFromWorkflow(wf, { now: NOW });
    expect(events.map((e) => e.EventType)).toEqual(['WorkflowFailed']);
    expect(events[0]?.Message).toContain('invalid spec');
  });
});

describe('eventsFromWorkflow: loops and retries', () => {
  it('reports each loop iteration of a step once, named as the hook names it (v1 ParallelFor, withitem_basic.yaml)', () => {
    const admitted = admittedWorkflow('kfp-v1-compiler/withitem_basic.yaml', { name: 'my-pipeline-q9z8x', runId: '0c9a7f8e-2b1d-4e3f-8a9b-1c2d3e4f5a6b' });
    const w = admitted.metadata.name;
    const items = ['{"a":1,"b":2}', '{"a":10,"b":20}'];
    const iter = (i: number) => `${w}.for-loop-2(${i}:${items[i]})`;
    const nodes: NodeSpec[] = [
      { name: w, type: 'DAG', templateName: 'my-pipeline', phase: 'Succeeded', children: [`${w}.for-loop-2`, `${w}.my-out-cop`] },
      { name: `${w}.for-loop-2`, type: 'TaskGroup', templateName: 'for-loop-2', phase: 'Succeeded', boundary: w, children: [iter(0), iter(1)] },
      { name: `${w}.my-out-cop`, type: 'Pod', templateName: 'my-out-cop', phase: 'Succeeded', boundary: w, finishedAt: T1 },
      ...[0, 1].flatMap((i): NodeSpec[] => [
        { name: iter(i), type: 'DAG', templateName: 'for-loop-2', phase: 'Succeeded', boundary: w, children: [`${iter(i)}.my-in-coop1`, `${iter(i)}.my-in-coop2`] },
        { name: `${iter(i)}.my-in-coop1`, type: 'Pod', templateName: 'my-in-coop1', phase: 'Succeeded', boundary: iter(i), finishedAt: T2 },
        { name: `${iter(i)}.my-in-coop2`, type: 'Pod', templateName: 'my-in-coop2', phase: i === 1 ? 'Failed' : 'Succeeded', boundary: iter(i), finishedAt: T2, ...(i === 1 ? { message: 'OOMKilled (exit code 137)' } : {}) },
      ]),
      ...notifyExitNodes(w),
    ];
    const wf = withStatus(injected(admitted), { phase: 'Failed', startedAt: T0, finishedAt: T3, nodes });
    const events = eventsFromWorkflow(wf, { now: NOW });
    const steps = events.filter((e) => e.ArgoNodeName !== '').map((e) => `${e.EventType}:${e.NodeName}:${e.ArgoNodeName}`);
    expect(steps).toEqual([
      `WorkflowNodeSucceeded:my-out-cop:${w}.my-out-cop`,
      `WorkflowNodeSucceeded:my-in-coop1:${iter(0)}.my-in-coop1`,
      `WorkflowNodeSucceeded:my-in-coop2:${iter(0)}.my-in-coop2`,
      `WorkflowNodeSucceeded:my-in-coop1:${iter(1)}.my-in-coop1`,
      `WorkflowNodeFailed:my-in-coop2:${iter(1)}.my-in-coop2`,
    ]);
    expect(new Set(events.map((e) => e.EventId)).size).toBe(events.length);
    expect(summary(events)).toEqual(summary(hookEvents(wf)));
  });

  it('reports a retried step once, for the Retry node the hook reports on, not for each try (v2, hello_world_with_retry.yaml)', () => {
    const admitted = admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world_with_retry.yaml', { name: 'hello-world-r3tr7', runId: '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a' });
    const w = admitted.metadata.name;
    const step = `${w}.root.hello-world`;
    // KFP 2.17's workflowDefaults put a retryStrategy on every template, the executor DAG included.
    const nodes: NodeSpec[] = [
      { name: w, type: 'DAG', templateName: 'entrypoint', phase: 'Succeeded', children: [`${w}.root-driver`] },
      { name: `${w}.root-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: w, children: [`${w}.root`] },
      { name: `${w}.root`, type: 'DAG', templateName: 'root', phase: 'Succeeded', boundary: w, children: [`${step}-driver`] },
      { name: `${step}-driver`, type: 'Pod', templateName: 'system-container-driver', phase: 'Succeeded', boundary: `${w}.root`, children: [step] },
      { name: step, type: 'Retry', templateName: 'hello-world-system-container-executor', phase: 'Succeeded', boundary: `${w}.root`, children: [`${step}(0)`, `${step}(1)`], finishedAt: T3 },
      { name: `${step}(0)`, type: 'DAG', templateName: 'hello-world-system-container-executor', phase: 'Failed', boundary: `${w}.root`, displayName: 'hello-world(0)', message: 'child failed', children: [`${step}(0).executor`], finishedAt: T1 },
      { name: `${step}(0).executor`, type: 'Pod', templateName: 'hello-world-system-container-impl', phase: 'Failed', boundary: `${step}(0)`, finishedAt: T1 },
      { name: `${step}(1)`, type: 'DAG', templateName: 'hello-world-system-container-executor', phase: 'Succeeded', boundary: `${w}.root`, displayName: 'hello-world(1)', children: [`${step}(1).executor`], finishedAt: T3 },
      { name: `${step}(1).executor`, type: 'Pod', templateName: 'hello-world-system-container-impl', phase: 'Succeeded', boundary: `${step}(1)`, finishedAt: T3 },
      ...notifyExitNodes(w),
    ];
    const wf = withStatus(injected(admitted), { phase: 'Succeeded', startedAt: T0, finishedAt: T4, nodes });
    const events = eventsFromWorkflow(wf, { now: NOW });
    expect(events.map((e) => `${e.EventType}:${e.NodeName}:${e.ArgoNodeName}`)).toEqual([
      'WorkflowRunning::',
      `WorkflowNodeSucceeded:hello-world:${step}`,
      'WorkflowSucceeded::',
    ]);
    expect(summary(events)).toEqual(summary(hookEvents(wf)));
  });
});

describe('eventsFromWorkflow: input it must shrug off', () => {
  it('returns nothing for non-KFP Workflows and malformed objects, and never throws', () => {
    const admitted = admittedWorkflow('kfp-v1-compiler/basic.yaml', { name: 'x-1', runId: 'r-1' });
    const noLabel = structuredClone(admitted);
    noLabel.metadata.labels = {};
    const inputs: unknown[] = [
      null,
      'Workflow',
      42,
      [],
      {},
      { metadata: null },
      withStatus(noLabel, { phase: 'Succeeded', startedAt: T0, finishedAt: T1, nodes: [] }),
      { ...admitted, status: { phase: 'Succeeded', nodes: [1, 'x', null] } },
      { ...admitted, status: { phase: 'Running', nodes: { a: { name: 5, phase: {}, children: 'no' } } } },
      { ...admitted, spec: { templates: 'nope' }, status: { phase: 'Failed', nodes: { a: { id: 'a', name: 'x-1.a', templateName: 'get-frequent', phase: 'Failed' } } } },
    ];
    const results = inputs.map((i) => eventsFromWorkflow(i, { now: NOW }));
    expect(results.slice(0, 7)).toEqual([[], [], [], [], [], [], []]);
    // a status with junk nodes still yields the run-level fact, stamped with `now` when the object has no time
    expect(results[7]?.map((e) => [e.EventType, e.Time])).toEqual([['WorkflowSucceeded', NOW]]);
    expect(results[8]).toEqual([]);
    expect(results[9]?.map((e) => e.EventType)).toEqual(['WorkflowFailed']);
  });
});
