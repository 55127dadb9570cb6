import { kfpFlavour, kfpSteps, isStepTemplate, stepDisplayName, type KfpStep } from '../common/kfp/kfp-steps.js';
import { pipelineNameOf, recurringRunNameOf, runIdOf, runNameOf } from '../common/kfp/kfp-meta.js';
import { isRecord, str, type Workflow } from '../common/kfp/workflow-types.js';
import { buildEvent, type EventFact } from './event-id.js';
import { failedSteps, runFailureMessage, stepFailureDetail } from './failure-summary.js';
import { nodeAttempt, runEndAttempt, runExitNodeName } from './attempt.js';
import { hookCoverage, type HookCoverage } from '../common/hook-coverage.js';
import { EXIT_TEMPLATE } from '../common/injected-names.js';
import { argoNodes, type ArgoNode } from '../common/kfp/argo-nodes.js';
import type { EventType, KfpEvent } from './types.js';

/**
 * Workflow status → every fact a fully hooked run would have reported by now. Pure.
 *
 * The status watcher feeds each Workflow it sees through this and ingests what the hooks did not
 * deliver: a run terminated by KFP (`spec.activeDeadlineSeconds: 0`) or by `argo terminate`
 * (`spec.shutdown`), a callback that was down during the run, an Argo without running hooks, a
 * Workflow the webhook never saw, and every fact the Workflow's `stepHooks` policy leaves to the
 * watcher (a step's success under `failed`, every step under `none`). Steps are found and named
 * through the injector's own kfpSteps, events are built by the same buildEvent as the hook path, and
 * the attempt comes from the same fields (attempt.ts), so a fact reported both ways has one EventId
 * and the store keeps one.
 */

/** A fact, and whether an injected hook is expected to report it (then the watcher waits its grace). */
export interface StatusFact {
  event: KfpEvent;
  hookExpected: boolean;
}

export interface StatusEventOptions {
  /** RFC 3339 time for a fact whose Workflow records no time of its own. */
  now: string;
}


const FINISHED = new Set(['Succeeded', 'Failed', 'Error']);
const NODE_EVENT: Record<string, EventType> = {
  Succeeded: 'WorkflowNodeSucceeded',
  Failed: 'WorkflowNodeFailed',
  Error: 'WorkflowNodeFailed',
};
/** Template names the injector adds; their nodes are our own hooks, never steps. */
const OUR_TEMPLATE_PREFIX = 'kfp-notify-';

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function statusOf(wf: Record<string, unknown>): Record<string, unknown> {
  return isRecord(wf.status) ? wf.status : {};
}

/** True once Argo has put the Workflow in a final phase (Succeeded, Failed or Error). */
export function isFinished(wf: unknown): boolean {
  return isRecord(wf) && FINISHED.has(text(statusOf(wf).phase));
}

/** KFP's Terminate sets `activeDeadlineSeconds: 0`; `argo terminate` / `argo stop` set `spec.shutdown`. */
export function isTerminated(wf: unknown): boolean {
  if (!isRecord(wf) || !isRecord(wf.spec)) return false;
  const deadline = wf.spec.activeDeadlineSeconds;
  return deadline === 0 || deadline === '0' || text(wf.spec.shutdown) !== '';
}

/** `task(0:a)` → `task`: the loop suffix Argo appends to expanded DAG tasks (task names have no `(`). */
function taskNameOf(displayName: string): string {
  const i = displayName.indexOf('(');
  return i < 0 ? displayName : displayName.slice(0, i);
}

/**
 * A Workflow the webhook never saw runs a KFP v1 exit op as the node `<wf>.onExit` itself (injected,
 * that node is our wrapper and the op runs as its `user-exit` task). It is a step all the same.
 */
function unwrappedExitStep(n: ArgoNode, wf: Workflow, workflowName: string): KfpStep | undefined {
  const onExit = str(wf.spec?.onExit);
  if (!onExit || n.name !== `${workflowName}.onExit` || n.templateName !== onExit || !isStepTemplate(wf, onExit)) return undefined;
  const displayName = stepDisplayName(wf, kfpFlavour(wf), { dagTemplate: '', task: { name: onExit, template: onExit }, siblings: [] });
  return { dagTemplate: '', taskName: onExit, template: onExit, displayName };
}

function isOwnHookNode(n: ArgoNode, wf: Workflow, workflowName: string): boolean {
  if (n.templateName.startsWith(OUR_TEMPLATE_PREFIX) || n.name.startsWith(`${workflowName}.hooks.`)) return true;
  return /\.onExit(\(\d+\))?$/.test(n.name) && !unwrappedExitStep(n, wf, workflowName);
}

/**
 * The KFP step a node runs, if it is one: its template is a step template, its display name is the
 * step's task name (plus a loop suffix), and it is not a try under a Retry node (the hook reports the
 * Retry node itself, after the last try), nor a TaskGroup (the hook runs per expanded iteration).
 * When one task name appears in several DAGs, the node's boundary (its enclosing DAG node) decides.
 */
function stepOf(n: ArgoNode, byId: Map<string, ArgoNode>, retryTries: Set<string>, steps: readonly KfpStep[], wf: Workflow): KfpStep | undefined {
  if (n.type === 'TaskGroup' || n.type === 'StepGroup' || retryTries.has(n.id)) return undefined;
  const exitStep = unwrappedExitStep(n, wf, str(wf.metadata?.name) ?? '');
  if (exitStep) return exitStep;
  if (!n.templateName || !isStepTemplate(wf, n.templateName)) return undefined;
  const task = taskNameOf(n.displayName);
  const candidates = steps.filter((s) => s.taskName === task && s.template === n.templateName);
  if (candidates.length <= 1) return candidates[0];
  const boundary = byId.get(n.boundaryID)?.templateName;
  return candidates.find((s) => s.dagTemplate === boundary) ?? candidates[0];
}

/** The facts in a Workflow's status, in the order they happened; [] for anything that is not a KFP Workflow. */
export function eventsFromWorkflow(input: unknown, opts: StatusEventOptions): KfpEvent[] {
  return factsFromWorkflow(input, opts).map((f) => f.event);
}

/**
 * Whether a hook will report a step's outcome: the step is hooked for it (status annotation), and the
 * hook can still fire. KFP's retry keeps a step's succeeded hook node from the attempt before
 * (argo-kfp.md §7), so Argo never fires it again for the step's new outcome: a hook node that started
 * before the step last finished belongs to an earlier attempt.
 */
function stepHookExpected(coverage: HookCoverage | undefined, step: KfpStep, n: ArgoNode, byName: ReadonlyMap<string, ArgoNode>): boolean {
  if (!coverage) return false;
  // The user's exit step is reported by the run-end call, which every attempt makes again.
  if (step.dagTemplate === EXIT_TEMPLATE) return true;
  const id = `${step.dagTemplate}/${step.taskName}`;
  const hooked = coverage.always.has(id) || (coverage.onFailure.has(id) && n.phase !== 'Succeeded');
  if (!hooked) return false;
  const hookNode = byName.get(`${n.name}.onExit`);
  return !(hookNode && hookNode.startedAt !== '' && n.finishedAt !== '' && hookNode.startedAt < n.finishedAt);
}

/** `eventsFromWorkflow`, each event with whether a hook is expected to report it. */
export function factsFromWorkflow(input: unknown, opts: StatusEventOptions): StatusFact[] {
  if (!isRecord(input) || !isRecord(input.metadata)) return [];
  const wf = input as Workflow & Record<string, unknown>;
  const meta = wf.metadata ?? {};
  const kfpRunId = runIdOf(wf);
  const workflowName = str(meta.name);
  if (!kfpRunId || !workflowName) return [];

  const status = statusOf(wf);
  const phase = text(status.phase);
  const nodes = argoNodes(wf);
  const coverage = hookCoverage(isRecord(meta.annotations) ? meta.annotations : undefined);
  const base: Omit<EventFact, 'eventType' | 'argoNodeName' | 'nodeDisplayName' | 'phase' | 'message' | 'time'> = {
    kfpRunId,
    workflowName,
    namespace: text(meta.namespace),
    pipelineName: pipelineNameOf(wf),
    runName: runNameOf(wf),
    workflowUid: text(meta.uid),
    source: 'watcher',
    recurringRunName: recurringRunNameOf(wf),
  };
  const workflowFact = (eventType: EventType, factPhase: string, time: string, message?: string): EventFact => ({
    ...base,
    eventType,
    argoNodeName: '',
    nodeDisplayName: '',
    phase: factPhase,
    message,
    time: time || opts.now,
  });

  const events: StatusFact[] = [];
  // The running hook fires once the entry node exists (Argo's workflow.status comes from it).
  const root = nodes.find((n) => n.name === workflowName);
  if (root && (phase === 'Running' || FINISHED.has(phase))) {
    const event = buildEvent(workflowFact('WorkflowRunning', 'Running', text(status.startedAt) || root.startedAt));
    events.push({ event, hookExpected: coverage?.runningHook === true });
  }

  const byId = new Map(nodes.map((n) => [n.id, n]));
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const retryTries = new Set(nodes.filter((n) => n.type === 'Retry').flatMap((n) => n.children));
  const steps = kfpSteps(wf);
  const failed = failedSteps(wf);
  const ownNodes = nodes.filter((n) => !isOwnHookNode(n, wf, workflowName));
  const nodeEvents = ownNodes
    .filter((n) => NODE_EVENT[n.phase] !== undefined)
    .flatMap((n) => {
      const step = stepOf(n, byId, retryTries, steps, wf);
      if (!step) return [];
      const displayName = step.displayName || step.taskName;
      const fact: EventFact = {
        ...base,
        eventType: NODE_EVENT[n.phase] as EventType,
        argoNodeName: n.name,
        nodeDisplayName: displayName,
        phase: n.phase,
        // As the hook path words it (failure-summary.ts): only when the step did not succeed.
        message: n.phase === 'Succeeded' ? undefined : stepFailureDetail(failed, n.name, displayName, n),
        time: n.finishedAt || text(status.finishedAt) || opts.now,
        attempt: nodeAttempt(n),
      };
      return [{ at: fact.time as string, event: buildEvent(fact), hookExpected: stepHookExpected(coverage, step, n, byName) }];
    })
    .sort((a, b) => a.at.localeCompare(b.at) || a.event.ArgoNodeName.localeCompare(b.event.ArgoNodeName))
    .map(({ event, hookExpected }) => ({ event, hookExpected }));
  events.push(...nodeEvents);

  if (FINISHED.has(phase)) {
    const time = text(status.finishedAt);
    const attempt = runEndAttempt(byName.get(runExitNodeName(workflowName)), time);
    // The injected exit handler reports the end, unless `argo terminate` stopped everything (spec.shutdown: Terminate runs no exit handler).
    const hookExpected = coverage !== undefined && text(isRecord(wf.spec) ? wf.spec.shutdown : undefined) !== 'Terminate';
    if (phase === 'Succeeded') events.push({ event: buildEvent({ ...workflowFact('WorkflowSucceeded', phase, time), attempt }), hookExpected });
    else {
      const message = runFailureMessage(failed) || text(status.message) || undefined;
      const event = buildEvent({ ...workflowFact('WorkflowFailed', isTerminated(wf) ? 'Terminated' : phase, time, message), attempt });
      events.push({ event, hookExpected });
    }
  }
  return events;
}
