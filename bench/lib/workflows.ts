import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asCreatedByKfp } from '../../cli/demo/kfp-api-server.js';
import { parseDocuments } from '../../common/yaml-docs.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';
import { reviewFor } from '../../test/helpers/tls.js';
import { REPO_ROOT } from './report.js';

/**
 * The Workflows the benches admit: a real KFP v2 compile from the shared fixtures, and KFP v2-shaped
 * Workflows of any size generated from that same compile's templates (the compiler's own
 * driver/executor pattern, repeated), both as the KFP API server creates them.
 */

/** The shared upstream fixtures (/work/shared/fixtures/SOURCES.md): `shared/` sits beside the checkout. */
export const FIXTURES_DIR = process.env.KFP_NOTIFY_FIXTURES ?? join(REPO_ROOT, '..', 'shared', 'fixtures');
/** A current (KFP master) compile with an exit handler: three steps, the shape most runs have. */
export const TYPICAL_FIXTURE = 'kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml';

const RUN = { runId: '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e', namespace: 'kubeflow-user-example-com' };

type Obj = Record<string, unknown>;

function compiled(fixture: string): Obj {
  const path = join(FIXTURES_DIR, fixture);
  const [doc] = parseDocuments(readFileSync(path, 'utf8'), path);
  return doc as Obj;
}

/** The typical fixture as the KFP API server creates it (run id label, run name, namespace). */
export function typicalWorkflow(): Obj {
  return asCreatedByKfp(compiled(TYPICAL_FIXTURE) as Workflow, { ...RUN, runName: 'nightly run' }) as Obj;
}

/** An AdmissionReview v1 for a Workflow CREATE, as the kube-apiserver sends it, serialized. */
export function admissionReviewBody(wf: Obj): string {
  return JSON.stringify(reviewFor(wf, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', namespace: RUN.namespace }));
}

// Names a data pipeline's components tend to have; a task reusing a component gets KFP's `-<n>` suffix.
const COMPONENTS = [
  'load-data',
  'validate-schema',
  'split-data',
  'preprocess',
  'featurize',
  'train-model',
  'evaluate-model',
  'compare-baseline',
  'export-model',
  'push-metrics',
  'notify-owners',
  'cleanup',
];
/** Tasks per DAG layer; each task after the first layer consumes one or two outputs of the layer above. */
const LAYER_WIDTH = 8;

function base(): { wf: Obj; templates: Obj[]; params: Obj[] } {
  const wf = compiled(TYPICAL_FIXTURE);
  const spec = wf.spec as Obj;
  return { wf, templates: spec.templates as Obj[], params: (spec.arguments as { parameters: Obj[] }).parameters };
}

function taskNames(steps: number): string[] {
  const uses = new Map<string, number>();
  return Array.from({ length: steps }, (_, i) => {
    const comp = COMPONENTS[i % COMPONENTS.length]!;
    const n = (uses.get(comp) ?? 0) + 1;
    uses.set(comp, n);
    return n === 1 ? comp : `${comp}-${n}`;
  });
}

function upstream(i: number): number[] {
  if (i < LAYER_WIDTH) return [];
  return (i % LAYER_WIDTH) < LAYER_WIDTH - 1 ? [i - LAYER_WIDTH, i - LAYER_WIDTH + 1] : [i - LAYER_WIDTH];
}

/**
 * A KFP v2 Workflow with `steps` steps in its root DAG, as the v2 Argo compiler lays it out: per step a
 * `<task>-driver` (system-container-driver, carrying the task spec as JSON) and a `<task>` executor
 * (system-container-executor); component specs and implementations as workflow parameters, shared by
 * the tasks that reuse a component; the pipeline spec of the root DAG as `components-root`. Steps come
 * in layers of eight, each consuming outputs of the layer above, so `depends` and `dependentTasks` are real.
 */
export function generatedWorkflow(steps: number): Obj {
  const { wf, templates, params } = base();
  const implementation = String(params.find((p) => String(p.name).startsWith('implementations-'))?.value ?? '{}');
  const modelFunction = /"--function_to_execute","(\w+)"/.exec(implementation)?.[1] ?? 'print_op';
  const names = taskNames(steps);
  const components = COMPONENTS.slice(0, Math.min(steps, COMPONENTS.length)).map((comp) => {
    const fn = comp.replaceAll('-', '_');
    const impl = implementation.replaceAll(modelFunction, fn);
    const component = JSON.stringify({
      executorLabel: `exec-${comp}`,
      inputDefinitions: { parameters: { msg: { parameterType: 'STRING' } } },
      outputDefinitions: { parameters: { Output: { parameterType: 'STRING' } } },
    });
    const hash = createHash('sha256').update(component + impl).digest('hex');
    return { comp, hash, component, impl };
  });

  const taskSpecs: Record<string, unknown> = {};
  const dagTasks: Obj[] = [];
  names.forEach((task, i) => {
    const c = components[i % components.length]!;
    const deps = upstream(i).map((d) => names[d]!);
    const msg = deps[0]
      ? { taskOutputParameter: { outputParameterKey: 'Output', producerTask: deps[0] } }
      : { componentInputParameter: 'message' };
    const spec = {
      cachingOptions: { enableCache: true },
      componentRef: { name: `comp-${task}` },
      ...(deps.length ? { dependentTasks: deps } : {}),
      inputs: { parameters: { msg } },
      taskInfo: { name: task },
    };
    taskSpecs[task] = spec;
    dagTasks.push(
      {
        arguments: {
          parameters: [
            { name: 'component', value: `{{workflow.parameters.components-${c.hash}}}` },
            { name: 'task', value: JSON.stringify(spec) },
            { name: 'container', value: `{{workflow.parameters.implementations-${c.hash}}}` },
            { name: 'task-name', value: task },
            { name: 'parent-dag-id', value: '{{inputs.parameters.parent-dag-id}}' },
          ],
        },
        ...(deps.length ? { depends: deps.map((d) => `${d}.Succeeded`).join(' && ') } : {}),
        name: `${task}-driver`,
        template: 'system-container-driver',
      },
      {
        arguments: {
          parameters: [
            { name: 'pod-spec-patch', value: `{{tasks.${task}-driver.outputs.parameters.pod-spec-patch}}` },
            { default: 'false', name: 'cached-decision', value: `{{tasks.${task}-driver.outputs.parameters.cached-decision}}` },
          ],
        },
        depends: `${task}-driver.Succeeded`,
        name: task,
        template: 'system-container-executor',
      },
    );
  });

  const spec = wf.spec as Obj;
  spec.arguments = {
    parameters: [
      ...components.flatMap((c) => [
        { name: `components-${c.hash}`, value: c.component },
        { name: `implementations-${c.hash}`, value: c.impl },
      ]),
      {
        name: 'components-root',
        value: JSON.stringify({
          dag: { tasks: taskSpecs },
          inputDefinitions: { parameters: { message: { defaultValue: 'Hello World!', isOptional: true, parameterType: 'STRING' } } },
        }),
      },
    ],
  };
  // The compiler's system templates and entrypoint stay; the pipeline's own DAGs are replaced by one root.
  spec.templates = [
    ...templates.filter((t) => String(t.name).startsWith('system-') || t.name === 'entrypoint'),
    { dag: { tasks: dagTasks }, inputs: { parameters: [{ name: 'parent-dag-id' }] }, metadata: {}, name: 'root', outputs: {} },
  ];
  (wf.metadata as Obj).generateName = `generated-${steps}-steps-`;
  return asCreatedByKfp(wf as Workflow, { ...RUN, runName: `run of a ${steps}-step pipeline` }) as Obj;
}
