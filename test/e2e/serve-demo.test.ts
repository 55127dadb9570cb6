import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonPatch from 'fast-json-patch';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDocuments } from '../../common/yaml-docs.js';
import { admit } from '../../cli/demo/admit.js';
import { hookPod } from '../../cli/demo/hook-request.js';
import { asCreatedByKfp } from '../../cli/demo/kfp-api-server.js';
import { simulateRun } from '../../cli/demo/simulate-run.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';
import { until } from '../callback/engine/receiver.js';
import { BIN, runCli } from '../helpers/cli.js';

const EXAMPLES = new URL('../../examples/workflows/', import.meta.url);

describe('kfp-notify demo (process)', () => {
  it('admits the example, plays its run and prints every delivery, signatures verified', async () => {
    const r = await runCli(['demo'], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // 5 hook calls → 5 events, each to two subscribers, the run's end also as a CloudEvent.
    expect(r.stdout).toContain('5 hook calls');
    expect(r.stdout).toContain('4. Deliveries (11):');
    expect(r.stdout.match(/signature verified/g)).toHaveLength(5);
    expect(r.stdout).not.toContain('SIGNATURE INVALID');
    expect(r.stdout).toMatch(/legacy-handler\s+WorkflowNodeFailed\s+fail-op/);
    expect(r.stdout).toMatch(/run-completions\s+org\.kubeflow\.pipelines\.run-completion/);
  });

  it('plays another failing step and a v1 pipeline on request', async () => {
    const r = await runCli(['demo', '-f', new URL('v1-exit-handler.yaml', EXAMPLES).pathname, '--fail', 'save'], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('(KFP v1)');
    expect(r.stdout).toMatch(/legacy-handler\s+WorkflowNodeFailed\s+save/);
    expect(r.stdout).toMatch(/team-webhook\s+WorkflowFailed/);
  });

  it('exits 2 on a bad flag', async () => {
    const r = await runCli(['demo', '--mode', 'carrier-pigeon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--mode must be container or http');
  });
});

describe('kfp-notify serve (process)', () => {
  let child: ChildProcess | undefined;
  let dir = '';
  afterEach(() => {
    child?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the webhook and the callback on loopback: an admitted workflow’s hook call reaches the log subscriber', async () => {
    dir = mkdtempSync(join(tmpdir(), 'kfp-notify-serve-'));
    const proc = spawn(process.execPath, [BIN, 'serve', '--data-dir', dir, '--callback-port', '0', '--webhook-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await until(() => stderr.includes('Ctrl-C stops both'), 'serve to start', 20_000);
    const webhookUrl = /webhook (https:\/\/127\.0\.0\.1:\d+)\/mutate/.exec(stderr)?.[1] ?? '';
    expect(webhookUrl).not.toBe('');
    const dashboard = /dashboard (http:\/\/127\.0\.0\.1:\d+\/ui\/) \(log in with the admin token\)/.exec(stderr)?.[1] ?? '';
    const login = await fetch(dashboard);
    expect([login.status, await login.text()]).toEqual([200, expect.stringContaining('action="/ui/login"')]);
    expect(readFileSync(join(dir, 'hook-secrets.json'), 'utf8').trim()).toBe('{}');

    const compiled = parseDocuments(readFileSync(new URL('pipeline_with_exit_handler.yaml', EXAMPLES), 'utf8'))[0] as Workflow;
    const created = asCreatedByKfp(compiled, { runId: 'serve-run-1', runName: 'serve test', namespace: 'team-a' });
    const { patch } = await admit(webhookUrl, readFileSync(join(dir, 'webhook-tls.crt'), 'utf8'), created, 'team-a');
    const injected = jsonPatch.applyPatch(structuredClone(created), patch, false, false).newDocument as Workflow;
    const [running] = simulateRun(injected, { workflowName: 'pwe-serve1', workflowUid: 'u-serve-1', namespace: 'team-a' }).firings;
    if (!running) throw new Error('no running hook');
    const pod = hookPod(injected, running);
    const [cmd, ...args] = pod.command;
    const code = await new Promise<number | null>((resolve) => spawn(String(cmd), args, { env: { PATH: process.env.PATH ?? '', ...pod.env } }).on('close', resolve));
    expect(code).toBe(0);
    await until(() => stdout.includes('"EventType":"WorkflowRunning"'), 'the log subscriber to print the event');
    const line = stdout.split('\n').find((l) => l.includes('"EventType":"WorkflowRunning"')) ?? '';
    expect(JSON.parse(line).event).toMatchObject({ KfpRunId: 'serve-run-1', WorkflowName: 'pwe-serve1', Namespace: 'team-a' });

    proc.kill('SIGTERM');
    const exit = await new Promise<number | null>((resolve) => proc.on('close', resolve));
    expect(exit).toBe(0);
  });

  it('exits 2 on a bad flag', async () => {
    const r = await runCli(['serve', '--webhook-port', 'ninety']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--webhook-port must be an integer');
  });
});
