import { spawn } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerToken, hookKeyFromSecret, verifyHookToken } from '../../common/hook-token.js';
import { HOOK_FIELDS, HOOK_PATH } from '../../common/hook-contract.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import type { LifecycleHook, Template, Workflow } from '../../common/kfp/workflow-types.js';
import { admittedFixture, DEFAULT_NAMESPACE, DEFAULT_RUN_ID, FIXTURES_DIR, TEST_HOOK_KEY_SECRET } from '../helpers/fixtures.js';

/**
 * Runs the injected notifier for real: the container script under `sh` with the env Argo and the
 * kubelet would give the pod, and the HTTP template as Argo's agent would send it, both against a
 * local HTTP server standing in for the callback.
 */
const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);
// Everything a shell or a form encoder could trip over.
const NASTY = `Say "hi" & $(touch /tmp/kfp-notify-pwned) ; \`id\` 100% + a=b 'x' \\ ü`;

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  form: Record<string, string>;
}
let server: Server;
let base = '';
let received: Received[] = [];
let status = 202;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, form: Object.fromEntries(new URLSearchParams(body)) });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function inject(partial: Partial<InjectOptions>, edit?: (wf: Workflow) => void): Workflow {
  const input = admittedFixture(`${FIXTURES_DIR}/kfp-v1-compiler/artifact_pipeline.yaml`, DEFAULT_RUN_ID, { runName: `nightly ${NASTY}` }) as Workflow;
  edit?.(input);
  const r = injectWorkflow(input, defaultInjectOptions({ callbackUrl: base, hookKey, ...partial }));
  if (r.outcome !== 'injected') throw new Error(String(r.reason));
  return r.workflow as Workflow;
}
const notifier = (wf: Workflow): Template => wf.spec?.templates?.find((t) => t.name === 'kfp-notify-hook') ?? {};
const stepHook = (wf: Workflow): LifecycleHook => wf.spec?.templates?.flatMap((t) => t.dag?.tasks ?? []).find((t) => t.name === 'create-test-artifact')?.hooks?.exit ?? {};

/** Argo's substitution of `{{…}}` tags, with the hook's arguments (or the input defaults) and globals. */
function argoResolve(s: string, hook: LifecycleHook, tmpl: Template, globals: Record<string, string>): string {
  const given = Object.fromEntries((hook.arguments?.parameters ?? []).map((p) => [`inputs.parameters.${p.name}`, p.value]));
  const defaults = Object.fromEntries((tmpl.inputs?.parameters ?? []).map((p) => [`inputs.parameters.${p.name}`, p.default]));
  return s.replace(/\{\{([^{}]+)\}\}/g, (whole, key: string) => given[key] ?? defaults[key] ?? globals[key] ?? whole);
}

// What the pod would see: its labels come from spec.podMetadata plus Argo's own.
const POD = {
  "metadata.labels['pipeline/runid']": DEFAULT_RUN_ID,
  "metadata.labels['workflows.argoproj.io/workflow']": 'artifact-streaming-test-v1-x7k2p',
  'metadata.namespace': DEFAULT_NAMESPACE,
  "metadata.annotations['workflows.argoproj.io/node-name']": 'artifact-streaming-test-v1-x7k2p.create-test-artifact.onExit(0)',
};
const GLOBALS = { 'workflow.uid': '0b1c2d3e-0000-4000-8000-000000000001' };

type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } };

function runContainer(wf: Workflow, hook: LifecycleHook, envOverride: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const tmpl = notifier(wf);
  const container = tmpl.container as { command: string[]; args: string[]; env: EnvVar[] };
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  for (const e of container.env) {
    const fromPod = e.valueFrom?.fieldRef?.fieldPath;
    env[e.name] = fromPod !== undefined ? String(POD[fromPod as keyof typeof POD]) : argoResolve(String(e.value), hook, tmpl, GLOBALS);
  }
  Object.assign(env, envOverride);
  const [cmd, ...cmdArgs] = [...container.command, ...container.args.map((a) => argoResolve(a, hook, tmpl, GLOBALS))];
  return new Promise((resolve, reject) => {
    const child = spawn(String(cmd), cmdArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the container notifier (curl), run under sh', () => {
  it('sends every contract field form-encoded, with a token the callback verifies for this run', async () => {
    received = [];
    status = 202;
    const wf = inject({}, (input) => {
      const t = input.spec?.templates?.find((x) => x.name === 'create-test-artifact');
      (t?.metadata?.annotations ?? {})['pipelines.kubeflow.org/task_display_name'] = NASTY;
      // Started by a KFP recurring run: the ScheduledWorkflow owns the Workflow from its creation.
      if (input.metadata) input.metadata.ownerReferences = [{ apiVersion: 'kubeflow.org/v1beta1', kind: 'ScheduledWorkflow', name: 'nightly-artifacts', uid: 'swf-uid', controller: true }];
    });
    const hook = stepHook(wf);
    // Argo resolves the self-status argument before the hook runs.
    const resolved: LifecycleHook = { ...hook, arguments: { parameters: (hook.arguments?.parameters ?? []).map((p) => (p.name === 'nodePhase' ? { ...p, value: 'Failed' } : p)) } };
    const r = await runContainer(wf, resolved);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('callback answered HTTP 202');
    expect(received).toHaveLength(1);
    const [call] = received;
    expect(call?.method).toBe('POST');
    expect(call?.url).toBe(HOOK_PATH);
    expect(call?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.keys(call?.form ?? {})).toEqual([...HOOK_FIELDS]);
    expect(call?.form).toEqual({
      v: '1',
      event: 'node-exit',
      kfpRunId: DEFAULT_RUN_ID,
      namespace: DEFAULT_NAMESPACE,
      workflowName: 'artifact-streaming-test-v1-x7k2p',
      workflowUid: GLOBALS['workflow.uid'],
      hookNodeName: 'artifact-streaming-test-v1-x7k2p.create-test-artifact.onExit(0)',
      nodeTask: 'create-test-artifact',
      nodeDisplayName: NASTY,
      nodePhase: 'Failed',
      workflowStatus: '',
      exitHandlerStatus: '',
      failures: '',
      duration: '',
      pipelineName: 'artifact-streaming-test-v1',
      runName: `nightly ${NASTY}`,
      recurringRunName: 'nightly-artifacts',
    });
    expect(verifyHookToken([hookKey], bearerToken(call?.headers.authorization), { namespace: DEFAULT_NAMESPACE, kfpRunId: DEFAULT_RUN_ID })).toEqual({ ok: true });
  });

  it('exits 0 when the callback refuses the call', async () => {
    received = [];
    status = 401;
    const wf = inject({});
    const r = await runContainer(wf, stepHook(wf));
    expect(received).toHaveLength(1);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('callback answered HTTP 401');
  });

  it('exits 0 when curl itself fails, so a hook can never fail the step', async () => {
    const wf = inject({});
    const r = await runContainer(wf, stepHook(wf), { KFP_NOTIFY_URL: 'unsupported://callback' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('callback call failed; ignored');
    expect(r.stderr).toMatch(/curl: \(1\)/);
  });
});

describe('the HTTP notifier, sent as Argo’s agent would', () => {
  it('posts a form body whose literals survive encoding, with the token header', async () => {
    received = [];
    status = 202;
    const wf = inject({ mode: 'http', argoVersion: '3.5.14' }, (input) => {
      const t = input.spec?.templates?.find((x) => x.name === 'create-test-artifact');
      (t?.metadata?.annotations ?? {})['pipelines.kubeflow.org/task_display_name'] = NASTY;
    });
    const tmpl = notifier(wf);
    const http = tmpl.http as { method: string; url: string; headers: { name: string; value: string }[]; body: string };
    const globals = { ...GLOBALS, 'workflow.namespace': DEFAULT_NAMESPACE, 'workflow.name': 'artifact-streaming-test-v1-x7k2p', 'node.name': 'artifact-streaming-test-v1-x7k2p.create-test-artifact.onExit' };
    const hook = stepHook(wf);
    const res = await fetch(http.url, {
      method: http.method,
      headers: Object.fromEntries(http.headers.map((h) => [h.name, h.value])),
      body: argoResolve(http.body, hook, tmpl, globals),
    });
    expect(res.status).toBe(202);
    const form = received[0]?.form;
    expect(form).toMatchObject({
      v: '1',
      event: 'node-exit',
      kfpRunId: DEFAULT_RUN_ID,
      namespace: DEFAULT_NAMESPACE,
      workflowName: 'artifact-streaming-test-v1-x7k2p',
      nodeTask: 'create-test-artifact',
      nodeDisplayName: NASTY,
      runName: `nightly ${NASTY}`,
      hookNodeName: 'artifact-streaming-test-v1-x7k2p.create-test-artifact.onExit',
    });
    // Free text Argo would paste in unescaped stays out of the body.
    expect(form).not.toHaveProperty('failures');
    expect(verifyHookToken([hookKey], bearerToken(received[0]?.headers.authorization), { namespace: DEFAULT_NAMESPACE, kfpRunId: DEFAULT_RUN_ID })).toEqual({ ok: true });
  });
});
