import type { KfpEvent } from '../types.js';

/**
 * What a person reads in a chat message about one event, shared by the Slack and Teams formats so
 * both say the same thing: the run's display name first, then what happened, then (for a failure)
 * which step failed as the KFP UI names it and its error. Pure.
 */

/** The run as a person knows it: KFP's run display name, else the Workflow's name. */
export function runLabel(e: KfpEvent): string {
  return e.RunName || e.WorkflowName;
}

export type Tone = 'good' | 'bad' | 'neutral';

export function toneOf(e: KfpEvent): Tone {
  if (e.EventType === 'WorkflowFailed' || e.EventType === 'WorkflowNodeFailed') return 'bad';
  return e.EventType === 'WorkflowRunning' ? 'neutral' : 'good';
}

/** What happened, after the run's name: `started`, `succeeded`, `failed`, `step save failed`... */
export function whatHappened(e: KfpEvent): string {
  switch (e.EventType) {
    case 'WorkflowRunning':
      return 'started';
    case 'WorkflowSucceeded':
      return 'succeeded';
    case 'WorkflowFailed':
      return e.Phase === 'Terminated' ? 'was terminated' : e.Phase === 'Error' ? 'ended in error' : 'failed';
    case 'WorkflowNodeSucceeded':
      return `step ${e.NodeName} succeeded`;
    case 'WorkflowNodeFailed':
      return `step ${e.NodeName} failed`;
  }
}

/** `<run> <what happened>`: the one line every chat format leads with. */
export function headline(e: KfpEvent): string {
  return `${runLabel(e)} ${whatHappened(e)}`;
}

export interface FailureText {
  /** The failed step(s) as the KFP UI names them: the step of a node event, '' for a run failure (its error names them). */
  step: string;
  /** A step failure: its error. A run failure: every failed step with its error (`save: Error (exit code 1)`). */
  error: string;
}

/**
 * The failure told by a failed event's Message, without Argo's prefix: a step failure's Message is
 * `Failed node <argo node name>: <step>: <error>` (messages.ts, failure-summary.ts), a run failure's is
 * the failed steps with their errors. undefined for events that are not failures.
 */
export function failureText(e: KfpEvent): FailureText | undefined {
  if (e.EventType === 'WorkflowFailed') return { step: '', error: e.Message };
  if (e.EventType !== 'WorkflowNodeFailed') return undefined;
  // messages.ts nodeMessage: `<Phase> node <argo node name>[: <detail>]`.
  const prefix = `${e.Phase} node ${e.ArgoNodeName}`;
  let error = e.Message;
  if (error === prefix) error = e.Phase;
  else if (error.startsWith(`${prefix}: `)) error = error.slice(prefix.length + 2);
  if (error.startsWith(`${e.NodeName}: `)) error = error.slice(e.NodeName.length + 2);
  return { step: e.NodeName, error };
}

/** The facts beside the headline, label → value, empty values left out (a failed step is named with its error instead). */
export function facts(e: KfpEvent): [label: string, value: string][] {
  const all: [string, string][] = [
    ['Pipeline', e.PipelineName],
    ['Namespace', e.Namespace],
    ['Step', e.EventType === 'WorkflowNodeFailed' ? '' : e.NodeName],
    ['Run ID', e.KfpRunId],
    ['Time', e.Time],
  ];
  return all.filter(([, v]) => v !== '');
}

/** The label of the link to the run. */
export const OPEN_RUN = 'Open run in KFP';
