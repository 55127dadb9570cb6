import { HOOK_EVENTS, HOOK_FIELDS, CONTRACT_VERSION, RUN_NAME_ANNOTATION, hookedNodeName, type HookEvent, type HookField } from '../common/hook-contract.js';
import type { EventType, KfpEvent, SnapshotNode, WorkflowSnapshot } from './types.js';
import { buildEvent, type EventFact } from './event-id.js';
import { SCHEDULED_WORKFLOW_NAME_LABEL } from '../common/kfp/kfp-meta.js';
import { hookAttempt } from './attempt.js';
import { MAX_FAILURES_CHARS, decodeFailures, failureSummary } from './messages.js';
import { failedSteps, failuresListMessage, runFailureMessage, stepFailureDetail } from './failure-summary.js';

/**
 * Hook call → events. Pure: the edge (ingest) authenticates the call, may fetch the Workflow when
 * `needsWorkflowLookup` says it helps, and stores what comes back.
 *
 * Mapping (docs/events.md):
 * - workflow-running → WorkflowRunning
 * - workflow-exit    → WorkflowSucceeded when workflowStatus is Succeeded and the user's exit handler
 *                      (if any) did not fail; else WorkflowFailed. When the call names the user's own
 *                      exit step, that step's node event comes first in the same result.
 * - node-exit        → WorkflowNodeSucceeded / WorkflowNodeFailed (Failed or Error); Skipped and
 *                      Omitted steps produce no event.
 */

export interface HookContext {
  receivedAt: Date;
  /** The Workflow as an edge fetched it, when it did (see needsWorkflowLookup). */
  workflow?: WorkflowSnapshot;
}

export type NormalizeResult = { ok: true; events: KfpEvent[] } | { ok: false; status: 400 | 422; reason: string };

/** Longest value accepted per field: a bigger one is a 400, not a giant event. */
export const FIELD_LIMITS: Readonly<Record<HookField, number>> = {
  v: 8,
  event: 32,
  kfpRunId: 128,
  namespace: 63,
  workflowName: 253,
  workflowUid: 64,
  hookNodeName: 1024,
  nodeTask: 253,
  nodeDisplayName: 512,
  // room for a literal '{{tasks.<253-char task>.status}}'
  nodePhase: 300,
  workflowStatus: 64,
  exitHandlerStatus: 300,
  // failures is never refused (see decodeFailures); this only bounds what is decoded
  failures: MAX_FAILURES_CHARS,
  duration: 64,
  pipelineName: 512,
  runName: 512,
  recurringRunName: 253,
};

const WORKFLOW_STATUSES = ['Succeeded', 'Failed', 'Error'] as const;
const NODE_PHASES = ['Succeeded', 'Failed', 'Error', 'Skipped', 'Omitted'] as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/g;

type Fields = Record<HookField, string>;
type Failure = { ok: false; status: 400 | 422; reason: string };
const bad = (reason: string): Failure => ({ ok: false, status: 400, reason });
const unprocessable = (reason: string): Failure => ({ ok: false, status: 422, reason });

/** An Argo placeholder Argo could not fill: older Argo passes it through literally. */
export function isUnresolved(value: string): boolean {
  return /^\{\{[\s\S]*\}\}$/.test(value.trim());
}

function quote(value: string): string {
  return `'${value.length > 80 ? `${value.slice(0, 77)}...` : value}'`;
}

/** Every contract field as a string ('' when absent); non-scalar and oversized values are refused. */
function readFields(input: Readonly<Record<string, unknown>>): { ok: true; fields: Fields } | Failure {
  const fields = {} as Fields;
  for (const name of HOOK_FIELDS) {
    const raw = input[name];
    let value: string;
    if (raw === undefined || raw === null) value = '';
    else if (typeof raw === 'string') value = raw;
    else if (typeof raw === 'number' || typeof raw === 'boolean') value = String(raw);
    else return bad(`field ${name} must be a string`);
    if (value.length > FIELD_LIMITS[name]) {
      if (name === 'failures') value = ''; // too big to decode: no failure detail, still an event
      else return bad(`field ${name} is ${value.length} characters, longer than the limit of ${FIELD_LIMITS[name]}`);
    }
    fields[name] = value;
  }
  return { ok: true, fields };
}

/** Identifiers must be present, resolved, and shaped as Kubernetes/KFP would make them. */
function checkIdentity(f: Fields): Failure | undefined {
  for (const name of ['kfpRunId', 'namespace', 'workflowName'] as const) {
    const v = f[name];
    if (v === '') return bad(`field ${name} is missing`);
    if (isUnresolved(v)) return bad(`field ${name} is unresolved (${quote(v)})`);
    if (/\s/.test(v) || CONTROL_CHAR.test(v)) return bad(`field ${name} contains whitespace or control characters`);
  }
  if (!DNS_LABEL.test(f.namespace)) return bad(`namespace ${quote(f.namespace)} is not a valid Kubernetes namespace name`);
  if (!DNS_SUBDOMAIN.test(f.workflowName)) return bad(`workflowName ${quote(f.workflowName)} is not a valid Kubernetes object name`);
  return undefined;
}

/** Free text the user chose (display names): control characters become spaces rather than a 400. */
function clean(value: string): string {
  return isUnresolved(value) ? '' : value.replace(CONTROL_CHARS, ' ');
}

function oneOf<T extends string>(allowed: readonly T[], value: string): value is T {
  return (allowed as readonly string[]).includes(value);
}

/** The snapshot, unless it is of another Workflow that reused the name (different uid). */
function usableSnapshot(f: Fields, ctx: HookContext): WorkflowSnapshot | undefined {
  const wf = ctx.workflow;
  if (!wf) return undefined;
  if (f.workflowUid && !isUnresolved(f.workflowUid) && wf.uid && wf.uid !== f.workflowUid) return undefined;
  return wf;
}

type OwnFact = Pick<EventFact, 'eventType' | 'argoNodeName' | 'nodeDisplayName' | 'phase' | 'message' | 'time'>;

/**
 * The call's run-level fields plus one event's own, written out field by field: spreading the
 * run-level part into the literal made V8 build a slow (dictionary) object, which cost more than
 * the rest of normalizing together (a node-exit call went from ~11 µs to 3–5 µs without it).
 */
function fact(f: Fields, wf: WorkflowSnapshot | undefined, own: OwnFact): EventFact {
  const uid = isUnresolved(f.workflowUid) ? '' : f.workflowUid;
  return {
    attempt: hookAttempt(own.eventType, own.argoNodeName, f.workflowName, wf),
    eventType: own.eventType,
    kfpRunId: f.kfpRunId,
    workflowName: f.workflowName,
    namespace: f.namespace,
    argoNodeName: own.argoNodeName,
    nodeDisplayName: own.nodeDisplayName,
    phase: own.phase,
    message: own.message,
    time: own.time,
    pipelineName: clean(f.pipelineName),
    runName: clean(f.runName) || (wf?.annotations[RUN_NAME_ANNOTATION] ?? ''),
    workflowUid: uid || (wf?.uid ?? ''),
    source: 'hook',
    recurringRunName: clean(f.recurringRunName) || recurringRunFromLabels(wf),
  };
}

/** A hook from an injector older than the recurringRunName field: the Workflow's label, when it was fetched. */
function recurringRunFromLabels(wf: WorkflowSnapshot | undefined): string {
  return wf?.labels[SCHEDULED_WORKFLOW_NAME_LABEL] ?? '';
}

/** NodeName: the KFP display name, else the DAG task, else what Argo shows, else the node name's tail. */
function displayNameOf(f: Fields, argoNodeName: string, node: SnapshotNode | undefined): string {
  return clean(f.nodeDisplayName) || clean(f.nodeTask) || node?.displayName || argoNodeName.split('.').pop() || argoNodeName;
}

function nodeEventType(phase: 'Succeeded' | 'Failed' | 'Error'): EventType {
  return phase === 'Succeeded' ? 'WorkflowNodeSucceeded' : 'WorkflowNodeFailed';
}

/**
 * A node's phase from the call, or from the snapshot when the call could not carry it (empty, or a
 * literal `{{tasks.x.status}}` on Argo older than 3.4.17 / 3.5.3). 422 when nothing can tell.
 */
function resolveNodePhase(
  field: 'nodePhase' | 'exitHandlerStatus',
  value: string,
  argoNodeName: string | undefined,
  wf: WorkflowSnapshot | undefined,
): { ok: true; phase: (typeof NODE_PHASES)[number] } | Failure {
  let phase = value;
  if (phase === '' || isUnresolved(phase)) {
    const what = phase === '' ? `${field} empty` : `${field} unresolved (${quote(phase)})`;
    if (!wf) return unprocessable(`${what} and no workflow status to resolve it from`);
    const node = argoNodeName ? wf.nodes[argoNodeName] : undefined;
    if (!node) return unprocessable(`${what} and node ${quote(argoNodeName ?? '')} is not in the workflow status`);
    if (!oneOf(NODE_PHASES, node.phase)) return unprocessable(`${what} and node ${quote(argoNodeName ?? '')} is still ${node.phase || 'without a phase'} in the workflow status`);
    phase = node.phase;
  }
  if (!oneOf(NODE_PHASES, phase)) return bad(`${field} must be one of ${NODE_PHASES.join(', ')} or empty (got ${quote(phase)})`);
  return { ok: true, phase };
}

function nodeExit(f: Fields, ctx: HookContext, wf: WorkflowSnapshot | undefined): NormalizeResult {
  if (f.hookNodeName === '' || isUnresolved(f.hookNodeName)) return bad('field hookNodeName is missing');
  const argoNodeName = hookedNodeName(f.hookNodeName);
  if (!argoNodeName) return bad(`hookNodeName ${quote(f.hookNodeName)} is not an exit hook node (expected '<node name>.onExit')`);
  const resolved = resolveNodePhase('nodePhase', f.nodePhase, argoNodeName, wf);
  if (!resolved.ok) return resolved;
  const { phase } = resolved;
  if (phase === 'Skipped' || phase === 'Omitted') return { ok: true, events: [] };
  const node = wf?.nodes[argoNodeName];
  const nodeDisplayName = displayNameOf(f, argoNodeName, node);
  const event = buildEvent(
    fact(f, wf, {
      eventType: nodeEventType(phase),
      argoNodeName,
      nodeDisplayName,
      phase,
      // The step as the KFP UI names it, with the error found under it (failure-summary.ts).
      message: phase === 'Succeeded' ? undefined : stepFailureDetail(wf?.failedSteps, argoNodeName, nodeDisplayName, { message: node?.message, phase }),
      time: node?.finishedAt || ctx.receivedAt,
    }),
  );
  return { ok: true, events: [event] };
}

/** The phase of a run that did not succeed. */
function failedRunPhase(status: (typeof WORKFLOW_STATUSES)[number], exitPhase: string | undefined, wf: WorkflowSnapshot | undefined): string {
  // KFP's Terminate ends the run Failed; only the Workflow's spec tells it apart.
  if (wf?.terminated) return 'Terminated';
  if (status !== 'Succeeded') return status;
  // Argo turns a Succeeded run Error when the exit handler errored, Failed when it failed.
  return exitPhase === 'Error' ? 'Error' : 'Failed';
}

function workflowExit(f: Fields, ctx: HookContext, wf: WorkflowSnapshot | undefined): NormalizeResult {
  const status = f.workflowStatus;
  if (status === '') return bad('field workflowStatus is missing');
  if (isUnresolved(status)) return unprocessable(`workflowStatus unresolved (${quote(status)})`);
  if (!oneOf(WORKFLOW_STATUSES, status)) return bad(`workflowStatus must be one of ${WORKFLOW_STATUSES.join(', ')} (got ${quote(status)})`);

  // The injector puts this call on the user's exit step (if the pipeline has one): the hook node is
  // `<exit step node>.onExit`, and exitHandlerStatus is that step's phase.
  const exitNodeName = f.hookNodeName && !isUnresolved(f.hookNodeName) ? hookedNodeName(f.hookNodeName) : undefined;
  const hasExitStep = clean(f.nodeTask) !== '' || clean(f.nodeDisplayName) !== '';
  // Below Argo 3.4.17 / 3.5.3 the injector cannot pass the exit step's status at all, so with an
  // exit step named, '' means "not known" rather than "no exit handler".
  const statusUnknown = isUnresolved(f.exitHandlerStatus) || (f.exitHandlerStatus === '' && hasExitStep);
  let exitPhase: (typeof NODE_PHASES)[number] | undefined;
  if (f.exitHandlerStatus !== '' || hasExitStep) {
    const resolved = resolveNodePhase('exitHandlerStatus', f.exitHandlerStatus, exitNodeName, wf);
    // An outcome nothing can tell counts as none known: the mapping's '' case.
    if (resolved.ok) exitPhase = resolved.phase;
    else if (!statusUnknown) return resolved;
  }
  const exitFailed = exitPhase === 'Failed' || exitPhase === 'Error';
  const events: KfpEvent[] = [];

  if (hasExitStep && exitNodeName && exitPhase && exitPhase !== 'Skipped' && exitPhase !== 'Omitted') {
    const node = wf?.nodes[exitNodeName];
    const nodeDisplayName = displayNameOf(f, exitNodeName, node);
    events.push(
      buildEvent(
        fact(f, wf, {
          eventType: nodeEventType(exitPhase),
          argoNodeName: exitNodeName,
          nodeDisplayName,
          phase: exitPhase,
          message: exitFailed ? stepFailureDetail(wf?.failedSteps, exitNodeName, nodeDisplayName, { message: node?.message, phase: exitPhase }) : undefined,
          time: node?.finishedAt || ctx.receivedAt,
        }),
      ),
    );
  }

  const succeeded = status === 'Succeeded' && !exitFailed;
  const phase = succeeded ? 'Succeeded' : failedRunPhase(status, exitPhase, wf);
  const exitDetail = exitFailed ? `exit handler ${displayNameOf(f, exitNodeName ?? 'onExit', undefined)} ${exitPhase}` : undefined;
  events.push(
    buildEvent(
      fact(f, wf, {
        eventType: succeeded ? 'WorkflowSucceeded' : 'WorkflowFailed',
        argoNodeName: '',
        nodeDisplayName: '',
        phase,
        // Named as the KFP UI names the steps: from the Workflow when fetched, else from Argo's failures list.
        message: succeeded ? undefined : runFailureMessage(wf?.failedSteps) || runFailureFromList(f.failures) || wf?.message || exitDetail,
        time: ctx.receivedAt,
      }),
    ),
  );
  return { ok: true, events };
}

function runFailureFromList(raw: string): string | undefined {
  const failures = decodeFailures(raw);
  return failuresListMessage(failures) || failureSummary(failures);
}

/** Hook call fields (form or JSON) → the events they report, or a 400/422 with a reason to fix the caller. */
export function normalizeHookCall(input: Readonly<Record<string, unknown>>, ctx: HookContext): NormalizeResult {
  const read = readFields(input);
  if (!read.ok) return read;
  const f = read.fields;
  if (f.v !== '' && f.v !== CONTRACT_VERSION) return bad(`unsupported contract version v=${quote(f.v)} (this callback speaks v=${CONTRACT_VERSION})`);
  if (f.event === '') return bad('field event is missing');
  if (!oneOf<HookEvent>(HOOK_EVENTS, f.event)) return bad(`event must be one of ${HOOK_EVENTS.join(', ')} (got ${quote(f.event)})`);
  const identity = checkIdentity(f);
  if (identity) return identity;
  const wf = usableSnapshot(f, ctx);

  switch (f.event) {
    case 'workflow-running':
      return {
        ok: true,
        events: [buildEvent(fact(f, wf, { eventType: 'WorkflowRunning', argoNodeName: '', nodeDisplayName: '', phase: 'Running', message: undefined, time: ctx.receivedAt }))],
      };
    case 'workflow-exit':
      return workflowExit(f, ctx, wf);
    case 'node-exit':
      return nodeExit(f, ctx, wf);
  }
}

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

/**
 * Whether fetching the Workflow would improve this call's events: a node phase the hook could not
 * carry, a failure (the node's message and a KFP terminate are only in the Workflow object), and for
 * every step outcome and run end the attempt it belongs to (callback/attempt.ts: a KFP retry re-runs
 * nodes under the same names).
 */
export function needsWorkflowLookup(input: Readonly<Record<string, unknown>>): boolean {
  const event = str(input.event);
  return event === 'node-exit' || event === 'workflow-exit';
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(record(v) ?? {})) if (typeof val === 'string') out[k] = val;
  return out;
}

/** A raw Workflow object (as the Kubernetes API returns it) → the snapshot normalize can use. */
export function toWorkflowSnapshot(workflow: unknown): WorkflowSnapshot | undefined {
  const wf = record(workflow);
  if (!wf) return undefined;
  const metadata = record(wf.metadata) ?? {};
  const spec = record(wf.spec) ?? {};
  const status = record(wf.status) ?? {};
  const nodes: Record<string, SnapshotNode> = {};
  for (const raw of Object.values(record(status.nodes) ?? {})) {
    const n = record(raw);
    const name = n && str(n.name);
    if (!n || !name) continue;
    const node: SnapshotNode = { phase: str(n.phase) };
    if (str(n.message)) node.message = str(n.message);
    if (str(n.displayName)) node.displayName = str(n.displayName);
    if (str(n.finishedAt)) node.finishedAt = str(n.finishedAt);
    if (str(n.startedAt)) node.startedAt = str(n.startedAt);
    nodes[name] = node;
  }
  const snapshot: WorkflowSnapshot = {
    nodes,
    annotations: stringMap(metadata.annotations),
    labels: stringMap(metadata.labels),
    terminated: spec.activeDeadlineSeconds === 0 || spec.activeDeadlineSeconds === '0' || str(spec.shutdown) !== '',
  };
  if (str(metadata.uid)) snapshot.uid = str(metadata.uid);
  if (str(status.phase)) snapshot.phase = str(status.phase);
  if (str(status.message)) snapshot.message = str(status.message);
  const failed = failedSteps(wf);
  if (failed.length > 0) snapshot.failedSteps = failed;
  if (str(status.finishedAt)) snapshot.finishedAt = str(status.finishedAt);
  return snapshot;
}
