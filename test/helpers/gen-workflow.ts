import fc from 'fast-check';
import { MARKER_ANNOTATION, OPT_OUT_ANNOTATION, RUN_ID_LABEL, RUN_NAME_ANNOTATION } from '../../common/hook-contract.js';

/**
 * fast-check arbitraries for Workflows as the webhook may receive them: KFP-shaped v1 and v2 Workflows
 * built from a random plan (nested DAGs, loops, conditions, exit handlers, existing hooks, odd names,
 * huge strings), the same Workflows damaged (wrong-typed or missing fields), and near-miss garbage.
 *
 * The KFP-shaped ones carry what the plan makes certain (which tasks are KFP steps and what the KFP UI
 * calls them, which skip the Workflow must get), computed from the plan and never from the code under
 * test. The shapes follow the compilers' output in /work/shared/fixtures and argo-kfp.md §4.
 */

type Obj = Record<string, unknown>;
export type Flavour = 'v1' | 'v2';

// ---------- text ----------

/** Strings that have broken templating, shells, forms or terminals somewhere. */
const HOSTILE = [
  '{{workflow.status}}', '{{{x}}}', '{{=sprig.trim("x")}}', '}}{{', '{{', '{ {', '{', '}}', '%7B%7B', '%', 'a&b=c+d',
  '$(id)', '`id`', "'; rm -rf / #", '"', '\\', '\n', '\t', '\u0000', '\u202e', '\ufeff', '🎉 nightly', 'ℌ𝔢𝔩𝔩𝔬',
  'مرحبا', '日本語のパイプライン', 'Ünïcödé', ' ', '',
  // Lone surrogates: the apiserver's Go decoder turns them into U+FFFD, but `kfp-notify inject` reads files as they are.
  '\ud800', 'a\udfffb',
];

/** What a person may type for a run, pipeline or step display name. */
export const freeText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 3, arbitrary: fc.array(fc.constantFrom(...HOSTILE, 'step', '-', 'a'), { minLength: 2, maxLength: 6 }).map((p) => p.join('')) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('{', '}', '{{', ' ', 'a', '%', '='), maxLength: 12 }) },
);

/** Tens to hundreds of kilobytes: enough to push some Workflows past the injector's size limit. */
export const hugeText: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 20_000, max: 400_000 }), fc.constantFrom('x', 'é', '🎉', '{', '\\"'))
  .map(([n, c]) => c.repeat(Math.ceil(n / c.length)));

/** `arb` about once in `oneIn` draws, otherwise undefined. */
const rarely = <T>(arb: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const dnsLabel = fc.stringMatching(/^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$/);

/**
 * A task or template name. Argo itself accepts only `[a-zA-Z0-9-]` names, but the injector must cope with
 * whatever it is sent; braces stay out because a name is also part of `{{tasks.<name>.status}}`.
 */
const nameBase: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: dnsLabel },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 16 }).filter((s) => !/[{}]/.test(s)) },
  { weight: 1, arbitrary: fc.constantFrom('exit-handler-1', 'for-loop-2', 'condition-3', 'root', 'system-container-executor', 'kfp-notify-hook-x', 'user-exit', 'notify', 'a.b', 'A_B', '步骤', 'x'.repeat(63)) },
);

// ---------- the plan ----------

/**
 * Where the KFP UI finds a step's name (argo-kfp.md §4.5). v1: `primary` is the template's
 * task_display_name annotation, `secondary` its component_spec JSON name, `both` sets the two (the
 * annotation wins, and an empty one falls through to `other`). v2: the driver's `task` JSON taskInfo.name
 * (an importer carries it itself). `none` has no name, `broken` unparsable JSON: the UI shows the task name.
 */
type Display = { source: 'primary' | 'secondary' | 'both' | 'none' | 'broken'; text: string; other: string };

interface StepPlan {
  kind: 'step';
  base: string;
  display: Display;
  /** A hook of the pipeline's own: `exit` and `onExit` mean the injector must leave the task alone. */
  ownHooks: 'none' | 'exit' | 'other' | 'onExit';
  loop: 'none' | 'withItems' | 'withParam' | 'withSequence';
  when: boolean;
  podKind: 'container' | 'script' | 'resource';
  executor: 'plain' | 'prefixed' | 'importer';
  bigArg: string | undefined;
}

interface GroupPlan {
  kind: 'group';
  base: string;
  group: 'condition' | 'loop' | 'exit-handler' | 'plain' | 'steps';
  children: NodePlan[];
  ownHooks: 'none' | 'other';
  /** v2 `exit-handler` groups: the step their `exit-hook-*` DAG runs. */
  hookStep: StepPlan;
}

type NodePlan = StepPlan | GroupPlan;

type ExitPlan = 'none' | 'onExit' | 'onExitInputs' | 'onExitArtifacts' | 'hooksExit' | 'hooksExitArgs' | 'hooksExitRef' | 'both';

/** Properties that make a skip certain, each with the skip class (webhook/admission-review.ts labels) it must get. */
const SKIP_TRAITS = {
  optOut: 'opted_out',
  marker: 'already_injected',
  templateRef: 'template_ref',
  collision: 'name_collision',
  runIdConflict: 'run_id_conflict',
  noRunId: 'not_kfp',
} as const;
type SkipTrait = keyof typeof SKIP_TRAITS;

interface WorkflowPlan {
  flavour: Flavour;
  pipelineName: string;
  pipelineDns: string;
  runName: string | undefined;
  runId: string;
  params: { name: string; value: string }[];
  nodes: NodePlan[];
  exit: ExitPlan;
  specHooksOther: boolean;
  podRunId: 'same' | 'missing';
  depStyle: 'none' | 'dependencies' | 'depends';
  continueOn: boolean;
  traits: SkipTrait[];
  /** Values of the opt-out annotation that are not an opt-out (only "false" and "disabled" are). */
  notOptOut: string | undefined;
  bigAnnotation: string | undefined;
}

const display: fc.Arbitrary<Display> = fc.record({
  source: fc.constantFrom('primary', 'primary', 'secondary', 'both', 'none', 'broken'),
  text: freeText,
  other: freeText,
});

const stepPlan: fc.Arbitrary<StepPlan> = fc.record({
  kind: fc.constant('step' as const),
  base: nameBase,
  display,
  ownHooks: fc.constantFrom('none', 'none', 'none', 'none', 'exit', 'other', 'onExit'),
  loop: fc.constantFrom('none', 'none', 'none', 'withItems', 'withParam', 'withSequence'),
  when: fc.boolean(),
  podKind: fc.constantFrom('container', 'container', 'script', 'resource'),
  executor: fc.constantFrom('plain', 'plain', 'prefixed', 'importer'),
  bigArg: rarely(hugeText, 60),
});

const nodePlan: fc.Memo<NodePlan> = fc.memo((depth) =>
  depth <= 1
    ? stepPlan
    : fc.oneof(
        { weight: 3, arbitrary: stepPlan },
        {
          weight: 1,
          arbitrary: fc.record({
            kind: fc.constant('group' as const),
            base: nameBase,
            group: fc.constantFrom('condition', 'loop', 'exit-handler', 'plain', 'steps'),
            children: fc.array(nodePlan(depth - 1), { minLength: 1, maxLength: 4 }),
            ownHooks: fc.constantFrom('none', 'none', 'other'),
            hookStep: stepPlan,
          }),
        },
      ),
);

const runId = fc.oneof({ weight: 9, arbitrary: fc.uuid() }, { weight: 1, arbitrary: freeText.filter((s) => s !== '') });

const workflowPlan = (flavour: Flavour): fc.Arbitrary<WorkflowPlan> =>
  fc.record({
    flavour: fc.constant(flavour),
    pipelineName: freeText,
    pipelineDns: dnsLabel,
    runName: fc.option(freeText, { freq: 8, nil: undefined }),
    runId,
    params: fc.uniqueArray(fc.record({ name: dnsLabel, value: freeText }), { maxLength: 4, selector: (p) => p.name }),
    nodes: fc.array(nodePlan(4), { minLength: 1, maxLength: 5 }),
    exit:
      flavour === 'v1'
        ? fc.oneof(fc.constantFrom<ExitPlan>('none', 'onExit', 'onExitInputs', 'hooksExit', 'hooksExitArgs', 'hooksExitRef'), fc.constantFrom<ExitPlan>('none', 'onExit', 'onExit', 'onExitArtifacts', 'both'))
        : fc.constantFrom<ExitPlan>('none', 'none', 'none', 'none', 'none', 'none', 'onExit', 'hooksExitArgs', 'both'),
    specHooksOther: fc.boolean(),
    podRunId: fc.constantFrom('same', 'same', 'same', 'missing'),
    depStyle: fc.constantFrom('none', 'dependencies', 'depends'),
    continueOn: fc.boolean(),
    traits: fc.oneof(
      { weight: 8, arbitrary: fc.constant<SkipTrait[]>([]) },
      { weight: 1, arbitrary: fc.subarray(Object.keys(SKIP_TRAITS) as SkipTrait[], { minLength: 1, maxLength: 2 }) },
    ),
    notOptOut: rarely(fc.constantFrom('true', 'enabled', 'no', '0', 'falsey'), 8),
    bigAnnotation: rarely(hugeText, 15),
  });

// ---------- from plan to Workflow ----------

/** A KFP step as the KFP UI will show it, keyed `<dag or steps template>/<task>`. */
export interface ExpectedStep {
  id: string;
  taskName: string;
  displayName: string;
  /** False when the task has an exit handler of its own (the injector must leave it alone). */
  hooked: boolean;
}

export interface KfpCase {
  arm: 'kfp-v1' | 'kfp-v2';
  workflow: Obj;
  /** The skip classes the plan makes certain; empty means the Workflow must be injected (or be too large). */
  skipClasses: string[];
  steps: ExpectedStep[];
  /** spec.onExit with declared inputs: the workflow parameters the wrapper must forward. */
  forwarded?: string[];
  /** spec.hooks.exit with arguments: the inputs the wrapper must declare. */
  wrapperInputs?: string[];
}

class Builder {
  readonly templates: Obj[] = [];
  readonly steps: ExpectedStep[] = [];
  private counter = 0;

  constructor(private readonly plan: WorkflowPlan) {}

  /** A template name unique in the Workflow; v1 names never start with `system-` (that would make it v2). */
  name(base: string): string {
    const n = `${base}-t${this.counter++}`;
    return this.plan.flavour === 'v1' && n.startsWith('system-') ? `x${n}` : n;
  }

  container(name: string, extra: Obj = {}, bigArg?: string): Obj {
    const args = ['python3 -m app', ...(bigArg !== undefined ? [bigArg] : [])];
    const t: Obj = { name, container: { image: 'python:3.9', command: ['sh', '-c'], args }, ...extra };
    this.templates.push(t);
    return t;
  }

  /** The tasks of one DAG (or the steps of one steps template) for `nodes`, adding the templates they need. */
  tasks(nodes: NodePlan[], owner: string, scope: 'dag' | 'steps'): Obj[] {
    const out: Obj[] = [];
    nodes.forEach((node, i) => {
      const taskName = `${node.base}-${i}`;
      const prev = out.filter((t) => !String(t.name).endsWith('-driver')).at(-1)?.name;
      const task: Obj = { name: taskName };
      // v2 tasks depend on their own driver instead (and Argo refuses `depends` beside `dependencies`).
      if (scope === 'dag' && typeof prev === 'string' && this.plan.flavour === 'v1') {
        if (this.plan.depStyle === 'dependencies') task.dependencies = [prev];
        if (this.plan.depStyle === 'depends') task.depends = i % 2 === 0 ? prev : `${prev}.Succeeded`;
      }
      if (scope === 'dag' && this.plan.continueOn && this.plan.depStyle !== 'depends' && i === 0 && this.plan.flavour === 'v1') task.continueOn = { failed: true };
      if (node.kind === 'step') out.push(...this.step(node, task, owner));
      else out.push(...this.group(node, task));
    });
    return out;
  }

  private step(node: StepPlan, task: Obj, owner: string): Obj[] {
    const taskName = String(task.name);
    const d = node.display;
    const shown = d.source === 'none' || d.source === 'broken' ? '' : d.source === 'both' && d.text === '' ? d.other : d.text;
    this.steps.push({ id: `${owner}/${taskName}`, taskName, displayName: shown !== '' ? shown : taskName, hooked: node.ownHooks !== 'exit' && node.ownHooks !== 'onExit' });
    if (node.loop === 'withItems') task.withItems = [1, 'two', { a: 'b' }];
    if (node.loop === 'withParam') task.withParam = '{{inputs.parameters.items}}';
    if (node.loop === 'withSequence') task.withSequence = { count: '3' };
    if (node.when) task.when = '{{inputs.parameters.flag}} == heads';
    if (this.plan.flavour === 'v1') this.v1Step(node, task);
    else this.v2Step(node, task);
    // The pipeline's own hook runs some other template of its own.
    const own = (): string => (this.plan.flavour === 'v1' ? String(this.container(this.name('own-hook')).name) : 'system-container-executor');
    if (node.ownHooks === 'exit') task.hooks = { exit: { template: own() } };
    if (node.ownHooks === 'other') task.hooks = { running: { expression: `tasks['${taskName}'].status == "Running"`, template: own() } };
    if (node.ownHooks === 'onExit') task.onExit = own();
    if (this.plan.flavour === 'v1' || node.executor === 'importer') return [task];
    return [this.v2Driver(node, taskName), { ...task, depends: `${taskName}-driver.Succeeded` }];
  }

  private v1Step(node: StepPlan, task: Obj): void {
    const d = node.display;
    const annotations: Obj = { 'sidecar.istio.io/inject': 'false' };
    if (d.source === 'primary' || d.source === 'both') annotations['pipelines.kubeflow.org/task_display_name'] = d.text;
    if (d.source === 'secondary' || d.source === 'both') annotations['pipelines.kubeflow.org/component_spec'] = JSON.stringify({ name: d.source === 'both' ? d.other : d.text, implementation: {} });
    if (d.source === 'broken') annotations['pipelines.kubeflow.org/component_spec'] = `{"name": ${JSON.stringify(d.text)}`;
    const name = this.name(node.base);
    const meta = { metadata: { annotations, labels: { 'pipelines.kubeflow.org/cache_enabled': 'true' } } };
    if (node.podKind === 'script') this.templates.push({ name, script: { image: 'python:3.9', source: node.bigArg ?? 'print(1)' }, ...meta });
    else if (node.podKind === 'resource') this.templates.push({ name, resource: { action: 'create', manifest: node.bigArg ?? 'apiVersion: v1\nkind: ConfigMap\n' }, ...meta });
    else this.container(name, { ...meta, outputs: { artifacts: [{ name: 'mlpipeline-ui-metadata', path: '/tmp/ui.json', optional: true }] } }, node.bigArg);
    task.template = name;
    task.arguments = { parameters: [{ name: 'text', value: '{{inputs.parameters.text}}' }] };
  }

  private v2Step(node: StepPlan, task: Obj): void {
    task.template = node.executor === 'importer' ? 'system-importer' : node.executor === 'prefixed' ? 'retry-system-container-executor' : 'system-container-executor';
    task.arguments = {
      parameters: [
        { name: 'pod-spec-patch', value: `{{tasks.${String(task.name)}-driver.outputs.parameters.pod-spec-patch}}` },
        { name: 'cached-decision', value: `{{tasks.${String(task.name)}-driver.outputs.parameters.cached-decision}}` },
        ...(node.executor === 'importer' ? [{ name: 'task', value: this.taskJson(node.display) }] : []),
      ],
    };
  }

  /** The `task` argument KFP's v2 compiler passes to a driver: the UI name is its `taskInfo.name`. */
  private taskJson(d: Display): string {
    if (d.source === 'broken') return `{"taskInfo": {"name": ${JSON.stringify(d.text)}`;
    if (d.source === 'none') return JSON.stringify({ componentRef: { name: 'comp-x' } });
    return JSON.stringify({ taskInfo: { name: d.source === 'both' && d.text === '' ? d.other : d.text }, componentRef: { name: 'comp-x' } });
  }

  private v2Driver(node: StepPlan, taskName: string): Obj {
    return {
      name: `${taskName}-driver`,
      template: 'system-container-driver',
      arguments: {
        parameters: [
          { name: 'component', value: '{"executorLabel":"exec-x"}' },
          { name: 'task', value: this.taskJson(node.display) },
          { name: 'container', value: JSON.stringify({ image: 'python:3.9', args: [node.bigArg ?? 'x'] }) },
          { name: 'parent-dag-id', value: '{{inputs.parameters.parent-dag-id}}' },
        ],
      },
    };
  }

  private group(node: GroupPlan, task: Obj): Obj[] {
    const v2 = this.plan.flavour === 'v2';
    const name = this.name(v2 ? `comp-${node.group}` : node.group);
    const template: Obj = { name, inputs: { parameters: [{ name: 'parent-dag-id' }] } };
    this.templates.push(template);
    // KFP v2 never compiles a steps template; v1 pipelines may carry one from hand-written Argo.
    if (node.group === 'steps' && !v2) {
      const steps = this.tasks(node.children, name, 'steps');
      template.steps = steps.map((s, i) => (i % 2 === 0 ? [s, ...steps.slice(i + 1, i + 2)] : [])).filter((g) => g.length > 0);
    } else {
      template.dag = { tasks: this.tasks(node.children, name, 'dag') };
    }
    task.template = name;
    task.arguments = { parameters: [{ name: 'parent-dag-id', value: '{{inputs.parameters.parent-dag-id}}' }] };
    const driverName = `${String(task.name)}-driver`;
    if (node.group === 'condition') task.when = v2 ? `{{tasks.${driverName}.outputs.parameters.condition}} != false` : '"{{inputs.parameters.flag}}" == "heads"';
    if (node.group === 'loop') task.withParam = '{{inputs.parameters.loop-items}}';
    if (node.group === 'exit-handler' && v2) {
      // KFP v2's dsl.ExitHandler: the group task's own hooks.exit runs an `exit-hook-*` DAG (argo-kfp.md §5).
      const hookDag = this.name('exit-hook-root');
      const hookTemplate: Obj = { name: hookDag, inputs: { parameters: [{ name: 'parent-dag-id' }] } };
      this.templates.push(hookTemplate);
      hookTemplate.dag = { tasks: this.tasks([node.hookStep], hookDag, 'dag') };
      task.hooks = { exit: { template: hookDag, arguments: { parameters: [{ name: 'parent-dag-id', value: '{{inputs.parameters.parent-dag-id}}' }] } } };
    } else if (node.ownHooks === 'other') {
      task.hooks = { running: { expression: 'true', template: name } };
    }
    if (!v2) return [task];
    const driver = { name: driverName, template: 'system-dag-driver', arguments: { parameters: [{ name: 'task', value: '{}' }, { name: 'parent-dag-id', value: '{{inputs.parameters.parent-dag-id}}' }] } };
    return [driver, { ...task, depends: `${driverName}.Succeeded` }];
  }

  /** The compiler's fixed v2 templates (hello_world.yaml): drivers, the executor DAG and its pod. */
  v2System(): void {
    const driverArgs = ['--type', 'CONTAINER', '--pipeline_name', this.plan.pipelineName, '--run_id', '{{workflow.uid}}'];
    this.templates.push({ name: 'system-container-driver', inputs: { parameters: [{ name: 'component' }, { name: 'task' }, { name: 'container' }, { name: 'parent-dag-id' }] }, container: { image: 'ghcr.io/kubeflow/kfp-driver', command: ['driver'], args: driverArgs } });
    this.templates.push({ name: 'system-dag-driver', inputs: { parameters: [{ name: 'component' }, { name: 'task', default: '' }] }, container: { image: 'ghcr.io/kubeflow/kfp-driver', command: ['driver'], args: driverArgs } });
    this.templates.push({ name: 'system-importer', inputs: { parameters: [{ name: 'task' }] }, container: { image: 'ghcr.io/kubeflow/kfp-launcher', args: ['--executor_type', 'importer'] } });
    for (const prefix of ['', 'retry-']) {
      this.templates.push({
        name: `${prefix}system-container-executor`,
        inputs: { parameters: [{ name: 'pod-spec-patch' }, { name: 'cached-decision', default: 'false' }] },
        dag: { tasks: [{ name: 'executor', template: `${prefix}system-container-impl`, when: '{{inputs.parameters.cached-decision}} != true', arguments: { parameters: [{ name: 'pod-spec-patch', value: '{{inputs.parameters.pod-spec-patch}}' }] } }] },
      });
      this.container(`${prefix}system-container-impl`, { podSpecPatch: '{{inputs.parameters.pod-spec-patch}}', ...(prefix ? { retryStrategy: { limit: 2, backoff: { duration: '1', factor: 2 } } } : {}) });
    }
  }
}

function buildKfp(plan: WorkflowPlan): KfpCase {
  const b = new Builder(plan);
  if (plan.flavour === 'v2') b.v2System();
  const root = b.name(plan.flavour === 'v2' ? 'root' : plan.pipelineDns);
  const rootTemplate: Obj = { name: root, inputs: { parameters: [{ name: 'parent-dag-id', default: '' }] } };
  b.templates.push(rootTemplate);
  rootTemplate.dag = { tasks: b.tasks(plan.nodes, root, 'dag') };
  const spec: Obj = { entrypoint: root, serviceAccountName: 'pipeline-runner', templates: b.templates };
  if (plan.params.length > 0) spec.arguments = { parameters: plan.params };
  const runIdLabel = plan.traits.includes('noRunId') ? {} : { [RUN_ID_LABEL]: plan.runId };
  const podLabels: Obj = plan.flavour === 'v2' ? { 'pipelines.kubeflow.org/v2_component': 'true' } : {};
  if (plan.traits.includes('runIdConflict')) podLabels[RUN_ID_LABEL] = `${plan.runId}-other`;
  else if (plan.podRunId === 'same' && !plan.traits.includes('noRunId')) podLabels[RUN_ID_LABEL] = plan.runId;
  if (Object.keys(podLabels).length > 0) spec.podMetadata = { labels: podLabels };

  const out: Pick<KfpCase, 'forwarded' | 'wrapperInputs'> = {};
  const exitTemplate = (extra: Obj = {}): string => String(b.container(b.name('exit-op'), { metadata: { annotations: { 'pipelines.kubeflow.org/task_display_name': plan.pipelineName } }, ...extra }).name);
  const hooks: Obj = {};
  if (plan.exit === 'onExit' || plan.exit === 'both') spec.onExit = exitTemplate();
  if (plan.exit === 'onExitInputs') {
    const declared = [...plan.params.slice(0, 2).map((p) => p.name), 'not-a-workflow-param'];
    spec.onExit = exitTemplate({ inputs: { parameters: declared.map((name) => ({ name, default: 'd' })) } });
    out.forwarded = declared.filter((p) => plan.params.some((q) => q.name === p));
  }
  if (plan.exit === 'onExitArtifacts') {
    spec.onExit = exitTemplate({ inputs: { artifacts: [{ name: 'report', path: '/tmp/report' }] } });
    spec.arguments = { ...(spec.arguments as Obj | undefined), artifacts: [{ name: 'report', raw: { data: 'x' } }] };
  }
  if (plan.exit === 'hooksExit' || plan.exit === 'both') hooks.exit = { template: exitTemplate() };
  if (plan.exit === 'hooksExitRef') hooks.exit = { templateRef: { name: 'shared-exit', template: 'notify-slack' } };
  if (plan.exit === 'hooksExitArgs') {
    const names = ['status-text', 'owner'];
    hooks.exit = { template: exitTemplate({ inputs: { parameters: names.map((name) => ({ name })) } }), arguments: { parameters: [{ name: 'status-text', value: '{{workflow.status}}' }, { name: 'owner', value: plan.runName ?? 'x' }] } };
    out.wrapperInputs = names;
  }
  if (plan.specHooksOther) hooks.succeeded = { expression: 'workflow.status == "Succeeded"', template: exitTemplate() };
  if (plan.traits.includes('collision')) hooks['kfp-notify-running'] = { expression: 'true', template: exitTemplate() };
  if (Object.keys(hooks).length > 0) spec.hooks = hooks;
  if (plan.traits.includes('templateRef')) spec.workflowTemplateRef = { name: 'shared-pipeline' };

  const annotations: Obj = {};
  if (plan.runName !== undefined) annotations[RUN_NAME_ANNOTATION] = plan.runName;
  if (plan.flavour === 'v1') {
    annotations['pipelines.kubeflow.org/kfp_sdk_version'] = '1.8.22';
    annotations['pipelines.kubeflow.org/pipeline_spec'] = JSON.stringify({ name: plan.pipelineName, inputs: plan.params.map((p) => ({ name: p.name, type: 'String' })) });
  }
  if (plan.traits.includes('optOut')) annotations[OPT_OUT_ANNOTATION] = 'Disabled';
  else if (plan.notOptOut !== undefined) annotations[OPT_OUT_ANNOTATION] = plan.notOptOut;
  if (plan.traits.includes('marker')) annotations[MARKER_ANNOTATION] = 'true';
  if (plan.bigAnnotation !== undefined) annotations['example.com/notes'] = plan.bigAnnotation;

  const workflow: Obj = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Workflow',
    metadata: {
      generateName: `${plan.pipelineDns}-`,
      ...(plan.flavour === 'v2' ? { creationTimestamp: null } : {}),
      labels: { ...runIdLabel, ...(plan.flavour === 'v1' ? { 'pipelines.kubeflow.org/kfp_sdk_version': '1.8.22' } : {}) },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    spec,
  };
  if (plan.traits.includes('collision') && plan.nodes.length % 2 === 0) b.templates.push({ name: 'kfp-notify-hook', container: { image: 'alpine' } });
  const skipClasses: string[] = plan.traits.map((t) => SKIP_TRAITS[t]);
  if (plan.exit === 'both' || plan.exit === 'onExitArtifacts') skipClasses.push('exit_handler');
  return { arm: plan.flavour === 'v1' ? 'kfp-v1' : 'kfp-v2', workflow, skipClasses, steps: b.steps, ...out };
}

/** A KFP-shaped Workflow as the KFP API server creates it, with what the plan makes certain. */
export const kfpWorkflow = (flavour: Flavour): fc.Arbitrary<KfpCase> => workflowPlan(flavour).map(buildKfp);

// ---------- damage and near misses ----------

type Path = (string | number)[];

/** Every path in `v` (objects and arrays included), root excluded. */
function pathsOf(v: unknown, at: Path = []): Path[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => [[...at, i], ...pathsOf(x, [...at, i])]);
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => [[...at, k], ...pathsOf(x, [...at, k])]);
  return [];
}

// Where a wrong type hurts the injector most: the fields it reads or writes.
const SENSITIVE = new Set(['metadata', 'labels', 'annotations', 'spec', 'templates', 'dag', 'tasks', 'steps', 'hooks', 'exit', 'name', 'template', 'onExit', 'podMetadata', 'arguments', 'parameters', 'inputs', 'container', 'args', RUN_ID_LABEL]);

const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, 0, -1, 1.5, true, false, '', 'x', [], {}, [1, 2], { a: 1 }, '{{workflow.status}}'),
  fc.jsonValue({ maxDepth: 2 }),
);

export interface DamagedCase {
  arm: 'damaged';
  workflow: unknown;
  /** What was done, e.g. `set /spec/templates/3/dag to 7`, for the failure message. */
  damage: string[];
}

/** A KFP-shaped Workflow with one to three fields set to a wrong type or removed. */
export const damagedWorkflow: fc.Arbitrary<DamagedCase> = fc
  .tuple(
    fc.oneof(kfpWorkflow('v1'), kfpWorkflow('v2')),
    fc.array(fc.record({ pick: fc.nat(), sensitive: fc.boolean(), remove: fc.boolean(), value: wrongValue }), { minLength: 1, maxLength: 3 }),
  )
  .map(([c, ops]) => {
    const wf = structuredClone(c.workflow);
    const damage: string[] = [];
    for (const op of ops) {
      const all = pathsOf(wf);
      const sensitive = all.filter((p) => SENSITIVE.has(String(p.at(-1))) || ['templates', 'tasks'].includes(String(p.at(-2))));
      const pool = op.sensitive && sensitive.length > 0 ? sensitive : all;
      const path = pool[op.pick % pool.length];
      if (!path) continue;
      const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Obj)[k as string], wf) as Obj | unknown[];
      const key = path.at(-1) as string | number;
      if (op.remove && Array.isArray(parent)) parent.splice(Number(key), 1);
      else if (op.remove) delete (parent as Obj)[key];
      else (parent as Obj)[key] = structuredClone(op.value);
      damage.push(`${op.remove ? 'removed' : 'set'} /${path.join('/')}${op.remove ? '' : ` to ${JSON.stringify(op.value)}`}`);
    }
    return { arm: 'damaged' as const, workflow: wf, damage };
  });

export interface NearMissCase {
  arm: 'near-miss';
  workflow: unknown;
  what: string;
}

/** Things that are almost a KFP Workflow, or not one at all. */
export const nearMiss: fc.Arbitrary<NearMissCase> = fc.oneof(
  fc.jsonValue().map((workflow) => ({ arm: 'near-miss' as const, workflow, what: 'any JSON value' })),
  fc
    .tuple(kfpWorkflow('v2'), fc.constantFrom('Workflow', 'WorkflowTemplate', 'CronWorkflow', 'ClusterWorkflowTemplate', 'workflow', 'Workflows', ''), fc.constantFrom('argoproj.io/v1alpha1', 'argoproj.io/v1beta1', 'argoproj.io/v1', 'v1', ''))
    .filter(([, kind, api]) => kind !== 'Workflow' || api !== 'argoproj.io/v1alpha1')
    .map(([c, kind, apiVersion]) => ({ arm: 'near-miss' as const, workflow: { ...c.workflow, kind, apiVersion }, what: `kind ${kind} ${apiVersion}` })),
  fc
    .tuple(kfpWorkflow('v1'), fc.constantFrom('metadata', 'spec', 'templates', 'labels'), fc.jsonValue({ maxDepth: 2 }))
    .map(([c, field, value]) => {
      const wf = structuredClone(c.workflow);
      const at = field === 'templates' ? (wf.spec as Obj) : field === 'labels' ? (wf.metadata as Obj) : wf;
      at[field] = value;
      return { arm: 'near-miss' as const, workflow: wf, what: `${field} replaced by ${JSON.stringify(value).slice(0, 40)}` };
    }),
  fc.constantFrom<unknown>({}, { apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow' }, { apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow', metadata: { labels: { [RUN_ID_LABEL]: 'r' } } }, [], null, 'Workflow').map((workflow) => ({ arm: 'near-miss' as const, workflow, what: 'a bare skeleton' })),
);

export type WorkflowCase = KfpCase | DamagedCase | NearMissCase;

/** The mix the property tests run: mostly KFP-shaped Workflows, then damaged ones, then near misses. */
export const anyWorkflowCase: fc.Arbitrary<WorkflowCase> = fc.oneof(
  { weight: 35, arbitrary: kfpWorkflow('v1') },
  { weight: 35, arbitrary: kfpWorkflow('v2') },
  { weight: 20, arbitrary: damagedWorkflow },
  { weight: 10, arbitrary: nearMiss },
);
