import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { startCallbackProcess } from '../callback/engine/process.js';
import { startReceiver, until } from '../callback/engine/receiver.js';
import { BIN, runCli } from '../helpers/cli.js';

const EXAMPLES = new URL('../../examples/workflows/', import.meta.url);

describe('kfp-notify demo (process)', () => {
  it('admits the example, plays its run and prints every delivery, signatures verified', async () => {
    const r = await runCli(['demo'], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // stepHooks failed (the default): 3 hook calls (running, the failed step, the run's end); the status
    // watcher reports the 2 step successes no hook reports. 5 events, each to two subscribers, the
    // run's end also as a CloudEvent, the step failure and the run failure also to Slack and Teams.
    expect(r.stdout).toContain('3 hook calls');
    expect(r.stdout).toContain('the status watcher reports at once the 2 fact(s) no hook reports (print-op-2, print-op)');
    expect(r.stdout).toContain('4. Deliveries (15):');
    expect(r.stdout).toMatch(/slack-channel\s+demo run failed: fail-op: Error \(exit code 1\)\s+Slack Block Kit/);
    expect(r.stdout).toMatch(/teams-channel\s+demo run failed\s+Teams Adaptive Card/);
    expect(r.stdout).toContain("The run's last message, as teams-channel received it:");
    expect(r.stdout.match(/signature verified/g)).toHaveLength(5);
    expect(r.stdout).toMatch(/team-webhook\s+WorkflowNodeSucceeded\s+print-op-2/);
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

  it('--callback-url plays the hook calls against your own callback, whose subscriber gets every event', async () => {
    const rx = await startReceiver();
    const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-demo-external-'));
    const subscribers = join(dir, 'subscribers.yaml');
    writeFileSync(subscribers, `mine: ${rx.url}/mine\n`);
    const cb = await startCallbackProcess(['--data-dir', dir, '--subscribers', subscribers]);
    try {
      const r = await runCli(['demo', '--callback-url', cb.url, '--data-dir', dir], { timeoutMs: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`1. Your callback on ${cb.url}`);
      expect(r.stdout.match(/→ HTTP 202, 1 event\(s\)/g)).toHaveLength(5);
      expect(r.stdout).toContain(`4. 5 event(s) accepted by ${cb.url}`);
      const runId = /as run (\S+)/.exec(r.stdout)?.[1] ?? '';
      await until(() => rx.received.length === 5, 'the five deliveries to your subscriber');
      const events = rx.received.map((x) => JSON.parse(x.body) as { KfpRunId: string; EventType: string });
      expect(new Set(events.map((e) => e.KfpRunId))).toEqual(new Set([runId]));
      expect(events.map((e) => e.EventType).sort()).toEqual(['WorkflowFailed', 'WorkflowNodeFailed', 'WorkflowNodeSucceeded', 'WorkflowNodeSucceeded', 'WorkflowRunning']);
      // A data dir without the callback's hook key is bad input: its tokens would be refused.
      const wrongDir = await runCli(['demo', '--callback-url', cb.url, '--data-dir', join(dir, 'elsewhere')]);
      expect(wrongDir.code).toBe(2);
      expect(wrongDir.stderr).toContain(`no hook key in ${join(dir, 'elsewhere')}`);
      const withPath = await runCli(['demo', '--callback-url', `${cb.url}/v1/hooks`, '--data-dir', dir]);
      expect(withPath.code).toBe(2);
      expect(withPath.stderr).toContain('--callback-url');
    } finally {
      await cb.stop('SIGKILL');
      await rx.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with --step-hooks all, every step reports through its hook and the watcher adds nothing', async () => {
    const r = await runCli(['demo', '--step-hooks', 'all'], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('5 hook calls');
    expect(r.stdout).toContain('the status watcher reports at once the 0 fact(s) no hook reports');
    expect(r.stdout).toContain('4. Deliveries (15):');
  });

  it('exits 2 on a bad flag', async () => {
    const r = await runCli(['demo', '--mode', 'carrier-pigeon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--mode must be container or http');
    const policy = await runCli(['demo', '--step-hooks', 'most']);
    expect(policy.code).toBe(2);
    expect(policy.stderr).toContain('--step-hooks must be one of all, failed, none');
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
    // The files `serve --help` says the data dir holds are the files it wrote.
    const help = (await runCli(['serve', '--help'])).stdout;
    const named = /--data-dir D\s+state: ([^(]+)\(default/s.exec(help)?.[1]?.split(/[,\s]+/).filter(Boolean) ?? [];
    expect(named).toContain('webhook-tls.crt');
    expect(named.filter((f) => !existsSync(join(dir, f)))).toEqual([]);

    const compiled = parseDocuments(readFileSync(new URL('pipeline_with_exit_handler.yaml', EXAMPLES), 'utf8'))[0] as Workflow;
    const created = asCreatedByKfp(compiled, { runId: 'serve-run-1', runName: 'serve test', namespace: 'team-a' });
    const { patch } = await admit(webhookUrl, readFileSync(join(dir, 'webhook-tls.crt'), 'utf8'), created, 'team-a');
    const injected = jsonPatch.applyPatch(structuredClone(created), patch, false, false).newDocument as Workflow;
    // No cluster, so no status watcher: serve keeps every step on the hook path (stepHooks all).
    expect(JSON.parse(injected.metadata?.annotations?.['kfp-notify.kubeflow.org/status'] ?? '{}')).toMatchObject({ stepHooks: 'all' });
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
    expect(r.stderr).toContain('--webhook-port must be a whole number from 0 to 65535, got "ninety"');
  });
});
