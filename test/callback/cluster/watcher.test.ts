import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { hookKeyFromSecret } from '../../../common/hook-token.js';
import { startStatusWatcher, type StatusWatcher, type StatusWatcherOptions } from '../../../callback/cluster/watcher.js';
import { createIngest, type IngestResult } from '../../../callback/ingest.js';
import { normalizeHookCall, toWorkflowSnapshot } from '../../../callback/normalize.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { KfpEvent } from '../../../callback/types.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import type { StepHooks } from '../../../webhook/inject/options.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { until } from './until.js';
import { admittedWorkflow, withStatus, type NodeSpec, type Wf } from './argo-status.js';
import { simulatedHookCalls } from './hook-sim.js';

const GRACE_MS = 300;
const FAST_BACKOFF = { initialMs: 50, maxMs: 200 };

// One clock reading for the file: a node's finish time is part of its fact's id (its attempt), and
// two versions of one object must give a finished node the same finish time, as Argo does.
const LOADED_AT = Date.now();
function iso(msAgo: number): string {
  return new Date(LOADED_AT - msAgo).toISOString();
}

const HOOK_KEY = hookKeyFromSecret('watcher-test-hook-key-0123456789');

/**
 * KFP v2 exit_handler.yaml, submitted by KFP and admitted by the webhook (`stepHooks: all` unless
 * told: every fact then has a hook the watcher waits for), in one of the states a run goes through.
 */
function v2Run(
  name: string,
  runId: string,
  state: 'running' | 'terminated' | 'succeeded',
  opts: { namespace?: string; ago?: number; stepHooks?: StepHooks | 'not injected' } = {},
): Wf {
  const admitted = admittedWorkflow('kfp-v2-argocompiler-2.5.0/exit_handler.yaml', { name, runId, namespace: opts.namespace ?? 'team-a', uid: `uid-${name}` });
  const policy = opts.stepHooks ?? 'all';
  const wf = policy === 'not injected' ? admitted : (injectWorkflow(admitted, defaultInjectOptions({ hookKey: HOOK_KEY, stepHooks: policy })).workflow as Wf);
  const w = name;
  const eh = `${w}.root.exit-handler-1`;
  const ago = opts.ago ?? 60_000;
  const t = (k: number) => iso(ago - k * 1000);
  const done = state !== 'running';
  const failOp = state === 'terminated' ? 'Failed' : state === 'succeeded' ? 'Succeeded' : 'Running';
  const dag = state === 'terminated' ? 'Failed' : state === 'succeeded' ? 'Succeeded' : 'Running';
  const nodes: NodeSpec[] = [
    { name: w, type: 'DAG', templateName: 'entrypoint', phase: dag, children: [`${w}.root-driver`], startedAt: t(0), finishedAt: t(30) },
    { name: `${w}.root-driver`, type: 'Pod', templateName: 'system-dag-driver', phase: 'Succeeded', boundary: w, children: [`${w}.root`], startedAt: t(0), finishedAt: t(5) },
    { name: `${w}.root`, type: 'DAG', templateName: 'root', phase: dag, boundary: w, children: [eh], startedAt: t(5), finishedAt: t(30) },
    { name: eh, type: 'DAG', templateName: 'comp-exit-handler-1', phase: dag, boundary: `${w}.root`, children: [`${eh}.fail-op`], startedAt: t(5), finishedAt: t(30) },
    { name: `${eh}.print-op-2`, type: 'DAG', templateName: 'system-container-executor', phase: 'Succeeded', boundary: eh, startedAt: t(5), finishedAt: t(10) },
    { name: `${eh}.fail-op`, type: 'DAG', templateName: 'system-container-executor', phase: failOp, boundary: eh, startedAt: t(10), finishedAt: t(30), ...(state === 'terminated' ? { message: 'Step exceeded its deadline' } : {}) },
  ];
  const out = withStatus(wf, {
    phase: state === 'running' ? 'Running' : state === 'terminated' ? 'Failed' : 'Succeeded',
    startedAt: t(0),
    ...(done ? { finishedAt: t(30) } : {}),
    ...(state === 'terminated' ? { message: 'Step exceeded its deadline' } : {}),
    nodes,
  });
  if (state === 'terminated') out.spec.activeDeadlineSeconds = 0;
  return out;
}

describe('status watcher', () => {
  let fake: FakeKubeApi;
  let watcher: StatusWatcher | undefined;
  let ingested: { at: number; events: KfpEvent[] }[];
  const all = () => ingested.flatMap((b) => b.events);
  const recordingIngest = async (events: KfpEvent[]) => {
    ingested.push({ at: Date.now(), events });
  };
  const start = (o: Partial<StatusWatcherOptions> = {}) => {
    watcher = startStatusWatcher({ kubeConfig: fake.kubeConfig(), ingest: recordingIngest, graceMs: GRACE_MS, log: silentLogger(), backoff: FAST_BACKOFF, ...o });
    return watcher;
  };

  beforeEach(async () => {
    fake = await startFakeKubeApi();
    ingested = [];
  });
  afterEach(async () => {
    await watcher?.stop();
    watcher = undefined;
    await fake.close();
  });

  it("emits a terminated run's WorkflowFailed after the grace period, against a fake API server", async () => {
    fake.apply(v2Run('run-a', 'run-id-a', 'running'));
    const w = start();
    await until('the first list', () => w.ready());
    await until('WorkflowRunning', () => all().some((e) => e.EventType === 'WorkflowRunning'));

    const appliedAt = Date.now();
    fake.apply(v2Run('run-a', 'run-id-a', 'terminated'));
    const batch = await until('WorkflowFailed', () => ingested.find((b) => b.events.some((e) => e.EventType === 'WorkflowFailed')));
    // It waited out the grace period for a hook that (after a terminate) never comes.
    expect(batch.at - appliedAt).toBeGreaterThanOrEqual(GRACE_MS - 5);
    expect(batch.events.find((e) => e.EventType === 'WorkflowFailed')).toMatchObject({ KfpRunId: 'run-id-a', WorkflowName: 'run-a', Namespace: 'team-a', Phase: 'Terminated', Source: 'watcher' });
    expect(batch.events.find((e) => e.EventType === 'WorkflowNodeFailed')).toMatchObject({ NodeName: 'fail-op', Message: 'Failed node run-a.root.exit-handler-1.fail-op: fail-op: Step exceeded its deadline' });
    // Every fact once, across both versions of the object.
    const ids = all().map((e) => e.EventId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(all().map((e) => e.EventType).sort()).toEqual(['WorkflowFailed', 'WorkflowNodeFailed', 'WorkflowNodeSucceeded', 'WorkflowRunning']);
  });

  it('reports runs that finished while the callback was down, but not ancient history, against a fake API server', async () => {
    fake.apply(v2Run('finished-recently', 'r-recent', 'succeeded', { ago: 10 * 60_000 }));
    fake.apply(v2Run('finished-long-ago', 'r-old', 'succeeded', { ago: 3 * 24 * 3600_000 }));
    const w = start({ maxAgeMs: 24 * 3600_000 });
    await until('the first list', () => w.ready());
    await until('the recent run', () => all().some((e) => e.EventType === 'WorkflowSucceeded'));
    await new Promise((r) => setTimeout(r, GRACE_MS + 100));
    expect(new Set(all().map((e) => e.KfpRunId))).toEqual(new Set(['r-recent']));
    expect(all().map((e) => e.EventType)).toEqual(['WorkflowRunning', 'WorkflowNodeSucceeded', 'WorkflowNodeSucceeded', 'WorkflowSucceeded']);
  });

  it('never delivers an event a hook already delivered a second time, against a fake API server (real SQLite store)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-watcher-'));
    const store = openSqliteStore({ file: join(dir, 'events.db') });
    try {
      const { subscribers } = parseSubscribers({ receiver: 'http://127.0.0.1:9/hook' }, () => undefined);
      const ingest = createIngest({ store, subscribers: () => subscribers });
      const results: IngestResult[] = [];

      // v1 ExitHandler run, injected; `argo terminate` stopped it during the exit handler, so the hooks
      // reported the steps but no workflow-exit call was ever made.
      const admitted = admittedWorkflow('kfp-v1-compiler/basic.yaml', { name: 'save-most-frequent-h00k5', runId: 'run-hooked', namespace: 'team-b', uid: 'uid-hooked' });
      const wf = injectWorkflow(admitted, defaultInjectOptions({ hookKey: HOOK_KEY, stepHooks: 'all' })).workflow as Wf;
      const w = admitted.metadata.name;
      const eh = `${w}.exit-handler-1`;
      const finished = withStatus(wf, {
        phase: 'Failed',
        startedAt: iso(120_000),
        finishedAt: iso(10_000),
        message: "Stopped with strategy 'Terminate'",
        nodes: [
          { name: w, type: 'DAG', templateName: 'save-most-frequent', phase: 'Failed', children: [eh, `${w}.hooks.kfp-notify-running`] },
          { name: `${w}.hooks.kfp-notify-running`, type: 'Pod', templateName: 'kfp-notify-hook', phase: 'Succeeded', boundary: w },
          { name: eh, type: 'DAG', templateName: 'exit-handler-1', phase: 'Failed', boundary: w, children: [`${eh}.get-frequent`] },
          { name: `${eh}.get-frequent`, type: 'Pod', templateName: 'get-frequent', phase: 'Succeeded', boundary: eh, children: [`${eh}.save`] },
          { name: `${eh}.save`, type: 'Pod', templateName: 'save', phase: 'Failed', boundary: eh, message: 'terminated' },
        ],
      });
      finished.spec.shutdown = 'Terminate';
      const workflow = toWorkflowSnapshot(finished);
      for (const fields of simulatedHookCalls(finished)) {
        const r = normalizeHookCall(fields, { receivedAt: new Date(), ...(workflow ? { workflow } : {}) });
        if (!r.ok) throw new Error(r.reason);
        results.push(await ingest(r.events));
      }
      const fromHooks = results.flatMap((r) => r.eventIds);
      expect(fromHooks).toHaveLength(3); // running, get-frequent, save

      fake.apply(finished);
      const wr = start({
        ingest: async (events) => {
          const r = await ingest(events);
          results.push(r);
          return r;
        },
      });
      await until('the watcher to report every fact', () => results.slice(fromHooks.length).flatMap((r) => r.eventIds).length >= 4);
      const fromWatcher = results.slice(fromHooks.length);
      const watcherIds = fromWatcher.flatMap((r) => r.eventIds);
      // It reported every fact; the three the hooks had delivered came back as duplicates...
      expect(new Set(fromWatcher.flatMap((r) => r.duplicates))).toEqual(new Set(fromHooks));
      expect(watcherIds).toHaveLength(4);
      // ...and each fact is queued for the subscriber exactly once: 3 from hooks + the run's end.
      expect(await store.queueDepth()).toEqual({ receiver: 4 });
      const end = await store.getEvent(watcherIds.find((id) => !fromHooks.includes(id)) ?? '');
      expect(end).toMatchObject({ EventType: 'WorkflowFailed', Phase: 'Terminated', Source: 'watcher' });
      await wr.stop();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('recovers from a watch disconnect, a watch the server ends, expired history and API errors, against a fake API server', async () => {
    const registry = new Registry();
    const w = start({ registry });
    await until('the first list', () => w.ready());
    await until('an open watch', () => fake.openWatches() === 1);

    // A cut connection: the watcher comes back and sees what happened meanwhile.
    fake.dropWatches();
    fake.apply(v2Run('during-cut', 'r-cut', 'succeeded'));
    await until('the run finished during the cut', () => all().some((e) => e.KfpRunId === 'r-cut' && e.EventType === 'WorkflowSucceeded'));

    // The server ends the watch (its timeoutSeconds): the watcher resumes from the last version, no new list.
    await until('an open watch', () => fake.openWatches() === 1);
    const lists = () => fake.requests.filter((r) => r.query.watch === undefined).length;
    const listsBefore = lists();
    fake.endWatches();
    fake.apply(v2Run('during-resume', 'r-resume', 'succeeded'));
    await until('the run finished while resuming', () => all().some((e) => e.KfpRunId === 'r-resume' && e.EventType === 'WorkflowSucceeded'));
    expect(lists()).toBe(listsBefore);

    // History compacted meanwhile: the resumed watch gets ERROR 410 Expired, and the watcher lists again.
    await until('an open watch', () => fake.openWatches() === 1);
    fake.endWatches();
    fake.apply(v2Run('during-expiry', 'r-expired', 'succeeded'));
    fake.expireHistory();
    await until('the run finished during the expiry', () => all().some((e) => e.KfpRunId === 'r-expired' && e.EventType === 'WorkflowSucceeded'));
    expect(lists()).toBe(listsBefore + 1);

    // API errors: counted, retried after a backoff, never fatal.
    await until('an open watch', () => fake.openWatches() === 1);
    fake.failNext(3, 500);
    fake.dropWatches();
    fake.apply(v2Run('during-errors', 'r-errors', 'succeeded'));
    await until('the run finished during the API errors', () => all().some((e) => e.KfpRunId === 'r-errors' && e.EventType === 'WorkflowSucceeded'));
    const errors = (await registry.getSingleMetric('kfp_notify_watch_errors_total')?.get())?.values.reduce((n, v) => n + v.value, 0);
    expect(errors).toBeGreaterThanOrEqual(1);
    const ids = all().map((e) => e.EventId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('forgets finished runs once reported, ignores their later no-op updates, and reports what a deleted run left pending, against a fake API server', async () => {
    const registry = new Registry();
    const tracked = async () => (await registry.getSingleMetric('kfp_notify_watcher_tracked_workflows')?.get())?.values[0]?.value;
    const synced = async () => (await registry.getSingleMetric('kfp_notify_watcher_synced')?.get())?.values[0]?.value;
    const w = start({ registry });
    expect(await synced()).toBe(0);
    await until('the first list', () => w.ready());
    expect(await synced()).toBe(1);

    fake.apply(v2Run('run-f', 'r-f', 'succeeded'));
    await until('the run', () => all().some((e) => e.EventType === 'WorkflowSucceeded'));
    expect(await tracked()).toBe(0);
    const count = all().length;
    // KFP's persistence agent labels finished runs: a new resourceVersion, the same facts.
    const labelled = fake.get('Workflow', 'team-a', 'run-f') as Wf;
    labelled.metadata.labels['pipeline/persistedFinalState'] = 'true';
    fake.apply(labelled);

    // Deleted within its grace period: its facts still happened, so they are still reported.
    fake.apply(v2Run('run-d', 'r-d', 'succeeded'));
    await until('run-d tracked', async () => (await tracked()) === 1);
    fake.remove('Workflow', 'team-a', 'run-d');
    await until('the deleted run', () => all().some((e) => e.KfpRunId === 'r-d' && e.EventType === 'WorkflowSucceeded'));
    await until('nothing tracked', async () => (await tracked()) === 0);
    expect(all().filter((e) => e.KfpRunId === 'r-f')).toHaveLength(count);
  });

  it('retries an ingest that failed, and watches only the namespaces it is given, against a fake API server', async () => {
    let failures = 1;
    const registry = new Registry();
    fake.apply(v2Run('mine', 'r-mine', 'succeeded', { namespace: 'team-a' }));
    fake.apply(v2Run('theirs', 'r-theirs', 'succeeded', { namespace: 'team-z' }));
    const w = start({
      registry,
      namespaces: ['team-a'],
      pageSize: 1,
      ingest: async (events) => {
        if (failures-- > 0) throw new Error('database is locked');
        ingested.push({ at: Date.now(), events });
      },
    });
    await until('the run after a failed ingest', () => all().some((e) => e.EventType === 'WorkflowSucceeded'));
    expect(w.ready()).toBe(true);
    await new Promise((r) => setTimeout(r, GRACE_MS + 100));
    expect(new Set(all().map((e) => e.KfpRunId))).toEqual(new Set(['r-mine']));
    expect((await registry.getSingleMetric('kfp_notify_watcher_ingest_errors_total')?.get())?.values[0]?.value).toBe(1);
    expect(fake.requests.every((r) => r.path.startsWith('/apis/argoproj.io/v1alpha1/namespaces/team-a/workflows'))).toBe(true);
  });

  it('lists in pages and stops cleanly with events still in their grace period, against a fake API server', async () => {
    for (let i = 0; i < 5; i++) fake.apply(v2Run(`paged-${i}`, `r-paged-${i}`, 'succeeded'));
    const w = start({ pageSize: 2, graceMs: 60_000 });
    await until('the first list', () => w.ready());
    expect(fake.requests.filter((r) => r.query.limit === '2').length).toBe(3);
    expect(fake.requests.filter((r) => r.query.continue !== undefined).length).toBe(2);
    await w.stop();
    expect(fake.openWatches()).toBe(0);
    expect(ingested).toEqual([]);
  });
});
