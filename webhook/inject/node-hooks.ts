import { hookCall, literal } from './hook-call.js';
import { stepRefs } from '../../common/kfp/kfp-steps.js';
import type { Capabilities, StepHooks } from './options.js';
import { isRecord, type DagTask, type Template, type Workflow } from '../../common/kfp/workflow-types.js';

export interface NodeHooksResult {
  /** `<dag template>/<task>` of each step that got an exit hook that always fires. */
  hooked: string[];
  /** Steps whose exit hook fires only when the step did not succeed (`stepHooks: failed`). */
  failureHooked: string[];
  /** Steps left alone because they already have an exit handler of their own. */
  unhooked: { task: string; reason: string }[];
}

/**
 * Adds a `hooks.exit` calling the notifier to every KFP step (argo-kfp.md §4.5, §8.2 step 7), wherever
 * it sits: loops, conditions, nested pipelines, v2 exit-hook DAGs. An exit hook fires once the task is
 * Succeeded, Failed or Errored (not Skipped or Omitted), per loop iteration and after retries; a failed
 * hook changes neither the task's phase nor the run's.
 *
 * `wf.spec.templates` must be the caller's own list (the injector's copy): hooked tasks are replaced by
 * edited copies, and so are the templates and task lists that hold them; the objects in the list are
 * never edited, so they may be shared with the input.
 */
export function addNodeHooks(wf: Workflow, ctx: { caps: Capabilities; mode: 'container' | 'http'; stepHooks: StepHooks }): NodeHooksResult {
  const result: NodeHooksResult = { hooked: [], failureHooked: [], unhooked: [] };
  if (ctx.stepHooks === 'none') return result;
  // Original task → its hooked copy. Keyed by identity, so a task object listed twice is hooked once,
  // and seen hooked the second time, as an in-place edit would have it.
  const hookedCopies = new Map<unknown, DagTask>();
  for (const step of stepRefs(wf)) {
    const id = `${step.dagTemplate}/${step.taskName}`;
    const task = hookedCopies.get(step.task) ?? step.task;
    // A task's own exit handler is the pipeline's business: never overwrite it, say so instead.
    if (task.onExit !== undefined) {
      result.unhooked.push({ task: id, reason: 'the task has its own onExit' });
      continue;
    }
    if (task.hooks !== undefined && !isRecord(task.hooks)) {
      result.unhooked.push({ task: id, reason: 'the task has a hooks field that is not a map' });
      continue;
    }
    if (task.hooks?.exit !== undefined) {
      result.unhooked.push({ task: id, reason: 'the task has its own hooks.exit' });
      continue;
    }
    let expression: string | undefined;
    if (ctx.stepHooks === 'failed') {
      const cond = failureExpression(step.scope, step.taskName, task);
      if ('problem' in cond) {
        result.unhooked.push({ task: id, reason: cond.problem });
        continue;
      }
      expression = cond.expression;
    }
    const hooks = {
      ...task.hooks,
      exit: hookCall({
        event: 'node-exit',
        nodeTask: literal(ctx.mode, step.taskName),
        nodeDisplayName: literal(ctx.mode, step.displayName),
        // Self status in an exit hook: passes validation from 3.3, resolved at run time from 3.4.17 / 3.5.3.
        ...(ctx.caps.statusArg ? { nodePhase: `{{${step.scope}.${step.taskName}.status}}` } : {}),
      }),
    };
    if (expression !== undefined) hooks.exit = { expression, ...hooks.exit };
    hookedCopies.set(step.task, { ...task, hooks });
    (expression !== undefined ? result.failureHooked : result.hooked).push(id);
  }
  const templates = wf.spec?.templates;
  if (hookedCopies.size > 0 && Array.isArray(templates)) {
    templates.forEach((t, i) => {
      templates[i] = withTasksSwapped(t, hookedCopies);
    });
  }
  return result;
}

// Argo validates DAG task names as this (`[a-zA-Z0-9][-a-zA-Z0-9]*`); anything else is not quoted into an expression.
const SAFE_TASK_NAME = /^[A-Za-z0-9][-A-Za-z0-9_]*$/;

/**
 * The exit hook's `expression` that lets it fire only when the step did not succeed (argo-kfp.md §1.4,
 * §1.5): evaluated with the task's own `tasks.<name>.status` in scope (Argo ≥ 3.4: every DAG path puts
 * it there, keyed by the task's own name also for loop iterations). Index syntax, as task names have
 * hyphens. An expression Argo cannot evaluate marks the task Error, so whatever is not certain to be
 * in scope gets no hook at all (the status watcher reports it): a steps template keys a loop
 * iteration's status by its display name `x(0:a)`, not by the step's name.
 */
function failureExpression(scope: 'tasks' | 'steps', taskName: string, task: DagTask): { expression: string } | { problem: string } {
  if (!SAFE_TASK_NAME.test(taskName)) return { problem: 'its name cannot be quoted into an exit hook expression; the status watcher reports it' };
  if (scope === 'steps' && (task.withItems !== undefined || task.withParam !== undefined || task.withSequence !== undefined)) {
    return { problem: 'a loop in a steps template keys each iteration by its display name, so a failure-only exit hook cannot name it; the status watcher reports it' };
  }
  return { expression: `${scope}['${taskName}'].status != 'Succeeded'` };
}

/** A list with the swapped entries replaced, or the list itself when it holds none. */
function swapIn<T>(list: T[], swaps: ReadonlyMap<unknown, T>): T[] {
  return list.some((x) => swaps.has(x)) ? list.map((x) => swaps.get(x) ?? x) : list;
}

/** The template with its swapped tasks (or steps) replaced: a copy when it holds any, else itself. */
function withTasksSwapped(t: Template, swaps: ReadonlyMap<unknown, DagTask>): Template {
  if (!isRecord(t)) return t;
  let out = t;
  if (isRecord(t.dag) && Array.isArray(t.dag.tasks)) {
    const tasks = swapIn(t.dag.tasks, swaps);
    if (tasks !== t.dag.tasks) out = { ...out, dag: { ...t.dag, tasks } };
  }
  if (Array.isArray(t.steps)) {
    const steps = t.steps;
    const groups = steps.map((g) => (Array.isArray(g) ? swapIn(g, swaps) : g));
    if (groups.some((g, j) => g !== steps[j])) out = { ...out, steps: groups };
  }
  return out;
}
