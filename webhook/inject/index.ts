import jsonPatch, { type Operation } from 'fast-json-patch';
import { MARKER_ANNOTATION, RUN_ID_LABEL, STATUS_ANNOTATION } from '../../common/hook-contract.js';
import { mintHookToken } from '../../common/hook-token.js';
import { chainExitHandler } from './exit-handler.js';
import { hookCall } from './hook-call.js';
import { hookTemplate } from './hook-template.js';
import { kfpFlavour } from './kfp-steps.js';
import { pipelineNameOf, runIdOf, runNameOf } from './kfp-meta.js';
import { EXIT_TEMPLATE, HOOK_TEMPLATE, RUNNING_HOOK } from './names.js';
import { addNodeHooks } from './node-hooks.js';
import { capabilitiesFor, hookUrl, optionProblems, type InjectOptions } from './options.js';
import { skipReason } from './skip.js';
import { statusAnnotation } from './status.js';
import { str, type Workflow } from './workflow-types.js';

export type { InjectOptions } from './options.js';
export { defaultInjectOptions, capabilitiesFor } from './options.js';
export type { Operation };

export interface InjectResult {
  outcome: 'injected' | 'skipped';
  /** Always set when skipped, e.g. "not a KFP workflow: label pipeline/runid is missing". */
  reason?: string;
  /** The mutated copy, or the input itself (untouched) when skipped. */
  workflow: unknown;
  /** `compare(input, workflow)`: what the webhook sends back; [] when skipped. */
  patch: Operation[];
  /** Injected, but not everywhere: e.g. a step with its own exit handler (worth an admission warning). */
  warnings?: string[];
}

const skipped = (input: unknown, reason: string): InjectResult => ({ outcome: 'skipped', reason, workflow: input, patch: [] });

/**
 * The core of kfp-notify: takes a Workflow as KFP submits it and returns it with notification hooks
 * added (a running hook, a chained exit handler, an exit hook on every KFP step, the hardened notifier
 * template), plus the JSON Patch from one to the other. It has two callers:
 *
 * - the admission webhook (webhook/server.ts) receives the Workflow in an AdmissionReview and answers
 *   with `patch`; the kube-apiserver applies it;
 * - `kfp-notify inject` (cli/inject.ts) reads Workflows from a file and prints `workflow`, a dry run
 *   of exactly what the webhook would admit.
 *
 * Pure and total: no I/O, the input is never modified, the same input and options give byte-identical
 * output, and no input makes it throw (an internal error becomes a `skipped` result, so the webhook
 * can admit the Workflow unchanged).
 */
export function injectWorkflow(input: unknown, opts: InjectOptions): InjectResult {
  try {
    return inject(input, opts);
  } catch (err) {
    return skipped(input, `internal error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function inject(input: unknown, opts: InjectOptions): InjectResult {
  const problems = optionProblems(opts);
  if (problems.length > 0) return skipped(input, `invalid options: ${problems.join('; ')}`);
  const why = skipReason(input);
  if (why !== undefined) return skipped(input, why);

  const wf = structuredClone(input) as Workflow;
  const spec = (wf.spec ??= {});
  const metadata = (wf.metadata ??= {});
  const runId = runIdOf(wf) ?? '';
  const namespace = opts.namespace ?? str(metadata.namespace) ?? 'default';
  const caps = capabilitiesFor(opts.argoVersion);
  const ctx = { caps, mode: opts.mode };
  const flavour = kfpFlavour(wf);
  const hooks: string[] = [];

  const podMetadataRunId = ensurePodRunId(wf, runId);
  // Steps first: the templates added below are ours and must not be walked.
  const nodes = addNodeHooks(wf, ctx);
  (spec.templates ??= []).push(
    hookTemplate({
      mode: opts.mode,
      url: hookUrl(opts),
      image: opts.image,
      token: mintHookToken(opts.hookKey, { namespace, kfpRunId: runId }),
      runId,
      pipelineName: pipelineNameOf(wf),
      runName: runNameOf(wf),
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
      capabilities: caps,
      templates: [HOOK_TEMPLATE, EXIT_TEMPLATE],
      hooks,
      exitHandler,
      ...(podMetadataRunId ? { podMetadataRunId } : {}),
      nodes,
    }),
  };

  const size = Buffer.byteLength(JSON.stringify(wf));
  if (size > opts.sizeLimitBytes) {
    const before = Buffer.byteLength(JSON.stringify(input));
    return skipped(input, `too large after injection: ${size} bytes > size limit ${opts.sizeLimitBytes} bytes (${before} bytes before)`);
  }
  const warnings = nodes.unhooked.map((u) => `step ${u.task} not hooked: ${u.reason}`);
  return { outcome: 'injected', workflow: wf, patch: jsonPatch.compare(input as object, wf), ...(warnings.length > 0 ? { warnings } : {}) };
}

/** KFP always labels pods with the run id (§4.3); a Workflow made elsewhere may not. Returns 'added' if it did. */
function ensurePodRunId(wf: Workflow, runId: string): 'added' | undefined {
  const spec = (wf.spec ??= {});
  const podMetadata = (spec.podMetadata ??= {});
  const labels = (podMetadata.labels ??= {});
  if (labels[RUN_ID_LABEL] === runId) return undefined;
  labels[RUN_ID_LABEL] = runId;
  return 'added';
}
