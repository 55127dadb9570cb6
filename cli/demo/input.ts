import { readFileSync } from 'node:fs';
import { errorMessage } from '../../common/error-message.js';
import { parseDocuments } from '../../common/yaml-docs.js';
import { isRecord, str, templatesOf, type Workflow } from '../../common/kfp/workflow-types.js';
import { UsageError } from '../io.js';

/**
 * The demo's input, checked before anything starts: a file that cannot be read, is not YAML or
 * JSON, or is not an Argo Workflow is bad input (exit 2), and so is a --fail naming no task of it
 * (the run would otherwise play as a success without a word).
 */
export function loadDemoWorkflow(file: string): Workflow {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`-f ${file}: cannot read: ${errorMessage(err)}`);
  }
  if (text.includes('\u0000') || text.includes('\uFFFD')) throw new UsageError(`-f ${file}: not a text file (expected a compiled KFP workflow, YAML or JSON)`);
  let doc: unknown;
  try {
    doc = parseDocuments(text, file)[0];
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const wf = doc as Workflow;
  if (!isRecord(doc) || wf.apiVersion !== 'argoproj.io/v1alpha1' || wf.kind !== 'Workflow') {
    throw new UsageError(`-f ${file}: the first document is not an Argo Workflow (apiVersion argoproj.io/v1alpha1, kind Workflow)`);
  }
  return wf;
}

/** Every DAG task and step name of the workflow: what --fail may name. */
export function taskNames(wf: Workflow): string[] {
  const names = new Set<string>();
  for (const t of templatesOf(wf)) {
    const tasks = isRecord(t.dag) && Array.isArray(t.dag.tasks) ? t.dag.tasks : [];
    const steps = Array.isArray(t.steps) ? t.steps.flat() : [];
    for (const task of [...tasks, ...steps]) {
      const name = isRecord(task) ? str(task.name) : undefined;
      if (name) names.add(name);
    }
  }
  return [...names];
}

export function checkFailTasks(wf: Workflow, fail: readonly string[]): void {
  const known = taskNames(wf);
  const unknown = fail.filter((f) => !known.includes(f));
  if (unknown.length > 0) {
    throw new UsageError(`--fail ${unknown.join(', ')}: no such task in the workflow; its tasks: ${known.join(', ')}`);
  }
}
