import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HTTP as CeHttp } from 'cloudevents';
import jsonPatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHookKeys } from '../../common/data-dir.js';
import { silentLogger } from '../../common/logger.js';
import { parseDocuments } from '../../common/yaml-docs.js';
import { fixedSubscribers, startCallback, type CallbackRuntime } from '../../callback/runtime.js';
import { parseSubscribers } from '../../callback/subscribers/parse.js';
import { admit } from '../../cli/demo/admit.js';
import { hookPod } from '../../cli/demo/hook-request.js';
import { asCreatedByKfp } from '../../cli/demo/kfp-api-server.js';
import { simulateRun, type SimulatedRun } from '../../cli/demo/simulate-run.js';
import { kfpSteps } from '../../common/kfp/kfp-steps.js';
import { defaultInjectOptions } from '../../webhook/inject/options.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';
import { ensureSelfSignedCert } from '../../webhook/self-signed.js';
import { startWebhookServer, type RunningWebhook } from '../../webhook/server.js';
import { startReceiver, until, type Receiver } from '../callback/engine/receiver.js';
import { FIXTURES_DIR } from '../helpers/fixtures.js';

/**
 * The whole product on loopback: a real KFP fixture goes through the real webhook (HTTPS,
 * AdmissionReview), the injected notifier's own script runs under `sh` with real curl for every hook
 * the played run fires, and the real callback (SQLite file) delivers to real HTTP subscribers.
 * The expected events are derived from the played run (which steps ran, which failed), not from
 * the callback's code.
 */

const SIGNING_SECRET = `whsec_${Buffer.from('kfp-notify-e2e-signing-secret-32b').toString('base64')}`;
let dir: string;
let callback: CallbackRuntime;
let webhook: RunningWebhook;
let ca: string;
const rx: Record<string, Receiver> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kfp-notify-e2e-'));
  for (const name of ['legacy', 'signed', 'runEnds', 'otherNamespace']) rx[name] = await startReceiver();
  const { subscribers, errors } = parseSubscribers(
    {
      legacy: rx.legacy?.url,
      signed: { url: rx.signed?.url, signingKey: { secretKeyRef: { name: 'e2e', key: 'signing' } } },
      'run-ends': { url: rx.runEnds?.url, format: 'cloudevents-binary', eventTypes: ['WorkflowSucceeded', 'WorkflowFailed'] },
      'other-namespace': { url: rx.otherNamespace?.url, namespaces: ['not-this-one'] },
    },
    (ref) => (ref.name === 'e2e' && ref.key === 'signing' ? SIGNING_SECRET : undefined),
  );
  expect(errors).toEqual([]);
  callback = await startCallback({ dataDir: dir, log: silentLogger(), listen: { host: '127.0.0.1', port: 0 }, subscribers: fixedSubscribers(subscribers) });
  const cert = await ensureSelfSignedCert(dir);
  ca = readFileSync(cert.certFile, 'utf8');
  const [hookKey] = loadHookKeys({ dataDir: dir });
  if (!hookKey) throw new Error('no hook key');
  const options = defaultInjectOptions({ hookKey, callbackUrl: callback.url ?? '' });
  webhook = await startWebhookServer({ host: '127.0.0.1', port: 0, certFile: cert.certFile, keyFile: cert.keyFile, logger: silentLogger(), registry: new Registry(), getInjectOptions: () => options });
});

afterAll(async () => {
  await webhook?.close();
  await callback?.close();
  await Promise.all(Object.values(rx).map((r) => r.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the notifier container's command (sh -c '<curl script>') with the pod's env. */
function runNotifierPod(command: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = command;
    const child = spawn(String(cmd), args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

interface Case {
  fixture: string;
  failTasks: string[];
}

const CASES: Case[] = [
  { fixture: 'kfp-v1-compiler/basic.yaml', failTasks: ['save'] },
  { fixture: 'kfp-v1-compiler/coin.yaml', failTasks: [] },
  { fixture: 'kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml', failTasks: ['fail-op'] },
  { fixture: 'kfp-v2-argocompiler-2.5.0/multiple_parallel_loops.yaml', failTasks: [] },
];

type Seen = { type: string; node: string };

/**
 * What the hooks of the played run report: every step whose exit hook fired (under the default
 * `stepHooks: failed`, only a failed one; the status watcher reports the successes, see
 * test/callback/cluster/watcher-retry.test.ts and the demo), and the run.
 */
function expectedEvents(wf: Workflow, run: SimulatedRun, workflowName: string, userExitName: string): Seen[] {
  const names = new Map(kfpSteps(wf).map((s) => [s.taskName, s.displayName]));
  const events: Seen[] = [{ type: 'WorkflowRunning', node: '' }];
  for (const [node, phase] of Object.entries(run.nodes)) {
    const task = /\.([^.()]+)(\([^)]*\))?$/.exec(node.slice(workflowName.length))?.[1] ?? '';
    const hooked = run.firings.some((f) => /^\.onExit(\(\d+\))?$/.test(f.podNodeName.slice(node.length)) && f.podNodeName.startsWith(node) && f.parameters.event === 'node-exit');
    if (hooked) events.push({ type: phase === 'Succeeded' ? 'WorkflowNodeSucceeded' : 'WorkflowNodeFailed', node: names.get(task) ?? task });
  }
  // A KFP v1 exit op runs as the exit wrapper's user-exit task; its name is the compiled onExit template's.
  if (run.nodes[`${workflowName}.onExit.user-exit`] !== undefined) events.push({ type: 'WorkflowNodeSucceeded', node: userExitName });
  events.push({ type: run.phase === 'Succeeded' ? 'WorkflowSucceeded' : 'WorkflowFailed', node: '' });
  return events;
}

const sorted = (xs: Seen[]): Seen[] => [...xs].sort((a, b) => `${a.type}/${a.node}`.localeCompare(`${b.type}/${b.node}`));

describe('end to end: KFP fixture → webhook → notifier pods (sh + curl) → callback → subscribers', () => {
  it.each(CASES)('$fixture (failing: $failTasks)', async ({ fixture, failTasks }) => {
    const runId = `e2e-${fixture.replace(/[^a-z0-9]/g, '').slice(-20)}`;
    const namespace = 'team-a';
    const compiled = parseDocuments(readFileSync(join(FIXTURES_DIR, fixture), 'utf8'))[0] as Workflow;
    const created = asCreatedByKfp(compiled, { runId, runName: `e2e ${fixture}`, namespace });
    const { patch } = await admit(webhook.url, ca, created, namespace);
    expect(patch.length).toBeGreaterThan(0);
    const injected = jsonPatch.applyPatch(structuredClone(created), patch, false, false).newDocument as Workflow;

    const workflowName = `${created.metadata?.generateName ?? 'wf-'}e2e01`;
    const run = simulateRun(injected, { workflowName, workflowUid: `uid-${runId}`, namespace, failTasks });
    const before = Object.fromEntries(Object.entries(rx).map(([k, r]) => [k, r.received.length]));
    for (const firing of run.firings) {
      const pod = hookPod(injected, firing);
      const res = await runNotifierPod(pod.command, pod.env);
      expect(res.code).toBe(0);
      expect(res.out).toContain('callback answered HTTP 202');
    }

    const expected = sorted(expectedEvents(injected, run, workflowName, String(compiled.spec?.onExit ?? '')));
    const mine = (r: Receiver | undefined) => (r?.received ?? []).slice(before[Object.keys(rx).find((k) => rx[k] === r) ?? ''] ?? 0);
    await until(() => mine(rx.legacy).length >= expected.length && mine(rx.signed).length >= expected.length && mine(rx.runEnds).length >= 1, 'deliveries');
    await new Promise((r) => setTimeout(r, 200)); // nothing more may arrive

    // The legacy subscriber gets the documented event, five fields first, exactly one per fact.
    const legacy = mine(rx.legacy).map((d) => JSON.parse(d.body) as Record<string, string>);
    expect(sorted(legacy.map((e) => ({ type: e.EventType ?? '', node: e.NodeName ?? '' })))).toEqual(expected);
    for (const e of legacy) {
      expect(Object.keys(e).slice(0, 5)).toEqual(['KfpRunId', 'WorkflowName', 'NodeName', 'EventType', 'Message']);
      expect(e.KfpRunId).toBe(runId);
      expect(e.WorkflowName).toBe(workflowName);
      expect(e.Namespace).toBe(namespace);
    }
    // The signed subscriber gets the same events, each verified by the independent standardwebhooks package.
    const verifier = new Webhook(SIGNING_SECRET);
    const signed = mine(rx.signed).map((d) => verifier.verify(d.body, d.headers as Record<string, string>) as Record<string, string>);
    expect(sorted(signed.map((e) => ({ type: e.EventType ?? '', node: e.NodeName ?? '' })))).toEqual(expected);
    expect(new Set(mine(rx.signed).map((d) => d.headers['webhook-id']))).toEqual(new Set(legacy.map((e) => e.EventId)));
    // The CloudEvents subscriber filtered to run ends gets exactly the run's end, as a run-completion.
    const ends = mine(rx.runEnds).map((d) => CeHttp.toEvent({ headers: d.headers, body: d.body }));
    expect(ends).toHaveLength(1);
    const end = Array.isArray(ends[0]) ? ends[0][0] : ends[0];
    expect(end?.type).toBe('org.kubeflow.pipelines.run-completion');
    expect((end?.data as { status?: string }).status).toBe(run.phase === 'Succeeded' ? 'succeeded' : 'failed');
    // A namespace filter that does not match receives nothing.
    expect(mine(rx.otherNamespace)).toHaveLength(0);

    // Hooks retried (curl --retry, Argo's retryStrategy) report the same facts: no new delivery.
    const delivered = rx.legacy?.received.length;
    for (const firing of run.firings) {
      const pod = hookPod(injected, firing);
      expect((await runNotifierPod(pod.command, pod.env)).code).toBe(0);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(rx.legacy?.received.length).toBe(delivered);
  });
});
