import { CONTRACT_VERSION } from '../../common/hook-contract.js';
import type { NodeHooksResult } from './node-hooks.js';
import type { Capabilities } from './options.js';

/**
 * The STATUS_ANNOTATION value: what this admission added, so that a person (or a later tool) can see
 * why a step reports or does not, without diffing specs.
 */
export interface InjectStatus {
  contract: string;
  flavour: 'v1' | 'v2';
  argoVersion: string;
  mode: 'container' | 'http';
  capabilities: Capabilities;
  templates: string[];
  /** Workflow-level additions, e.g. `spec.onExit (added)`, `spec.hooks.kfp-notify-running`. */
  hooks: string[];
  exitHandler: string;
  hookedTasks: string[];
  unhookedTasks: { task: string; reason: string }[];
  /** Present when the injector had to add the run id label to spec.podMetadata. */
  podMetadataRunId?: 'added';
}

export function statusAnnotation(s: Omit<InjectStatus, 'contract' | 'hookedTasks' | 'unhookedTasks'> & { nodes: NodeHooksResult }): string {
  const { nodes, ...rest } = s;
  const status: InjectStatus = { contract: CONTRACT_VERSION, ...rest, hookedTasks: nodes.hooked, unhookedTasks: nodes.unhooked };
  return JSON.stringify(status);
}
