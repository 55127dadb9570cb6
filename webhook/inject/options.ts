import { HOOK_PATH } from '../../common/hook-contract.js';
import type { HookKey } from '../../common/hook-token.js';

export interface InjectOptions {
  /** Base URL of the callback (scheme, host, port; no path): HOOK_PATH is appended. */
  callbackUrl: string;
  /** The Argo version of the cluster: capabilities follow from it (never sniffed from the Workflow). */
  argoVersion: string;
  /** `container`: a curl pod per call (works everywhere). `http`: an Argo HTTP template (Argo ≥ 3.5.11). */
  mode: 'container' | 'http';
  /** A Workflow whose injected JSON would exceed this is left alone (etcd caps objects near 1.5 MiB). */
  sizeLimitBytes: number;
  /** Signs the per-run hook token baked into each Workflow. */
  hookKey: HookKey;
  /** The admission request's namespace; falls back to metadata.namespace, then 'default'. */
  namespace?: string;
  /** Needs `sh` and `curl`, and must run as a non-root numeric UID. */
  image: string;
  /**
   * Which step outcomes get an exit hook (the rest are reported by the callback's status watcher):
   * `all` (every finished step: one notifier execution per step, on the critical path), `failed`
   * (only a step that did not succeed: Argo ≥ 3.4), `none`. Absent: the cheapest one the Argo version
   * allows (`defaultStepHooks`).
   */
  stepHooks?: StepHooks;
  /**
   * An upper bound of the input's JSON size in bytes, when the caller already knows one (the webhook:
   * the request body's length, which holds the object plus the review around it). It spares the size
   * guard a serialization of the input; without it the input is serialized once. A bound that is too
   * low could let a Workflow just past the limit through, so give one only when it really is a bound.
   */
  inputBytes?: number;
}

export const DEFAULT_CALLBACK_URL = 'http://kfp-notify-callback.kfp-notify.svc.cluster.local:8080';
export const DEFAULT_ARGO_VERSION = '4.0.5'; // what KFP 2.17 ships
export const DEFAULT_SIZE_LIMIT_BYTES = 1_048_576;
export const DEFAULT_IMAGE = 'curlimages/curl:8.11.1';

export const STEP_HOOK_POLICIES = ['all', 'failed', 'none'] as const;
export type StepHooks = (typeof STEP_HOOK_POLICIES)[number];

/**
 * The cheapest step-hook policy that still reports every event on this Argo version: `failed` where an
 * exit hook's `expression` can read `tasks.<self>.status` (3.4.0+, argo-kfp.md §1.5), else `none`
 * (below 3.4 the expression cannot see the task, and an unconditional hook is a pod per step: the
 * status watcher reports steps, the exit handler still reports the run's end).
 */
export function defaultStepHooks(argoVersion: string): StepHooks {
  return capabilitiesFor(argoVersion).condExitHook ? 'failed' : 'none';
}

/** What the configured Argo version can do (argo-kfp.md §0). */
export interface Capabilities {
  /** `spec.hooks` with an expression (workflow-level running hook): ≥ 3.3. */
  runningHook: boolean;
  /** `{{tasks.<self>.status}}` resolved in an exit hook's arguments: ≥ 3.4.17, 3.5.3–3.5.x, ≥ 3.6. */
  statusArg: boolean;
  /** `expression` on an exit hook sees `tasks.*`: ≥ 3.4. */
  condExitHook: boolean;
  /** A failed agent pod no longer errors the whole workflow: ≥ 3.5.11 within 3.5, or ≥ 3.6. */
  httpSafe: boolean;
}

type Version = readonly [number, number, number];

const VERSION_RE = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.-]+)?$/;

/** "v3.4.17", "3.4.17", "3.4" (patch 0), "4.0.5-rc1" → [major, minor, patch]; undefined if not a version. */
export function parseArgoVersion(s: string): Version | undefined {
  const m = VERSION_RE.exec(s.trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function atLeast(v: Version, min: Version): boolean {
  for (let i = 0; i < 3; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** Capabilities of an Argo version. Throws on a string that is not a version. */
export function capabilitiesFor(argoVersion: string): Capabilities {
  const v = parseArgoVersion(argoVersion);
  if (!v) throw new Error(`argoVersion ${JSON.stringify(argoVersion)} is not a version such as "3.4.17" or "v4.0.5"`);
  const [major, minor, patch] = v;
  const from36 = atLeast(v, [3, 6, 0]);
  const in34 = major === 3 && minor === 4;
  const in35 = major === 3 && minor === 5;
  return {
    runningHook: atLeast(v, [3, 3, 0]),
    statusArg: from36 || (in35 && patch >= 3) || (in34 && patch >= 17),
    condExitHook: atLeast(v, [3, 4, 0]),
    httpSafe: from36 || (in35 && patch >= 11),
  };
}

// Per-step exit hooks (`hooks.exit` on DAG tasks) arrived in Argo 3.1.0; nothing older can carry them.
const OLDEST_ARGO: Version = [3, 1, 0];
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Every problem with the options, each naming the option; empty when they are usable. */
export function optionProblems(o: InjectOptions): string[] {
  return [...settingProblems(o), ...callProblems(o)];
}

/** The options' settings, checked, with what follows from them; `caps` and `url` only when usable. */
export interface CheckedSettings {
  problems: readonly string[];
  caps?: Capabilities;
  url?: string;
  /** The policy in force: the option, or the version's default. */
  stepHooks?: StepHooks;
}

// The settings rarely change (a config reload) while every admission passes them: the last ones
// checked are kept, by identity of each field, so a call re-checks only its own namespace and hint.
let lastSettings: { key: readonly unknown[]; checked: CheckedSettings } | undefined;

/** `optionProblems(o)` (same problems, same order), plus the capabilities and hook URL of usable options. */
export function checkOptions(o: InjectOptions): CheckedSettings {
  const key = [o.callbackUrl, o.argoVersion, o.mode, o.sizeLimitBytes, o.image, o.hookKey, o.stepHooks];
  if (lastSettings === undefined || lastSettings.key.some((v, i) => v !== key[i])) {
    const problems = settingProblems(o);
    lastSettings = {
      key,
      checked:
        problems.length > 0
          ? { problems }
          : { problems, caps: capabilitiesFor(o.argoVersion), url: hookUrl(o), stepHooks: o.stepHooks ?? defaultStepHooks(o.argoVersion) },
    };
  }
  const perCall = callProblems(o);
  return perCall.length === 0 ? lastSettings.checked : { problems: [...lastSettings.checked.problems, ...perCall] };
}

function settingProblems(o: InjectOptions): string[] {
  const problems: string[] = [];
  const url = callbackUrlProblem(o.callbackUrl);
  if (url) problems.push(`callbackUrl: ${url}`);
  const v = typeof o.argoVersion === 'string' ? parseArgoVersion(o.argoVersion) : undefined;
  if (!v) problems.push(`argoVersion: ${JSON.stringify(o.argoVersion)} is not a version such as "3.4.17" or "v4.0.5"`);
  else if (!atLeast(v, OLDEST_ARGO)) problems.push(`argoVersion: ${o.argoVersion} is too old: per-step exit hooks need Argo 3.1 or later`);
  if (o.mode !== 'container' && o.mode !== 'http') problems.push(`mode: must be "container" or "http", got ${JSON.stringify(o.mode)}`);
  else if (o.mode === 'http' && v && !capabilitiesFor(o.argoVersion).httpSafe) {
    problems.push(`mode: http needs Argo 3.5.11+ or 3.6+ (on older Argo a failed agent pod errors the whole run); argoVersion is ${o.argoVersion}`);
  }
  if (typeof o.sizeLimitBytes !== 'number' || !Number.isSafeInteger(o.sizeLimitBytes) || o.sizeLimitBytes <= 0) {
    problems.push(`sizeLimitBytes: must be a positive whole number of bytes, got ${JSON.stringify(o.sizeLimitBytes)}`);
  }
  if (o.stepHooks !== undefined && !(STEP_HOOK_POLICIES as readonly unknown[]).includes(o.stepHooks)) {
    problems.push(`stepHooks: must be one of ${STEP_HOOK_POLICIES.join(', ')}, got ${JSON.stringify(o.stepHooks)}`);
  } else if (o.stepHooks === 'failed' && v && !capabilitiesFor(o.argoVersion).condExitHook) {
    problems.push(`stepHooks: failed needs Argo 3.4 or later (an older exit hook's expression cannot read the step's status); argoVersion is ${o.argoVersion}: use none or all`);
  }
  if (typeof o.image !== 'string' || !/^\S+$/.test(o.image)) problems.push(`image: must be a container image reference, got ${JSON.stringify(o.image)}`);
  if (!o.hookKey || typeof o.hookKey.kid !== 'string' || !Buffer.isBuffer(o.hookKey.secret) || o.hookKey.secret.length < 16) {
    problems.push('hookKey: must be a HookKey (see common/hook-token.ts) with a secret of at least 16 bytes');
  }
  return problems;
}

/** The per-call options: the request's namespace and the size hint. */
function callProblems(o: InjectOptions): string[] {
  const problems: string[] = [];
  if (o.inputBytes !== undefined && (typeof o.inputBytes !== 'number' || !Number.isSafeInteger(o.inputBytes) || o.inputBytes < 0)) {
    problems.push(`inputBytes: must be a whole number of bytes, got ${JSON.stringify(o.inputBytes)}`);
  }
  if (o.namespace !== undefined && (typeof o.namespace !== 'string' || o.namespace.length > 63 || !NAMESPACE_RE.test(o.namespace))) {
    problems.push(`namespace: ${JSON.stringify(o.namespace)} is not a Kubernetes namespace name`);
  }
  return problems;
}

export function callbackUrlProblem(s: unknown): string | undefined {
  if (typeof s !== 'string') return `must be a URL string, got ${JSON.stringify(s)}`;
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return `${JSON.stringify(s)} is not an absolute URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${JSON.stringify(s)} must use http or https`;
  // The hook path is ours to append; a base with its own path or query would be silently rewritten.
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') return `${JSON.stringify(s)} must be a base URL (scheme, host, port) without a path, query or fragment`;
  if (url.username !== '' || url.password !== '') return 'must not carry credentials: hook calls authenticate with a per-run token';
  return undefined;
}

/** The URL every hook calls. */
export function hookUrl(o: Pick<InjectOptions, 'callbackUrl'>): string {
  const url = new URL(o.callbackUrl);
  return `${url.protocol}//${url.host}${HOOK_PATH}`;
}

/** Fills in the defaults and checks the result; throws an Error listing every problem. */
export function defaultInjectOptions(partial: Partial<InjectOptions> & Pick<InjectOptions, 'hookKey'>): InjectOptions {
  const opts: InjectOptions = {
    callbackUrl: partial.callbackUrl ?? DEFAULT_CALLBACK_URL,
    argoVersion: partial.argoVersion ?? DEFAULT_ARGO_VERSION,
    mode: partial.mode ?? 'container',
    sizeLimitBytes: partial.sizeLimitBytes ?? DEFAULT_SIZE_LIMIT_BYTES,
    hookKey: partial.hookKey,
    image: partial.image ?? DEFAULT_IMAGE,
    ...(partial.stepHooks !== undefined ? { stepHooks: partial.stepHooks } : {}),
    ...(partial.namespace !== undefined ? { namespace: partial.namespace } : {}),
  };
  const problems = optionProblems(opts);
  if (problems.length > 0) throw new Error(`invalid inject options: ${problems.join('; ')}`);
  return opts;
}
