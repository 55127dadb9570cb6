import { describe, expect, it } from 'vitest';
import { hookAttempt, lookupHint, nodeAttempt, runEndAttempt } from '../../../callback/attempt.js';
import { snapshot, UID, WF } from './sample.js';

/** The attempt part of an event id (callback/attempt.ts, docs/watcher.md "KFP Retry: the attempt"). */

const SAVE = `${WF}.exit-handler-1.save`;

describe('the attempt of a fact', () => {
  it('a step outcome: the node finishedAt; none while it has not finished', () => {
    expect(nodeAttempt({ startedAt: '2025-03-01T11:57:00Z', finishedAt: '2025-03-01T11:58:00Z' })).toBe('2025-03-01T11:58:00Z');
    expect(nodeAttempt({ startedAt: '2025-03-01T11:57:00Z' })).toBeUndefined();
    expect(nodeAttempt(undefined)).toBeUndefined();
  });

  it('a run end: the <wf>.onExit node startedAt, else the run finishedAt', () => {
    expect(runEndAttempt({ startedAt: '2025-03-01T12:00:00Z' }, '2025-03-01T12:00:09Z')).toBe('2025-03-01T12:00:00Z');
    expect(runEndAttempt(undefined, '2025-03-01T12:00:09Z')).toBe('2025-03-01T12:00:09Z');
    expect(runEndAttempt(undefined, undefined)).toBeUndefined();
  });

  it('the hook path reads the same fields from the fetched Workflow; WorkflowRunning is always the first attempt', () => {
    const wf = snapshot({
      finishedAt: '2025-03-01T12:00:09Z',
      nodes: { [SAVE]: { phase: 'Failed', finishedAt: '2025-03-01T11:58:00Z' }, [`${WF}.onExit`]: { phase: 'Running', startedAt: '2025-03-01T12:00:00Z' } },
    });
    expect(hookAttempt('WorkflowNodeFailed', SAVE, WF, wf)).toBe('2025-03-01T11:58:00Z');
    expect(hookAttempt('WorkflowFailed', '', WF, wf)).toBe('2025-03-01T12:00:00Z');
    expect(hookAttempt('WorkflowRunning', '', WF, wf)).toBeUndefined();
    expect(hookAttempt('WorkflowFailed', '', WF, undefined)).toBeUndefined();
  });
});

describe('lookupHint: what the fetched Workflow must hold to answer a hook call', () => {
  it('a node-exit call needs its node finished; a workflow-exit call the run exit node', () => {
    expect(lookupHint({ event: 'node-exit', workflowName: WF, workflowUid: UID, hookNodeName: `${SAVE}.onExit(0)` })).toEqual({ uid: UID, nodeName: SAVE });
    expect(lookupHint({ event: 'workflow-exit', workflowName: WF, hookNodeName: `${WF}.onExit.notify(0)` })).toEqual({ presentNode: `${WF}.onExit` });
    expect(lookupHint({ event: 'workflow-exit', workflowName: WF, workflowUid: '{{workflow.uid}}', hookNodeName: `${WF}.onExit.user-exit.onExit` })).toEqual({
      nodeName: `${WF}.onExit.user-exit`,
      presentNode: `${WF}.onExit`,
    });
  });
});
