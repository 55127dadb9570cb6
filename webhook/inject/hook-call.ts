import type { HookField } from '../../common/hook-contract.js';
import { HOOK_TEMPLATE } from '../../common/injected-names.js';
import type { LifecycleHook, Parameter } from '../../common/kfp/workflow-types.js';

/**
 * The fields that change from one hook call to the next: the notifier template declares them as
 * inputs (each with a default, since a missing input is a launch error that fails the run) and each
 * hook passes the ones it knows. The other HOOK_FIELDS are per-workflow and filled in by the template.
 */
export const CALL_FIELDS = [
  'event',
  'nodeTask',
  'nodeDisplayName',
  'nodePhase',
  'workflowStatus',
  'exitHandlerStatus',
  'failures',
  'duration',
] as const satisfies readonly HookField[];
export type CallField = (typeof CALL_FIELDS)[number];
export type CallArgs = Partial<Record<CallField, string>>;

/**
 * A value known at admission, made safe for where the template puts it. Argo expands `{{…}}` anywhere
 * in a template, so a run or step name containing `{{` would fail validation ("failed to resolve") and
 * with it the user's run; in http mode the value lands in a form body as is, so it is percent-encoded.
 */
export function literal(mode: 'container' | 'http', s: string): string {
  // encodeURIComponent throws on a lone surrogate; U+FFFD is what the apiserver's JSON decoder makes of one.
  if (mode === 'http') return encodeURIComponent(s.replace(/\p{Surrogate}/gu, '\uFFFD'));
  // A space after every `{` that another `{` follows: replacing `{{` pairs would turn `{{{` into `{ {{`.
  return s.replace(/\{(?=\{)/g, '{ ');
}

/** A hook (or a task's arguments) that calls the notifier template with these fields. */
export function hookCall(args: CallArgs): LifecycleHook {
  return { template: HOOK_TEMPLATE, arguments: { parameters: callParameters(args) } };
}

export function callParameters(args: CallArgs): Parameter[] {
  return CALL_FIELDS.filter((f) => args[f] !== undefined).map((f) => ({ name: f, value: args[f] }));
}
