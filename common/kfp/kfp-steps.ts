import { EXIT_TEMPLATE, USER_EXIT_TASK } from '../injected-names.js';
import { KFP_COMPONENT_SPEC_ANNOTATION, KFP_TASK_DISPLAY_NAME_ANNOTATION, KFP_V2_COMPONENT_LABEL } from './names.js';
import { isRecord, paramsOf, str, templatesOf, type DagTask, type Template, type Workflow } from './workflow-types.js';

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
  return isStep(templateIndex(wf), kfpFlavour(wf), templateName);
}

/** Templates by name, the first of each name winning (as a linear `find` would): built once per walk. */
type TemplateIndex = ReadonlyMap<string, Template>;

function templateIndex(wf: Workflow): TemplateIndex {
  const index = new Map<string, Template>();
  for (const t of templatesOf(wf)) if (typeof t.name === 'string' && !index.has(t.name)) index.set(t.name, t);
  return index;
}

function isStep(templates: TemplateIndex, flavour: 'v1' | 'v2', templateName: string): boolean {
  if (flavour === 'v2') return V2_EXECUTOR.test(templateName) || V2_IMPORTER.test(templateName);
  const t = templates.get(templateName);
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
  const templates = templateIndex(wf);
  const out: StepRef[] = [];
  for (const t of templatesOf(wf)) {
    const dagTemplate = str(t.name);
    if (!dagTemplate) continue;
    for (const [task, scope, siblings] of tasksOf(t)) {
      const taskName = str(task.name);
      const template = str(task.template);
      if (!taskName || !template || !isStep(templates, flavour, template)) continue;
      const displayName = displayNameIn(templates, flavour, dagTemplate, task, siblings);
      out.push({ dagTemplate, taskName, template, displayName, task, scope });
    }
  }
  return out;
}

/** Every KFP step task, in template order. */
export function kfpSteps(wf: Workflow): KfpStep[] {
  return stepRefs(wf).map(({ dagTemplate, taskName, template, displayName }) => ({ dagTemplate, taskName, template, displayName }));
}

/** Tasks by name, the first of each name winning (as a linear `find` would). */
type Siblings = ReadonlyMap<unknown, DagTask>;

function siblingIndex(tasks: readonly DagTask[]): Siblings {
  const index = new Map<unknown, DagTask>();
  for (const task of tasks) if (!index.has(task.name)) index.set(task.name, task);
  return index;
}

const NO_SIBLINGS: Siblings = new Map();

/** The tasks of a DAG template, or the steps of a steps template, each with its siblings. */
function tasksOf(t: Template): [DagTask, 'tasks' | 'steps', Siblings][] {
  const out: [DagTask, 'tasks' | 'steps', Siblings][] = [];
  const tasks = isRecord(t.dag) && Array.isArray(t.dag.tasks) ? t.dag.tasks.filter(isRecord) : [];
  const dagSiblings = siblingIndex(tasks);
  for (const task of tasks) out.push([task, 'tasks', dagSiblings]);
  const groups = Array.isArray(t.steps) ? t.steps : [];
  for (const group of groups) {
    const steps = Array.isArray(group) ? group.filter(isRecord) : [];
    const stepSiblings = siblingIndex(steps);
    for (const step of steps) out.push([step, 'steps', stepSiblings]);
  }
  return out;
}

/** What the KFP UI calls the step that `task` (in `dagTemplate`, beside `siblings`) runs. */
export function stepDisplayName(wf: Workflow, flavour: 'v1' | 'v2', at: { dagTemplate: string; task: DagTask; siblings: readonly DagTask[] }): string {
  const siblings = at.siblings.length === 0 ? NO_SIBLINGS : siblingIndex(at.siblings);
  const templates = flavour === 'v1' ? templateIndex(wf) : new Map<string, Template>();
  return displayNameIn(templates, flavour, at.dagTemplate, at.task, siblings);
}

function displayNameIn(templates: TemplateIndex, flavour: 'v1' | 'v2', dagTemplate: string, task: DagTask, siblings: Siblings): string {
  if (flavour === 'v2') return v2DisplayName(task, siblings);
  return v1DisplayName(templates, dagTemplate, String(task.name), String(task.template));
}

// KFP v1 UI: task_display_name annotation || component_spec JSON .name || the node's own name.
function v1DisplayName(templates: TemplateIndex, dagTemplate: string, taskName: string, template: string): string {
  const annotations = templates.get(template)?.metadata?.annotations;
  const fromAnnotation = isRecord(annotations) ? str(annotations[KFP_TASK_DISPLAY_NAME_ANNOTATION]) : undefined;
  const fromSpec = isRecord(annotations) ? str(jsonField(annotations[KFP_COMPONENT_SPEC_ANNOTATION], ['name'])) : undefined;
  // The wrapped v1 exit op runs as our `user-exit` task; its own name is the template's.
  const ownName = dagTemplate === EXIT_TEMPLATE && taskName === USER_EXIT_TASK ? template : taskName;
  return fromAnnotation ?? fromSpec ?? ownName;
}

// KFP v2: taskInfo.name inside the JSON `task` argument of the `<task>-driver` sibling (an importer
// carries that argument itself).
function v2DisplayName(task: DagTask, siblings: Siblings): string {
  const driver = siblings.get(`${String(task.name)}-driver`);
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
