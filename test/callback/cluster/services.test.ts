import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { hookKeyFromSecret, mintHookToken } from '../../../common/hook-token.js';
import { silentLogger } from '../../../common/logger.js';
import { startClusterServices, type ClusterServices } from '../../../callback/cluster/services.js';
import { startCallback, type CallbackRuntime, type ClusterServices as RuntimeClusterServices } from '../../../callback/runtime.js';
import type { KfpEvent } from '../../../callback/types.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { until } from './until.js';
import { admittedWorkflow, withStatus, type Wf } from './argo-status.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';

const HOOK_KEY = 'services-test-hook-key-0123456789abcdef';
const NS = 'team-a';

describe('the cluster side wired into a whole callback process', () => {
  let fake: FakeKubeApi;
  let receiver: Server;
  let received: KfpEvent[];
  let dir: string;
  let services: ClusterServices | undefined;
  let callback: CallbackRuntime | undefined;

  beforeEach(async () => {
    fake = await startFakeKubeApi();
    received = [];
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as KfpEvent);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    dir = mkdtempSync(join(tmpdir(), 'kfp-notify-cluster-'));
    writeFileSync(join(dir, 'hook-key'), `${HOOK_KEY}\n`, { mode: 0o600 });
  });
  afterEach(async () => {
    await callback?.close();
    await services?.close();
    callback = undefined;
    services = undefined;
    await new Promise((r) => receiver.close(r));
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers to subscribers from the ConfigMap, enriches a hook call and backstops a terminated run, against a fake API server', async () => {
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
    fake.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kfp-event-handler-config', namespace: 'kfp-notify' }, data: { receiver: url } });
    const name = 'save-most-frequent-e2e01';
    const runId = 'run-e2e-1';
    const eh = `${name}.exit-handler-1`;
    // Injected with a hook on every step, so the watcher leaves the step's failure to the hook for its grace period.
    const admitted = admittedWorkflow('kfp-v1-compiler/basic.yaml', { name, runId, namespace: NS, uid: 'uid-e2e-1' });
    const injected = injectWorkflow(admitted, defaultInjectOptions({ hookKey: hookKeyFromSecret(HOOK_KEY), argoVersion: '3.3.8', stepHooks: 'all' })).workflow as Wf;
    // A finished node keeps its finish time from one status update to the next (it is the fact's attempt).
    const stepEnd = new Date(Date.now() - 30_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const wf = withStatus(injected, {
      phase: 'Running',
      startedAt: new Date(Date.now() - 60_000).toISOString(),
      nodes: [
        { name, type: 'DAG', templateName: 'save-most-frequent', phase: 'Running', children: [eh] },
        { name: eh, type: 'DAG', templateName: 'exit-handler-1', phase: 'Running', boundary: name, children: [`${eh}.get-frequent`] },
        { name: `${eh}.get-frequent`, type: 'Pod', templateName: 'get-frequent', phase: 'Failed', boundary: eh, message: 'OOMKilled (exit code 137)', finishedAt: stepEnd },
      ],
    });
    fake.apply(wf);

    services = await startClusterServices({
      kubeConfig: fake.kubeConfig(),
      log: silentLogger(),
      watchGraceMs: 300,
      subscribers: { namespace: 'kfp-notify', configMapName: 'kfp-event-handler-config' },
    });
    const cluster: RuntimeClusterServices = services; // the seam runtime.ts takes, checked by the compiler
    callback = await startCallback({ dataDir: dir, log: silentLogger(), store: 'memory', listen: { host: '127.0.0.1', port: 0 }, cluster });

    // A hook from an Argo that could not resolve {{tasks.get-frequent.status}}: the phase and the
    // failure message come from the Workflow.
    const form = new URLSearchParams({
      v: '1',
      event: 'node-exit',
      kfpRunId: runId,
      namespace: NS,
      workflowName: name,
      workflowUid: 'uid-e2e-1',
      hookNodeName: `${eh}.get-frequent.onExit`,
      nodeTask: 'get-frequent',
      nodeDisplayName: 'get-frequent',
      nodePhase: '{{tasks.get-frequent.status}}',
    });
    const token = mintHookToken(hookKeyFromSecret(HOOK_KEY), { namespace: NS, kfpRunId: runId });
    const res = await fetch(`${callback.url}${HOOK_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    expect(res.status).toBe(202);
    await until('the hook event', () => received.find((e) => e.EventType === 'WorkflowNodeFailed'));
    expect(received.find((e) => e.EventType === 'WorkflowNodeFailed')).toMatchObject({ NodeName: 'get-frequent', Source: 'hook', Message: `Failed node ${eh}.get-frequent: get-frequent: OOMKilled (exit code 137)` });

    // KFP's terminate: no exit hook reports it, the watcher does, once.
    const terminated = withStatus(wf, {
      phase: 'Failed',
      startedAt: new Date(Date.now() - 60_000).toISOString(),
      finishedAt: new Date().toISOString(),
      message: 'Step exceeded its deadline',
      nodes: [
        { name, type: 'DAG', templateName: 'save-most-frequent', phase: 'Failed', children: [eh] },
        { name: eh, type: 'DAG', templateName: 'exit-handler-1', phase: 'Failed', boundary: name, children: [`${eh}.get-frequent`] },
        { name: `${eh}.get-frequent`, type: 'Pod', templateName: 'get-frequent', phase: 'Failed', boundary: eh, message: 'OOMKilled (exit code 137)', finishedAt: stepEnd },
      ],
    });
    terminated.spec.activeDeadlineSeconds = 0;
    fake.apply(terminated);
    await until('the terminated run', () => received.find((e) => e.EventType === 'WorkflowFailed'));
    await new Promise((r) => setTimeout(r, 400));
    expect(received.map((e) => `${e.EventType}:${e.Source}`).sort()).toEqual(['WorkflowFailed:watcher', 'WorkflowNodeFailed:hook', 'WorkflowRunning:watcher']);
    expect(received.find((e) => e.EventType === 'WorkflowFailed')?.Phase).toBe('Terminated');
  });

  it('reports a subscriber disabled by a 410 as a Kubernetes Event on the subscribers ConfigMap, against a fake API server', async () => {
    const gone = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(410).end('gone'));
    });
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/old-endpoint`;
      fake.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kfp-event-handler-config', namespace: 'kfp-notify' }, data: { retired: url } });
      services = await startClusterServices({
        kubeConfig: fake.kubeConfig(),
        log: silentLogger(),
        watchGraceMs: 60_000,
        subscribers: { namespace: 'kfp-notify', configMapName: 'kfp-event-handler-config' },
      });
      callback = await startCallback({ dataDir: dir, log: silentLogger(), store: 'memory', listen: { host: '127.0.0.1', port: 0 }, cluster: services });
      const token = mintHookToken(hookKeyFromSecret(HOOK_KEY), { namespace: NS, kfpRunId: 'run-410' });
      const form = new URLSearchParams({ v: '1', event: 'workflow-running', kfpRunId: 'run-410', namespace: NS, workflowName: 'wf-410' });
      const res = await fetch(`${callback.url}${HOOK_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      expect(res.status).toBe(202);
      await until('the Event', () => fake.createdEvents.find((e) => e.reason === 'SubscriberDisabled'));
      const event = fake.createdEvents.find((e) => e.reason === 'SubscriberDisabled') ?? {};
      expect(event).toMatchObject({
        type: 'Warning',
        involvedObject: { kind: 'ConfigMap', name: 'kfp-event-handler-config', namespace: 'kfp-notify' },
        metadata: { namespace: 'kfp-notify' },
      });
      expect(String(event.message)).toContain('subscriber retired disabled after HTTP 410');
    } finally {
      await new Promise((r) => gone.close(r));
    }
  });

  it('refuses to start when the subscriber ConfigMap cannot be read, rather than route events to nobody, against a fake API server', async () => {
    fake.failNext(1000, 403);
    await expect(
      startClusterServices({ kubeConfig: fake.kubeConfig(), log: silentLogger(), watchGraceMs: 300, subscribers: { namespace: 'kfp-notify', configMapName: 'kfp-event-handler-config', readyTimeoutMs: 300 } }),
    ).rejects.toThrow(/cannot read ConfigMap kfp-notify\/kfp-event-handler-config.*RBAC/);
  });
});
