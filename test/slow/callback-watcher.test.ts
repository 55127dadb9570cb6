import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js';
import { killAll, startCallbackProcess, type CallbackProcess } from './helpers/callback-process.js';
import { hookClient, inParallel, seeded, seedFromEnv, type HookAnswer } from './helpers/hook-load.js';
import { exitHandlerRun, factsOf, type KfpRun } from './helpers/kfp-runs.js';
import { mintHookToken, type HookKey } from '../../common/hook-token.js';
import { leaksInThisFile } from './helpers/secrets.js';
import { waitFor, workspace } from './helpers/setup.js';
import { deliveredCounts, mismatchedIds, startScriptedSubscriber, type ScriptedSubscriber } from './helpers/subscriber-server.js';

/**
 * Hooks that never fire. A real `kfp-notify callback` process talks to a fake API server (a local
 * HTTP server answering kube-apiserver's paths with real-shaped objects, test/helpers/fake-kube-api.ts)
 * for its subscribers (ConfigMap) and its status watcher, with --watch-grace 1500ms.
 * - Runs that finished while the callback was down made no hook call the callback saw; it starts
 *   afterwards and the watcher reports every fact; the hooks' late retries are duplicates.
 * - Runs terminated the KFP way (activeDeadlineSeconds: 0): the exit handler's hook fires, the
 *   running and step hooks may not; the watcher reports exactly what is missing.
 * Every fact reaches each subscriber exactly once, whichever path reported it.
 */

const GRACE_MS = 1500;
const SEED = seedFromEnv();
const ws = workspace('kfp-notify-watcher-');
let fake: FakeKubeApi;
let everything: ScriptedSubscriber;
let runEnds: ScriptedSubscriber;
let cb: CallbackProcess;
let key: HookKey;

beforeAll(async () => {
  fake = await startFakeKubeApi();
  everything = await startScriptedSubscriber(() => ({ status: 200 }));
  runEnds = await startScriptedSubscriber(() => ({ status: 200 }));
  fake.apply({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'kfp-event-handler-config', namespace: 'kfp-notify' },
    // One kfp-event-handler line, and one full-form entry (a YAML string, as ConfigMap values are).
    data: { everything: everything.url, 'run-ends': `url: ${runEnds.url}\neventTypes: [WorkflowSucceeded, WorkflowFailed]\nformat: cloudevents-structured\n` },
  });
});
afterAll(async () => {
  await killAll();
  await everything?.close();
  await runEnds?.close();
  await fake?.close();
  ws.cleanup();
});

const RUN_EVENTS = new Set(['WorkflowSucceeded', 'WorkflowFailed']);

/** Waits until both subscribers have every fact of `runs`, then past the grace period, and checks each came exactly once. */
async function expectEachFactOnce(runs: readonly KfpRun[]): Promise<{ id: string; fact: string }[]> {
  const facts = runs.flatMap((r) => factsOf(r.hookCalls, r.workflow));
  const ids = facts.map((f) => f.id);
  expect(new Set(ids).size, 'one id per fact').toBe(ids.length);
  const ends = facts.filter((f) => RUN_EVENTS.has(f.fact.split(':')[0] ?? '')).map((f) => f.id);
  await waitFor('every fact at both subscribers', () => [ids.filter((id) => !deliveredCounts(everything).has(id)).length, ends.filter((id) => !deliveredCounts(runEnds).has(id)).length], ([a, b]) => a === 0 && b === 0, 30_000);
  // Past another grace period: a second path reporting the same fact would have delivered by now.
  await new Promise((r) => setTimeout(r, GRACE_MS + 500));
  const all = deliveredCounts(everything);
  const endCounts = deliveredCounts(runEnds);
  expect(ids.filter((id) => all.get(id) !== 1), 'facts not delivered exactly once').toEqual([]);
  expect(ends.filter((id) => endCounts.get(id) !== 1), 'run ends not delivered exactly once to run-ends').toEqual([]);
  expect([...endCounts.keys()].filter((id) => ids.includes(id) && !ends.includes(id)), 'run-ends got a step event').toEqual([]);
  expect([...mismatchedIds(everything), ...mismatchedIds(runEnds)]).toEqual([]);
  return facts;
}

function sourceOf(eventId: string): string {
  const got = everything.attempts.find((a) => a.eventId === eventId);
  return String((JSON.parse(got?.got.body ?? '{}') as { Source?: unknown }).Source);
}

async function postCalls(calls: readonly Record<string, string>[]): Promise<HookAnswer[]> {
  const client = hookClient(cb.url, 8);
  try {
    return await inParallel(calls, 8, (c) =>
      client.post({ body: new URLSearchParams(c).toString(), authorization: `Bearer ${mintHookToken(key, { namespace: c.namespace ?? '', kfpRunId: c.kfpRunId ?? '' })}` }),
    );
  } finally {
    await client.close();
  }
}

describe(`hooks that never fire: the status watcher of a real kfp-notify callback process fills in, against a fake API server (seed ${SEED})`, () => {
  const down: KfpRun[] = [];

  it('runs that finished while the callback was down: every fact delivered once, by the watcher; the hooks\' late retries are duplicates, against a fake API server', async () => {
    const data = ws.dataDir('watcher');
    key = data.key;
    for (let i = 0; i < 12; i++) {
      const run = exitHandlerRun({ name: `down-${i}`, runId: `run-down-${i}`, namespace: i % 2 ? 'team-a' : 'team-b', outcome: i % 3 === 0 ? 'failed' : 'succeeded', key });
      fake.apply(run.workflow);
      down.push(run);
    }
    const kubeconfig = join(ws.root, 'kubeconfig');
    writeFileSync(kubeconfig, fake.kubeConfig().exportConfig());
    cb = await startCallbackProcess(
      ['--data-dir', data.dir, '--subscribers-configmap', 'kfp-event-handler-config', '--namespace', 'kfp-notify', '--watch-grace', `${GRACE_MS}ms`],
      { cluster: true, env: { KUBECONFIG: kubeconfig } },
    );
    ws.adminToken(data.dir);

    const facts = await expectEachFactOnce(down);
    const expected = down.flatMap((r) =>
      r.outcome === 'failed'
        ? ['WorkflowRunning:', 'WorkflowNodeFailed:fail-op', 'WorkflowNodeSucceeded:print-op', 'WorkflowFailed:']
        : ['WorkflowRunning:', 'WorkflowNodeSucceeded:fail-op', 'WorkflowNodeSucceeded:print-op-2', 'WorkflowNodeSucceeded:print-op', 'WorkflowSucceeded:'],
    );
    expect(facts.map((f) => f.fact).sort()).toEqual(expected.sort());
    expect(facts.filter((f) => sourceOf(f.id) !== 'watcher')).toEqual([]);

    // The notifier pods' curl retries arrive at last: each call is a duplicate, nothing is sent again.
    const late = await postCalls(down.flatMap((r) => r.hookCalls));
    for (const a of late) {
      expect(a).toMatchObject({ status: 202 });
      if (!('error' in a)) expect((a.body as { duplicates: string[] }).duplicates).toEqual((a.body as { eventIds: string[] }).eventIds);
    }
    await expectEachFactOnce(down);
  });

  it('runs terminated the KFP way (activeDeadlineSeconds: 0): the exit hook fires, the running and step hooks may not; the watcher reports exactly the missing facts, against a fake API server', async () => {
    const rand = seeded(SEED);
    const terminated: KfpRun[] = [];
    const fromHooks = new Set<string>();
    await inParallel(Array.from({ length: 12 }, (_v, i) => i), 4, async (i) => {
      const o = { name: `term-${i}`, runId: `run-term-${i}`, namespace: 'team-a', key };
      // While it runs the running hook may fire (or its pod may never have reached the callback)...
      const running = exitHandlerRun({ ...o, outcome: 'running' });
      fake.apply(running.workflow);
      const runningHook = rand() < 0.5 ? running.hookCalls.filter((c) => c.event === 'workflow-running') : [];
      await postCalls(runningHook);
      // ...then KFP's Terminate: no new hook pods, except exit pods; KFP's own exit task's hook may or may not run.
      const end = exitHandlerRun({ ...o, outcome: 'terminated' });
      fake.apply(end.workflow);
      const exitHooks = end.hookCalls.filter((c) => c.event === 'workflow-exit' || (c.event === 'node-exit' && c.nodeTask === 'print-op' && rand() < 0.5));
      const answers = await postCalls(exitHooks);
      expect(answers.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
      for (const f of [...factsOf(runningHook, running.workflow), ...factsOf(exitHooks, end.workflow)]) fromHooks.add(f.id);
      terminated.push(end);
    });

    const facts = await expectEachFactOnce(terminated);
    expect(facts.map((f) => f.fact).sort()).toEqual(
      Array.from({ length: 12 }, () => ['WorkflowFailed:', 'WorkflowNodeFailed:fail-op', 'WorkflowNodeSucceeded:print-op', 'WorkflowRunning:']).flat().sort(),
    );
    // Each fact came from the path that had it first: the hook when it fired, the watcher otherwise.
    expect(facts.filter((f) => sourceOf(f.id) !== (fromHooks.has(f.id) ? 'hook' : 'watcher'))).toEqual([]);
    const byWatcher = facts.filter((f) => !fromHooks.has(f.id));
    expect(byWatcher.filter((f) => f.fact === 'WorkflowNodeFailed:fail-op')).toHaveLength(12);
    // The run's end says Terminated, whichever path reported it (the hook call is enriched from the Workflow).
    const endPhases = everything.attempts.map((a) => JSON.parse(a.got.body) as { EventType: string; Phase: string }).filter((e) => e.EventType === 'WorkflowFailed');
    expect(endPhases.filter((e) => e.Phase === 'Terminated')).toHaveLength(12);
    console.log(`[figures] watcher: ${down.length} runs while down → ${down.flatMap((r) => factsOf(r.hookCalls, r.workflow)).length} facts, all by the watcher; ${terminated.length} terminated runs → ${facts.length} facts, ${fromHooks.size} by hooks, ${byWatcher.length} by the watcher; each exactly once per subscriber`);
  });

  it('no secret reached the output of the processes this file ran', () => {
    expect(leaksInThisFile(ws.secrets())).toEqual([]);
  });
});
