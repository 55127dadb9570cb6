import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { createEnricher } from '../../../callback/cluster/enrich.js';
import { needsWorkflowLookup, normalizeHookCall } from '../../../callback/normalize.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { admittedWorkflow, withStatus, type Wf } from './argo-status.js';

const NS = 'team-a';
const T0 = '2025-06-03T10:00:00Z';
const T1 = '2025-06-03T10:01:00Z';

/** KFP v1 basic.yaml, `save` in the given phase (Running while the pod runs). */
function run(name: string, save: 'Running' | 'Failed' | 'Succeeded'): Wf {
  const wf = admittedWorkflow('kfp-v1-compiler/basic.yaml', { name, runId: `run-${name}`, namespace: NS, uid: `uid-${name}` });
  const eh = `${name}.exit-handler-1`;
  return withStatus(wf, {
    phase: 'Running',
    startedAt: T0,
    nodes: [
      { name, type: 'DAG', templateName: 'save-most-frequent', phase: 'Running', children: [eh] },
      { name: eh, type: 'DAG', templateName: 'exit-handler-1', phase: 'Running', boundary: name, children: [`${eh}.save`] },
      { name: `${eh}.save`, type: 'Pod', templateName: 'save', phase: save, boundary: eh, finishedAt: T1, ...(save === 'Failed' ? { message: 'Error (exit code 1): gsutil: 403 Forbidden' } : {}) },
    ],
  });
}

/** The call an Argo 3.4.16 hook makes: `{{tasks.save.status}}` stays literal on that version. */
function oldArgoCall(name: string): Record<string, string> {
  return {
    v: '1',
    event: 'node-exit',
    kfpRunId: `run-${name}`,
    namespace: NS,
    workflowName: name,
    workflowUid: `uid-${name}`,
    hookNodeName: `${name}.exit-handler-1.save.onExit`,
    nodeTask: 'save',
    nodeDisplayName: 'save',
    nodePhase: '{{tasks.save.status}}',
  };
}

const gets = (fake: FakeKubeApi, name: string) => fake.requests.filter((r) => r.path === `/apis/argoproj.io/v1alpha1/namespaces/${NS}/workflows/${name}`).length;

async function count(registry: Registry, result: string): Promise<number> {
  const m = await registry.getSingleMetric('kfp_notify_enrich_total')?.get();
  return m?.values.find((v) => v.labels.result === result)?.value ?? 0;
}

describe('enrichment', () => {
  let fake: FakeKubeApi;
  let registry: Registry;
  beforeEach(async () => {
    fake = await startFakeKubeApi();
    registry = new Registry();
  });
  afterEach(async () => {
    await fake.close();
  });

  it('resolves an unresolved node phase (and the failure message) from the Workflow, and caches it, against a fake API server', async () => {
    fake.apply(run('wf-1', 'Failed'));
    const enrich = createEnricher({ kubeConfig: fake.kubeConfig(), log: silentLogger(), ttlMs: 60_000, registry });
    const call = oldArgoCall('wf-1');
    expect(needsWorkflowLookup(call)).toBe(true);
    // Without the Workflow the call cannot be turned into an event.
    expect(normalizeHookCall(call, { receivedAt: new Date() })).toMatchObject({ ok: false, status: 422 });

    const workflow = await enrich(NS, 'wf-1');
    const r = normalizeHookCall(call, { receivedAt: new Date(), ...(workflow ? { workflow } : {}) });
    expect(r.ok && r.events).toEqual([
      expect.objectContaining({ EventType: 'WorkflowNodeFailed', NodeName: 'save', Phase: 'Failed', Time: T1, Message: 'Failed node wf-1.exit-handler-1.save: save: Error (exit code 1): gsutil: 403 Forbidden' }),
    ]);

    // Every other step of the run asks within seconds: one GET serves them.
    await enrich(NS, 'wf-1');
    await Promise.all([enrich(NS, 'wf-1'), enrich(NS, 'wf-1', { uid: 'uid-wf-1', nodeName: 'wf-1.exit-handler-1.save' })]);
    expect(gets(fake, 'wf-1')).toBe(1);
    expect(await count(registry, 'hit')).toBe(3);
  });

  it('fetches again when the cached copy cannot answer, shares one request between concurrent callers, and expires entries, against a fake API server', async () => {
    fake.apply(run('wf-2', 'Running'));
    const enrich = createEnricher({ kubeConfig: fake.kubeConfig(), log: silentLogger(), ttlMs: 200, registry });
    const node = 'wf-2.exit-handler-1.save';
    expect((await enrich(NS, 'wf-2'))?.nodes[node]?.phase).toBe('Running');

    // The step has finished since: a snapshot where it still runs is stale for this caller.
    fake.apply(run('wf-2', 'Succeeded'));
    const [a, b] = await Promise.all([enrich(NS, 'wf-2', { nodeName: node }), enrich(NS, 'wf-2', { nodeName: node })]);
    expect(a?.nodes[node]?.phase).toBe('Succeeded');
    expect(b).toBe(a);
    expect(gets(fake, 'wf-2')).toBe(2);

    // A Workflow re-created under the same name is not answered from the old one's snapshot.
    await enrich(NS, 'wf-2', { uid: 'uid-of-a-newer-wf-2' });
    expect(gets(fake, 'wf-2')).toBe(3);

    // A run end needs the run's exit node (its attempt): a snapshot without it is fetched again.
    await enrich(NS, 'wf-2', { presentNode: 'wf-2.onExit' });
    expect(gets(fake, 'wf-2')).toBe(4);
    await enrich(NS, 'wf-2', { presentNode: node });
    expect(gets(fake, 'wf-2')).toBe(4);

    await new Promise((r) => setTimeout(r, 250));
    await enrich(NS, 'wf-2');
    expect(gets(fake, 'wf-2')).toBe(5);
  });

  it('keeps at most maxEntries snapshots, against a fake API server', async () => {
    for (const n of ['wf-a', 'wf-b', 'wf-c']) fake.apply(run(n, 'Succeeded'));
    const enrich = createEnricher({ kubeConfig: fake.kubeConfig(), log: silentLogger(), ttlMs: 60_000, maxEntries: 2 });
    await enrich(NS, 'wf-a');
    await enrich(NS, 'wf-b');
    await enrich(NS, 'wf-a'); // a is now the most recently used
    await enrich(NS, 'wf-c'); // evicts b
    await enrich(NS, 'wf-a');
    await enrich(NS, 'wf-b');
    expect([gets(fake, 'wf-a'), gets(fake, 'wf-b'), gets(fake, 'wf-c')]).toEqual([1, 2, 1]);
  });

  it('answers undefined, never throws, for a missing Workflow or an API error, and counts both, against a fake API server', async () => {
    fake.apply(run('wf-3', 'Failed'));
    const enrich = createEnricher({ kubeConfig: fake.kubeConfig(), log: silentLogger(), registry });
    expect(await enrich(NS, 'no-such-workflow')).toBeUndefined();
    fake.failNext(1, 403);
    expect(await enrich(NS, 'wf-3')).toBeUndefined();
    // An error is not cached: the next call tries again.
    expect((await enrich(NS, 'wf-3'))?.phase).toBe('Running');
    expect([await count(registry, 'not_found'), await count(registry, 'error'), await count(registry, 'fetched')]).toEqual([1, 1, 1]);
  });

  it('gives up on an API server that does not answer (a local server that never responds)', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const silent: Server = createServer(() => {
      /* never answers */
    });
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const kc = new KubeConfig();
      const server = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      kc.loadFromOptions({ clusters: [{ name: 'c', server, skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
      const enrich = createEnricher({ kubeConfig: kc, log: silentLogger(), timeoutMs: 200, registry });
      expect(await enrich(NS, 'wf-4')).toBeUndefined();
      expect(await count(registry, 'error')).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
