import fc from 'fast-check';
import jsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { MARKER_ANNOTATION, OPT_OUT_ANNOTATION, STATUS_ANNOTATION } from '../../common/hook-contract.js';
import { hookKeyFromSecret, verifyHookToken } from '../../common/hook-token.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import type { DagTask, Template, Workflow } from '../../common/kfp/workflow-types.js';
import { admittedFixture, DEFAULT_NAMESPACE, DEFAULT_RUN_ID, FIXTURES_DIR, TEST_HOOK_KEY_SECRET, workflowFixtures } from '../helpers/fixtures.js';

const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);
const opts = (partial: Partial<InjectOptions> = {}) => defaultInjectOptions({ ...partial, hookKey });
const fixture = (name: string) => admittedFixture(`${FIXTURES_DIR}/${name}`) as Workflow;
const HOOK = 'kfp-notify-hook';
const EXIT = 'kfp-notify-exit';

function injected(input: unknown, partial: Partial<InjectOptions> = {}): Workflow {
  const r = injectWorkflow(input, opts(partial));
  if (r.outcome !== 'injected') throw new Error(`expected injection, got skipped: ${r.reason}`);
  return r.workflow as Workflow;
}
const templates = (wf: Workflow): Template[] => wf.spec?.templates ?? [];
const template = (wf: Workflow, name: string): Template => {
  const t = templates(wf).find((x) => x.name === name);
  if (!t) throw new Error(`no template ${name}`);
  return t;
};
const dagTasks = (t: Template): DagTask[] => t.dag?.tasks ?? [];
const args = (params: { name?: string; value?: string }[] | undefined) => Object.fromEntries((params ?? []).map((p) => [p.name, p.value]));

/** Every string in `v` with the JSON path where it sits. */
function strings(v: unknown, path = ''): [string, string][] {
  if (typeof v === 'string') return [[path, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => strings(x, `${path}/${i}`));
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => strings(x, `${path}/${k}`));
  return [];
}

/** Templates the onExit handler can reach: through DAG tasks, steps and their hooks. */
function onExitTree(wf: Workflow): Set<string> {
  const seen = new Set<string>();
  const visit = (name: string | undefined) => {
    if (!name || seen.has(name)) return;
    seen.add(name);
    const t = templates(wf).find((x) => x.name === name);
    const tasks = [...dagTasks(t ?? {}), ...(t?.steps ?? []).flat()];
    for (const task of tasks) {
      visit(task.template);
      for (const h of Object.values(task.hooks ?? {})) visit(h.template);
    }
  };
  visit(wf.spec?.onExit);
  return seen;
}

// KFP-side truth, computed here without the code under test (argo-kfp.md §4.5 and KFP's ParserUtils.ts).
function expectedSteps(wf: Workflow, flavour: 'v1' | 'v2'): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of templates(wf)) {
    for (const task of dagTasks(t)) {
      const target = templates(wf).find((x) => x.name === task.template);
      if (flavour === 'v1') {
        if (!target || !(target.container || target.script || target.resource)) continue;
        const a = target.metadata?.annotations ?? {};
        const spec = a['pipelines.kubeflow.org/component_spec'];
        const specName = spec ? (JSON.parse(spec) as { name?: string }).name : undefined;
        out.set(`${t.name}/${task.name}`, a['pipelines.kubeflow.org/task_display_name'] || specName || String(task.name));
      } else {
        if (!/(^|-)system-container-executor$/.test(String(task.template))) continue;
        const driver = dagTasks(t).find((d) => d.name === `${task.name}-driver`);
        const taskJson = driver?.arguments?.parameters?.find((p) => p.name === 'task')?.value ?? '{}';
        out.set(`${t.name}/${task.name}`, (JSON.parse(taskJson) as { taskInfo?: { name?: string } }).taskInfo?.name ?? String(task.name));
      }
    }
  }
  return out;
}

const CONFIGS: [string, Partial<InjectOptions>][] = [
  ['container, Argo 4.0.5', {}],
  ['container, Argo 4.0.5, stepHooks all', { stepHooks: 'all' }],
  ['http, Argo 3.5.14', { mode: 'http', argoVersion: '3.5.14' }],
  ['container, Argo 3.4.0', { argoVersion: '3.4.0' }],
  ['container, Argo 3.3.8', { argoVersion: '3.3.8' }],
  ['container, Argo 3.3.8, stepHooks all', { argoVersion: '3.3.8', stepHooks: 'all' }],
  ['container, Argo 3.2.3', { argoVersion: '3.2.3' }],
];

/** The policy a configuration should get, worked out here from argo-kfp.md §0 rather than by the code under test. */
function policyOf(partial: Partial<InjectOptions>): 'all' | 'failed' | 'none' {
  if (partial.stepHooks) return partial.stepHooks;
  const [major = 0, minor = 0] = (partial.argoVersion ?? '4.0.5').split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 4) ? 'failed' : 'none';
}

describe.each(workflowFixtures())('invariants on $name', ({ path, flavour }) => {
  describe.each(CONFIGS)('%s', (_config, partial) => {
    const input = admittedFixture(path) as Workflow;
    const before = JSON.stringify(input);
    const result = injectWorkflow(input, opts(partial));
    const wf = result.workflow as Workflow;

    it('injects, leaves the input untouched, and the patch turns the input into the output', () => {
      expect(result.outcome, result.reason).toBe('injected');
      expect(JSON.stringify(input)).toBe(before);
      expect(jsonPatch.applyPatch(structuredClone(input), result.patch, true, false).newDocument).toEqual(wf);
    });

    it('is deterministic: the same input and options give byte-identical output', () => {
      const again = injectWorkflow(admittedFixture(path), opts(partial));
      expect(JSON.stringify(again.workflow)).toBe(JSON.stringify(wf));
      expect(JSON.stringify(again.patch)).toBe(JSON.stringify(result.patch));
    });

    it('is idempotent: injecting the output again skips it with an empty patch', () => {
      const again = injectWorkflow(wf, opts(partial));
      expect(again).toEqual({ outcome: 'skipped', reason: `already injected (annotation ${MARKER_ANNOTATION} is set)`, workflow: wf, patch: [] });
    });

    it('never sets both spec.onExit and spec.hooks.exit', () => {
      expect(wf.spec?.onExit !== undefined && wf.spec.hooks?.exit !== undefined).toBe(false);
      expect(wf.spec?.onExit).toBe(EXIT);
    });

    it('gives every input of the injected templates a default (a missing input fails the run)', () => {
      for (const name of [HOOK, EXIT]) {
        for (const p of template(wf, name).inputs?.parameters ?? []) expect(p.default, `${name}.${p.name}`).toBeTypeOf('string');
      }
      expect(template(wf, HOOK).inputs?.parameters?.length).toBeGreaterThan(0);
    });

    it('never puts continueOn in a DAG whose tasks use depends (Argo rejects the spec)', () => {
      for (const t of templates(wf)) {
        const tasks = dagTasks(t);
        if (tasks.some((x) => x.depends !== undefined)) expect(tasks.filter((x) => x.continueOn !== undefined), String(t.name)).toEqual([]);
      }
      expect(dagTasks(template(wf, EXIT)).map((x) => x.depends)).toEqual([undefined]);
    });

    it('uses {{workflow.failures}} only inside the onExit tree, and adds no workflow.labels/annotations references', () => {
      const tree = onExitTree(wf);
      const uses = strings(wf.spec?.templates).filter(([, s]) => s.includes('workflow.failures'));
      expect(uses.length).toBe(1);
      for (const [where] of uses) expect(tree.has(String(templates(wf)[Number(where.split('/')[1])]?.name)), where).toBe(true);
      const refs = (v: unknown) => strings(v).filter(([, s]) => /\{\{\s*workflow\.(labels|annotations)\./.test(s)).length;
      expect(refs(wf)).toBe(refs(input));
    });

    const policy = policyOf(partial);
    const statusOf = () => JSON.parse(wf.metadata?.annotations?.[STATUS_ANNOTATION] ?? '{}') as { stepHooks: string; hookedTasks: string[]; failureHookedTasks: string[] };

    if (policy === 'none') it('stepHooks none: hooks no step, and the status says so', () => {
      expect(expectedSteps(input, flavour).size).toBeGreaterThan(0);
      const hooked = templates(wf).flatMap((t) => dagTasks(t).filter((x) => x.hooks?.exit?.template === HOOK && t.name !== EXIT));
      expect(hooked).toEqual([]);
      expect(statusOf()).toMatchObject({ stepHooks: 'none', hookedTasks: [], failureHookedTasks: [] });
    });

    if (policy === 'failed') it('stepHooks failed: every step hook fires only when its own status is not Succeeded', () => {
      const expected = expectedSteps(input, flavour);
      expect(expected.size).toBeGreaterThan(0);
      const status = statusOf();
      expect(status.stepHooks).toBe('failed');
      expect(status.hookedTasks).toEqual([]);
      for (const [id] of expected) {
        const [dag, taskName] = id.split('/');
        const hook = dagTasks(template(wf, String(dag))).find((x) => x.name === taskName)?.hooks?.exit;
        if (hook?.template !== HOOK) continue; // its own exit handler: checked below
        expect(hook.expression, id).toBe(`tasks['${taskName}'].status != 'Succeeded'`);
        expect(status.failureHookedTasks, id).toContain(id);
      }
    });

    if (policy !== 'none') it('hooks every KFP step exactly once, with the name the KFP UI shows', () => {
      const expected = expectedSteps(input, flavour);
      expect(expected.size).toBeGreaterThan(0);
      for (const [id, displayName] of expected) {
        const [dag, taskName] = id.split('/');
        const task = dagTasks(template(wf, String(dag))).find((x) => x.name === taskName);
        const hook = task?.hooks?.exit;
        if (hook?.template !== HOOK) {
          // Only a task with its own exit handler may be left alone, and the status says so.
          const status = JSON.parse(wf.metadata?.annotations?.[STATUS_ANNOTATION] ?? '{}') as { unhookedTasks: { task: string }[] };
          expect(status.unhookedTasks.map((u) => u.task), id).toContain(id);
          continue;
        }
        const a = args(hook.arguments?.parameters);
        const decode = partial.mode === 'http' ? decodeURIComponent : (s: string) => s;
        expect(a.event).toBe('node-exit');
        expect(decode(String(a.nodeTask))).toBe(taskName);
        expect(decode(String(a.nodeDisplayName))).toBe(displayName);
      }
      const hookedTasks = templates(wf).flatMap((t) => dagTasks(t).filter((x) => x.hooks?.exit?.template === HOOK && t.name !== EXIT));
      expect(hookedTasks.length).toBe(expected.size);
    });

    it('preserves every hook the pipeline already had', () => {
      for (const t of templates(input)) {
        for (const task of dagTasks(t)) {
          if (!task.hooks) continue;
          const out = dagTasks(template(wf, String(t.name))).find((x) => x.name === task.name);
          expect(out?.hooks, `${t.name}/${task.name}`).toMatchObject(task.hooks);
        }
      }
    });
  });
});

describe('what each Argo version gets', () => {
  const nodeArgs = (wf: Workflow) => args(dagTasks(template(wf, 'root')).find((t) => t.name === 'hello-world')?.hooks?.exit?.arguments?.parameters);
  const hello = () => fixture('kfp-v2-argocompiler-2.5.0/hello_world.yaml');

  it('3.2: no workflow-level hooks (none before 3.3), no self-status argument (#7366)', () => {
    const wf = injected(hello(), { argoVersion: '3.2.3' });
    expect(wf.spec?.hooks).toBeUndefined();
    expect(nodeArgs(wf)).not.toHaveProperty('nodePhase');
  });

  it('3.3.x to 3.4.16: the running hook, but no self-status argument (Argo leaves it unresolved)', () => {
    for (const argoVersion of ['3.3.8', '3.4.16']) {
      const wf = injected(hello(), { argoVersion });
      expect(wf.spec?.hooks?.['kfp-notify-running']).toEqual({
        expression: 'workflow.status == "Running"',
        template: HOOK,
        arguments: { parameters: [{ name: 'event', value: 'workflow-running' }] },
      });
      expect(nodeArgs(wf)).not.toHaveProperty('nodePhase');
    }
  });

  it('3.4.17 and later: the node phase comes from {{tasks.<self>.status}}', () => {
    expect(nodeArgs(injected(hello(), { argoVersion: '3.4.17' })).nodePhase).toBe('{{tasks.hello-world.status}}');
  });
});

describe('chaining with an existing exit handler', () => {
  it('wraps a v1 spec.onExit: the user exit step is the wrapper DAG’s only task, and the notification is its exit hook', () => {
    const wf = injected(fixture('kfp-v1-compiler/basic.yaml'));
    expect(wf.spec?.onExit).toBe(EXIT);
    const [only, ...others] = dagTasks(template(wf, EXIT));
    expect(others).toEqual([]);
    expect(only).toMatchObject({ name: 'user-exit', template: 'exiting' });
    expect(only?.depends).toBeUndefined();
    expect(only?.continueOn).toBeUndefined(); // the user's exit step still fails the run as before
    expect(only?.hooks?.exit?.template).toBe(HOOK);
    expect(args(only?.hooks?.exit?.arguments?.parameters)).toEqual({
      event: 'workflow-exit',
      nodeTask: 'user-exit',
      nodeDisplayName: 'exiting',
      workflowStatus: '{{workflow.status}}',
      exitHandlerStatus: '{{tasks.user-exit.status}}',
      failures: '{{workflow.failures}}',
      duration: '{{workflow.duration}}',
    });
    expect(template(wf, 'exiting')).toEqual(template(fixture('kfp-v1-compiler/basic.yaml'), 'exiting'));
  });

  it('forwards the workflow arguments the user exit template declares (Argo passed them implicitly)', () => {
    const input = fixture('kfp-v1-compiler/basic.yaml');
    template(input, 'exiting').inputs = { parameters: [{ name: 'message' }, { name: 'not-an-argument', default: 'x' }] };
    const task = dagTasks(template(injected(input), EXIT))[0];
    expect(task?.arguments).toEqual({ parameters: [{ name: 'message', value: '{{workflow.parameters.message}}' }] });
  });

  it('keeps a spec.hooks.exit as hooks.exit (onExit beside it would silently disable it) and forwards its arguments', () => {
    const input = fixture('kfp-v1-compiler/basic.yaml');
    delete input.spec?.onExit;
    input.spec = { ...input.spec, hooks: { exit: { template: 'exiting', arguments: { parameters: [{ name: 'message', value: 'bye' }] } } } };
    const wf = injected(input);
    expect(wf.spec?.onExit).toBeUndefined();
    expect(wf.spec?.hooks?.exit).toEqual({ arguments: { parameters: [{ name: 'message', value: 'bye' }] }, template: EXIT });
    const wrapper = template(wf, EXIT);
    expect(wrapper.inputs).toEqual({ parameters: [{ name: 'message', default: '' }] });
    expect(dagTasks(wrapper)[0]).toMatchObject({ name: 'user-exit', template: 'exiting', arguments: { parameters: [{ name: 'message', value: '{{inputs.parameters.message}}' }] } });
    // workflow.failures passes validation only under spec.onExit (argo-kfp.md §1.4).
    expect(strings(wf).filter(([, s]) => s.includes('workflow.failures'))).toEqual([]);
  });

  it('adds a one-task wrapper whose notify task cannot fail the run when there is no exit handler', () => {
    const wf = injected(fixture('kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml'));
    expect(dagTasks(template(wf, EXIT))).toEqual([
      {
        name: 'notify',
        template: HOOK,
        arguments: { parameters: [
          { name: 'event', value: 'workflow-exit' },
          { name: 'workflowStatus', value: '{{workflow.status}}' },
          { name: 'failures', value: '{{workflow.failures}}' },
          { name: 'duration', value: '{{workflow.duration}}' },
        ] },
        continueOn: { failed: true, error: true },
      },
    ]);
  });

  it('leaves a step with its own exit hook alone and lists it as not hooked', () => {
    const input = fixture('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
    const task = dagTasks(template(input, 'root')).find((t) => t.name === 'hello-world');
    if (!task) throw new Error('fixture changed');
    task.hooks = { exit: { template: 'system-container-driver' }, custom: { expression: 'true', template: 'x' } };
    const wf = injected(input);
    expect(dagTasks(template(wf, 'root')).find((t) => t.name === 'hello-world')?.hooks).toEqual(task.hooks);
    const status = JSON.parse(wf.metadata?.annotations?.[STATUS_ANNOTATION] ?? '{}') as Record<string, unknown>;
    expect(status.unhookedTasks).toEqual([{ task: 'root/hello-world', reason: 'the task has its own hooks.exit' }]);
    expect(status.hookedTasks).toEqual([]);
  });

  it('merges into a hooks map without an exit hook', () => {
    const input = fixture('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
    const task = dagTasks(template(input, 'root')).find((t) => t.name === 'hello-world');
    if (!task) throw new Error('fixture changed');
    task.hooks = { 'on-failure': { expression: 'tasks["hello-world"].status == "Failed"', template: 'system-container-driver' } };
    const hooks = dagTasks(template(injected(input), 'root')).find((t) => t.name === 'hello-world')?.hooks;
    expect(Object.keys(hooks ?? {})).toEqual(['on-failure', 'exit']);
    expect(hooks?.['on-failure']).toEqual(task.hooks['on-failure']);
  });
});

describe('the status annotation and the token', () => {
  it('records flavour, version, mode and what was added (style.md example 2)', () => {
    const wf = injected(fixture('kfp-v1-compiler/basic.yaml'), { argoVersion: '3.3.8' });
    expect(wf.metadata?.annotations?.[MARKER_ANNOTATION]).toBe('true');
    expect(JSON.parse(wf.metadata?.annotations?.[STATUS_ANNOTATION] ?? '')).toEqual({
      contract: '1',
      flavour: 'v1',
      argoVersion: '3.3.8',
      mode: 'container',
      capabilities: { runningHook: true, statusArg: false, condExitHook: false, httpSafe: false },
      templates: [HOOK, EXIT],
      hooks: ['spec.onExit', 'spec.hooks.kfp-notify-running'],
      exitHandler: 'wrapped spec.onExit exiting',
      stepHooks: 'none',
      hookedTasks: [],
      failureHookedTasks: [],
      unhookedTasks: [],
    });
  });

  const tokenOf = (wf: Workflow) => (template(wf, HOOK).container as { env: { name: string; value?: string }[] }).env.find((e) => e.name === 'KFP_NOTIFY_TOKEN')?.value;

  it('mints the token for the admission namespace and the KFP run id (not the Kubernetes uid)', () => {
    const wf = injected(fixture('kfp-v1-compiler/basic.yaml'), { namespace: 'team-a' });
    expect(verifyHookToken([hookKey], tokenOf(wf), { namespace: 'team-a', kfpRunId: DEFAULT_RUN_ID })).toEqual({ ok: true });
    expect(verifyHookToken([hookKey], tokenOf(wf), { namespace: DEFAULT_NAMESPACE, kfpRunId: DEFAULT_RUN_ID }).ok).toBe(false);
  });

  it('falls back to metadata.namespace, then "default"', () => {
    const input = fixture('kfp-v1-compiler/basic.yaml');
    expect(verifyHookToken([hookKey], tokenOf(injected(input)), { namespace: DEFAULT_NAMESPACE, kfpRunId: DEFAULT_RUN_ID }).ok).toBe(true);
    delete input.metadata?.namespace;
    expect(verifyHookToken([hookKey], tokenOf(injected(input)), { namespace: 'default', kfpRunId: DEFAULT_RUN_ID }).ok).toBe(true);
  });

  it('adds the run id pod label when a Workflow lacks it, so the hook pod can read it', () => {
    const input = fixture('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
    delete input.spec?.podMetadata?.labels?.['pipeline/runid'];
    const wf = injected(input);
    expect(wf.spec?.podMetadata?.labels).toEqual({ 'pipelines.kubeflow.org/v2_component': 'true', 'pipeline/runid': DEFAULT_RUN_ID });
    expect(JSON.parse(wf.metadata?.annotations?.[STATUS_ANNOTATION] ?? '{}')).toMatchObject({ podMetadataRunId: 'added' });
  });

  it('neutralises {{ in names copied in at admission (Argo would fail the run trying to resolve it)', () => {
    const input = fixture('kfp-v1-compiler/artifact_pipeline.yaml');
    (input.metadata?.annotations ?? {})['pipelines.kubeflow.org/run_name'] = 'nightly {{workflow.name}}';
    const wf = injected(input);
    const env = (template(wf, HOOK).container as { env: { name: string; value?: string }[] }).env;
    expect(env.find((e) => e.name === 'HOOK_RUN_NAME')?.value).toBe('nightly { {workflow.name}}');
  });
});

describe('skips, with a reason, leaving the object untouched', () => {
  const v2 = () => fixture('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
  const cases: [string, () => unknown, RegExp][] = [
    ['a Deployment', () => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', labels: { 'pipeline/runid': 'r' } } }), /^not an Argo Workflow: Deployment apps\/v1$/],
    ['a CronWorkflow', () => ({ ...v2(), kind: 'CronWorkflow' }), /^not an Argo Workflow: CronWorkflow/],
    ['a Workflow without the run id label (not from KFP)', () => {
      const wf = v2();
      delete wf.metadata?.labels?.['pipeline/runid'];
      return wf;
    }, /^not a KFP workflow: label pipeline\/runid is missing$/],
    ['an opted-out Workflow ("false")', () => ({ ...v2(), metadata: { ...v2().metadata, annotations: { [OPT_OUT_ANNOTATION]: 'false' } } }), /^opted out: annotation kfp-notify\.kubeflow\.org\/inject=false$/],
    ['an opted-out Workflow ("disabled")', () => ({ ...v2(), metadata: { ...v2().metadata, annotations: { [OPT_OUT_ANNOTATION]: 'disabled' } } }), /^opted out/],
    ['an already injected Workflow', () => ({ ...v2(), metadata: { ...v2().metadata, annotations: { [MARKER_ANNOTATION]: 'true' } } }), /^already injected/],
    ['a Workflow that runs a WorkflowTemplate', () => ({ ...v2(), spec: { workflowTemplateRef: { name: 'x' } } }), /^spec\.workflowTemplateRef is set/],
    ['a Workflow without templates', () => ({ ...v2(), spec: { entrypoint: 'x' } }), /^malformed Workflow: spec\.templates is not a list$/],
    ['a Workflow whose spec.hooks is a list', () => ({ ...v2(), spec: { ...v2().spec, hooks: [] } }), /^malformed Workflow: spec\.hooks is not a map$/],
    ['a template name collision', () => {
      const wf = v2();
      wf.spec?.templates?.push({ name: HOOK, container: {} });
      return wf;
    }, /^name collision: the Workflow already has a template named kfp-notify-hook$/],
    ['a hook name collision', () => ({ ...v2(), spec: { ...v2().spec, hooks: { 'kfp-notify-running': { expression: 'true', template: 'x' } } } }), /^name collision: spec\.hooks/],
    ['both spec.onExit and spec.hooks.exit', () => ({ ...v2(), spec: { ...v2().spec, onExit: 'root', hooks: { exit: { template: 'root' } } } }), /^spec\.onExit and spec\.hooks\.exit are both set/],
    ['an onExit naming a missing template', () => ({ ...v2(), spec: { ...v2().spec, onExit: 'gone' } }), /^spec\.onExit names template "gone", which the Workflow does not have$/],
    ['two different run ids', () => ({ ...v2(), spec: { ...v2().spec, podMetadata: { labels: { 'pipeline/runid': 'other' } } } }), /^run id conflict/],
    ['null', () => null, /^not a Kubernetes object \(got null\)$/],
    ['a list', () => [v2()], /^not a Kubernetes object \(got a list\)$/],
    ['a string', () => 'apiVersion: argoproj.io/v1alpha1', /^not a Kubernetes object \(got string\)$/],
  ];
  it.each(cases)('%s', (_what, make, reason) => {
    const input = make();
    const before = JSON.stringify(input);
    const r = injectWorkflow(input, opts());
    expect(r.outcome).toBe('skipped');
    expect(r.reason).toMatch(reason);
    expect(r.workflow).toBe(input);
    expect(r.patch).toEqual([]);
    expect(JSON.stringify(input)).toBe(before);
  });

  it('an annotation inject=true is not an opt-out', () => {
    const input = v2();
    (input.metadata ??= {}).annotations = { ...input.metadata.annotations, [OPT_OUT_ANNOTATION]: 'true' };
    expect(injectWorkflow(input, opts()).outcome).toBe('injected');
  });

  it('the size guard: a Workflow that would outgrow the limit is skipped, and the reason states both sizes', () => {
    const input = fixture('kfp-v1-compiler/parallelfor_item_argument_resolving.yaml');
    const full = injectWorkflow(input, opts());
    const size = Buffer.byteLength(JSON.stringify(full.workflow));
    const tight = injectWorkflow(input, opts({ sizeLimitBytes: size - 1 }));
    expect(tight).toMatchObject({ outcome: 'skipped', patch: [], workflow: input });
    expect(tight.reason).toBe(`too large after injection: ${size} bytes > size limit ${size - 1} bytes (${Buffer.byteLength(JSON.stringify(input))} bytes before)`);
    expect(injectWorkflow(input, opts({ sizeLimitBytes: size })).outcome).toBe('injected');
  });

  it('an internal error becomes a skip, never an exception', () => {
    const hostile = new Proxy({}, { get: () => { throw new Error('boom'); } });
    const r = injectWorkflow(hostile, opts());
    expect([r.outcome, r.reason, r.patch]).toEqual(['skipped', 'internal error: boom', []]);
    expect(r.workflow === hostile).toBe(true);
  });
});

describe('total on any input (property test)', () => {
  // JSON-shaped, as the webhook receives it (optional keys are left out, never set to undefined).
  const runIdWorkflow = fc.record({
    apiVersion: fc.constant('argoproj.io/v1alpha1'),
    kind: fc.constant('Workflow'),
    metadata: fc.record({ labels: fc.constant({ 'pipeline/runid': 'r1' }), annotations: fc.dictionary(fc.string(), fc.string()) }, { requiredKeys: ['labels'] }),
    spec: fc.record({
      templates: fc.array(fc.record({ name: fc.oneof(fc.constantFrom('a', 'b', 'system-container-executor', 'root'), fc.string()), dag: fc.record({ tasks: fc.array(fc.record({ name: fc.string(), template: fc.constantFrom('a', 'b', 'system-container-executor'), hooks: fc.jsonValue() }, { requiredKeys: ['name', 'template'] })) }), container: fc.jsonValue() }, { requiredKeys: ['name'] })),
      onExit: fc.constantFrom('a', 'b', 'missing'),
      hooks: fc.jsonValue(),
    }, { requiredKeys: ['templates'] }),
  });

  it('never throws, never mutates, and an injected result always equals input + patch', () => {
    let injectedCount = 0;
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), runIdWorkflow), (input) => {
        const before = JSON.stringify(input);
        const r = injectWorkflow(input, opts());
        expect(JSON.stringify(input)).toBe(before);
        if (r.outcome === 'skipped') {
          expect(r.reason).toBeTruthy();
          expect(r.workflow).toBe(input);
          expect(r.patch).toEqual([]);
        } else {
          injectedCount++;
          // Through JSON on both sides: fast-json-patch copies values through JSON, which turns a generated -0 into 0.
          const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
          expect(json(jsonPatch.applyPatch(structuredClone(input), r.patch, true, false).newDocument)).toEqual(json(r.workflow));
          expect(injectWorkflow(r.workflow, opts()).patch).toEqual([]);
        }
      }),
      { numRuns: 300 },
    );
    expect(injectedCount, 'the generator must reach the injecting path too').toBeGreaterThan(10);
  });
});
