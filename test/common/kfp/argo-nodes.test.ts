import { describe, expect, it } from 'vitest';
import { argoNodes } from '../../../common/kfp/argo-nodes.js';

describe('argoNodes: status.nodes as a list', () => {
  it('reads every node object, keyed id as the fallback id, absent fields as empty strings', () => {
    const wf = {
      status: {
        nodes: {
          'wf-1': { id: 'wf-1', name: 'wf', type: 'DAG', phase: 'Failed', children: ['wf-2', 7], startedAt: '2025-01-01T00:00:00Z' },
          'wf-2': { name: 'wf.step', displayName: 'step', phase: 'Error', message: 'OOMKilled', finishedAt: '2025-01-01T00:01:00Z' },
          junk: 'not a node',
        },
      },
    };
    expect(argoNodes(wf)).toEqual([
      { id: 'wf-1', name: 'wf', displayName: '', type: 'DAG', templateName: '', phase: 'Failed', message: '', boundaryID: '', children: ['wf-2'], startedAt: '2025-01-01T00:00:00Z', finishedAt: '' },
      { id: 'wf-2', name: 'wf.step', displayName: 'step', type: '', templateName: '', phase: 'Error', message: 'OOMKilled', boundaryID: '', children: [], startedAt: '', finishedAt: '2025-01-01T00:01:00Z' },
    ]);
  });

  it('is empty for a Workflow without a status, and for what is not a Workflow', () => {
    expect(argoNodes({ metadata: {} })).toEqual([]);
    expect(argoNodes('nope')).toEqual([]);
    expect(argoNodes({ status: { nodes: [] } })).toEqual([]);
  });
});
