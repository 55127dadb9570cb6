import type { Operation } from 'fast-json-patch';
import { MARKER_ANNOTATION, RUN_ID_LABEL, STATUS_ANNOTATION } from '../../common/hook-contract.js';
import { mintHookToken } from '../../common/hook-token.js';
import { diffWorkflows } from './diff.js';
import { chainExitHandler } from './exit-handler.js';
import { hookCall } from './hook-call.js';
import { hookTemplate } from './hook-template.js';
import { kfpFlavour } from '../../common/kfp/kfp-steps.js';
import { pipelineNameOf, recurringRunNameOf, runIdOf, runNameOf } from '../../common/kfp/kfp-meta.js';
import { EXIT_TEMPLATE, HOOK_TEMPLATE, RUNNING_HOOK } from '../../common/injected-names.js';
import { addNodeHooks } from './node-hooks.js';
import { patchText } from './patch-text.js';
import { checkOptions, type InjectOptions } from './options.js';
import { skipReason } from './skip.js';
import { statusAnnotation } from './status.js';
import { str, type ObjectMeta, type Template, type Workflow, type WorkflowSpec } from '../../common/kfp/workflow-types.js';
import { errorMessage } from '../../common/error-message.js';

export type { InjectOptions } from './options.js';
export { defaultInjectOptions, capabilitiesFor, defaultStepHooks } from './options.js';
export { patchText } from './patch-text.js';
export type { Operation };

export interface InjectResult {
  outcome: 'injected' | 'skipped';
  /** Always set when skipped, e.g. "not a KFP workflow: label pipeline/runid is missing". */
  reason?: string;
  /** The mutated copy, or the input itself (untouched) when skipped. */
  workflow: unknown;
  /** The JSON Patch from input to workflow (fast-json-patch `compare` order): what the webhook sends back; [] when skipped. */
  patch: Operation[];
  /** Injected, but not everywhere: e.g. a step with its own exit handler (worth an admission warning). */
  warnings?: string[];
}

const skipped = (input: unknown, reason: string): InjectResult => ({ outcome: 'skipped', reason, workflow: input, patch: [] });

/**
 * The core of kfp-notify: takes a Workflow as KFP submits it and returns it with notification hooks
 * added (a running hook, a chained exit handler, exit hooks on KFP steps as the `stepHooks` policy
 * says, the hardened notifier template), plus the JSON Patch from one to the other. It has two callers:
 *
 * - the admission webhook (webhook/server.ts) receives the Workflow in an AdmissionReview and answers
 *   with `patch`; the kube-apiserver applies it;
 * - `kfp-notify inject` (cli/inject.ts) reads Workflows from a file and prints `workflow`, a dry run
 *   of exactly what the webhook would admit.
 *
 * Pure and total: no I/O, the input is never modified, the same input and options give byte-identical
 * output, and no input makes it throw (an internal error becomes a `skipped` result, so the webhook
 * can admit the Workflow unchanged).
 *
 * The result shares every subtree it did not edit with the input (copy on write: only the containers
 * on the way to an edit are copied). That keeps the cost proportional to what is added rather than to
 * the Workflow, and lets the diff skip shared subtrees by identity. Treat the result and the patch as read-only.
 */
export function injectWorkflow(input: unknown, opts: InjectOptions): InjectResult {
  try {
    return inject(input, opts);
  } catch (err) {
    return skipped(input, `internal error: ${errorMessage(err)}`);
  }
}

function inject(input: unknown, opts: InjectOptions): InjectResult {
  const checked = checkOptions(opts);
  if (checked.caps === undefined || checked.url === undefined) return skipped(input, `invalid options: ${checked.problems.join('; ')}`);
  const { caps, url } = checked;
  const stepHooks = checked.stepHooks ?? 'all';
  const why = skipReason(input);
  if (why !== undefined) return skipped(input, why);

  // Copy on write: the containers every injection edits are copied here; deeper edits copy their own
  // path (node-hooks.ts, exit-handler.ts). skipReason has checked that these are maps and a list.
  const src = input as Workflow & { metadata: ObjectMeta; spec: WorkflowSpec & { templates: Template[] } };
  const spec: WorkflowSpec = { ...src.spec, templates: [...src.spec.templates] };
  const metadata: ObjectMeta = { ...src.metadata };
  const wf: Workflow = { ...src, metadata, spec };
  const runId = runIdOf(wf) ?? '';
  const namespace = opts.namespace ?? str(metadata.namespace) ?? 'default';
  const ctx = { caps, mode: opts.mode, stepHooks };
  const flavour = kfpFlavour(wf);
  const hooks: string[] = [];

  const podMetadataRunId = ensurePodRunId(spec, runId);
  // Steps first: the templates added below are ours and must not be walked.
  const nodes = addNodeHooks(wf, ctx);
  (spec.templates ??= []).push(
    hookTemplate({
      mode: opts.mode,
      url,
      image: opts.image,
      token: mintHookToken(opts.hookKey, { namespace, kfpRunId: runId }),
      runId,
      pipelineName: pipelineNameOf(wf),
      runName: runNameOf(wf),
      recurringRunName: recurringRunNameOf(wf),
    }),
  );
  const exitHandler = chainExitHandler(wf, ctx);
  hooks.push(spec.onExit === EXIT_TEMPLATE ? 'spec.onExit' : 'spec.hooks.exit');
  if (caps.runningHook) {
    // The root DAG node starts Running, so this fires on the first reconcile, exactly once (node name
    // `<wf>.hooks.kfp-notify-running` is deterministic).
    spec.hooks = { ...spec.hooks, [RUNNING_HOOK]: { expression: 'workflow.status == "Running"', ...hookCall({ event: 'workflow-running' }) } };
    hooks.push(`spec.hooks.${RUNNING_HOOK}`);
  }

  metadata.annotations = {
    ...metadata.annotations,
    [MARKER_ANNOTATION]: 'true',
    [STATUS_ANNOTATION]: statusAnnotation({
      flavour,
      argoVersion: opts.argoVersion,
      mode: opts.mode,
      stepHooks,
      capabilities: caps,
      templates: [HOOK_TEMPLATE, EXIT_TEMPLATE],
      hooks,
      exitHandler,
      ...(podMetadataRunId ? { podMetadataRunId } : {}),
      nodes,
    }),
  };

  const patch = diffWorkflows(input as object, wf);
  const tooLarge = sizeProblem(input, wf, patch, opts);
  if (tooLarge !== undefined) return skipped(input, tooLarge);
  const warnings = nodes.unhooked.map((u) => `step ${u.task} not hooked: ${u.reason}`);
  return { outcome: 'injected', workflow: wf, patch, ...(warnings.length > 0 ? { warnings } : {}) };
}

const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));

/**
 * The size guard, exact in its verdict without serializing the whole result in the common case.
 * The patch text bounds what the injection adds: every added or replaced value appears in it whole,
 * beside a path that is longer than its key plus the `:` and `,` it costs in the Workflow. So
 * (input bytes + patch bytes) is an upper bound of the result's size; only when that bound passes the
 * limit is the result serialized to decide exactly (and to state both sizes in the reason).
 */
function sizeProblem(input: unknown, wf: Workflow, patch: readonly Operation[], opts: InjectOptions): string | undefined {
  const inputBound = opts.inputBytes ?? jsonBytes(input);
  if (inputBound + Buffer.byteLength(patchText(patch)) <= opts.sizeLimitBytes) return undefined;
  const size = jsonBytes(wf);
  if (size <= opts.sizeLimitBytes) return undefined;
  return `too large after injection: ${size} bytes > size limit ${opts.sizeLimitBytes} bytes (${jsonBytes(input)} bytes before)`;
}

/**
 * KFP always labels pods with the run id (§4.3); a Workflow made elsewhere may not. Returns 'added' if
 * it did. `spec` is the injector's copy; podMetadata and its labels are copied before the edit.
 */
function ensurePodRunId(spec: WorkflowSpec, runId: string): 'added' | undefined {
  if (spec.podMetadata?.labels?.[RUN_ID_LABEL] === runId) return undefined;
  const podMetadata = { ...spec.podMetadata };
  podMetadata.labels = { ...podMetadata.labels, [RUN_ID_LABEL]: runId };
  spec.podMetadata = podMetadata;
  return 'added';
}
