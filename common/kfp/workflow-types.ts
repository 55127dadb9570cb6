/**
 * Just enough of the Argo Workflow shape for the injector and the status watcher. Every field is
 * optional and every object stays open (`[key: string]: unknown`): real Workflows carry far more than
 * this, and a Workflow read from a cluster or a file may be malformed, so readers narrow before use.
 */

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface Parameter {
  name?: string;
  value?: string;
  default?: string;
  [key: string]: unknown;
}

export interface Arguments {
  parameters?: Parameter[];
  artifacts?: { name?: string; [key: string]: unknown }[];
  [key: string]: unknown;
}

export interface LifecycleHook {
  template?: string;
  templateRef?: unknown;
  arguments?: Arguments;
  expression?: string;
  [key: string]: unknown;
}

/** A DAG task or a step: both carry a name, a template and optional hooks. */
export interface DagTask {
  name?: string;
  template?: string;
  templateRef?: unknown;
  arguments?: Arguments;
  hooks?: Record<string, LifecycleHook>;
  onExit?: string;
  depends?: string;
  continueOn?: { failed?: boolean; error?: boolean };
  [key: string]: unknown;
}

export interface Template {
  name?: string;
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  inputs?: Arguments;
  dag?: { tasks?: DagTask[]; [key: string]: unknown };
  steps?: DagTask[][];
  container?: unknown;
  script?: unknown;
  resource?: unknown;
  [key: string]: unknown;
}

export interface WorkflowSpec {
  entrypoint?: string;
  templates?: Template[];
  arguments?: Arguments;
  onExit?: string;
  hooks?: Record<string, LifecycleHook>;
  podMetadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  workflowTemplateRef?: unknown;
  [key: string]: unknown;
}

export interface Workflow {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: WorkflowSpec;
  [key: string]: unknown;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value if it is a non-empty string, else undefined: labels and names from real objects may be anything. */
export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function templatesOf(wf: Workflow): Template[] {
  const t = wf.spec?.templates;
  return Array.isArray(t) ? t.filter(isRecord) : [];
}

export function findTemplate(wf: Workflow, name: string): Template | undefined {
  return templatesOf(wf).find((t) => t.name === name);
}

/** The parameters of an `arguments` or `inputs` block, skipping entries that are not objects. */
export function paramsOf(a: Arguments | undefined): Parameter[] {
  const p = isRecord(a) ? a.parameters : undefined;
  return Array.isArray(p) ? p.filter(isRecord) : [];
}
