import { STATUS_ANNOTATION } from './hook-contract.js';
import { RUNNING_HOOK } from './injected-names.js';

/**
 * Which facts of a Workflow the injected hooks will report, read back from the status annotation the
 * injector wrote (webhook/inject/status.ts). The status watcher reports everything else at once, and
 * gives a hook its grace period only for what the hook is expected to report. Pure.
 */
export interface HookCoverage {
  /** The workflow-level running hook was added (Argo ≥ 3.3). */
  runningHook: boolean;
  /** `<dag template>/<task>` of steps whose exit hook fires on every outcome (`stepHooks: all`). */
  always: ReadonlySet<string>;
  /** Steps whose exit hook fires only when the step did not succeed (`stepHooks: failed`). */
  onFailure: ReadonlySet<string>;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/**
 * The coverage of an injected Workflow; undefined when the webhook never injected it (no hook reports
 * anything). An annotation from before the policy existed (no `stepHooks`) lists every hooked step in
 * `hookedTasks`, which is what `all` means, so it reads the same way.
 */
export function hookCoverage(annotations: Readonly<Record<string, unknown>> | undefined): HookCoverage | undefined {
  const raw = annotations?.[STATUS_ANNOTATION];
  if (typeof raw !== 'string') return undefined;
  let status: unknown;
  try {
    status = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof status !== 'object' || status === null) return undefined;
  const s = status as Record<string, unknown>;
  return {
    runningHook: strings(s.hooks).includes(`spec.hooks.${RUNNING_HOOK}`),
    always: new Set(strings(s.hookedTasks)),
    onFailure: new Set(strings(s.failureHookedTasks)),
  };
}
