import { hookCall, literal, type CallArgs } from './hook-call.js';
import { isStepTemplate, kfpFlavour, stepDisplayName } from '../../common/kfp/kfp-steps.js';
import { EXIT_TEMPLATE, NOTIFY_TASK, USER_EXIT_TASK } from '../../common/injected-names.js';
import type { Capabilities } from './options.js';
import { findTemplate, isRecord, paramsOf, str, type DagTask, type LifecycleHook, type Template, type Workflow } from '../../common/kfp/workflow-types.js';

/**
 * The workflow-exit notification, chained with whatever exit handler the pipeline already has
 * (argo-kfp.md §5 and the correction box in §8.4). Argo refuses `continueOn` in a DAG whose tasks use
 * `depends`, so the wrapper DAG always has exactly one task:
 *  (a) `spec.onExit` (KFP v1 ExitHandler): `user-exit` runs the original template, and the call is that
 *      task's `hooks.exit`. A failed task hook changes neither the task's phase nor the run's, so the
 *      user's exit step fails the run exactly as before, and the notifier never can.
 *  (b) no exit handler (KFP v2, v1 without ExitHandler): `notify` calls the notifier with
 *      `continueOn: {failed, error}`.
 *  (c) only `spec.hooks.exit` (not produced by KFP): it stays `hooks.exit` (setting `onExit` beside it
 *      would silently disable it, §1.2) and points at a wrapper shaped like (a).
 */

export interface ExitContext {
  caps: Capabilities;
  mode: 'container' | 'http';
}

/** Why the exit handler cannot be chained, or undefined when it can. */
export function exitHandlerProblem(wf: Workflow): string | undefined {
  const onExit = wf.spec?.onExit;
  const hooksExit = isRecord(wf.spec?.hooks) ? wf.spec.hooks.exit : undefined;
  if (onExit !== undefined && hooksExit !== undefined) {
    return 'spec.onExit and spec.hooks.exit are both set (Argo ignores hooks.exit); refusing to guess which one the pipeline meant';
  }
  if (onExit !== undefined) {
    if (typeof onExit !== 'string' || !findTemplate(wf, onExit)) return `spec.onExit names template ${JSON.stringify(onExit)}, which the Workflow does not have`;
    if (forwardedArtifacts(wf, findTemplate(wf, onExit)).length > 0) {
      return `spec.onExit template ${onExit} takes workflow artifacts as inputs; wrapping it is not supported`;
    }
  }
  if (hooksExit !== undefined) {
    if (!isRecord(hooksExit) || (str(hooksExit.template) === undefined && hooksExit.templateRef === undefined)) {
      return 'spec.hooks.exit names no template';
    }
    if (isRecord(hooksExit.arguments) && Array.isArray(hooksExit.arguments.artifacts) && hooksExit.arguments.artifacts.length > 0) {
      return 'spec.hooks.exit passes artifacts; wrapping it is not supported';
    }
  }
  return undefined;
}

function forwardedArtifacts(wf: Workflow, t: Template | undefined): string[] {
  const declared = isRecord(t?.inputs) && Array.isArray(t.inputs.artifacts) ? t.inputs.artifacts : [];
  const given = isRecord(wf.spec?.arguments) && Array.isArray(wf.spec.arguments.artifacts) ? wf.spec.arguments.artifacts : [];
  const givenNames = new Set(given.filter(isRecord).map((a) => a.name));
  return declared.filter(isRecord).flatMap((a) => (typeof a.name === 'string' && givenNames.has(a.name) ? [a.name] : []));
}

/** The workflow-exit call's arguments. `{{workflow.failures}}` passes validation only under spec.onExit (§1.4). */
function workflowExitArgs(ctx: ExitContext, o: { failures: boolean; userExit: boolean; userStep?: { displayName: string } }): CallArgs {
  return {
    event: 'workflow-exit',
    ...(o.userStep ? { nodeTask: literal(ctx.mode, USER_EXIT_TASK), nodeDisplayName: literal(ctx.mode, o.userStep.displayName) } : {}),
    workflowStatus: '{{workflow.status}}',
    // The task's own status in its own hook: resolved at run time only from 3.4.17 / 3.5.3.
    ...(o.userExit && ctx.caps.statusArg ? { exitHandlerStatus: `{{tasks.${USER_EXIT_TASK}.status}}` } : {}),
    ...(o.failures ? { failures: '{{workflow.failures}}' } : {}),
    duration: '{{workflow.duration}}',
  };
}

/** The `user-exit` wrapper of (a) and (c): runs the user's exit handler, and the call is its exit hook. */
function userExitWrapper(ctx: ExitContext, wf: Workflow, task: DagTask, o: { failures: boolean; inputs?: string[] }): Template {
  const template = str(task.template);
  // The user's exit step is a KFP step too; the callback reports its node event from this same call.
  const userStep =
    template && isStepTemplate(wf, template)
      ? { displayName: stepDisplayName(wf, kfpFlavour(wf), { dagTemplate: EXIT_TEMPLATE, task: { name: USER_EXIT_TASK, template }, siblings: [] }) }
      : undefined;
  return {
    name: EXIT_TEMPLATE,
    ...(o.inputs && o.inputs.length > 0 ? { inputs: { parameters: o.inputs.map((name) => ({ name, default: '' })) } } : {}),
    dag: { tasks: [{ name: USER_EXIT_TASK, ...task, hooks: { exit: hookCall(workflowExitArgs(ctx, { failures: o.failures, userExit: true, userStep })) } }] },
  };
}

/**
 * Chains the workflow-exit call into `wf` and returns what it did. `wf`, its spec and its template list
 * must be the caller's own (they are edited in place); anything deeper is copied before an edit.
 * Call only when `exitHandlerProblem(wf)` is undefined.
 */
export function chainExitHandler(wf: Workflow, ctx: ExitContext): string {
  const spec = (wf.spec ??= {});
  const templates = (spec.templates ??= []);
  const onExit = str(spec.onExit);
  const hooksExit: LifecycleHook | undefined = isRecord(spec.hooks) && isRecord(spec.hooks.exit) ? spec.hooks.exit : undefined;

  if (onExit) {
    // Argo hands spec.arguments to an onExit template implicitly; a DAG task must pass them explicitly.
    const declared = paramsOf(findTemplate(wf, onExit)?.inputs).flatMap((p) => (typeof p.name === 'string' ? [p.name] : []));
    const given = new Set(paramsOf(spec.arguments).map((p) => p.name));
    const forwarded = declared.filter((p) => given.has(p)).map((p) => ({ name: p, value: `{{workflow.parameters.${p}}}` }));
    const task: DagTask = { template: onExit, ...(forwarded.length > 0 ? { arguments: { parameters: forwarded } } : {}) };
    templates.push(userExitWrapper(ctx, wf, task, { failures: true }));
    spec.onExit = EXIT_TEMPLATE;
    return `wrapped spec.onExit ${onExit}`;
  }

  if (hooksExit && spec.hooks) {
    const passed = paramsOf(hooksExit.arguments).flatMap((p) => (typeof p.name === 'string' ? [p.name] : []));
    const { template, templateRef } = hooksExit;
    const task: DagTask = {
      ...(template !== undefined ? { template } : {}),
      ...(templateRef !== undefined ? { templateRef } : {}),
      ...(passed.length > 0 ? { arguments: { parameters: passed.map((p) => ({ name: p, value: `{{inputs.parameters.${p}}}` })) } } : {}),
    };
    templates.push(userExitWrapper(ctx, wf, task, { failures: false, inputs: passed }));
    const rest = Object.fromEntries(Object.entries(hooksExit).filter(([k]) => k !== 'template' && k !== 'templateRef'));
    // A new map: spec.hooks may be shared with the injector's input.
    spec.hooks = { ...spec.hooks, exit: { ...rest, template: EXIT_TEMPLATE } };
    return `wrapped spec.hooks.exit ${str(template) ?? 'templateRef'}`;
  }

  templates.push({
    name: EXIT_TEMPLATE,
    dag: { tasks: [{ name: NOTIFY_TASK, ...hookCall(workflowExitArgs(ctx, { failures: true, userExit: false })), continueOn: { failed: true, error: true } }] },
  });
  spec.onExit = EXIT_TEMPLATE;
  return 'added spec.onExit';
}
