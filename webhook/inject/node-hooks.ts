import { hookCall, literal } from './hook-call.js';
import { stepRefs } from './kfp-steps.js';
import type { Capabilities } from './options.js';
import { isRecord, type Workflow } from './workflow-types.js';

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
 * hook changes neither the task's phase nor the run's. Edits `wf` (a private copy) in place.
 */
export function addNodeHooks(wf: Workflow, ctx: { caps: Capabilities; mode: 'container' | 'http' }): NodeHooksResult {
  const result: NodeHooksResult = { hooked: [], unhooked: [] };
  for (const step of stepRefs(wf)) {
    const id = `${step.dagTemplate}/${step.taskName}`;
    const { task } = step;
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
    task.hooks = {
      ...task.hooks,
      exit: hookCall({
        event: 'node-exit',
        nodeTask: literal(ctx.mode, step.taskName),
        nodeDisplayName: literal(ctx.mode, step.displayName),
        // Self status in an exit hook: passes validation from 3.3, resolved at run time from 3.4.17 / 3.5.3.
        ...(ctx.caps.statusArg ? { nodePhase: `{{${step.scope}.${step.taskName}.status}}` } : {}),
      }),
    };
    result.hooked.push(id);
  }
  return result;
}
