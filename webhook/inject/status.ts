import { CONTRACT_VERSION } from '../../common/hook-contract.js';
import type { NodeHooksResult } from './node-hooks.js';
import type { Capabilities, StepHooks } from './options.js';

/**
 * The STATUS_ANNOTATION value: what this admission added, so that a person (or a later tool) can see
 * why a step reports or does not, without diffing specs.
 */
export interface InjectStatus {
  contract: string;
  flavour: 'v1' | 'v2';
  argoVersion: string;
  mode: 'container' | 'http';
  /**
   * Which step outcomes a hook reports (the rest only the status watcher does): `all` every finished
   * step (`hookedTasks`), `failed` only a step that did not succeed (`failureHookedTasks`), `none` no
   * step. The watcher reads this to report at once what no hook will.
   */
  stepHooks: StepHooks;
  capabilities: Capabilities;
  templates: string[];
  /** Workflow-level additions, e.g. `spec.onExit (added)`, `spec.hooks.kfp-notify-running`. */
  hooks: string[];
  exitHandler: string;
  /** Steps whose exit hook fires on every outcome. */
  hookedTasks: string[];
  /** Steps whose exit hook fires only when the step did not succeed. */
  failureHookedTasks: string[];
  unhookedTasks: { task: string; reason: string }[];
  /** Present when the injector had to add the run id label to spec.podMetadata. */
  podMetadataRunId?: 'added';
}

export function statusAnnotation(s: Omit<InjectStatus, 'contract' | 'hookedTasks' | 'failureHookedTasks' | 'unhookedTasks'> & { nodes: NodeHooksResult }): string {
  const { nodes, ...rest } = s;
  const status: InjectStatus = {
    contract: CONTRACT_VERSION,
    ...rest,
    hookedTasks: nodes.hooked,
    failureHookedTasks: nodes.failureHooked,
    unhookedTasks: nodes.unhooked,
  };
  return JSON.stringify(status);
}
