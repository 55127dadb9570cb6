import { describe, expect, it } from 'vitest';
import { runCost } from '../../bench/lib/run-cost-model.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';

/** The run-cost model on hand-made Workflows whose answer is worked out by hand (docs/benchmarks.md "Run cost"). */

const HOOK = 'kfp-notify-hook';
const always = { template: HOOK };
const failureOnly = (t: string) => ({ template: HOOK, expression: `tasks['${t}'].status != 'Succeeded'` });

function wf(tasks: object[], extra: object = {}): Workflow {
  return {
    spec: {
      entrypoint: 'main',
      onExit: 'exit',
      hooks: { 'kfp-notify-running': { template: HOOK, expression: 'workflow.status == "Running"' } },
      templates: [
        { name: 'main', dag: { tasks } },
        { name: 'op', container: {} },
        { name: 'exit', dag: { tasks: [{ name: 'notify', template: HOOK }] } },
        { name: HOOK, container: {} },
      ],
      ...extra,
    },
  } as Workflow;
}

describe('runCost', () => {
  it('a chain of 3 hooked steps: 3 step hooks + running + exit; each step hook delays the next step', () => {
    const chain = wf([
      { name: 'a', template: 'op', hooks: { exit: always } },
      { name: 'b', template: 'op', dependencies: ['a'], hooks: { exit: always } },
      { name: 'c', template: 'op', depends: 'b.Succeeded', hooks: { exit: always } },
    ]);
    expect(runCost(chain)).toEqual({ hookExecutions: 5, criticalPathHooks: 4 });
  });

  it('failure-only hooks cost a succeeding run nothing: the running hook beside it, the exit handler after it', () => {
    const chain = wf([
      { name: 'a', template: 'op', hooks: { exit: failureOnly('a') } },
      { name: 'b', template: 'op', dependencies: ['a'], hooks: { exit: failureOnly('b') } },
    ]);
    expect(runCost(chain)).toEqual({ hookExecutions: 2, criticalPathHooks: 1 });
  });

  it('a loop fires its hook per iteration, side by side; a nested DAG adds its own longest path', () => {
    const nested = wf(
      [
        { name: 'loop', template: 'op', withItems: [1, 2, 3, 4], hooks: { exit: always } },
        { name: 'sub', template: 'inner', dependencies: ['loop'] },
      ],
      {},
    );
    nested.spec?.templates?.push({ name: 'inner', dag: { tasks: [{ name: 'x', template: 'op', hooks: { exit: always } }, { name: 'y', template: 'op', dependencies: ['x'], hooks: { exit: always } }] } });
    expect(runCost(nested)).toEqual({ hookExecutions: 4 + 2 + 2, criticalPathHooks: 1 + 2 + 1 });
    expect(runCost(wf([{ name: 'p', template: 'op', withParam: '{{x}}', hooks: { exit: always } }]), { loopItems: 7 }).hookExecutions).toBe(9);
  });
});
