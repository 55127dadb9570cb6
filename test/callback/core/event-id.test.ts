import { describe, expect, it } from 'vitest';
import { buildEvent, eventId, type EventFact } from '../../../callback/event-id.js';
import { normalizeHookCall } from '../../../callback/normalize.js';
import { BASE_CALL, IDS, NS, PIPELINE, RECEIVED_AT, RUN, UID, WF } from './sample.js';

describe('eventId', () => {
  it.each([
    // [argoNodeName, eventType, attempt, id computed with python hashlib (sample.ts)]
    ['', 'WorkflowRunning', undefined, IDS.running],
    ['', 'WorkflowSucceeded', '0', IDS.succeeded],
    ['', 'WorkflowFailed', undefined, IDS.failed],
    [`${WF}.exit-handler-1.save`, 'WorkflowNodeSucceeded', undefined, IDS.saveSucceeded],
    [`${WF}.exit-handler-1.save`, 'WorkflowNodeFailed', undefined, IDS.saveFailed],
    ['', 'WorkflowRunning', '1', IDS.runningAttempt1],
    [`${WF}.exit-handler-1.save`, 'WorkflowNodeFailed', '2025-03-01T11:58:00Z', IDS.saveFailedAt1158],
  ] as const)('%j %s attempt %j → %s', (argoNodeName, eventType, attempt, want) => {
    expect(eventId({ kfpRunId: RUN, argoNodeName, eventType, attempt })).toBe(want);
  });

  it('is evt_ and 32 lower-case hex characters', () => {
    expect(eventId({ kfpRunId: 'r', argoNodeName: 'n', eventType: 'WorkflowNodeFailed' })).toMatch(/^evt_[0-9a-f]{32}$/);
  });
});

describe('buildEvent: the watcher and the hook format one fact identically', () => {
  const fact: EventFact = {
    eventType: 'WorkflowNodeFailed',
    kfpRunId: RUN,
    workflowName: WF,
    namespace: NS,
    argoNodeName: `${WF}.exit-handler-1.save`,
    nodeDisplayName: 'save',
    phase: 'Failed',
    // What the watcher passes (failure-summary.ts): the step as the KFP UI names it, then its error.
    message: 'save: Error (exit code 1)',
    time: '2025-03-01T11:58:00Z',
    pipelineName: PIPELINE,
    runName: 'nightly-word-count',
    workflowUid: UID,
    source: 'watcher',
  };

  it('a watcher fact and the hook call for the same step share EventId, Message and NodeName', () => {
    // The watcher's attempt for a step's outcome is the node's finishedAt (status-events.ts, attempt.ts).
    const fromWatcher = buildEvent({ ...fact, attempt: '2025-03-01T11:58:00Z' });
    expect(fromWatcher.EventId).toBe(IDS.saveFailedAt1158);
    const r = normalizeHookCall(
      { ...BASE_CALL, event: 'node-exit', hookNodeName: `${WF}.exit-handler-1.save.onExit`, nodeTask: 'save', nodePhase: 'Failed' },
      {
        receivedAt: RECEIVED_AT,
        workflow: { uid: UID, nodes: { [fact.argoNodeName]: { phase: 'Failed', message: 'Error (exit code 1)', finishedAt: '2025-03-01T11:58:00Z' } }, annotations: {}, labels: {}, terminated: false },
      },
    );
    if (!r.ok) throw new Error(r.reason);
    expect(r.events[0]).toEqual({ ...fromWatcher, Source: 'hook' });
  });

  it('workflow-level events never carry a node, whatever the fact says', () => {
    const e = buildEvent({ ...fact, eventType: 'WorkflowSucceeded', phase: 'Succeeded', time: new Date('2025-03-01T12:00:00Z') });
    expect(e).toMatchObject({ NodeName: '', ArgoNodeName: '', Message: 'Workflow completed', EventId: IDS.succeeded, Time: '2025-03-01T12:00:00.000Z' });
  });

  it('a WorkflowFailed Message is the detail, or the phase when there is none', () => {
    expect(buildEvent({ ...fact, eventType: 'WorkflowFailed', phase: 'Terminated', message: undefined }).Message).toBe('Workflow Terminated');
    expect(buildEvent({ ...fact, eventType: 'WorkflowFailed', message: 'save: Error (exit code 1)' }).Message).toBe('save: Error (exit code 1)');
  });
});
