import { createHash } from 'node:crypto';
import type { EventType, KfpEvent } from './types.js';
import { WORKFLOW_RUNNING_MESSAGE, WORKFLOW_SUCCEEDED_MESSAGE, nodeMessage, workflowFailedMessage } from './messages.js';

/**
 * Event ids and the one event builder. The hook path (normalize.ts) and the status watcher both end
 * here, so one fact (this run, this node, this outcome) gets one id and one wording whichever path
 * saw it first; the store keeps the first and drops the second.
 */

export interface EventIdParts {
  kfpRunId: string;
  /** Full Argo node name; '' for workflow-level events. */
  argoNodeName: string;
  eventType: EventType;
  /** '0' unless a later source knows better (e.g. a KFP retry generation). */
  attempt?: string;
}

/** `evt_` + the first 32 hex chars of sha256(kfpRunId \n argoNodeName \n eventType \n attempt). */
export function eventId(p: EventIdParts): string {
  const digest = createHash('sha256')
    .update([p.kfpRunId, p.argoNodeName, p.eventType, p.attempt ?? '0'].join('\n'))
    .digest('hex');
  return `evt_${digest.slice(0, 32)}`;
}

export function isNodeEventType(t: EventType): boolean {
  return t === 'WorkflowNodeSucceeded' || t === 'WorkflowNodeFailed';
}

/** What is known about one fact, from a hook call or from Workflow status. */
export interface EventFact {
  eventType: EventType;
  kfpRunId: string;
  workflowName: string;
  namespace: string;
  /** Full Argo node name of the step; ignored (forced to '') for workflow-level events. */
  argoNodeName: string;
  /** What NodeName shows: the KFP display name, else the DAG task name; ignored for workflow events. */
  nodeDisplayName: string;
  /** Argo phase behind the event: Running, Succeeded, Failed, Error, Terminated. */
  phase: string;
  /** Detail: the node's status message (node events) or the failure summary (WorkflowFailed). */
  message?: string;
  /** When it happened: RFC 3339 text, or a Date. */
  time: string | Date;
  pipelineName: string;
  runName: string;
  workflowUid: string;
  source: KfpEvent['Source'];
  attempt?: string;
  /** The ScheduledWorkflow that started the run ('' or absent for a one-off run). */
  recurringRunName?: string;
}

function messageFor(f: EventFact, argoNodeName: string): string {
  switch (f.eventType) {
    case 'WorkflowRunning':
      return WORKFLOW_RUNNING_MESSAGE;
    case 'WorkflowSucceeded':
      return WORKFLOW_SUCCEEDED_MESSAGE;
    case 'WorkflowFailed':
      return workflowFailedMessage(f.phase, f.message);
    case 'WorkflowNodeSucceeded':
    case 'WorkflowNodeFailed':
      return nodeMessage(f.phase, argoNodeName, f.message);
  }
}

/** The documented event, its fields in the documented order (the first five are kfp-event-handler's). */
export function buildEvent(f: EventFact): KfpEvent {
  const node = isNodeEventType(f.eventType);
  const argoNodeName = node ? f.argoNodeName : '';
  return {
    KfpRunId: f.kfpRunId,
    WorkflowName: f.workflowName,
    NodeName: node ? f.nodeDisplayName : '',
    EventType: f.eventType,
    Message: messageFor(f, argoNodeName),
    EventId: eventId({ kfpRunId: f.kfpRunId, argoNodeName, eventType: f.eventType, attempt: f.attempt }),
    Namespace: f.namespace,
    PipelineName: f.pipelineName,
    RunName: f.runName,
    Phase: f.phase,
    Time: typeof f.time === 'string' ? f.time : f.time.toISOString(),
    ArgoNodeName: argoNodeName,
    WorkflowUid: f.workflowUid,
    Source: f.source,
    RecurringRunName: f.recurringRunName ?? '',
    // Filled in at ingest (the one place both sources pass), from --kfp-ui-url.
    RunUrl: '',
  };
}
