import { HOOK_TEMPLATE } from '../../common/injected-names.js';
import type { DagTask, LifecycleHook, Template, Workflow } from '../../common/kfp/workflow-types.js';

/**
 * What the injected hooks cost one run, read off an injected Workflow by a small model of Argo's DAG
 * semantics (argo-kfp.md §1.3, §1.5). Pure. The model:
 *
 * - Every execution of the notifier template is one hook execution and, in container mode, one pod:
 *   a task exit hook that fires, the exit wrapper's `notify` task (or the user exit step's hook),
 *   the workflow-level running hook.
 * - A task exit hook fires once per finished task instance: per loop iteration (`withItems` as
 *   listed, `withParam`/`withSequence` as `loopItems` iterations), after retries. The injector's
 *   failure-only expression (`tasks['x'].status != 'Succeeded'`) does not fire for a succeeded step.
 * - Critical path: Argo starts a dependent only once its dependency's exit hook is done (dag.go
 *   "don't proceed until the onExit node is fulfilled"), and a loop or nested DAG is done when all of
 *   its instances are, their hooks included. So a task's time is its template's time plus one hook
 *   if its hook fires; a DAG's is its longest `depends`/`dependencies` path; a steps template's the
 *   sum of its groups' longest; loop iterations run side by side. Steps themselves take no time here:
 *   the model counts only what the hooks add.
 * - The run: its entrypoint, then its exit handler (which runs after it). The running hook runs beside
 *   the first steps, so it is counted as an execution, not on the critical path.
 * - Not modelled: `spec.parallelism` and quotas (they serialize hook pods too: the figures are lower
 *   bounds for a throttled run), retries of a failing step, and the hook pod's own run time (a curl
 *   of milliseconds against the seconds a pod takes to start).
 *
 * Every run here succeeds in every step; `failures` adds what the failure-only policy pays when that
 * many steps fail (each one hook, each on the critical path at worst).
 */

export interface RunCost {
  /** Notifier executions in the run (each a pod in container mode). */
  hookExecutions: number;
  /** Of those, how many lie one after another on the run's longest path. */
  criticalPathHooks: number;
}

interface Cost {
  hooks: number;
  critical: number;
}

const ZERO: Cost = { hooks: 0, critical: 0 };
const FAILURE_ONLY = /^(tasks|steps)\['[^']+'\]\.status != 'Succeeded'$/;

function firesOnSuccess(hook: LifecycleHook | undefined): boolean {
  if (!hook || hook.template !== HOOK_TEMPLATE) return false;
  return hook.expression === undefined || !FAILURE_ONLY.test(hook.expression);
}

function instances(task: DagTask, loopItems: number): number {
  if (Array.isArray(task.withItems)) return task.withItems.length;
  if (task.withParam !== undefined || task.withSequence !== undefined) return loopItems;
  return 1;
}

function dependencies(task: DagTask): string[] {
  const deps = Array.isArray(task.dependencies) ? task.dependencies.map(String) : [];
  const expr = typeof task.depends === 'string' ? task.depends : '';
  const fromExpr = [...expr.matchAll(/([A-Za-z0-9][-A-Za-z0-9_]*)(?:\.[A-Za-z]+)?/g)].map((m) => m[1] ?? '');
  return [...new Set([...deps, ...fromExpr])].filter((d) => d !== '');
}

export function runCost(wf: Workflow, opts: { loopItems?: number } = {}): RunCost {
  const loopItems = opts.loopItems ?? 1;
  const templates = new Map<string, Template>();
  for (const t of wf.spec?.templates ?? []) if (typeof t.name === 'string' && !templates.has(t.name)) templates.set(t.name, t);
  const memo = new Map<string, Cost>();

  const taskCost = (task: DagTask): Cost => {
    const inner = templateCost(String(task.template ?? ''));
    const fires = firesOnSuccess(task.hooks?.exit) ? 1 : 0;
    return { hooks: instances(task, loopItems) * (inner.hooks + fires), critical: inner.critical + fires };
  };

  function templateCost(name: string): Cost {
    if (name === HOOK_TEMPLATE) return { hooks: 1, critical: 1 };
    const known = memo.get(name);
    if (known) return known;
    memo.set(name, ZERO); // a template that reaches itself adds nothing more
    const t = templates.get(name);
    let cost = ZERO;
    if (t?.dag?.tasks) {
      const tasks = t.dag.tasks;
      const byName = new Map(tasks.map((x) => [String(x.name), x]));
      const finish = new Map<string, number>();
      const finishOf = (task: DagTask, seen: Set<string>): number => {
        const key = String(task.name);
        const done = finish.get(key);
        if (done !== undefined) return done;
        if (seen.has(key)) return 0;
        seen.add(key);
        const start = Math.max(0, ...dependencies(task).map((d) => byName.get(d)).filter((d): d is DagTask => d !== undefined).map((d) => finishOf(d, seen)));
        const f = start + taskCost(task).critical;
        finish.set(key, f);
        return f;
      };
      cost = {
        hooks: tasks.reduce((n, x) => n + taskCost(x).hooks, 0),
        critical: Math.max(0, ...tasks.map((x) => finishOf(x, new Set()))),
      };
    } else if (t?.steps) {
      const groups = t.steps.map((g) => (Array.isArray(g) ? g.map(taskCost) : []));
      cost = {
        hooks: groups.flat().reduce((n, c) => n + c.hooks, 0),
        critical: groups.reduce((n, g) => n + Math.max(0, ...g.map((c) => c.critical)), 0),
      };
    }
    memo.set(name, cost);
    return cost;
  }

  const main = templateCost(String(wf.spec?.entrypoint ?? ''));
  const exitName = wf.spec?.onExit ?? wf.spec?.hooks?.exit?.template;
  const exit = exitName ? templateCost(exitName) : ZERO;
  const running = Object.entries(wf.spec?.hooks ?? {}).filter(([k, h]) => k !== 'exit' && h.template === HOOK_TEMPLATE).length;
  return { hookExecutions: main.hooks + exit.hooks + running, criticalPathHooks: main.critical + exit.critical };
}
