import type { HookKey } from '../../../common/hook-token.js';
import { normalizeHookCall, toWorkflowSnapshot } from '../../../callback/normalize.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import { admittedWorkflow, withStatus, type NodeSpec, type Wf } from '../../callback/cluster/argo-status.js';
import { simulatedHookCalls } from '../../callback/cluster/hook-sim.js';

/**
 * Whole KFP runs for the "hooks that never fire" tests: the KFP v2 ExitHandler fixture
 * (kfp-v2-argocompiler-2.5.0/exit_handler.yaml: exit-handler-1 { fail-op, print-op-2 } and KFP's own
 * exit task print-op), admitted as the KFP API server creates it, injected by the real injector, with
 * a status written the way Argo's controller writes it (test/callback/cluster/argo-status.ts).
 * The hook calls such a run makes come from test/callback/cluster/hook-sim.ts.
 */

export type Outcome = 'running' | 'succeeded' | 'failed' | 'terminated';

export interface KfpRun {
  name: string;
  runId: string;
  namespace: string;
  outcome: Outcome;
  /** The Workflow as the API server holds it in this state. */
  workflow: Wf;
  /** The calls a fully hooked run makes by this state (form fields). */
  hookCalls: Record<string, string>[];
}

const FIXTURE = 'kfp-v2-argocompiler-2.5.0/exit_handler.yaml';

/** `msAgo` is when the run started; it took 30 s (so finished facts are recent, within the watcher's max age). */
export function exitHandlerRun(o: { name: string; runId: string; namespace: string; outcome: Outcome; key: HookKey; msAgo?: number }): KfpRun {
  const admitted = admittedWorkflow(FIXTURE, { name: o.name, runId: o.runId, namespace: o.namespace, uid: `uid-${o.runId}` });
  // Every step hooked (`stepHooks: all`): these runs model a fully hooked run whose hooks may not fire.
  const injected = injectWorkflow(admitted, defaultInjectOptions({ hookKey: o.key, stepHooks: 'all' }));
  if (injected.outcome !== 'injected') throw new Error(`not injected: ${injected.reason}`);
  const t = (s: number) => new Date(Date.now() - (o.msAgo ?? 40_000) + s * 1000).toISOString();
  const w = o.name;
  const eh = `${w}.root.exit-handler-1`;
  const kfpExit = `${eh}.onExit`;
  const running = o.outcome === 'running';
  const end = running ? 'Running' : o.outcome === 'succeeded' ? 'Succeeded' : 'Failed';
  const failOp = running ? 'Running' : o.outcome === 'succeeded' ? 'Succeeded' : 'Failed';
  const failMessage = o.outcome === 'terminated' ? 'Step exceeded its deadline' : o.outcome === 'failed' ? 'Error (exit code 1)' : undefined;
  const nodes: NodeSpec[] = [
    { name: w, type: 'DAG', templateName: 'entrypoint', phase: end, children: [`${w}.root-driver`, `${w}.hooks.kfp-notify-running`], startedAt: t(0), finishedAt: t(30) },
    { name: `${w}.hooks.kfp-notify-running`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: w, displayName: `${w}.hooks.kfp-notify-running`, startedAt: t(0), finishedAt: t(2) },
    { name: `${w}.root-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: w, children: [`${w}.root`], startedAt: t(0), finishedAt: t(1) },
    { name: `${w}.root`, type: 'DAG', templateName: 'root', phase: end, boundary: w, children: [eh], startedAt: t(1), finishedAt: t(30) },
    { name: eh, type: 'DAG', templateName: 'comp-exit-handler-1', phase: end, boundary: `${w}.root`, children: running ? [`${eh}.fail-op`] : [`${eh}.fail-op`, `${eh}.print-op-2`], startedAt: t(1), finishedAt: t(25) },
    { name: `${eh}.fail-op`, type: 'DAG', templateName: 'system-container-executor', phase: failOp, boundary: eh, startedAt: t(2), finishedAt: t(20), ...(failMessage ? { message: failMessage } : {}) },
  ];
  if (!running) {
    const printOp2: NodeSpec['phase'] = o.outcome === 'succeeded' ? 'Succeeded' : 'Omitted';
    nodes.push(
      { name: `${eh}.print-op-2`, type: printOp2 === 'Omitted' ? 'Skipped' : 'DAG', templateName: 'system-container-executor', phase: printOp2, boundary: eh, startedAt: t(20), finishedAt: t(22) },
      { name: kfpExit, type: 'DAG', templateName: 'exit-hook-root-print-op', phase: 'Succeeded', boundary: `${w}.root`, children: [`${kfpExit}.print-op`], startedAt: t(25), finishedAt: t(28) },
      { name: `${kfpExit}.print-op`, type: 'DAG', templateName: 'system-container-executor', phase: 'Succeeded', boundary: kfpExit, startedAt: t(25), finishedAt: t(28) },
      // The injected exit wrapper: its notify task is the workflow-exit hook call.
      { name: `${w}.onExit`, type: 'DAG', templateName: 'kfp-notify-exit', phase: 'Succeeded', displayName: `${w}.onExit`, children: [`${w}.onExit.notify`], startedAt: t(30), finishedAt: t(31) },
      { name: `${w}.onExit.notify`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: `${w}.onExit`, startedAt: t(30), finishedAt: t(31) },
    );
  }
  const workflow = withStatus(injected.workflow as Wf, {
    phase: end,
    startedAt: t(0),
    ...(running ? {} : { finishedAt: t(31) }),
    ...(o.outcome === 'terminated' ? { message: 'Step exceeded its deadline' } : {}),
    nodes,
  });
  if (o.outcome === 'terminated') workflow.spec.activeDeadlineSeconds = 0;
  return { name: o.name, runId: o.runId, namespace: o.namespace, outcome: o.outcome, workflow, hookCalls: simulatedHookCalls(workflow) };
}

/** What each hook call of a run reports: its event ids and (type, step) facts, by the hook path's own normalize. */
export function factsOf(calls: readonly Record<string, string>[], workflow: Wf): { id: string; fact: string }[] {
  // The callback looks the Workflow up for every step outcome and run end (the attempt, callback/attempt.ts).
  const snapshot = toWorkflowSnapshot(workflow);
  return calls.flatMap((fields) => {
    const r = normalizeHookCall(fields, { receivedAt: new Date(), ...(snapshot ? { workflow: snapshot } : {}) });
    if (!r.ok) throw new Error(`simulated hook call refused: ${r.reason}`);
    return r.events.map((e) => ({ id: e.EventId, fact: `${e.EventType}:${e.NodeName}` }));
  });
}

export const hookEventOf = (call: Record<string, string>): string => `${call.event}:${call.nodeTask ?? ''}`;
