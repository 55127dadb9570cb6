import { EXIT_TEMPLATE, KFP_COMPONENT_SPEC_ANNOTATION, KFP_TASK_DISPLAY_NAME_ANNOTATION, KFP_V2_COMPONENT_LABEL, USER_EXIT_TASK } from './names.js';
import { findTemplate, isRecord, paramsOf, str, templatesOf, type DagTask, type Template, type Workflow } from './workflow-types.js';

/**
 * What counts as "a KFP step" and what the KFP UI calls it (argo-kfp.md §4.5). The injector hooks
 * exactly these tasks; the callback's status watcher names the same steps the same way.
 */
export interface KfpStep {
  /** The DAG (or steps) template that holds the task. */
  dagTemplate: string;
  taskName: string;
  /** The template the task runs. */
  template: string;
  /** The step's name as the KFP UI shows it. */
  displayName: string;
}

// v2 executor templates may carry prefixes: `retry-…`, `metadata-<n>-<n>-…`, `<component>-…`.
const V2_EXECUTOR = /(^|-)system-container-executor$/;
const V2_IMPORTER = /(^|-)system-importer(-workspace)?$/;

/** v2 if the pods are marked as v2 components or the compiler's `system-*` templates are present. */
export function kfpFlavour(wf: Workflow): 'v1' | 'v2' {
  if (wf.spec?.podMetadata?.labels?.[KFP_V2_COMPONENT_LABEL] === 'true') return 'v2';
  return templatesOf(wf).some((t) => typeof t.name === 'string' && t.name.startsWith('system-')) ? 'v2' : 'v1';
}

/** v1: a template that runs a pod (container, script or resource). v2: the executor or importer template. */
export function isStepTemplate(wf: Workflow, templateName: string): boolean {
  return isStep(wf, kfpFlavour(wf), templateName);
}

function isStep(wf: Workflow, flavour: 'v1' | 'v2', templateName: string): boolean {
  if (flavour === 'v2') return V2_EXECUTOR.test(templateName) || V2_IMPORTER.test(templateName);
  const t = findTemplate(wf, templateName);
  return t !== undefined && (t.container !== undefined || t.script !== undefined || t.resource !== undefined);
}

/** A step together with the task object it came from (the injector edits that object in place). */
export interface StepRef extends KfpStep {
  task: DagTask;
  /** `tasks` in a DAG template, `steps` in a steps template: the prefix of `{{<scope>.<name>.status}}`. */
  scope: 'tasks' | 'steps';
}

/** Every KFP step task, in template order, with the task object it came from. */
export function stepRefs(wf: Workflow): StepRef[] {
  const flavour = kfpFlavour(wf);
  const out: StepRef[] = [];
  for (const t of templatesOf(wf)) {
    const dagTemplate = str(t.name);
    if (!dagTemplate) continue;
    for (const [task, scope, siblings] of tasksOf(t)) {
      const taskName = str(task.name);
      const template = str(task.template);
      if (!taskName || !template || !isStep(wf, flavour, template)) continue;
      const displayName = stepDisplayName(wf, flavour, { dagTemplate, task, siblings });
      out.push({ dagTemplate, taskName, template, displayName, task, scope });
    }
  }
  return out;
}

/** Every KFP step task, in template order. */
export function kfpSteps(wf: Workflow): KfpStep[] {
  return stepRefs(wf).map(({ dagTemplate, taskName, template, displayName }) => ({ dagTemplate, taskName, template, displayName }));
}

/** The tasks of a DAG template, or the steps of a steps template, each with its siblings. */
function tasksOf(t: Template): [DagTask, 'tasks' | 'steps', DagTask[]][] {
  const out: [DagTask, 'tasks' | 'steps', DagTask[]][] = [];
  const tasks = isRecord(t.dag) && Array.isArray(t.dag.tasks) ? t.dag.tasks.filter(isRecord) : [];
  for (const task of tasks) out.push([task, 'tasks', tasks]);
  const groups = Array.isArray(t.steps) ? t.steps : [];
  for (const group of groups) {
    const steps = Array.isArray(group) ? group.filter(isRecord) : [];
    for (const step of steps) out.push([step, 'steps', steps]);
  }
  return out;
}

/** What the KFP UI calls the step that `task` (in `dagTemplate`, beside `siblings`) runs. */
export function stepDisplayName(wf: Workflow, flavour: 'v1' | 'v2', at: { dagTemplate: string; task: DagTask; siblings: readonly DagTask[] }): string {
  const taskName = String(at.task.name);
  if (flavour === 'v2') return v2DisplayName(at.task, at.siblings);
  return v1DisplayName(wf, at.dagTemplate, taskName, String(at.task.template));
}

// KFP v1 UI: task_display_name annotation || component_spec JSON .name || the node's own name.
function v1DisplayName(wf: Workflow, dagTemplate: string, taskName: string, template: string): string {
  const annotations = findTemplate(wf, template)?.metadata?.annotations;
  const fromAnnotation = isRecord(annotations) ? str(annotations[KFP_TASK_DISPLAY_NAME_ANNOTATION]) : undefined;
  const fromSpec = isRecord(annotations) ? str(jsonField(annotations[KFP_COMPONENT_SPEC_ANNOTATION], ['name'])) : undefined;
  // The wrapped v1 exit op runs as our `user-exit` task; its own name is the template's.
  const ownName = dagTemplate === EXIT_TEMPLATE && taskName === USER_EXIT_TASK ? template : taskName;
  return fromAnnotation ?? fromSpec ?? ownName;
}

// KFP v2: taskInfo.name inside the JSON `task` argument of the `<task>-driver` sibling (an importer
// carries that argument itself).
function v2DisplayName(task: DagTask, siblings: readonly DagTask[]): string {
  const driver = siblings.find((s) => s.name === `${String(task.name)}-driver`);
  for (const source of [driver, task]) {
    const taskArg = paramsOf(source?.arguments).find((p) => p.name === 'task')?.value;
    const name = str(jsonField(taskArg, ['taskInfo', 'name']));
    if (name) return name;
  }
  return String(task.name);
}

/** A field inside a JSON string, or undefined when the string is not JSON or lacks the field. */
function jsonField(json: unknown, path: readonly string[]): unknown {
  if (typeof json !== 'string') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  for (const key of path) v = isRecord(v) ? v[key] : undefined;
  return v;
}
