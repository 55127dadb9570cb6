import fc from 'fast-check';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { MARKER_ANNOTATION, RUN_ID_LABEL, RUN_NAME_ANNOTATION, STATUS_ANNOTATION } from '../../common/hook-contract.js';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { classifySkip } from '../../webhook/admission-review.js';
import { injectWorkflow, type InjectResult } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import { ARGO_SCHEMA_VERSIONS, argoSchemaErrors } from '../helpers/argo-schema.js';
import { admittedFixture, FIXTURES_DIR, TEST_HOOK_KEY_SECRET } from '../helpers/fixtures.js';
import { anyWorkflowCase, type KfpCase, type WorkflowCase } from '../helpers/gen-workflow.js';

/**
 * The webhook never blocks a submission, so the injector must be total: for any Workflow it either
 * returns one that Argo's schemas accept, with the invariants below, or leaves it unchanged with a reason.
 * KFP_NOTIFY_PROPERTY_RUNS sets how many Workflows are generated; FC_SEED replays a run.
 */
const RUNS = Number(process.env.KFP_NOTIFY_PROPERTY_RUNS ?? 10_000);
const SEED = process.env.FC_SEED === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(process.env.FC_SEED);

const HOOK = 'kfp-notify-hook';
const EXIT = 'kfp-notify-exit';
const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);

// Every output shape: both modes, every capability step, and a limit small enough that the size guard fires.
const CONFIGS: [string, Partial<InjectOptions>][] = [
  ['container, Argo 4.0.5', {}],
  ['container, Argo 4.0.5, stepHooks all', { stepHooks: 'all' }],
  ['container, Argo 3.2.3, stepHooks all', { argoVersion: '3.2.3', stepHooks: 'all' }],
  ['http, Argo 3.5.14, stepHooks none', { mode: 'http', argoVersion: '3.5.14', stepHooks: 'none' }],
  ['container, Argo 3.7.3, 64 KiB limit', { argoVersion: '3.7.3', sizeLimitBytes: 65_536 }],
  ['container, Argo 3.4.17', { argoVersion: '3.4.17' }],
  ['container, Argo 3.4.16', { argoVersion: '3.4.16' }],
  ['container, Argo 3.3.8', { argoVersion: '3.3.8' }],
  ['container, Argo 3.2.3', { argoVersion: '3.2.3' }],
  ['http, Argo 3.5.14', { mode: 'http', argoVersion: '3.5.14' }],
  ['http, Argo 4.0.5', { mode: 'http' }],
];
const config = fc.record({
  config: fc.constantFrom(...CONFIGS),
  namespace: fc.option(fc.constantFrom('kubeflow-user-example-com', 'team-a'), { nil: undefined }),
});

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const objs = (v: unknown): Obj[] => list(v).filter(isObj);
const templatesOf = (wf: unknown): unknown[] => (isObj(wf) && isObj(wf.spec) ? list(wf.spec.templates) : []);
const named = (wf: unknown, name: string): Obj | undefined => templatesOf(wf).filter(isObj).find((t) => t.name === name);
const dagTasks = (t: unknown): Obj[] => (isObj(t) && isObj(t.dag) ? objs(t.dag.tasks) : []);
const params = (a: unknown): Obj[] => (isObj(a) ? objs(a.parameters) : []);
const argsOf = (hook: unknown): Record<string, unknown> => Object.fromEntries(params(isObj(hook) ? hook.arguments : undefined).map((p) => [p.name, p.value]));

function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  return isObj(v) ? Object.values(v).flatMap(strings) : [];
}

/**
 * The Argo expressions the injector writes itself. Task and parameter names go into their slots verbatim:
 * Argo accepts only [-a-zA-Z0-9_] names there, so a stranger name already fails the run without us.
 */
const OWN_EXPRESSIONS = /\{\{(?:(?:inputs|workflow)\.parameters\..*?|workflow\.(?:status|failures|duration|uid|namespace|name)|node\.name|(?:tasks|steps)\..*?\.status)\}\}/gs;

// Argo refuses `continueOn` in a DAG whose tasks use `depends` (argo-kfp.md §8.4).
const mixesContinueOnAndDepends = (t: unknown): boolean => {
  const tasks = dagTasks(t);
  return tasks.some((x) => x.depends !== undefined) && tasks.some((x) => x.continueOn !== undefined);
};

/**
 * A damaged input keeps its damage, which may move (a broken `spec.hooks.exit.templateRef` moves into the
 * wrapper task), but the injection adds none: per field name and message, the output has no more schema
 * errors than the input had.
 */
function addedErrors(before: string[], after: string[]): string[] {
  const key = (e: string): string => {
    const [path = '', ...message] = e.split(' ');
    return `${path.split('/').filter((s) => !/^\d*$/.test(s)).at(-1) ?? '/'} ${message.join(' ')}`;
  };
  const budget = new Map<string, number>();
  for (const e of before) budget.set(key(e), (budget.get(key(e)) ?? 0) + 1);
  return after.filter((e) => {
    const left = budget.get(key(e)) ?? 0;
    budget.set(key(e), left - 1);
    return left <= 0;
  });
}

const stats = { arms: {} as Record<string, Record<string, number>>, configs: {} as Record<string, number>, stepsChecked: 0 };
const count = (arm: string, key: string): void => {
  const a = (stats.arms[arm] ??= {});
  a[key] = (a[key] ?? 0) + 1;
};

function checkSkipped(c: WorkflowCase, input: unknown, r: InjectResult, opts: InjectOptions): void {
  expect(typeof r.reason === 'string' && r.reason !== '', 'a skip has a reason').toBe(true);
  const reason = String(r.reason);
  expect(r.workflow, 'a skip returns the input itself').toBe(input);
  expect(r.patch).toEqual([]);
  const cls = classifySkip(reason).label;
  // `internal error` means the injector crashed and caught itself; `other` means a reason nobody classified.
  expect(['internal_error', 'other'], reason).not.toContain(cls);
  count(c.arm, `skipped: ${cls}`);
  if (cls === 'size_limit') {
    const m = /^too large after injection: (\d+) bytes > size limit (\d+) bytes \((\d+) bytes before\)$/.exec(reason);
    expect(m, reason).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(opts.sizeLimitBytes);
    expect(Number(m?.[2])).toBe(opts.sizeLimitBytes);
    expect(Number(m?.[3])).toBe(Buffer.byteLength(JSON.stringify(input)));
  }
  if (c.arm === 'kfp-v1' || c.arm === 'kfp-v2') {
    expect(c.skipClasses.length > 0 ? c.skipClasses : ['size_limit'], reason).toContain(cls);
  }
}

function checkInjected(c: WorkflowCase, input: unknown, r: InjectResult, opts: InjectOptions): void {
  const out = r.workflow;
  count(c.arm, 'injected');
  // Compared as JSON, the way the apiserver sees both: fast-json-patch clones through JSON, which turns -0 into 0.
  const viaJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
  expect(viaJson(jsonPatch.applyPatch(structuredClone(input), r.patch, true, false).newDocument), 'input + patch = output').toEqual(viaJson(out));

  for (const version of ARGO_SCHEMA_VERSIONS) {
    const before = argoSchemaErrors(version, input);
    const after = argoSchemaErrors(version, out);
    if (c.arm === 'kfp-v1' || c.arm === 'kfp-v2') {
      expect(before, `${version}: the generator makes schema-valid KFP Workflows`).toEqual([]);
      expect(after, `${version}: injected output`).toEqual([]);
    } else {
      expect(addedErrors(before, after), `${version}: errors the injection added`).toEqual([]);
    }
  }

  const spec = isObj(out) && isObj(out.spec) ? out.spec : {};
  expect(spec.onExit !== undefined && isObj(spec.hooks) && spec.hooks.exit !== undefined, 'spec.onExit and spec.hooks.exit both set').toBe(false);
  const inputTemplates = templatesOf(input);
  templatesOf(out).forEach((t, i) => {
    if (mixesContinueOnAndDepends(t)) expect(i < inputTemplates.length && mixesContinueOnAndDepends(inputTemplates[i]), `template ${i} mixes continueOn and depends`).toBe(true);
  });
  for (const name of [HOOK, EXIT]) {
    const t = named(out, name);
    expect(t, `template ${name}`).toBeDefined();
    for (const p of params(t?.inputs)) expect(typeof p.default, `${name} input ${String(p.name)} has a default`).toBe('string');
  }

  // Values copied in at admission (names, display names) must not smuggle an Argo expression in.
  const inputStrings = new Set(strings(input));
  const added = r.patch.filter((op): op is Operation & { value: unknown } => op.path.startsWith('/spec') && 'value' in op).flatMap((op) => strings(op.value));
  for (const s of added) {
    if (inputStrings.has(s)) continue;
    expect(s.replace(OWN_EXPRESSIONS, '').includes('{{'), `an injected value carries an Argo expression: ${JSON.stringify(s.slice(0, 200))}`).toBe(false);
  }

  const again = injectWorkflow(out, opts);
  expect([again.outcome, again.patch, again.reason], 're-injection is a no-op').toEqual(['skipped', [], `already injected (annotation ${MARKER_ANNOTATION} is set)`]);

  if (c.arm === 'kfp-v1' || c.arm === 'kfp-v2') checkKfp(c, out, opts);
}

/** What the plan makes certain: every KFP step hooked (or listed as left alone), under the name the KFP UI shows. */
function checkKfp(c: KfpCase, out: unknown, opts: InjectOptions): void {
  expect(c.skipClasses, 'the plan required a skip').toEqual([]);
  const annotations = isObj(out) && isObj(out.metadata) && isObj(out.metadata.annotations) ? out.metadata.annotations : {};
  const status = JSON.parse(String(annotations[STATUS_ANNOTATION])) as {
    stepHooks: string;
    hookedTasks: string[];
    failureHookedTasks: string[];
    unhookedTasks: { task: string; reason: string }[];
    flavour: string;
  };
  expect(status.flavour).toBe(c.arm === 'kfp-v1' ? 'v1' : 'v2');
  const planHooked = c.steps.filter((s) => s.hooked).map((s) => s.id).sort();
  const planLeft = c.steps.filter((s) => !s.hooked).map((s) => s.id).sort();
  // A failure-only hook the injector cannot write safely is left to the status watcher, and says so.
  const toWatcher = status.unhookedTasks.filter((u) => u.reason.includes('the status watcher reports it')).map((u) => u.task);
  const ownHandler = status.unhookedTasks.filter((u) => !u.reason.includes('the status watcher reports it')).map((u) => u.task);
  if (status.stepHooks === 'none') {
    expect([...status.hookedTasks, ...status.failureHookedTasks, ...status.unhookedTasks]).toEqual([]);
    return;
  }
  if (status.stepHooks === 'all') {
    expect(status.failureHookedTasks).toEqual([]);
    expect(toWatcher).toEqual([]);
  } else {
    expect(status.stepHooks).toBe('failed');
    expect(status.hookedTasks).toEqual([]);
  }
  expect([...status.hookedTasks, ...status.failureHookedTasks, ...toWatcher].sort()).toEqual(planHooked);
  expect(ownHandler.sort()).toEqual(planLeft);
  // http mode percent-encodes, with a lone surrogate as U+FFFD (what the apiserver's decoder makes of one).
  const decode = opts.mode === 'http' ? decodeURIComponent : (s: string) => s;
  const sent = (s: string): string => (opts.mode === 'http' ? s.replace(/\p{Surrogate}/gu, '\uFFFD') : s);
  const withHook = new Set([...status.hookedTasks, ...status.failureHookedTasks]);
  for (const step of c.steps.filter((s) => withHook.has(s.id))) {
    const owner = named(out, step.id.slice(0, step.id.length - step.taskName.length - 1));
    const tasks = [...dagTasks(owner), ...list(owner?.steps).flatMap(objs)];
    const hook = tasks.find((t) => t.name === step.taskName)?.hooks;
    const args = argsOf(isObj(hook) ? hook.exit : undefined);
    expect(args.event, step.id).toBe('node-exit');
    // Container mode neutralises `{{` (checked above), so only names without braces compare as they are.
    if (opts.mode === 'http' || !/[{}]/.test(step.displayName)) expect(decode(String(args.nodeDisplayName)), `display name of ${step.id}`).toBe(sent(step.displayName));
    if (opts.mode === 'http' || !/[{}]/.test(step.taskName)) expect(decode(String(args.nodeTask)), `task of ${step.id}`).toBe(sent(step.taskName));
    stats.stepsChecked++;
  }
  const exitTasks = dagTasks(named(out, EXIT));
  if (c.forwarded) {
    expect(params(exitTasks[0]?.arguments)).toEqual(c.forwarded.map((p) => ({ name: p, value: `{{workflow.parameters.${p}}}` })));
  }
  if (c.wrapperInputs) expect(params(named(out, EXIT)?.inputs).map((p) => p.name)).toEqual(c.wrapperInputs);
}

// fast-check names the seed and the shrunk counterexample when this fails; FC_SEED=<seed> replays it.
describe(`injectWorkflow on ${RUNS} generated Workflows (property test)`, () => {
  it('never throws; an output is schema-valid with the invariants, or the input unchanged with a reason', () => {
    fc.assert(
      fc.property(anyWorkflowCase, config, (c, { config: [label, partial], namespace }) => {
        const opts = defaultInjectOptions({ ...partial, hookKey, ...(namespace ? { namespace } : {}) });
        const input = c.workflow;
        const before = JSON.stringify(input);
        const r = injectWorkflow(input, opts);
        expect(JSON.stringify(input), 'the input is never modified').toBe(before);
        stats.configs[label] = (stats.configs[label] ?? 0) + 1;
        if (r.outcome === 'skipped') checkSkipped(c, input, r, opts);
        else checkInjected(c, input, r, opts);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    console.info(`[webhook-inject-property] ${JSON.stringify({ runs: RUNS, seed: SEED, ...stats })}`);
    // The generator must reach every path that matters, or the property proves little.
    const total = (arm: string, key: string): number => stats.arms[arm]?.[key] ?? 0;
    for (const arm of ['kfp-v1', 'kfp-v2', 'damaged']) expect(total(arm, 'injected'), arm).toBeGreaterThan(RUNS / 50);
    for (const cls of ['size_limit', 'exit_handler', 'opted_out', 'already_injected', 'name_collision', 'not_kfp']) {
      expect(Object.values(stats.arms).some((a) => (a[`skipped: ${cls}`] ?? 0) > 0), `some skip as ${cls}`).toBe(true);
    }
  });
});

describe('what the generator found, pinned (each of these once failed)', () => {
  const wf = (runName: string, runId = 'run-1'): Obj => {
    const w = admittedFixture(`${FIXTURES_DIR}/kfp-v2-argocompiler-2.5.0/hello_world.yaml`, runId) as { metadata: { annotations: Obj } };
    w.metadata.annotations[RUN_NAME_ANNOTATION] = runName;
    return w;
  };
  const hookTemplate = (r: InjectResult): Obj => named(r.workflow, HOOK) ?? {};

  it('a run name with three braces ("{{{x}}}") reaches the hook pod with no Argo expression left in it', () => {
    const r = injectWorkflow(wf('nightly {{{x}}}'), defaultInjectOptions({ hookKey }));
    const container = hookTemplate(r).container;
    const env = objs(isObj(container) ? container.env : undefined).find((e) => e.name === 'HOOK_RUN_NAME');
    expect(env?.value).toBe('nightly { { {x}}}');
  });

  it('a lone surrogate in the run name or run id is sent as U+FFFD in http mode, not an internal error', () => {
    const r = injectWorkflow(wf('a\ud800b', 'r\udfff'), defaultInjectOptions({ hookKey, mode: 'http' }));
    expect([r.outcome, r.reason]).toEqual(['injected', undefined]);
    const http = hookTemplate(r).http;
    const body = new URLSearchParams(isObj(http) ? String(http.body) : '');
    expect([body.get('runName'), body.get('kfpRunId')]).toEqual(['a\ufffdb', 'r\ufffd']);
    expect(isObj(r.workflow) && isObj(r.workflow.metadata) && isObj(r.workflow.metadata.labels) ? r.workflow.metadata.labels[RUN_ID_LABEL] : undefined).toBe('r\udfff');
  });
});
