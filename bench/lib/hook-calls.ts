import { HOOK_FIELDS, HOOK_PATH, type HookCallFields } from '../../common/hook-contract.js';
import { mintHookToken, type HookKey } from '../../common/hook-token.js';
import { buildEvent } from '../../callback/event-id.js';
import type { KfpEvent } from '../../callback/types.js';

/**
 * Hook calls as an injected Workflow makes them: every contract field, in order, form-encoded
 * (`curl --data-urlencode`), empty where the hook has nothing, with the run's bearer token.
 */

export const RUN = { kfpRunId: '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e', namespace: 'kubeflow-user-example-com', workflowName: 'train-and-eval-x7k2p' };

/** Stands for a fresh value per request; autocannon replaces it (`idReplacement`). */
export const ID_PLACEHOLDER = '[<id>]';

/** A node-exit call for step `node` (a Succeeded KFP step); each distinct `node` is a new event. */
export function nodeExitFields(node: string): HookCallFields {
  return {
    v: '1',
    event: 'node-exit',
    ...RUN,
    workflowUid: '0b7e2f8c-3d2a-4a8e-9a51-6f0f3c1d2e4b',
    hookNodeName: `${RUN.workflowName}.root.${node}.onExit`,
    nodeTask: 'train-model',
    nodeDisplayName: 'train-model',
    nodePhase: 'Succeeded',
    pipelineName: 'train-and-eval',
    runName: 'nightly run',
  };
}

/** The form body; the id placeholder, if present, is kept raw so that autocannon can find it. */
export function formBody(fields: HookCallFields): string {
  return HOOK_FIELDS.map((f) => `${f}=${encodeURIComponent(fields[f] ?? '')}`)
    .join('&')
    .replaceAll(encodeURIComponent(ID_PLACEHOLDER), ID_PLACEHOLDER);
}

export function hookHeaders(key: HookKey): Record<string, string> {
  return {
    'content-type': 'application/x-www-form-urlencoded',
    authorization: `Bearer ${mintHookToken(key, { namespace: RUN.namespace, kfpRunId: RUN.kfpRunId })}`,
  };
}

export function hookUrl(base: string): string {
  return `${base}${HOOK_PATH}`;
}

/** `count` distinct events, as normalizing `count` node-exit calls of RUN would make them. */
export function nodeEvents(count: number, tag = 'step'): KfpEvent[] {
  const f = nodeExitFields('');
  return Array.from({ length: count }, (_, i) =>
    buildEvent({
      eventType: 'WorkflowNodeSucceeded',
      kfpRunId: RUN.kfpRunId,
      workflowName: RUN.workflowName,
      namespace: RUN.namespace,
      argoNodeName: `${RUN.workflowName}.root.${tag}-${i}`,
      nodeDisplayName: f.nodeDisplayName ?? '',
      phase: 'Succeeded',
      time: new Date(),
      pipelineName: f.pipelineName ?? '',
      runName: f.runName ?? '',
      workflowUid: f.workflowUid ?? '',
      source: 'hook',
    }),
  );
}
