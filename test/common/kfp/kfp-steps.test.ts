import { describe, expect, it } from 'vitest';
import { isStepTemplate, kfpFlavour, kfpSteps } from '../../../common/kfp/kfp-steps.js';
import type { Workflow } from '../../../common/kfp/workflow-types.js';
import { admittedFixture, FIXTURES_DIR, workflowFixtures } from '../../helpers/fixtures.js';

const load = (name: string) => admittedFixture(`${FIXTURES_DIR}/${name}`) as Workflow;
const names = (wf: Workflow) => kfpSteps(wf).map((s) => `${s.dagTemplate}/${s.taskName}=${s.displayName}`);

describe('kfpFlavour', () => {
  it.each(workflowFixtures())('$name is $flavour (the compiler that made it)', ({ path, flavour }) => {
    expect(kfpFlavour(admittedFixture(path) as Workflow)).toBe(flavour);
  });
});

describe('kfpSteps: every KFP step task, in template order, named as the KFP UI names it', () => {
  it('v1 ExitHandler: the ops inside the exit-handler group, not the group, not the (unwrapped) exit op', () => {
    expect(names(load('kfp-v1-compiler/basic.yaml'))).toEqual(['exit-handler-1/get-frequent=get-frequent', 'exit-handler-1/save=save']);
  });

  it('v1 Condition: ops in nested condition groups; the groups are not steps', () => {
    expect(names(load('kfp-v1-compiler/coin.yaml'))).toEqual([
      'condition-1/flip-again=flip-again',
      'condition-2/print1=print1',
      'condition-3/print2=print2',
      'pipeline-flip-coin/flip=flip',
    ]);
  });

  it('v1 names come from task_display_name, else the component_spec name', () => {
    expect(names(load('kfp-v1-compiler/artifact_pipeline.yaml'))).toEqual(['artifact-streaming-test-v1/create-test-artifact=Create Test Artifact']);
    const steps = kfpSteps(load('kfp-v1-compiler/parallelfor_item_argument_resolving.yaml'));
    expect(steps).toHaveLength(13);
    expect(steps.filter((s) => s.taskName.startsWith('consume')).map((s) => s.displayName)).toEqual(Array(9).fill('Consume'));
    expect(steps.find((s) => s.taskName === 'produce-str')).toEqual({
      dagTemplate: 'parallelfor-item-argument-resolving',
      taskName: 'produce-str',
      template: 'produce-str',
      displayName: 'Produce str',
    });
  });

  it('v2: the executor task of each pair (never the driver), including those inside the exit-hook DAG', () => {
    expect(names(load('kfp-v2-argocompiler-2.5.0/exit_handler.yaml'))).toEqual([
      'comp-exit-handler-1/fail-op=fail-op',
      'comp-exit-handler-1/print-op-2=print-op-2',
      'exit-hook-root-print-op/print-op=print-op',
    ]);
  });

  it('v2: prefixed executor templates (retry) and loop bodies count', () => {
    expect(kfpSteps(load('kfp-v2-argocompiler-2.5.0/hello_world_with_retry.yaml'))).toEqual([
      { dagTemplate: 'root', taskName: 'hello-world', template: 'hello-world-system-container-executor', displayName: 'hello-world' },
    ]);
    expect(names(load('kfp-v2-compiled-workflows-master/pipeline_with_loops.yaml'))).toEqual([
      'comp-for-loop-1/print-text=print-text',
      'comp-for-loop-2/print-struct=print-struct',
      'comp-for-loop-2/print-text-2=print-text-2',
      'comp-for-loop-2/print-text-3=print-text-3',
      'comp-for-loop-4/print-struct-2=print-struct-2',
      'comp-for-loop-4/print-text-4=print-text-4',
      'comp-for-loop-4/print-text-5=print-text-5',
      'root/args-generator-op=args-generator-op',
    ]);
  });

  it('v2: the display name is taskInfo.name from the driver, which may differ from the task name', () => {
    const wf = load('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
    const root = wf.spec?.templates?.find((t) => t.name === 'root');
    const taskArg = root?.dag?.tasks?.find((t) => t.name === 'hello-world-driver')?.arguments?.parameters?.find((p) => p.name === 'task');
    if (!taskArg?.value) throw new Error('fixture changed: hello-world-driver has no task argument');
    taskArg.value = JSON.stringify({ ...JSON.parse(taskArg.value), taskInfo: { name: 'Say hello' } });
    expect(names(wf)).toEqual(['root/hello-world=Say hello']);
  });

  it('v2 importers carry their own task argument', () => {
    const wf: Workflow = {
      spec: {
        templates: [
          { name: 'system-importer', container: {} },
          { name: 'root', dag: { tasks: [{ name: 'importer', template: 'system-importer', arguments: { parameters: [{ name: 'task', value: '{"taskInfo":{"name":"Import data"}}' }] } }] } },
        ],
      },
    };
    expect(kfpSteps(wf)).toEqual([{ dagTemplate: 'root', taskName: 'importer', template: 'system-importer', displayName: 'Import data' }]);
  });

  it('steps templates count too, and malformed parts are ignored rather than thrown on', () => {
    const wf: Workflow = {
      spec: {
        templates: [
          { name: 'main', steps: [[{ name: 'a', template: 'c' }], 'junk' as never, [{ name: 'b', template: 'main' }, null as never]] },
          { name: 'c', script: { image: 'python', source: 'print(1)' } },
          null as never,
          { name: 'd', dag: { tasks: 'not a list' as never } },
        ],
      },
    };
    expect(names(wf)).toEqual(['main/a=a']);
    expect(kfpSteps({})).toEqual([]);
    expect(kfpSteps({ spec: { templates: 'x' as never } })).toEqual([]);
  });
});

describe('isStepTemplate', () => {
  it('v1: pods are steps (container, script, resource); DAGs and unknown names are not', () => {
    const wf = load('kfp-v1-compiler/basic.yaml');
    expect(['exiting', 'get-frequent', 'exit-handler-1', 'save-most-frequent', 'nope'].map((t) => isStepTemplate(wf, t))).toEqual([true, true, false, false, false]);
  });

  it('v2: executors and importers are; drivers, impl pods and DAG components are not', () => {
    const wf = load('kfp-v2-argocompiler-2.5.0/exit_handler.yaml');
    const verdicts = ['system-container-executor', 'retry-system-container-executor', 'system-importer', 'system-container-driver', 'system-container-impl', 'comp-exit-handler-1'];
    expect(verdicts.map((t) => isStepTemplate(wf, t))).toEqual([true, true, true, false, false, false]);
  });
});
