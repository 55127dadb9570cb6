import { describe, expect, it } from 'vitest';
import { failedSteps, failuresListMessage } from '../../../callback/failure-summary.js';
import { normalizeHookCall, toWorkflowSnapshot } from '../../../callback/normalize.js';
import { eventsFromWorkflow } from '../../../callback/status-events.js';
import { formatDelivery } from '../../../callback/formats/index.js';
import type { KfpEvent } from '../../../callback/types.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import { hookKeyFromSecret } from '../../../common/hook-token.js';
import { admittedWorkflow, withStatus, type NodeSpec, type Wf } from '../cluster/argo-status.js';
import { simulatedHookCalls } from '../cluster/hook-sim.js';

const NOW = '2025-06-03T12:00:00Z';
const T0 = '2025-06-03T10:00:05Z';
const T1 = '2025-06-03T10:01:00Z';
const T2 = '2025-06-03T10:02:00Z';
const T3 = '2025-06-03T10:03:00Z';

/** KFP v2 hello_world.yaml, its one step renamed in the UI (SDK `set_display_name`) to "Say hello". */
function helloWorld(name: string): Wf {
  const wf = admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world.yaml', { name, runId: '7a1b2c3d-0000-4e5f-8a9b-0c1d2e3f4a5b', runName: 'greeting run' });
  return JSON.parse(JSON.stringify(wf).replaceAll('\\"taskInfo\\":{\\"name\\":\\"hello-world\\"}', '\\"taskInfo\\":{\\"name\\":\\"Say hello\\"}')) as Wf;
}

function injected(wf: Wf): Wf {
  const r = injectWorkflow(wf, defaultInjectOptions({ hookKey: hookKeyFromSecret('failure-summary-test-key'), callbackUrl: 'http://cb.kfp-notify:8080' }));
  expect(r.outcome, r.reason).toBe('injected');
  return r.workflow as Wf;
}

/** The step's executor pod failed: Argo's `{{workflow.failures}}` says `executor: Error (exit code 1)`. */
function failedRunNodes(w: string): NodeSpec[] {
  const step = `${w}.root.hello-world`;
  return [
    { name: w, type: 'DAG', templateName: 'entrypoint', phase: 'Failed', children: [`${w}.root-driver`], message: "child 'x' failed", finishedAt: T3 },
    { name: `${w}.root-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: w, children: [`${w}.root`], finishedAt: T0 },
    { name: `${w}.root`, type: 'DAG', templateName: 'root', phase: 'Failed', boundary: w, children: [`${step}-driver`], message: "child 'y' failed", finishedAt: T3 },
    { name: `${step}-driver`, type: 'Pod', templateName: 'system-container-driver', phase: 'Succeeded', boundary: `${w}.root`, children: [step], finishedAt: T1 },
    { name: step, type: 'DAG', templateName: 'system-container-executor', phase: 'Failed', boundary: `${w}.root`, children: [`${step}.executor`], message: "child 'z' failed", finishedAt: T2 },
    { name: `${step}.executor`, type: 'Pod', templateName: 'system-container-impl', phase: 'Failed', boundary: step, message: 'Error (exit code 1)', finishedAt: T2 },
    { name: `${w}.onExit`, type: 'DAG', templateName: 'kfp-notify-exit', phase: 'Succeeded', displayName: `${w}.onExit`, children: [`${w}.onExit.notify`], startedAt: T3, finishedAt: T3 },
    { name: `${w}.onExit.notify`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: `${w}.onExit`, startedAt: T3, finishedAt: T3 },
  ];
}

describe('a KFP v2 failure names the step as the KFP UI shows it, with its error', () => {
  const w = 'hello-world-f41l5';
  const wf = withStatus(injected(helloWorld(w)), { phase: 'Failed', startedAt: T0, finishedAt: T3, message: "child 'x' failed", nodes: failedRunNodes(w) });

  it('failedSteps finds the step (not the executor pod, not the DAGs above it) and the pod error under it', () => {
    expect(failedSteps(wf)).toEqual([{ argoNodeName: `${w}.root.hello-world`, displayName: 'Say hello', error: 'Error (exit code 1)', finishedAt: T2 }]);
  });

  it('the hook path (with the Workflow fetched) and the watcher word the step and the run failure alike', () => {
    const snapshot = toWorkflowSnapshot(wf);
    const hook = simulatedHookCalls(wf).flatMap((fields) => {
      const r = normalizeHookCall(fields, { receivedAt: new Date(NOW), ...(snapshot ? { workflow: snapshot } : {}) });
      if (!r.ok) throw new Error(r.reason);
      return r.events;
    });
    const watcher = eventsFromWorkflow(wf, { now: NOW });
    const failures = (events: KfpEvent[]) => events.filter((e) => e.EventType.endsWith('Failed')).map((e) => [e.EventType, e.NodeName, e.Message]);
    expect(failures(watcher)).toEqual([
      ['WorkflowNodeFailed', 'Say hello', `Failed node ${w}.root.hello-world: Say hello: Error (exit code 1)`],
      ['WorkflowFailed', '', 'Say hello: Error (exit code 1)'],
    ]);
    expect(failures(hook)).toEqual(failures(watcher));
    for (const e of [...hook, ...watcher]) expect(e.Message).not.toMatch(/executor|child '/);
  });

  it('every chat format says which step failed and why', () => {
    const [nodeFailed, runFailed] = eventsFromWorkflow(wf, { now: NOW }).filter((e) => e.EventType.endsWith('Failed')) as [KfpEvent, KfpEvent];
    for (const e of [nodeFailed, runFailed]) {
      for (const format of ['slack', 'teams', 'github', 'json', 'cloudevents-structured'] as const) {
        const body = formatDelivery(e, { format }).body;
        expect(body, `${format} ${e.EventType}`).toContain('Say hello');
        expect(body, `${format} ${e.EventType}`).toContain('Error (exit code 1)');
        expect(body, `${format} ${e.EventType}`).not.toContain('executor');
      }
    }
  });

  it("without the Workflow, Argo's failures list alone still names the step (its task name) with the pod's error", () => {
    const failures = JSON.stringify([
      { displayName: 'executor', message: 'Error (exit code 1)', templateName: 'system-container-impl', phase: 'Failed', podName: `${w}-system-container-impl-1234`, finishedAt: T2 },
      { displayName: 'hello-world', message: "child 'z' failed", templateName: 'system-container-executor', phase: 'Failed', podName: '', finishedAt: T2 },
      { displayName: 'root', message: "child 'y' failed", templateName: 'root', phase: 'Failed', podName: '', finishedAt: T3 },
    ]);
    const r = normalizeHookCall(
      { v: '1', event: 'workflow-exit', kfpRunId: 'r-1', namespace: 'kubeflow', workflowName: w, workflowStatus: 'Failed', failures },
      { receivedAt: new Date(NOW) },
    );
    expect(r.ok && r.events.map((e) => e.Message)).toEqual(['hello-world: Error (exit code 1)']);
    // Two failed steps cannot be paired with their pods from the list: Argo's wording stays.
    expect(failuresListMessage([
      { displayName: 'a', message: "child 'p' failed", templateName: 'system-container-executor', phase: 'Failed', podName: '', finishedAt: '' },
      { displayName: 'b', message: "child 'q' failed", templateName: 'system-container-executor', phase: 'Failed', podName: '', finishedAt: '' },
      { displayName: 'executor', message: 'Error (exit code 1)', templateName: 'system-container-impl', phase: 'Failed', podName: '', finishedAt: '' },
    ])).toBeUndefined();
  });

  it('a retried step reports the last try’s pod error, once, under the step', () => {
    const admitted = admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world_with_retry.yaml', { name: 'hello-world-r3tr7', runId: '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a' });
    const r = admitted.metadata.name;
    const step = `${r}.root.hello-world`;
    const nodes: NodeSpec[] = [
      { name: r, type: 'DAG', templateName: 'entrypoint', phase: 'Failed', children: [`${r}.root-driver`] },
      { name: `${r}.root-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: r, children: [`${r}.root`] },
      { name: `${r}.root`, type: 'DAG', templateName: 'root', phase: 'Failed', boundary: r, children: [`${step}-driver`] },
      { name: `${step}-driver`, type: 'Pod', templateName: 'system-container-driver', phase: 'Succeeded', boundary: `${r}.root`, children: [step] },
      { name: step, type: 'Retry', templateName: 'hello-world-system-container-executor', phase: 'Failed', boundary: `${r}.root`, message: 'No more retries left', children: [`${step}(0)`, `${step}(1)`], finishedAt: T3 },
      { name: `${step}(0)`, type: 'DAG', templateName: 'hello-world-system-container-executor', phase: 'Failed', boundary: `${r}.root`, displayName: 'hello-world(0)', message: "child 'a' failed", children: [`${step}(0).executor`], finishedAt: T1 },
      { name: `${step}(0).executor`, type: 'Pod', templateName: 'hello-world-system-container-impl', phase: 'Failed', boundary: `${step}(0)`, message: 'Error (exit code 2)', finishedAt: T1 },
      { name: `${step}(1)`, type: 'DAG', templateName: 'hello-world-system-container-executor', phase: 'Failed', boundary: `${r}.root`, displayName: 'hello-world(1)', message: "child 'b' failed", children: [`${step}(1).executor`], finishedAt: T3 },
      { name: `${step}(1).executor`, type: 'Pod', templateName: 'hello-world-system-container-impl', phase: 'Failed', boundary: `${step}(1)`, message: 'OOMKilled (exit code 137)', finishedAt: T3 },
    ];
    const failed = withStatus(admitted, { phase: 'Failed', startedAt: T0, finishedAt: T3, nodes });
    expect(failedSteps(failed)).toEqual([{ argoNodeName: step, displayName: 'hello-world', error: 'OOMKilled (exit code 137)', finishedAt: T3 }]);
    expect(eventsFromWorkflow(failed, { now: NOW }).at(-1)?.Message).toBe('hello-world: OOMKilled (exit code 137)');
  });

  it('nothing failed, or not a Workflow: no failed steps', () => {
    expect(failedSteps(withStatus(helloWorld('ok-1'), { phase: 'Running', startedAt: T0, nodes: [] }))).toEqual([]);
    expect(failedSteps('nope')).toEqual([]);
    expect(failedSteps({ status: { nodes: { x: 'not a node' } } })).toEqual([]);
  });
});
