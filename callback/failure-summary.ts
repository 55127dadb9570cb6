import { isStepTemplate, kfpSteps, type KfpStep } from '../common/kfp/kfp-steps.js';
import { argoNodes, type ArgoNode } from '../common/kfp/argo-nodes.js';
import { isRecord, type Workflow } from '../common/kfp/workflow-types.js';
import { EXIT_TEMPLATE, HOOK_TEMPLATE, RUNNING_HOOK } from '../common/injected-names.js';
import { PROPAGATED_FAILURE, joinFailureLines, type WorkflowFailure } from './messages.js';

/**
 * What a failure says, named as the KFP UI names it. Pure.
 *
 * Argo reports a failure on the node that failed, and in KFP that is rarely the step: a KFP v2 step
 * `<task>` is a DAG whose pod node is called `executor`, so Argo's `{{workflow.failures}}` reads
 * `executor: Error (exit code 1)` and the step's own node says only `child '…' failed`. Here every
 * failed KFP step (found and named by common/kfp/kfp-steps.ts, as the injector and the watcher do)
 * gets the most specific error found in or under it. The hook path (normalize.ts, through
 * WorkflowSnapshot.failedSteps) and the status watcher (status-events.ts) both word failures with
 * these functions, so one failure reads the same whichever path reported it.
 */

export interface StepFailure {
  /** Full Argo node name of the step (for a step whose driver failed: the step's, not the driver's). */
  argoNodeName: string;
  /** The step's name as the KFP UI shows it. */
  displayName: string;
  /** The most specific error under the step (the pod's, the last try's), else the step's phase. */
  error: string;
  /** RFC 3339, '' when unknown: failures are listed in the order they happened. */
  finishedAt: string;
}

type Node = ArgoNode;

const isFailed = (n: Pick<Node, 'phase'>): boolean => n.phase === 'Failed' || n.phase === 'Error';
/** Argo's words on a Retry node whose tries all failed: says nothing the last try does not say better. */
const RETRIES_EXHAUSTED = /^No more retries left$/;
const V2_DRIVER = /(^|-)system-container-driver$/;
const V2_EXECUTOR = /(^|-)system-container-executor$/;
const V2_IMPL = /(^|-)system-container-impl$/;
/** Templates the injector adds: a failed hook is ours to log, never a failed step of the user's. */
const OUR_TEMPLATES = new Set([EXIT_TEMPLATE, HOOK_TEMPLATE, RUNNING_HOOK]);

/** A node without a name cannot be named in a message: it is left out. */
const nodesOf = (wf: Record<string, unknown>): Node[] => argoNodes(wf).filter((n) => n.name !== '');

/** The watcher calls this for every Workflow it sees: most have nothing failed, and pay one scan, no copies. */
function anyFailed(wf: Record<string, unknown>): boolean {
  const nodes = isRecord(wf.status) && isRecord(wf.status.nodes) ? wf.status.nodes : {};
  for (const k in nodes) {
    const n = nodes[k];
    if (isRecord(n) && (n.phase === 'Failed' || n.phase === 'Error')) return true;
  }
  return false;
}

/** A message that says what went wrong, rather than that a child did. */
function specific(message: string): boolean {
  return message !== '' && !PROPAGATED_FAILURE.test(message) && !RETRIES_EXHAUSTED.test(message);
}

/** The error that explains a failed step: a failed pod under it (the latest), else any specific message, else its phase. */
function stepError(step: Node, nodes: readonly Node[]): string {
  const under = nodes.filter((n) => (n === step || n.name.startsWith(`${step.name}.`) || n.name.startsWith(`${step.name}(`)) && isFailed(n) && specific(n.message));
  const latest = (list: Node[]): Node | undefined => list.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
  const best = latest(under.filter((n) => n.type === 'Pod')) ?? latest(under);
  return best?.message || step.phase;
}

/** `task(0:a)` → `task`: the loop suffix Argo appends to expanded tasks. */
function taskNameOf(displayName: string): string {
  const i = displayName.indexOf('(');
  return i < 0 ? displayName : displayName.slice(0, i);
}

/** The KFP step called `task` (running `template` when given), the node's enclosing DAG deciding between namesakes. */
function findStep(steps: readonly KfpStep[], task: string, template: string | undefined, boundary: string | undefined): KfpStep | undefined {
  const candidates = steps.filter((s) => s.taskName === task && (template === undefined || s.template === template));
  if (candidates.length <= 1) return candidates[0];
  return candidates.find((s) => s.dagTemplate === boundary) ?? candidates[0];
}

/**
 * Every failed KFP step of a Workflow, in the order they failed: the step's node (a Retry node rather
 * than its tries), named as the KFP UI names it, with its error. A KFP v2 step whose driver failed
 * (its executor then never runs) is reported under the step's name with the driver's error. [] for
 * anything that is not a Workflow or has no failed step.
 */
export function failedSteps(workflow: unknown): StepFailure[] {
  if (!isRecord(workflow) || !anyFailed(workflow)) return [];
  const nodes = nodesOf(workflow);
  const wf = workflow as Workflow;
  const steps = kfpSteps(wf);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const tries = new Set(nodes.filter((n) => n.type === 'Retry').flatMap((n) => n.children));
  const out: StepFailure[] = [];
  for (const n of nodes) {
    if (!isFailed(n) || tries.has(n.id) || n.type === 'TaskGroup' || n.type === 'StepGroup' || OUR_TEMPLATES.has(n.templateName)) continue;
    const boundary = byId.get(n.boundaryID)?.templateName;
    const task = taskNameOf(n.displayName);
    if (V2_DRIVER.test(n.templateName) && task.endsWith('-driver')) {
      const step = findStep(steps, task.slice(0, -'-driver'.length), undefined, boundary);
      if (step) out.push({ argoNodeName: n.name.replace(/-driver(?=\(|$)/, ''), displayName: step.displayName || step.taskName, error: stateError(n), finishedAt: n.finishedAt });
      continue;
    }
    if (!n.templateName || !isStepTemplate(wf, n.templateName)) continue;
    const step = findStep(steps, task, n.templateName, boundary);
    out.push({ argoNodeName: n.name, displayName: step?.displayName || task || n.name, error: stepError(n, nodes), finishedAt: n.finishedAt });
  }
  return out.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt) || a.argoNodeName.localeCompare(b.argoNodeName));
}

function stateError(n: Node): string {
  return specific(n.message) ? n.message : n.phase;
}

/** `<display name>: <error>`: how a failed step reads in a node event's Message and in a run failure's. */
export function describeStepFailure(displayName: string, error: string): string {
  return `${displayName}: ${error}`;
}

/**
 * The detail of one failed step's event: its error from `failed` (the Workflow's failed steps), else
 * the node's own message when it says something, else its phase, after the step's display name.
 */
export function stepFailureDetail(failed: readonly StepFailure[] | undefined, argoNodeName: string, displayName: string, node: { message?: string; phase: string }): string {
  const known = failed?.find((s) => s.argoNodeName === argoNodeName)?.error;
  const own = node.message && specific(node.message) ? node.message : undefined;
  return describeStepFailure(displayName, known || own || node.phase);
}

/** A failed run's Message from its failed steps: `<step>: <error>; <step>: <error>`, undefined when none. */
export function runFailureMessage(failed: readonly StepFailure[] | undefined): string | undefined {
  if (!failed || failed.length === 0) return undefined;
  return joinFailureLines(failed.map((s) => describeStepFailure(s.displayName, s.error)));
}

/**
 * A failed run's Message from Argo's `{{workflow.failures}}` alone (a hook call without the Workflow
 * object). KFP v2 lists the step (`<task>`, template `system-container-executor`, message `child … failed`)
 * and its pod (`executor`, template `system-container-impl`, the real error) with nothing tying them
 * together; with one failed step they can only belong together, so the error is told under the
 * step's task name. Anything else reads as Argo lists it.
 */
export function failuresListMessage(failures: readonly WorkflowFailure[]): string | undefined {
  const stepsListed = failures.filter((f) => V2_EXECUTOR.test(f.templateName));
  const pods = failures.filter((f) => V2_IMPL.test(f.templateName) && specific(f.message));
  const only = stepsListed.length === 1 ? stepsListed[0] : undefined;
  const pod = pods.length === 1 ? pods[0] : undefined;
  if (only && pod) return joinFailureLines([describeStepFailure(taskNameOf(only.displayName), pod.message)]);
  return undefined;
}
