import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { matchesPattern, route } from '../../../callback/route.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { KfpEvent } from '../../../callback/types.js';
import { EXAMPLE_FACTS } from './sample.js';

// Subscribers as an operator would write them in the ConfigMap.
const { subscribers, errors } = parseSubscribers(
  {
    everything: 'http://all.example.com/',
    failures: { url: 'http://f.example.com/', eventTypes: ['WorkflowFailed', 'WorkflowNodeFailed'] },
    'team-a': { url: 'http://a.example.com/', namespaces: ['team-a-*'] },
    nightly: { url: 'http://n.example.com/', pipelines: ['nightly-*', 'save-most-frequent'] },
    'ends-in-kubeflow': { url: 'http://k.example.com/', namespaces: ['*-example-com'], eventTypes: ['WorkflowSucceeded'] },
  },
  () => undefined,
);

const [running, , nodeFailed, failed, succeeded] = EXAMPLE_FACTS.map(buildEvent) as [KfpEvent, KfpEvent, KfpEvent, KfpEvent, KfpEvent];
const names = (e: KfpEvent): string[] => route(e, subscribers).map((s) => s.name);

describe('route', () => {
  it('the subscribers parse', () => {
    expect(errors).toEqual([]);
  });

  it.each([
    // [event, who gets it]
    ['WorkflowRunning', running, ['everything', 'nightly']],
    ['WorkflowNodeFailed', nodeFailed, ['everything', 'failures', 'nightly']],
    ['WorkflowFailed', failed, ['everything', 'failures', 'nightly']],
    ['WorkflowSucceeded', succeeded, ['ends-in-kubeflow', 'everything', 'nightly']],
  ] as const)('%s → %j', (_t, event, who) => {
    expect(names(event)).toEqual(who);
  });

  it('pipelines patterns match the PipelineName the events carry, or its Kubernetes form when written in that form', () => {
    expect(running.PipelineName).toBe('Save Most Frequent'); // as read from the fixture, not written here
    const everything = subscribers.find((s) => s.name === 'everything');
    if (!everything) throw new Error('no everything subscriber');
    const match = (pipelines: string[]) => route(running, [{ ...everything, pipelines }]).length === 1;
    for (const p of ['Save Most Frequent', 'Save*', 'save-most-frequent', 'save-*', '*-frequent', '*']) expect(match([p]), p).toBe(true);
    for (const p of ['SAVE MOST FREQUENT', 'save most frequent', 'Save-Most-Frequent', 'save-most', 'nightly-*']) expect(match([p]), p).toBe(false);
    // A k8s-form pattern does not reach across to a name that is already in that form but different.
    expect(route({ ...running, PipelineName: 'hello-world' }, [{ ...everything, pipelines: ['save-most-frequent'] }])).toHaveLength(0);
  });

  it('namespace filters match the namespace', () => {
    expect(names({ ...running, Namespace: 'team-a-prod' })).toEqual(['everything', 'nightly', 'team-a']);
  });

  it('an event whose pipeline is unknown reaches only subscribers without a pipelines filter (or with *)', () => {
    expect(names({ ...running, PipelineName: '' })).toEqual(['everything']);
    const everything = subscribers.find((s) => s.name === 'everything');
    if (!everything) throw new Error('everything did not parse');
    expect(route({ ...running, PipelineName: '' }, [{ ...everything, pipelines: ['*'] }])).toHaveLength(1);
    expect(route({ ...running, PipelineName: '' }, [{ ...everything, pipelines: ['nightly-*'] }])).toHaveLength(0);
  });

  it('no subscribers, no deliveries', () => {
    expect(route(running, [])).toEqual([]);
  });
});

describe('matchesPattern', () => {
  it.each([
    // [pattern, value, matches]
    ['team-a', 'team-a', true],
    ['team-a', 'team-ab', false],
    ['team-*', 'team-', true],
    ['team-*', 'team-a', true],
    ['team-*', 'teams', false],
    ['*-prod', 'ml-prod', true],
    ['*-prod', 'ml-prod-2', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'a-x-b-y-c', true],
    ['a*b*c', 'acb', false],
    ['ab*ba', 'aba', false],
    ['a*b*b', 'ab', false],
    ['*', '', true],
  ] as const)('%j ~ %j → %s', (pattern, value, want) => {
    expect(matchesPattern(pattern, value)).toBe(want);
  });
});
