import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { needsWorkflowLookup, normalizeHookCall, toWorkflowSnapshot, type NormalizeResult } from '../../../callback/normalize.js';
import type { KfpEvent } from '../../../callback/types.js';
import { BASE_CALL, IDS, NS, PIPELINE, RECEIVED_AT, RUN, UID, WF, snapshot } from './sample.js';
import { FIXTURES_DIR } from '../../helpers/fixtures.js';

function events(r: NormalizeResult): KfpEvent[] {
  if (!r.ok) throw new Error(`expected ok, got ${r.status}: ${r.reason}`);
  return r.events;
}

function only(r: NormalizeResult): KfpEvent {
  const list = events(r);
  expect(list).toHaveLength(1);
  return list[0] as KfpEvent;
}

function refused(r: NormalizeResult): { status: number; reason: string } {
  if (r.ok) throw new Error(`expected a refusal, got ${r.events.length} events`);
  return { status: r.status, reason: r.reason };
}

const ctx = { receivedAt: RECEIVED_AT };
const SAVE = `${WF}.exit-handler-1.save`;

/** `strconv.Quote(json)` as Argo substitutes {{workflow.failures}}: outer quotes, `"` and `\` escaped. */
function goQuoted(json: string): string {
  return `"${json.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

describe('normalizeHookCall: workflow-running', () => {
  it('gives one WorkflowRunning event with every documented field, the five kfp-event-handler fields first', () => {
    const e = only(normalizeHookCall({ ...BASE_CALL, event: 'workflow-running', hookNodeName: `${WF}.hooks.kfp-notify-running` }, ctx));
    expect(Object.keys(e)).toEqual([
      'KfpRunId', 'WorkflowName', 'NodeName', 'EventType', 'Message',
      'EventId', 'Namespace', 'PipelineName', 'RunName', 'Phase', 'Time', 'ArgoNodeName', 'WorkflowUid', 'Source', 'RecurringRunName', 'RunUrl',
    ]);
    expect(e).toEqual({
      KfpRunId: RUN,
      WorkflowName: WF,
      NodeName: '',
      EventType: 'WorkflowRunning',
      Message: 'Workflow Running',
      EventId: IDS.running,
      Namespace: NS,
      PipelineName: PIPELINE,
      RunName: 'nightly-word-count',
      Phase: 'Running',
      Time: '2025-03-01T12:00:00.000Z',
      ArgoNodeName: '',
      WorkflowUid: UID,
      Source: 'hook',
      RecurringRunName: '',
      RunUrl: '',
    });
  });

  it('accepts a call without v (the contract version is optional) and numbers from JSON bodies', () => {
    const { v: _v, ...rest } = BASE_CALL;
    const e = only(normalizeHookCall({ ...rest, event: 'workflow-running', duration: 12.5 }, ctx));
    expect(e.EventId).toBe(IDS.running);
  });
});

describe('normalizeHookCall: workflow-exit', () => {
  const exit = { ...BASE_CALL, event: 'workflow-exit' };

  it.each([
    // [exitHandlerStatus, why it still counts as success]
    ['', 'the pipeline has no exit handler'],
    ['Succeeded', 'the user exit handler succeeded'],
    ['{{tasks.user-exit.status}}', 'an unresolved literal (old Argo) with nothing to resolve it from'],
  ])('workflowStatus Succeeded + exitHandlerStatus %j → WorkflowSucceeded (%s)', (exitHandlerStatus) => {
    const e = only(normalizeHookCall({ ...exit, workflowStatus: 'Succeeded', exitHandlerStatus, failures: 'null' }, ctx));
    expect(e).toMatchObject({ EventType: 'WorkflowSucceeded', Message: 'Workflow completed', Phase: 'Succeeded', NodeName: '', ArgoNodeName: '', EventId: IDS.succeeded });
  });

  it('Failed with Go-quoted failures → WorkflowFailed whose Message names the failed step, not DAG noise', () => {
    const failures = JSON.stringify([
      { displayName: 'exit-handler-1', message: `child '${SAVE}' failed`, templateName: 'exit-handler-1', phase: 'Failed', podName: `${WF}-1`, finishedAt: '2025-03-01T11:59:58Z' },
      { displayName: 'save', message: 'Error (exit code 1)', templateName: 'save', phase: 'Failed', podName: `${WF}-save-2`, finishedAt: '2025-03-01T11:59:57Z' },
    ]);
    const e = only(normalizeHookCall({ ...exit, workflowStatus: 'Failed', failures: goQuoted(failures) }, ctx));
    expect(e).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Failed', Message: 'save: Error (exit code 1)', EventId: IDS.failed });
  });

  it.each([
    // [failures as received, why]
    ['null', 'nothing failed (Argo sends null)'],
    ['"null"', 'quoted null'],
    ['{{workflow.failures}}', 'not substituted'],
    ['"[{\\"displayName\\":', 'cut off mid-way'],
    ['not json at all', 'garbage'],
    ['"[1,2,3]"', 'a list of non-objects'],
  ])('a failures value of %j never fails the call (%s): the Message falls back to the phase', (failures) => {
    const e = only(normalizeHookCall({ ...exit, workflowStatus: 'Error', failures }, ctx));
    expect(e).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Error', Message: 'Workflow Error' });
  });

  it('an oversized failures value is dropped, not refused', () => {
    const e = only(normalizeHookCall({ ...exit, workflowStatus: 'Failed', failures: `"${'x'.repeat(300_000)}"` }, ctx));
    expect(e).toMatchObject({ EventType: 'WorkflowFailed', Message: 'Workflow Failed' });
  });

  it("the user's exit step failing turns a Succeeded run Failed and reports the step first", () => {
    const r = events(
      normalizeHookCall(
        { ...exit, workflowStatus: 'Succeeded', exitHandlerStatus: 'Failed', nodeTask: 'user-exit', nodeDisplayName: 'exiting', hookNodeName: `${WF}.onExit.user-exit.onExit`, failures: 'null' },
        ctx,
      ),
    );
    expect(r.map((e) => [e.EventType, e.NodeName, e.ArgoNodeName, e.Phase, e.Message, e.EventId])).toEqual([
      ['WorkflowNodeFailed', 'exiting', `${WF}.onExit.user-exit`, 'Failed', `Failed node ${WF}.onExit.user-exit: exiting: Failed`, IDS.userExitFailed],
      ['WorkflowFailed', '', '', 'Failed', 'exit handler exiting Failed', IDS.failed],
    ]);
  });

  it('an exit step that ends Error makes the run Error, with the step message from the Workflow', () => {
    const wf = snapshot({ nodes: { [`${WF}.onExit.user-exit`]: { phase: 'Error', message: 'pod deleted', finishedAt: '2025-03-01T11:59:59Z' } } });
    const r = events(
      normalizeHookCall(
        { ...exit, workflowStatus: 'Succeeded', exitHandlerStatus: 'Error', nodeTask: 'user-exit', nodeDisplayName: 'exiting', hookNodeName: `${WF}.onExit.user-exit.onExit` },
        { ...ctx, workflow: wf },
      ),
    );
    expect(r[0]).toMatchObject({ EventType: 'WorkflowNodeFailed', Phase: 'Error', Message: `Error node ${WF}.onExit.user-exit: exiting: pod deleted`, Time: '2025-03-01T11:59:59Z' });
    expect(r[1]).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Error' });
  });

  it('a succeeding exit step is reported too, then the run', () => {
    const r = events(
      normalizeHookCall({ ...exit, workflowStatus: 'Succeeded', exitHandlerStatus: 'Succeeded', nodeTask: 'user-exit', nodeDisplayName: 'exiting', hookNodeName: `${WF}.onExit.user-exit.onExit` }, ctx),
    );
    expect(r.map((e) => [e.EventType, e.Message])).toEqual([
      ['WorkflowNodeSucceeded', `Succeeded node ${WF}.onExit.user-exit`],
      ['WorkflowSucceeded', 'Workflow completed'],
    ]);
  });

  it('an unresolved exit step status is read from the Workflow when one was fetched', () => {
    const wf = snapshot({ nodes: { [`${WF}.onExit.user-exit`]: { phase: 'Failed', message: 'Error (exit code 2)' } } });
    const r = events(
      normalizeHookCall(
        { ...exit, workflowStatus: 'Succeeded', exitHandlerStatus: '{{tasks.user-exit.status}}', nodeTask: 'user-exit', nodeDisplayName: 'exiting', hookNodeName: `${WF}.onExit.user-exit.onExit` },
        { ...ctx, workflow: wf },
      ),
    );
    expect(r.map((e) => [e.EventType, e.Message])).toEqual([
      ['WorkflowNodeFailed', `Failed node ${WF}.onExit.user-exit: exiting: Error (exit code 2)`],
      ['WorkflowFailed', 'exit handler exiting Failed'],
    ]);
  });

  it('below Argo 3.4.17 the exit step status is not sent at all: read from the Workflow, or no outcome known', () => {
    // What the injector sends with statusArg off: the exit step named, no exitHandlerStatus.
    const call = { ...exit, workflowStatus: 'Succeeded', nodeTask: 'user-exit', nodeDisplayName: 'exiting', hookNodeName: `${WF}.onExit.user-exit.onExit` };
    const wf = snapshot({ nodes: { [`${WF}.onExit.user-exit`]: { phase: 'Failed' } } });
    expect(events(normalizeHookCall(call, { ...ctx, workflow: wf })).map((e) => e.EventType)).toEqual(['WorkflowNodeFailed', 'WorkflowFailed']);
    expect(events(normalizeHookCall(call, ctx)).map((e) => e.EventType)).toEqual(['WorkflowSucceeded']);
    expect(needsWorkflowLookup(call)).toBe(true);
  });

  it('a KFP terminate (seen in the fetched Workflow) has Phase Terminated', () => {
    const e = only(normalizeHookCall({ ...exit, workflowStatus: 'Failed', failures: 'null' }, { ...ctx, workflow: snapshot({ terminated: true, message: 'Step exceeded its deadline' }) }));
    expect(e).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Terminated', Message: 'Step exceeded its deadline' });
  });

  it.each([
    // [workflowStatus, status, reason]
    ['', 400, 'field workflowStatus is missing'],
    ['Running', 400, "workflowStatus must be one of Succeeded, Failed, Error (got 'Running')"],
    ['{{workflow.status}}', 422, "workflowStatus unresolved ('{{workflow.status}}')"],
  ])('workflowStatus %j → %i %s', (workflowStatus, status, reason) => {
    expect(refused(normalizeHookCall({ ...exit, workflowStatus }, ctx))).toEqual({ status, reason });
  });
});

describe('normalizeHookCall: node-exit', () => {
  const node = { ...BASE_CALL, event: 'node-exit', hookNodeName: `${SAVE}.onExit`, nodeTask: 'save', nodeDisplayName: 'Save to GCS' };

  it('Succeeded → WorkflowNodeSucceeded in Argo wording, NodeName the display name', () => {
    const e = only(normalizeHookCall({ ...node, nodePhase: 'Succeeded' }, ctx));
    expect(e).toMatchObject({
      EventType: 'WorkflowNodeSucceeded',
      NodeName: 'Save to GCS',
      Message: `Succeeded node ${SAVE}`,
      Phase: 'Succeeded',
      ArgoNodeName: SAVE,
      EventId: IDS.saveSucceeded,
      Time: '2025-03-01T12:00:00.000Z',
    });
  });

  it.each(['Failed', 'Error'])('%s → WorkflowNodeFailed with the node message and finish time from the Workflow', (phase) => {
    const wf = snapshot({ nodes: { [SAVE]: { phase, message: 'OOMKilled (exit code 137)', finishedAt: '2025-03-01T11:58:00Z', displayName: 'save' } } });
    const e = only(normalizeHookCall({ ...node, nodePhase: phase }, { ...ctx, workflow: wf }));
    expect(e).toMatchObject({ EventType: 'WorkflowNodeFailed', Phase: phase, Message: `${phase} node ${SAVE}: Save to GCS: OOMKilled (exit code 137)`, Time: '2025-03-01T11:58:00Z', EventId: IDS.saveFailedAt1158 });
  });

  it('NodeName falls back to the task name, then to what Argo shows', () => {
    expect(only(normalizeHookCall({ ...node, nodeDisplayName: '', nodePhase: 'Succeeded' }, ctx)).NodeName).toBe('save');
    const wf = snapshot({ nodes: { [SAVE]: { phase: 'Succeeded', displayName: 'save-display' } } });
    expect(only(normalizeHookCall({ ...node, nodeDisplayName: '', nodeTask: '', nodePhase: '' }, { ...ctx, workflow: wf })).NodeName).toBe('save-display');
  });

  it('a hook node with a retry suffix reports the hooked node', () => {
    const e = only(normalizeHookCall({ ...node, hookNodeName: `${SAVE}.onExit(0)`, nodePhase: 'Succeeded' }, ctx));
    expect(e.ArgoNodeName).toBe(SAVE);
    expect(e.EventId).toBe(IDS.saveSucceeded);
  });

  it.each(['', '{{tasks.save.status}}'])('nodePhase %j is resolved from the fetched Workflow', (nodePhase) => {
    const wf = snapshot({ nodes: { [SAVE]: { phase: 'Succeeded' } } });
    expect(only(normalizeHookCall({ ...node, nodePhase }, { ...ctx, workflow: wf })).EventType).toBe('WorkflowNodeSucceeded');
  });

  it.each([
    // [nodePhase, workflow, reason]
    ['{{tasks.save.status}}', undefined, "nodePhase unresolved ('{{tasks.save.status}}') and no workflow status to resolve it from"],
    ['', undefined, 'nodePhase empty and no workflow status to resolve it from'],
    ['{{tasks.save.status}}', snapshot(), `nodePhase unresolved ('{{tasks.save.status}}') and node '${SAVE}' is not in the workflow status`],
    ['', snapshot({ nodes: { [SAVE]: { phase: 'Running' } } }), `nodePhase empty and node '${SAVE}' is still Running in the workflow status`],
  ])('nodePhase %j with nothing to resolve it → 422', (nodePhase, workflow, reason) => {
    expect(refused(normalizeHookCall({ ...node, nodePhase }, { ...ctx, workflow }))).toEqual({ status: 422, reason });
  });

  it.each(['Skipped', 'Omitted'])('%s → no event, and not an error', (nodePhase) => {
    expect(events(normalizeHookCall({ ...node, nodePhase }, ctx))).toEqual([]);
  });

  it("a Workflow of another uid (a re-created same-name Workflow) is not used", () => {
    const other = snapshot({ uid: 'someone-else', nodes: { [SAVE]: { phase: 'Succeeded' } } });
    expect(refused(normalizeHookCall({ ...node, nodePhase: '' }, { ...ctx, workflow: other })).status).toBe(422);
  });

  it('control characters in a display name become spaces rather than a refusal', () => {
    expect(only(normalizeHookCall({ ...node, nodeDisplayName: 'Save\nto\tGCS', nodePhase: 'Succeeded' }, ctx)).NodeName).toBe('Save to GCS');
  });

  it('the run name comes from the Workflow annotation when the call has none', () => {
    const wf = snapshot({ annotations: { 'pipelines.kubeflow.org/run_name': 'from-annotation' }, nodes: { [SAVE]: { phase: 'Succeeded' } } });
    expect(only(normalizeHookCall({ ...node, runName: '', nodePhase: 'Succeeded' }, { ...ctx, workflow: wf })).RunName).toBe('from-annotation');
  });
});

describe('normalizeHookCall: bad input is a 400 with a reason that says what to fix', () => {
  const ok = { ...BASE_CALL, event: 'node-exit', hookNodeName: `${SAVE}.onExit`, nodeTask: 'save', nodePhase: 'Succeeded' };
  it.each([
    // [what, call, reason]
    ['no run id', { ...ok, kfpRunId: '' }, 'field kfpRunId is missing'],
    ['run id left as a placeholder', { ...ok, kfpRunId: '{{workflow.labels.pipeline/runid}}' }, "field kfpRunId is unresolved ('{{workflow.labels.pipeline/runid}}')"],
    ['no event', { ...ok, event: undefined }, 'field event is missing'],
    ['unknown event', { ...ok, event: 'node-start' }, "event must be one of workflow-running, workflow-exit, node-exit (got 'node-start')"],
    ['future contract', { ...ok, v: '2' }, "unsupported contract version v='2' (this callback speaks v=1)"],
    ['namespace with capitals', { ...ok, namespace: 'Kubeflow' }, "namespace 'Kubeflow' is not a valid Kubernetes namespace name"],
    ['workflow name with a slash', { ...ok, workflowName: 'a/b' }, "workflowName 'a/b' is not a valid Kubernetes object name"],
    ['whitespace in the run id', { ...ok, kfpRunId: 'a b' }, 'field kfpRunId contains whitespace or control characters'],
    ['an object where a string belongs', { ...ok, nodeTask: { x: 1 } }, 'field nodeTask must be a string'],
    ['a huge display name', { ...ok, nodeDisplayName: 'n'.repeat(513) }, 'field nodeDisplayName is 513 characters, longer than the limit of 512'],
    ['no hook node name', { ...ok, hookNodeName: '' }, 'field hookNodeName is missing'],
    ['not an exit hook node', { ...ok, hookNodeName: `${WF}.hooks.running` }, `hookNodeName '${WF}.hooks.running' is not an exit hook node (expected '<node name>.onExit')`],
    ['a phase that is not final', { ...ok, nodePhase: 'Running' }, "nodePhase must be one of Succeeded, Failed, Error, Skipped, Omitted or empty (got 'Running')"],
  ])('%s', (_what, call, reason) => {
    expect(refused(normalizeHookCall(call, ctx))).toEqual({ status: 400, reason });
  });

  it('every field is bounded: a megabyte in any identifier is refused', () => {
    for (const field of ['kfpRunId', 'namespace', 'workflowName', 'workflowUid', 'hookNodeName', 'nodeTask', 'pipelineName', 'runName', 'nodePhase', 'duration']) {
      const r = refused(normalizeHookCall({ ...ok, [field]: 'a'.repeat(1 << 20) }, ctx));
      expect(r.status).toBe(400);
      expect(r.reason).toContain(`field ${field} is 1048576 characters`);
    }
  });
});

describe('one fact, one id', () => {
  it('the same hook call twice (a retried curl) gives the same event ids, whenever it arrives', () => {
    const call = { ...BASE_CALL, event: 'node-exit', hookNodeName: `${SAVE}.onExit`, nodeTask: 'save', nodePhase: 'Failed' };
    const a = only(normalizeHookCall(call, ctx));
    const b = only(normalizeHookCall({ ...call, hookNodeName: `${SAVE}.onExit(1)` }, { receivedAt: new Date('2025-03-02T00:00:00Z') }));
    expect(b.EventId).toBe(a.EventId);
    expect(b.Time).not.toBe(a.Time);
  });
});

describe('needsWorkflowLookup', () => {
  it.each([
    // [call, needed?]
    [{ event: 'workflow-running' }, false],
    // Every step outcome and run end: the Workflow tells the attempt (callback/attempt.ts).
    [{ event: 'node-exit', nodePhase: 'Succeeded' }, true],
    [{ event: 'node-exit', nodePhase: 'Skipped' }, true],
    [{ event: 'node-exit', nodePhase: '' }, true],
    [{ event: 'node-exit', nodePhase: '{{tasks.save.status}}' }, true],
    [{ event: 'node-exit', nodePhase: 'Failed' }, true],
    [{ event: 'node-exit', nodePhase: 'Error' }, true],
    [{ event: 'workflow-exit', workflowStatus: 'Succeeded', exitHandlerStatus: '' }, true],
    [{ event: 'workflow-exit', workflowStatus: 'Succeeded', exitHandlerStatus: 'Succeeded' }, true],
    [{ event: 'workflow-exit', workflowStatus: 'Succeeded', exitHandlerStatus: '{{tasks.user-exit.status}}' }, true],
    [{ event: 'workflow-exit', workflowStatus: 'Succeeded', exitHandlerStatus: 'Failed' }, true],
    [{ event: 'workflow-exit', workflowStatus: 'Failed' }, true],
    [{ event: 'nonsense' }, false],
    [{ event: 42 }, false],
  ])('%j → %s', (call, needed) => {
    expect(needsWorkflowLookup(call)).toBe(needed);
  });
});

describe('toWorkflowSnapshot (a Workflow shaped as the Kubernetes API returns it)', () => {
  // fixtures/kfp-v1-compiler/basic.yaml, created and run: metadata and status as Argo writes them.
  const compiled = load(readFileSync(`${FIXTURES_DIR}/kfp-v1-compiler/basic.yaml`, 'utf8')) as Record<string, unknown>;
  const workflow = {
    ...compiled,
    metadata: {
      name: WF,
      namespace: NS,
      uid: UID,
      labels: { 'pipeline/runid': RUN, 'workflows.argoproj.io/phase': 'Running' },
      annotations: { 'pipelines.kubeflow.org/run_name': 'nightly-word-count', 'kfp-notify.kubeflow.org/injected': 'v1' },
    },
    spec: { ...(compiled.spec as Record<string, unknown>), activeDeadlineSeconds: 0 },
    status: {
      phase: 'Running',
      startedAt: '2025-03-01T11:50:00Z',
      nodes: {
        [WF]: { id: WF, name: WF, displayName: WF, type: 'DAG', phase: 'Running' },
        [`${WF}-1234`]: { id: `${WF}-1234`, name: SAVE, displayName: 'save', type: 'Pod', phase: 'Failed', message: 'Error (exit code 1)', finishedAt: '2025-03-01T11:58:00Z' },
        broken: 'not a node',
        nameless: { phase: 'Succeeded' },
      },
    },
  };

  it('re-keys nodes by name and keeps what normalize reads', () => {
    expect(toWorkflowSnapshot(workflow)).toEqual({
      uid: UID,
      phase: 'Running',
      nodes: {
        [WF]: { phase: 'Running', displayName: WF },
        [SAVE]: { phase: 'Failed', message: 'Error (exit code 1)', displayName: 'save', finishedAt: '2025-03-01T11:58:00Z' },
      },
      annotations: { 'pipelines.kubeflow.org/run_name': 'nightly-word-count', 'kfp-notify.kubeflow.org/injected': 'v1' },
      labels: { 'pipeline/runid': RUN, 'workflows.argoproj.io/phase': 'Running' },
      terminated: true,
    });
  });

  it('feeds normalize: an old-Argo node hook is resolved from it', () => {
    const e = only(
      normalizeHookCall(
        { ...BASE_CALL, event: 'node-exit', hookNodeName: `${SAVE}.onExit`, nodeTask: 'save', nodePhase: '{{tasks.save.status}}' },
        { ...ctx, workflow: toWorkflowSnapshot(workflow) },
      ),
    );
    expect(e).toMatchObject({ EventType: 'WorkflowNodeFailed', Message: `Failed node ${SAVE}: save: Error (exit code 1)` });
  });

  it.each([null, 'a string', [1, 2], 42])('%j is not a Workflow', (v) => {
    expect(toWorkflowSnapshot(v)).toBeUndefined();
  });

  it('spec.shutdown also counts as terminated, and a missing status gives an empty snapshot', () => {
    expect(toWorkflowSnapshot({ metadata: {}, spec: { shutdown: 'Terminate' } })).toEqual({ nodes: {}, annotations: {}, labels: {}, terminated: true });
  });
});
