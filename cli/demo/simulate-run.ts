import type { WorkflowFailure } from '../../callback/messages.js';
import { HOOK_TEMPLATE } from '../../common/injected-names.js';
import type { DagTask, LifecycleHook, Template, Workflow } from '../../common/kfp/workflow-types.js';

/**
 * Plays an injected Workflow the way Argo's controller would run it, without a cluster: which hooks
 * fire, in what order, under which Argo node names, with which `{{…}}` values. Pure: the scenario says
 * which steps fail; everything else follows from the Workflow. Used by `kfp-notify demo` and by the
 * end-to-end tests, so the hook calls they make are the ones the injected templates would make.
 *
 * It models what the hooks depend on, not all of Argo: DAG tasks in dependency order, tasks omitted
 * after a failed dependency, task exit hooks (including KFP v2's exit-hook DAGs), the workflow
 * running hook, spec.onExit, and loop fan-out over `withItems` (other loops run one iteration).
 */

export interface RunScenario {
  /** metadata.name Argo would generate (KFP uses generateName). */
  workflowName: string;
  workflowUid: string;
  namespace: string;
  /** DAG task names that fail (at any depth). Everything else succeeds. */
  failTasks?: readonly string[];
  /** Seconds the run took, for {{workflow.duration}}. */
  durationSeconds?: number;
}

export interface HookFiring {
  /** The Argo node name of the pod that makes the call (the hook node, with a retry suffix). */
  podNodeName: string;
  /** `{{…}}` values resolved for this call: the hook's arguments, defaults applied. */
  parameters: Record<string, string>;
  /** Globals at the time of the call ({{workflow.status}} is Running during the run). */
  globals: Record<string, string>;
}

export interface SimulatedRun {
  firings: HookFiring[];
  phase: 'Succeeded' | 'Failed';
  /** Phase per Argo node name, for every node the simulation ran. */
  nodes: Record<string, string>;
  /** Every node as Argo's controller records it in `status.nodes`, in the order they started (argo-status.ts writes them). */
  records: NodeRecord[];
}

/** A node of the played run: what Argo writes into `status.nodes` about it. Times are seconds after the run started. */
export interface NodeRecord {
  name: string;
  type: 'DAG' | 'Steps' | 'Pod';
  templateName: string;
  displayName: string;
  phase: string;
  /** The enclosing DAG node's name ('' for the root and the exit handler). */
  boundary: string;
  startedAt: number;
  finishedAt: number;
}

type Failure = WorkflowFailure;

interface Ctx {
  wf: Workflow;
  scenario: RunScenario;
  templates: Map<string, Template>;
  firings: HookFiring[];
  nodes: Record<string, string>;
  failures: Failure[];
  workflowStatus: string;
  records: NodeRecord[];
  /** Seconds since the run started: every pod takes one. */
  clock: number;
}

const SUBST = /\{\{\s*([^{}]+?)\s*\}\}/g;

function substitute(s: string, scope: Record<string, string>): string {
  return s.replace(SUBST, (whole, key: string) => scope[key] ?? whole);
}

/** Argo passes {{workflow.failures}} through strconv.Quote: a JSON list inside a quoted string, or "null". */
function goQuotedFailures(failures: readonly Failure[]): string {
  return failures.length === 0 ? 'null' : JSON.stringify(JSON.stringify(failures));
}

function globalsOf(ctx: Ctx): Record<string, string> {
  const { scenario, wf } = ctx;
  const g: Record<string, string> = {
    'workflow.name': scenario.workflowName,
    'workflow.namespace': scenario.namespace,
    'workflow.uid': scenario.workflowUid,
    'workflow.status': ctx.workflowStatus,
    'workflow.failures': goQuotedFailures(ctx.failures),
    'workflow.duration': String(scenario.durationSeconds ?? 42.5),
  };
  for (const [k, v] of Object.entries(wf.metadata?.labels ?? {})) g[`workflow.labels.${k}`] = v;
  for (const [k, v] of Object.entries(wf.metadata?.annotations ?? {})) g[`workflow.annotations.${k}`] = v;
  for (const p of wf.spec?.arguments?.parameters ?? []) if (p.name) g[`workflow.parameters.${p.name}`] = String(p.value ?? '');
  return g;
}

function record(ctx: Ctx, r: Omit<NodeRecord, 'displayName'>): void {
  const tail = r.boundary && r.name.startsWith(`${r.boundary}.`) ? r.name.slice(r.boundary.length + 1) : r.name;
  ctx.records.push({ ...r, displayName: tail });
}

/**
 * Whether an exit hook fires: it has no expression, or the injector's failure-only one
 * (`tasks['x'].status != 'Succeeded'`, argo-kfp.md §1.5) holds for the task's phase.
 */
function exitHookFires(hook: LifecycleHook, phase: string): boolean {
  if (hook.expression === undefined) return true;
  return !/^(tasks|steps)\['[^']+'\]\.status != 'Succeeded'$/.test(hook.expression) || phase !== 'Succeeded';
}

function fire(ctx: Ctx, podNodeName: string, hook: LifecycleHook, scope: Record<string, string>, boundary = ''): void {
  const started = ctx.clock++;
  record(ctx, { name: podNodeName, type: 'Pod', templateName: HOOK_TEMPLATE, phase: 'Succeeded', boundary, startedAt: started, finishedAt: ctx.clock });
  const tmpl = ctx.templates.get(HOOK_TEMPLATE);
  const globals = globalsOf(ctx);
  const parameters: Record<string, string> = {};
  for (const p of tmpl?.inputs?.parameters ?? []) if (p.name) parameters[p.name] = String(p.default ?? '');
  for (const p of hook.arguments?.parameters ?? []) {
    if (p.name) parameters[p.name] = substitute(String(p.value ?? ''), { ...globals, ...scope, 'node.name': podNodeName });
  }
  ctx.firings.push({ podNodeName, parameters, globals: { ...globals, 'node.name': podNodeName } });
}

/** The notifier template has a retryStrategy: Argo runs its pod as child `(0)` of a retry node. */
function podName(ctx: Ctx, nodeName: string): string {
  return ctx.templates.get(HOOK_TEMPLATE)?.retryStrategy ? `${nodeName}(0)` : nodeName;
}

function dependencyNames(task: DagTask): string[] {
  const deps = Array.isArray(task.dependencies) ? task.dependencies.map(String) : [];
  const expr = typeof task.depends === 'string' ? task.depends : '';
  const fromExpr = [...expr.matchAll(/([A-Za-z0-9][A-Za-z0-9-]*)(?:\.[A-Za-z]+)?/g)].map((m) => m[1] ?? '');
  return [...new Set([...deps, ...fromExpr])].filter((d) => d !== '');
}

/** A dependency that failed omits the task, unless its `depends` explicitly accepts failure. */
function omitted(task: DagTask, phases: Map<string, string>): boolean {
  const expr = typeof task.depends === 'string' ? task.depends : '';
  const acceptsFailure = /\.(Failed|Errored|Completed|AnySucceeded|AllFailed)\b/.test(expr);
  return !acceptsFailure && dependencyNames(task).some((d) => phases.get(d) === 'Failed' || phases.get(d) === 'Omitted');
}

function ordered(tasks: readonly DagTask[]): DagTask[] {
  const byName = new Map(tasks.map((t) => [String(t.name), t]));
  const out: DagTask[] = [];
  const seen = new Set<string>();
  const visit = (t: DagTask): void => {
    const name = String(t.name);
    if (seen.has(name)) return;
    seen.add(name);
    for (const d of dependencyNames(t)) {
      const dep = byName.get(d);
      if (dep) visit(dep);
    }
    out.push(t);
  };
  tasks.forEach(visit);
  return out;
}

function iterations(task: DagTask, nodeName: string): string[] {
  if (Array.isArray(task.withItems)) {
    return task.withItems.map((item, i) => `${nodeName}(${i}:${typeof item === 'object' ? JSON.stringify(item) : String(item)})`);
  }
  if (task.withParam !== undefined || task.withSequence !== undefined) return [`${nodeName}(0:0)`];
  return [nodeName];
}

function runTemplate(ctx: Ctx, templateName: string, nodeName: string, scope: Record<string, string>, boundary = ''): string {
  const started = ctx.clock;
  const tmpl0 = ctx.templates.get(templateName);
  const at = ctx.records.length;
  const phase = runTasks(ctx, templateName, nodeName, scope);
  // A DAG (or steps) node starts before its tasks and ends after them; a leaf template is one pod.
  const leaf = !(tmpl0?.dag?.tasks ?? tmpl0?.steps?.flat() ?? []).length;
  if (leaf) ctx.clock++;
  const r: NodeRecord = {
    name: nodeName,
    type: leaf ? 'Pod' : tmpl0?.steps ? 'Steps' : 'DAG',
    templateName,
    displayName: '',
    phase,
    boundary,
    startedAt: started,
    finishedAt: ctx.clock,
  };
  const tail = boundary && nodeName.startsWith(`${boundary}.`) ? nodeName.slice(boundary.length + 1) : nodeName;
  ctx.records.splice(at, 0, { ...r, displayName: tail });
  return phase;
}

function runTasks(ctx: Ctx, templateName: string, nodeName: string, scope: Record<string, string>): string {
  const tmpl = ctx.templates.get(templateName);
  const tasks = tmpl?.dag?.tasks ?? tmpl?.steps?.flat() ?? [];
  if (tasks.length === 0) return 'Succeeded';
  const phases = new Map<string, string>();
  const local: Record<string, string> = { ...scope };
  let phase = 'Succeeded';
  for (const task of ordered(tasks)) {
    const name = String(task.name);
    if (omitted(task, phases)) {
      phases.set(name, 'Omitted');
      continue;
    }
    let taskPhase = 'Succeeded';
    for (const iter of iterations(task, `${nodeName}.${name}`)) {
      const iterPhase = runTask(ctx, task, iter, local, nodeName);
      if (iterPhase === 'Failed') taskPhase = 'Failed';
    }
    phases.set(name, taskPhase);
    local[`tasks.${name}.status`] = taskPhase;
    const tolerated = task.continueOn?.failed === true;
    if (taskPhase === 'Failed' && !tolerated) phase = 'Failed';
  }
  return phase;
}

function runTask(ctx: Ctx, task: DagTask, nodeName: string, scope: Record<string, string>, boundary: string): string {
  const name = String(task.name);
  const template = String(task.template ?? '');
  let phase: string;
  if (ctx.scenario.failTasks?.includes(name)) {
    phase = 'Failed';
    const started = ctx.clock++;
    record(ctx, { name: nodeName, type: 'Pod', templateName: template, phase, boundary, startedAt: started, finishedAt: ctx.clock });
    ctx.failures.push({
      displayName: name,
      message: 'Error (exit code 1)',
      templateName: template,
      phase: 'Failed',
      podName: `${ctx.scenario.workflowName}-${template}-1234567890`,
      finishedAt: '2026-01-01T00:00:00Z',
    });
  } else if (template === HOOK_TEMPLATE) {
    // The exit wrapper calls the notifier as a task: its arguments are the call's fields.
    fire(ctx, podName(ctx, nodeName), { arguments: task.arguments ?? {} }, scope, boundary);
    phase = 'Succeeded';
  } else {
    phase = runTemplate(ctx, template, nodeName, scope, boundary);
  }
  ctx.nodes[nodeName] = phase;
  const exit = task.hooks?.exit;
  if (exit?.template && exitHookFires(exit, phase)) {
    const hookScope = { ...scope, [`tasks.${name}.status`]: phase };
    if (exit.template === HOOK_TEMPLATE) fire(ctx, podName(ctx, `${nodeName}.onExit`), exit, hookScope, boundary);
    else runTemplate(ctx, exit.template, `${nodeName}.onExit`, hookScope, boundary);
  }
  return phase;
}

export function simulateRun(wf: Workflow, scenario: RunScenario): SimulatedRun {
  const templates = new Map((wf.spec?.templates ?? []).map((t) => [String(t.name), t]));
  const ctx: Ctx = { wf, scenario, templates, firings: [], nodes: {}, failures: [], workflowStatus: 'Running', records: [], clock: 0 };
  const name = scenario.workflowName;
  for (const [hookName, hook] of Object.entries(wf.spec?.hooks ?? {})) {
    if (hookName !== 'exit' && hook.template === HOOK_TEMPLATE && /Running/.test(String(hook.expression))) {
      fire(ctx, podName(ctx, `${name}.hooks.${hookName}`), hook, {}, name);
      ctx.clock = 0; // the running hook runs beside the pipeline, not before it
    }
  }
  let phase = runTemplate(ctx, String(wf.spec?.entrypoint ?? ''), name, {}) === 'Failed' ? 'Failed' : 'Succeeded';
  ctx.nodes[name] = phase;
  ctx.workflowStatus = phase;
  const onExit = wf.spec?.onExit ?? wf.spec?.hooks?.exit?.template;
  if (onExit) {
    const exitPhase = runTemplate(ctx, onExit, `${name}.onExit`, {});
    ctx.nodes[`${name}.onExit`] = exitPhase;
    if (exitPhase === 'Failed') phase = 'Failed';
  }
  return { firings: ctx.firings, phase: phase as 'Succeeded' | 'Failed', nodes: ctx.nodes, records: ctx.records };
}
