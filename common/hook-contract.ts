/**
 * The contract between an injected hook (webhook/ side) and the callback service (callback/ side).
 * Both halves import these names so that a renamed field breaks the build, not a running cluster.
 *
 * A hook call is one HTTP POST to `<callback base URL>${HOOK_PATH}` with
 * `Content-Type: application/x-www-form-urlencoded` (curl `--data-urlencode`, so no shell or JSON
 * injection is possible) and `Authorization: Bearer <hook token>` (see hook-token.ts).
 * The callback also accepts the same fields as a JSON object, for tools and tests.
 */

export const HOOK_PATH = '/v1/hooks';
export const CONTRACT_VERSION = '1';

/** What fired: the workflow-level running hook, the workflow exit handler, or a per-node exit hook. */
export const HOOK_EVENTS = ['workflow-running', 'workflow-exit', 'node-exit'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

/**
 * Form field names, in the order the container hook sends them. Every field is a string; a field the
 * hook could not fill is sent empty (or, on older Argo, as the literal `{{...}}` it could not resolve).
 */
export const HOOK_FIELDS = [
  'v', // CONTRACT_VERSION
  'event', // HookEvent
  'kfpRunId', // the `pipeline/runid` label, copied in at admission
  'namespace',
  'workflowName',
  'workflowUid', // Kubernetes UID: tells apart two workflows that reused one name
  'hookNodeName', // Argo node name of the hook node itself: `<node name>.onExit[(n)]` or `<wf>.hooks.<name>`
  'nodeTask', // DAG task name of the hooked step (node-exit)
  'nodeDisplayName', // the step's name as the KFP UI shows it (node-exit)
  'nodePhase', // Succeeded | Failed | Error | '' | literal '{{tasks.x.status}}' (node-exit)
  'workflowStatus', // Succeeded | Failed | Error (workflow-exit)
  'exitHandlerStatus', // phase of the user's own exit handler, '' when the pipeline had none (workflow-exit)
  'failures', // Argo's {{workflow.failures}}: Go-quoted JSON list, or "null" (workflow-exit)
  'duration', // seconds, as Argo formats {{workflow.duration}} (workflow-exit)
  'pipelineName', // known at admission
  'runName', // the `pipelines.kubeflow.org/run_name` annotation, known at admission
  'recurringRunName', // the ScheduledWorkflow that started the run ('' for one-off runs), known at admission
] as const;
export type HookField = (typeof HOOK_FIELDS)[number];
export type HookCallFields = Partial<Record<HookField, string>>;

/** Annotation and label keys the injector writes, and the opt-out a pipeline owner can set. */
export const ANNOTATION_PREFIX = 'kfp-notify.kubeflow.org';
export const MARKER_ANNOTATION = `${ANNOTATION_PREFIX}/injected`;
export const STATUS_ANNOTATION = `${ANNOTATION_PREFIX}/status`;
export const OPT_OUT_ANNOTATION = `${ANNOTATION_PREFIX}/inject`; // value "false" or "disabled" skips the Workflow
export const HOOK_TEMPLATE_LABEL = `${ANNOTATION_PREFIX}/hook`;
export const RUN_ID_LABEL = 'pipeline/runid';
export const RUN_NAME_ANNOTATION = 'pipelines.kubeflow.org/run_name';

/** The Argo node name of the step a node-exit hook reports on: strip `.onExit` and any retry suffix. */
export function hookedNodeName(hookNodeName: string): string | undefined {
  const m = /^(.*)\.onExit(\(\d+\))?$/.exec(hookNodeName);
  return m?.[1] || undefined;
}
