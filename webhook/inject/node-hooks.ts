import { hookCall, literal } from './hook-call.js';
import { stepRefs } from '../../common/kfp/kfp-steps.js';
import type { Capabilities } from './options.js';
import { isRecord, type DagTask, type Template, type Workflow } from '../../common/kfp/workflow-types.js';

export interface NodeHooksResult {
  /** `<dag template>/<task>` of each step that got an exit hook. */
  hooked: string[];
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
export function addNodeHooks(wf: Workflow, ctx: { caps: Capabilities; mode: 'container' | 'http' }): NodeHooksResult {
  const result: NodeHooksResult = { hooked: [], unhooked: [] };
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
    hookedCopies.set(step.task, { ...task, hooks });
    result.hooked.push(id);
  }
  const templates = wf.spec?.templates;
  if (hookedCopies.size > 0 && Array.isArray(templates)) {
    templates.forEach((t, i) => {
      templates[i] = withTasksSwapped(t, hookedCopies);
    });
  }
  return result;
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
