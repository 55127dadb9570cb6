import { hookedNodeName } from '../common/hook-contract.js';
import type { EventType, WorkflowSnapshot } from './types.js';

/**
 * Which attempt of a run a fact belongs to: the `attempt` part of its EventId (event-id.ts).
 *
 * KFP's Retry (GenerateRetryExecution, argo-kfp.md §7) updates the same Workflow: it keeps succeeded
 * nodes, deletes failed pod nodes and every `<wf>.onExit` node, resets failed DAG nodes to Running
 * (keeping their startedAt) and sets the phase back to Running. Node names, and so node ids, are
 * deterministic, so the name alone cannot tell a step's second outcome from its first. What does
 * change is when things finished:
 *
 * - a step's outcome: the node's `finishedAt`. A step that ran again finishes again, later; a step
 *   kept from an earlier attempt keeps its finishedAt, so its fact keeps its id.
 * - the run's end: the `startedAt` of the `<wf>.onExit` node (the exit handler KFP's retry deletes
 *   and Argo runs again), else `status.finishedAt` (a Workflow without an exit handler).
 * - the run starting: always the first attempt (`'0'`); the running hook node is kept on retry, and
 *   a retried run is still the same run.
 *
 * The hook path (normalize.ts, from the Workflow the callback fetches) and the status watcher
 * (status-events.ts, from the watched object) read the same fields through these functions, so both
 * give one fact one id. Pure.
 */

export const FIRST_ATTEMPT = '0';

/** The parts of a node both paths can read. */
export interface AttemptNode {
  startedAt?: string;
  finishedAt?: string;
}

/** The attempt of a step's outcome; undefined while the node has not finished (or is unknown). */
export function nodeAttempt(node: AttemptNode | undefined): string | undefined {
  return node?.finishedAt || undefined;
}

/** The run-level exit node whose re-creation marks a new attempt. */
export const runExitNodeName = (workflowName: string): string => `${workflowName}.onExit`;

/** The attempt of a run's end; undefined when neither an exit node nor a finish time is known. */
export function runEndAttempt(exitNode: AttemptNode | undefined, statusFinishedAt: string | undefined): string | undefined {
  return exitNode?.startedAt || statusFinishedAt || undefined;
}

/** The attempt a hook call's event belongs to, from the Workflow the callback fetched. */
export function hookAttempt(eventType: EventType, argoNodeName: string, workflowName: string, wf: WorkflowSnapshot | undefined): string | undefined {
  if (eventType === 'WorkflowRunning' || !wf) return undefined;
  if (eventType === 'WorkflowNodeSucceeded' || eventType === 'WorkflowNodeFailed') return nodeAttempt(wf.nodes[argoNodeName]);
  return runEndAttempt(wf.nodes[runExitNodeName(workflowName)], wf.finishedAt);
}

/** What a snapshot must hold to answer a hook call: the node whose outcome it reports must have finished, a run's end needs the exit node. */
export interface LookupHint {
  uid?: string;
  /** A node whose final phase (and finish time) is needed. */
  nodeName?: string;
  /** A node that must be present (the run's exit node, for a run end). */
  presentNode?: string;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const unresolved = (v: string): boolean => /^\{\{[\s\S]*\}\}$/.test(v.trim());

/** The lookup hint for a hook call's fields (form or JSON). */
export function lookupHint(fields: Readonly<Record<string, unknown>>): LookupHint {
  const uid = text(fields.workflowUid);
  const nodeName = hookedNodeName(text(fields.hookNodeName));
  const workflowName = text(fields.workflowName);
  return {
    ...(uid && !unresolved(uid) ? { uid } : {}),
    ...(nodeName ? { nodeName } : {}),
    ...(text(fields.event) === 'workflow-exit' && workflowName ? { presentNode: runExitNodeName(workflowName) } : {}),
  };
}
