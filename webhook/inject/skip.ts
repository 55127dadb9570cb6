import { MARKER_ANNOTATION, OPT_OUT_ANNOTATION, RUN_ID_LABEL } from '../../common/hook-contract.js';
import { exitHandlerProblem } from './exit-handler.js';
import { runIdOf } from '../../common/kfp/kfp-meta.js';
import { EXIT_TEMPLATE, HOOK_TEMPLATE, RUNNING_HOOK } from '../../common/injected-names.js';
import { isRecord, templatesOf, type Workflow } from '../../common/kfp/workflow-types.js';

type Check = (wf: Workflow) => string | undefined;

const notAWorkflow: Check = (wf) =>
  wf.apiVersion === 'argoproj.io/v1alpha1' && wf.kind === 'Workflow'
    ? undefined
    : `not an Argo Workflow: ${String(wf.kind ?? '(no kind)')} ${String(wf.apiVersion ?? '(no apiVersion)')}`;

// KFP Retry resubmits the mutated spec; injecting again would duplicate every hook.
const alreadyInjected: Check = (wf) => (annotation(wf, MARKER_ANNOTATION) !== undefined ? `already injected (annotation ${MARKER_ANNOTATION} is set)` : undefined);

const optedOut: Check = (wf) => {
  const v = annotation(wf, OPT_OUT_ANNOTATION);
  return typeof v === 'string' && ['false', 'disabled'].includes(v.trim().toLowerCase()) ? `opted out: annotation ${OPT_OUT_ANNOTATION}=${v}` : undefined;
};

const notKfp: Check = (wf) => (runIdOf(wf) === undefined ? `not a KFP workflow: label ${RUN_ID_LABEL} is missing` : undefined);

const templateRef: Check = (wf) =>
  isRecord(wf.spec) && wf.spec.workflowTemplateRef !== undefined
    ? 'spec.workflowTemplateRef is set: the templates live in a WorkflowTemplate, which the injector does not edit'
    : undefined;

const malformed: Check = (wf) => {
  const shapes: [unknown, string, boolean][] = [
    [wf.metadata, 'metadata', false],
    [wf.metadata?.annotations, 'metadata.annotations', true],
    [wf.spec, 'spec', false],
    [wf.spec?.hooks, 'spec.hooks', true],
    [wf.spec?.podMetadata, 'spec.podMetadata', true],
    [wf.spec?.podMetadata?.labels, 'spec.podMetadata.labels', true],
  ];
  for (const [v, path, optional] of shapes) {
    if (!(optional && v === undefined) && !isRecord(v)) return `malformed Workflow: ${path} is not a map`;
  }
  return Array.isArray(wf.spec?.templates) ? undefined : 'malformed Workflow: spec.templates is not a list';
};

const collision: Check = (wf) => {
  const taken = [HOOK_TEMPLATE, EXIT_TEMPLATE].find((n) => templatesOf(wf).some((t) => t.name === n));
  if (taken) return `name collision: the Workflow already has a template named ${taken}`;
  return isRecord(wf.spec?.hooks) && RUNNING_HOOK in wf.spec.hooks ? `name collision: spec.hooks already has a hook named ${RUNNING_HOOK}` : undefined;
};

// The hook pod reads the run id from its labels (inherited from spec.podMetadata) and its token is
// minted for the Workflow's label: two different ids would make every call a rejected one.
const runIdConflict: Check = (wf) => {
  const podRunId = wf.spec?.podMetadata?.labels?.[RUN_ID_LABEL];
  const runId = runIdOf(wf);
  return podRunId !== undefined && podRunId !== runId
    ? `run id conflict: spec.podMetadata.labels says ${JSON.stringify(podRunId)}, the Workflow's label says ${JSON.stringify(runId)}`
    : undefined;
};

// First match wins; cheap, expected skips (not ours, already done, opted out) come first.
const CHECKS: readonly Check[] = [notAWorkflow, alreadyInjected, optedOut, notKfp, templateRef, malformed, collision, exitHandlerProblem, runIdConflict];

/** Why this object must be admitted unchanged, or undefined when the injector can go ahead. */
export function skipReason(input: unknown): string | undefined {
  if (!isRecord(input)) return `not a Kubernetes object (got ${input === null ? 'null' : Array.isArray(input) ? 'a list' : typeof input})`;
  for (const check of CHECKS) {
    const why = check(input as Workflow);
    if (why !== undefined) return why;
  }
  return undefined;
}

function annotation(wf: Workflow, key: string): unknown {
  const a = wf.metadata?.annotations;
  return isRecord(a) ? a[key] : undefined;
}
