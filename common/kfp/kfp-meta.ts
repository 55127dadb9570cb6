import { RUN_ID_LABEL, RUN_NAME_ANNOTATION } from '../hook-contract.js';
import { KFP_PIPELINE_SPEC_ANNOTATION } from './names.js';
import { isRecord, str, templatesOf, type Workflow } from './workflow-types.js';

/** What KFP knows about the run at admission (argo-kfp.md §4.2–4.4). */

export function runIdOf(wf: Workflow): string | undefined {
  const labels = wf.metadata?.labels;
  return isRecord(labels) ? str(labels[RUN_ID_LABEL]) : undefined;
}

/** Absent for v1 recurring runs (the ScheduledWorkflow controller does not set it). */
export function runNameOf(wf: Workflow): string {
  const annotations = wf.metadata?.annotations;
  return (isRecord(annotations) ? str(annotations[RUN_NAME_ANNOTATION]) : undefined) ?? '';
}

/** The label KFP's ScheduledWorkflow controller sets on some versions' Workflows (argo-kfp.md §4.6). */
export const SCHEDULED_WORKFLOW_NAME_LABEL = 'scheduledworkflows.kubeflow.org/scheduledWorkflowName';

/**
 * The recurring run (ScheduledWorkflow) that started this run, '' for a one-off run. The ownerReference
 * of kind ScheduledWorkflow is there at CREATE on every KFP path; the label only on some versions
 * (1.8-2.4, and 2.17+), so it is the fallback (argo-kfp.md §4.6).
 */
export function recurringRunNameOf(wf: Workflow): string {
  const owners = wf.metadata?.ownerReferences;
  if (Array.isArray(owners)) {
    for (const o of owners) {
      if (isRecord(o) && o.kind === 'ScheduledWorkflow' && str(o.name)) return o.name as string;
    }
  }
  const labels = wf.metadata?.labels;
  return (isRecord(labels) ? str(labels[SCHEDULED_WORKFLOW_NAME_LABEL]) : undefined) ?? '';
}

/**
 * v1: the name in the compiler's pipeline_spec annotation. v2: the `--pipeline_name` the compiler
 * passes to its driver and launcher. Otherwise the Workflow's (generate)name.
 */
export function pipelineNameOf(wf: Workflow): string {
  const annotations = wf.metadata?.annotations;
  const spec = isRecord(annotations) ? annotations[KFP_PIPELINE_SPEC_ANNOTATION] : undefined;
  if (typeof spec === 'string') {
    try {
      const parsed: unknown = JSON.parse(spec);
      const name = isRecord(parsed) ? str(parsed.name) : undefined;
      if (name) return name;
    } catch {
      // not JSON: fall through to the other sources
    }
  }
  for (const t of templatesOf(wf)) {
    const args = isRecord(t.container) ? t.container.args : undefined;
    if (!Array.isArray(args)) continue;
    const i = args.indexOf('--pipeline_name');
    const name = i >= 0 ? str(args[i + 1]) : undefined;
    if (name) return name;
  }
  return str(wf.metadata?.generateName)?.replace(/-$/, '') ?? str(wf.metadata?.name) ?? '';
}
