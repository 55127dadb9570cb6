import { describe, expect, it } from 'vitest';
import { STATUS_ANNOTATION } from '../../common/hook-contract.js';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { defaultInjectOptions, defaultStepHooks, type InjectOptions } from '../../webhook/inject/options.js';
import type { DagTask, Template, Workflow } from '../../common/kfp/workflow-types.js';
import { admittedFixture, FIXTURES_DIR, TEST_HOOK_KEY_SECRET } from '../helpers/fixtures.js';

/** The `stepHooks` policy: which step outcomes get an exit hook (docs/injector.md, "What hooks cost"). */

const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);
const opts = (partial: Partial<InjectOptions> = {}) => defaultInjectOptions({ ...partial, hookKey });

function inject(input: unknown, partial: Partial<InjectOptions> = {}): { wf: Workflow; status: Record<string, unknown>; warnings: string[] } {
  const r = injectWorkflow(input, opts(partial));
  if (r.outcome !== 'injected') throw new Error(`skipped: ${r.reason}`);
  const wf = r.workflow as Workflow;
  return { wf, status: JSON.parse(wf.metadata?.annotations?.[STATUS_ANNOTATION] ?? '{}') as Record<string, unknown>, warnings: r.warnings ?? [] };
}

const tasksOf = (wf: Workflow, template: string): DagTask[] => {
  const t = wf.spec?.templates?.find((x) => x.name === template);
  return [...(t?.dag?.tasks ?? []), ...(t?.steps ?? []).flat()];
};

describe('the default policy follows the Argo version (argo-kfp.md §0, §1.5)', () => {
  it.each([
    ['3.1.0', 'none'],
    ['3.3.10', 'none'],
    ['3.4.0', 'failed'],
    ['3.4.17', 'failed'],
    ['3.5.14', 'failed'],
    ['v4.0.5', 'failed'],
  ])('Argo %s → %s', (version, policy) => {
    expect(defaultStepHooks(version)).toBe(policy);
    expect(inject(admittedFixture(`${FIXTURES_DIR}/kfp-v1-compiler/basic.yaml`), { argoVersion: version }).status.stepHooks).toBe(policy);
  });

  it('refuses failed below 3.4, where an exit hook expression cannot see the task (it would error the step)', () => {
    expect(() => opts({ argoVersion: '3.3.8', stepHooks: 'failed' })).toThrow(/stepHooks: failed needs Argo 3\.4 or later/);
    expect(() => opts({ stepHooks: 'some' as never })).toThrow(/stepHooks: must be one of all, failed, none, got "some"/);
  });

  it('all keeps an unconditional hook on every step, on any version', () => {
    for (const argoVersion of ['3.2.3', '4.0.5']) {
      const { wf, status } = inject(admittedFixture(`${FIXTURES_DIR}/kfp-v2-argocompiler-2.5.0/hello_world.yaml`), { argoVersion, stepHooks: 'all' });
      const hook = tasksOf(wf, 'root').find((t) => t.name === 'hello-world')?.hooks?.exit;
      expect(hook?.template).toBe('kfp-notify-hook');
      expect(hook?.expression).toBeUndefined();
      expect(status).toMatchObject({ stepHooks: 'all', hookedTasks: ['root/hello-world'], failureHookedTasks: [] });
    }
  });
});

describe('stepHooks failed on shapes beyond the fixtures', () => {
  // A v1-shaped Workflow with a steps template: one plain step, one looped step, and a DAG beside it.
  const stepsWorkflow = (): Workflow => {
    const container = { image: 'alpine', command: ['true'] };
    const templates: Template[] = [
      { name: 'main', steps: [[{ name: 'plain', template: 'op' }], [{ name: 'looped', template: 'op', withItems: ['a', 'b'] }]] },
      { name: 'side', dag: { tasks: [{ name: 'in-dag', template: 'op', withItems: [1, 2] }, { name: 'odd.name', template: 'op' }] } },
      { name: 'op', container },
    ];
    const wf = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow', metadata: { generateName: 'steps-' }, spec: { entrypoint: 'main', templates } };
    return admittedFixtureLike(wf);
  };

  it('keys a plain step by steps[...] and a DAG loop task by its own name (every iteration has it in scope)', () => {
    const { wf } = inject(stepsWorkflow());
    expect(tasksOf(wf, 'main').find((t) => t.name === 'plain')?.hooks?.exit?.expression).toBe("steps['plain'].status != 'Succeeded'");
    expect(tasksOf(wf, 'side').find((t) => t.name === 'in-dag')?.hooks?.exit?.expression).toBe("tasks['in-dag'].status != 'Succeeded'");
  });

  it('leaves a loop in a steps template and an unquotable name to the status watcher, and says so', () => {
    const { wf, status, warnings } = inject(stepsWorkflow());
    expect(tasksOf(wf, 'main').find((t) => t.name === 'looped')?.hooks).toBeUndefined();
    expect(tasksOf(wf, 'side').find((t) => t.name === 'odd.name')?.hooks).toBeUndefined();
    expect(status.unhookedTasks).toEqual([
      { task: 'main/looped', reason: expect.stringContaining('status watcher reports it') as unknown },
      { task: 'side/odd.name', reason: expect.stringContaining('status watcher reports it') as unknown },
    ]);
    expect(status.failureHookedTasks).toEqual(['main/plain', 'side/in-dag']);
    expect(warnings).toHaveLength(2);
  });
});

/** A hand-made Workflow with the KFP run id label and pod label the API server adds. */
function admittedFixtureLike(wf: Workflow): Workflow {
  const runId = '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e';
  return {
    ...wf,
    metadata: { ...wf.metadata, namespace: 'kubeflow', labels: { 'pipeline/runid': runId } },
    spec: { ...wf.spec, podMetadata: { labels: { 'pipeline/runid': runId } } },
  };
}
