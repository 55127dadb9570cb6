import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsonPatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { createLogger, silentLogger, type Logger } from '../common/logger.js';
import { fixedSubscribers, startCallback, type CallbackRuntime } from '../callback/runtime.js';
import { verify } from '../callback/signing.js';
import { parseSubscribers } from '../callback/subscribers/parse.js';
import { kfpFlavour } from '../common/kfp/kfp-steps.js';
import { callbackUrlProblem, STEP_HOOK_POLICIES, defaultInjectOptions, type StepHooks } from '../webhook/inject/options.js';
import { startClusterServices } from '../callback/cluster/services.js';
import { factsFromWorkflow } from '../callback/status-events.js';
import { argoStatus } from './demo/argo-status.js';
import { startWorkflowApiServer, type WorkflowApiServer } from './demo/workflow-api-server.js';
import type { Workflow } from '../common/kfp/workflow-types.js';
import { ensureSelfSignedCert } from '../webhook/self-signed.js';
import { startWebhookServer, type RunningWebhook } from '../webhook/server.js';
import { loadHookKeys, resolveDataDir } from '../common/data-dir.js';
import { admit } from './demo/admit.js';
import { checkFailTasks, loadDemoWorkflow } from './demo/input.js';
import { asCreatedByKfp } from './demo/kfp-api-server.js';
import { hookRequest } from './demo/hook-request.js';
import { simulateRun, type HookFiring } from './demo/simulate-run.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, parseOrExit, type CliIo, type Command, strictParse } from './io.js';
import { errorMessage } from '../common/error-message.js';

const DEFAULT_WORKFLOW = fileURLToPath(new URL('../../examples/workflows/pipeline_with_exit_handler.yaml', import.meta.url));

const USAGE = `Usage: kfp-notify demo [options]

Shows the whole path on this machine, no cluster needed: starts the callback and the webhook on
loopback, admits a real KFP workflow through the webhook (HTTPS, AdmissionReview), plays its run as
Argo would (the hook calls it makes, and its status as Argo's controller writes it, which the
callback's status watcher reads from a local stand-in for the Kubernetes API), and prints what three
local subscribers receive.

Options:
  -f FILE          a compiled KFP workflow (default: examples/workflows/pipeline_with_exit_handler.yaml)
  --fail STEP      a DAG task that fails in the played run (repeatable; default: fail-op when present)
  --mode M         container (default) or http hook templates
  --step-hooks P   all, failed or none: which step outcomes a hook reports (default failed; the
                   status watcher reports the rest)
  --data-dir D     keep state here (default: a temporary dir, removed afterwards)
  --callback-url U play the hook calls against your own callback at U (e.g. \`kfp-notify serve\` or
                   \`kfp-notify callback\` with your subscribers) instead of a built-in one; its hook
                   key must be in --data-dir (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR, the
                   callback's default). Its subscribers get the events; the demo prints each call's answer
  --verbose        also print the services' JSON logs on stderr
  -h, --help       show this help
`;

/** Long enough that the played hook calls, not the watcher, report what the hooks report. */
const DEMO_WATCH_GRACE_MS = 10_000;

interface InjectedStatus {
  stepHooks?: StepHooks;
  hookedTasks?: string[];
  failureHookedTasks?: string[];
}

const STEP_HOOKS_SAID: Record<StepHooks, string> = {
  all: 'an exit hook on every step',
  failed: 'on every step an exit hook that fires only if the step fails',
  none: 'no step hooks',
};

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface DemoFlags {
  file: string;
  fail?: string[];
  mode: 'container' | 'http';
  stepHooks?: StepHooks;
  dataDir?: string;
  /** Play against this callback instead of starting one (and its local subscribers). */
  callbackUrl?: string;
  verbose: boolean;
}

function parseFlags(args: string[]): DemoFlags | 'help' {
  const v = strictParse({
    args,
    strict: true,
    options: {
      file: { type: 'string', short: 'f' },
      fail: { type: 'string', multiple: true },
      mode: { type: 'string', default: 'container' },
      'step-hooks': { type: 'string' },
      'data-dir': { type: 'string' },
      'callback-url': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
  if (v.help) return 'help';
  if (v.mode !== 'container' && v.mode !== 'http') throw new UsageError(`--mode must be container or http (got ${v.mode})`);
  const callbackUrl = v['callback-url'];
  const urlProblem = callbackUrl !== undefined ? callbackUrlProblem(callbackUrl) : undefined;
  if (urlProblem) throw new UsageError(`--callback-url: ${urlProblem}`);
  // Against the user's callback the data dir is that callback's (it holds the hook key), never a temporary one.
  const dataDir = v['data-dir'] ?? (callbackUrl !== undefined ? resolveDataDir() : undefined);
  if (callbackUrl !== undefined && dataDir !== undefined && !existsSync(join(dataDir, 'hook-key'))) {
    throw new UsageError(`no hook key in ${dataDir}: give --data-dir the data dir of the callback at ${callbackUrl} (it verifies hook tokens with that key)`);
  }
  const stepHooks = v['step-hooks'];
  if (stepHooks !== undefined && !(STEP_HOOK_POLICIES as readonly string[]).includes(stepHooks)) {
    throw new UsageError(`--step-hooks must be one of ${STEP_HOOK_POLICIES.join(', ')} (got ${stepHooks})`);
  }
  return {
    ...(stepHooks !== undefined ? { stepHooks: stepHooks as StepHooks } : {}),
    file: v.file ?? DEFAULT_WORKFLOW,
    ...(v.fail ? { fail: v.fail } : {}),
    mode: v.mode,
    ...(dataDir ? { dataDir } : {}),
    ...(callbackUrl !== undefined ? { callbackUrl: callbackUrl.replace(/\/+$/, '') } : {}),
    verbose: v.verbose,
  };
}

async function startReceiver(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

function describe(r: Received, secret: string): { subscriber: string; event: Record<string, unknown>; note: string } {
  const subscriber = r.path.slice(1);
  const parsed = JSON.parse(r.body) as Record<string, unknown>;
  if (subscriber === 'run-completions') {
    const data = (parsed.data ?? {}) as Record<string, unknown>;
    return { subscriber, event: { EventType: parsed.type, NodeName: '', Message: `status ${String(data.status)}` }, note: 'CloudEvents structured' };
  }
  if (subscriber === 'slack-channel' || subscriber === 'teams-channel') {
    return { subscriber, event: { EventType: chatHeadline(parsed), NodeName: '' }, note: subscriber === 'slack-channel' ? 'Slack Block Kit' : 'Teams Adaptive Card' };
  }
  if (subscriber === 'team-webhook') {
    const signed = verify({ headers: r.headers as Record<string, string>, body: r.body, secrets: [secret], now: Date.now() / 1000 });
    return { subscriber, event: parsed, note: signed ? 'signature verified' : 'SIGNATURE INVALID' };
  }
  return { subscriber, event: parsed, note: 'kfp-event-handler format' };
}

async function runDemo(flags: DemoFlags, io: CliIo): Promise<number> {
  const out = (s = ''): boolean => io.stdout.write(`${s}\n`);
  const dataDir = flags.dataDir ?? mkdtempSync(join(tmpdir(), 'kfp-notify-demo-'));
  const log: Logger = flags.verbose ? createLogger({ level: 'info' }) : silentLogger();
  const compiled = loadDemoWorkflow(flags.file);
  const receiver = await startReceiver();
  const signingSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const { subscribers, errors } = parseSubscribers(
    {
      'team-webhook': { url: `${receiver.url}/team-webhook`, signingKey: { secretKeyRef: { name: 'demo-signing', key: 'key' } } },
      'legacy-handler': `${receiver.url}/legacy-handler`,
      'run-completions': { url: `${receiver.url}/run-completions`, format: 'cloudevents-structured', eventTypes: ['WorkflowSucceeded', 'WorkflowFailed'] },
      ...CHAT_SUBSCRIBERS(receiver.url),
    },
    (ref) => (ref.name === 'demo-signing' && ref.key === 'key' ? signingSecret : undefined),
  );
  if (errors.length > 0) throw new Error(`demo subscribers: ${errors.join('; ')}`);

  let callback: CallbackRuntime | undefined;
  let webhook: RunningWebhook | undefined;
  let workflowApi: WorkflowApiServer | undefined;
  try {
    const registry = new Registry();
    const external = flags.callbackUrl;
    if (!external) {
      // The callback's cluster side, real, against a local stand-in for the Kubernetes API that serves
      // the played Workflow: its status watcher reports what no hook does, as in a cluster.
      workflowApi = await startWorkflowApiServer();
      const cluster = await startClusterServices({ kubeConfig: workflowApi.kubeConfig(), log, registry, watchGraceMs: DEMO_WATCH_GRACE_MS });
      // The address `kubectl port-forward svc/ml-pipeline-ui 8080:80` gives the KFP UI: chat messages link to the run there.
      callback = await startCallback({ dataDir, log, listen: { host: '127.0.0.1', port: 0 }, subscribers: fixedSubscribers(subscribers), registry, cluster, kfpUiUrl: 'http://localhost:8080' });
    }
    // Your callback verifies hook tokens with the key in its data dir: never mint a new one there.
    const hookKey = loadHookKeys({ dataDir, create: !external })[0];
    if (!hookKey) throw new Error('no hook key');
    const cert = await ensureSelfSignedCert(dataDir);
    const callbackUrl = external ?? callback?.url ?? '';
    // Your own callback on a laptop watches no cluster, so every step is put on the hook path there
    // (stepHooks all, as `serve` does without a cluster): its subscribers then see every event.
    const stepHooks = flags.stepHooks ?? (external ? 'all' : undefined);
    const injectOptions = defaultInjectOptions({ hookKey, callbackUrl, mode: flags.mode, ...(stepHooks ? { stepHooks } : {}) });
    webhook = await startWebhookServer({
      host: '127.0.0.1',
      port: 0,
      certFile: cert.certFile,
      keyFile: cert.keyFile,
      logger: log,
      registry: new Registry(),
      getInjectOptions: () => injectOptions,
    });
    out('kfp-notify demo: the whole path on this machine, no cluster');
    out();
    out(`1. ${external ? 'Your callback' : 'Callback'} on ${callbackUrl}, webhook on ${webhook.url} (self-signed certificate in ${dataDir})`);
    if (external) out('   Subscribers: those of your callback');
    else {
      out('   Subscribers (local HTTP endpoints):');
      out('     team-webhook     documented JSON, signed (Standard Webhooks)');
      out('     legacy-handler   a kfp-event-handler "name: URI" line, unchanged');
      out('     run-completions  CloudEvents 1.0 structured, run ends only');
      out('     slack-channel    a Slack incoming webhook body; teams-channel: a Teams Workflows card (failures and run ends)');
    }

    const namespace = 'kubeflow';
    const runId = randomUUID();
    const created = asCreatedByKfp(compiled, { runId, runName: 'demo run', namespace });
    const { patch, warnings } = await admit(webhook.url, readFileSync(cert.certFile, 'utf8'), created, namespace);
    if (patch.length === 0) {
      out(`\nThe webhook left the workflow unchanged: ${warnings.join('; ') || 'not a KFP workflow'}`);
      return EXIT_FAILURE;
    }
    const injected = jsonPatch.applyPatch(structuredClone(created), patch, false, false).newDocument as Workflow;
    const status = JSON.parse(injected.metadata?.annotations?.['kfp-notify.kubeflow.org/status'] ?? '{}') as InjectedStatus;
    const hookedSteps = [...(status.hookedTasks ?? []), ...(status.failureHookedTasks ?? [])].map((t) => t.split('/').pop());
    out();
    out(`2. Admitted ${flags.file.replace(`${process.cwd()}/`, '')} (KFP ${kfpFlavour(created)}) as run ${runId}`);
    out(`   The webhook answered "allowed" with a ${patch.length}-operation JSON Patch: a running hook, an exit handler,`);
    out(`   and ${STEP_HOOKS_SAID[status.stepHooks ?? 'all']} (stepHooks: ${status.stepHooks ?? 'all'})${hookedSteps.length > 0 ? `: ${hookedSteps.join(', ')}` : ''}`);

    const failTasks = flags.fail ?? (JSON.stringify(created).includes('"fail-op"') ? ['fail-op'] : []);
    const workflowName = `${created.metadata?.generateName ?? 'run-'}x7k2p`;
    const workflowUid = randomUUID();
    const run = simulateRun(injected, { workflowName, workflowUid, namespace, failTasks });
    // The Workflow as the cluster holds it once created, and its status as Argo's controller writes it.
    const object = { ...injected, metadata: { ...injected.metadata, name: workflowName, namespace, uid: workflowUid, creationTimestamp: new Date().toISOString() } };
    const startedAt = new Date();
    const finished = { ...object, status: argoStatus(run, workflowName, 'finished', startedAt) };
    const facts = factsFromWorkflow(finished, { now: new Date().toISOString() });
    const watcherOnly = facts.filter((f) => !f.hookExpected);
    out();
    out(`3. Played the run as Argo would (${failTasks.length > 0 ? `${failTasks.join(', ')} fails` : 'every step succeeds'}): its status in 2 updates, ${run.firings.length} hook calls`);
    let accepted = 0;
    const post = async (firing: HookFiring): Promise<void> => {
      const req = hookRequest(injected, firing);
      const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body });
      const answer = (await res.json().catch(() => ({}))) as { eventIds?: string[] };
      accepted += answer.eventIds?.length ?? 0;
      const form = new URLSearchParams(req.body);
      const what = `${form.get('event') ?? ''} ${form.get('nodeDisplayName') || form.get('workflowStatus') || ''}`.trim();
      out(`   hook   ${what.padEnd(34)} → HTTP ${res.status}, ${answer.eventIds?.length ?? 0} event(s)`);
    };
    const isRunningCall = (f: HookFiring) => f.parameters.event === 'workflow-running';
    workflowApi?.apply({ ...object, status: argoStatus(run, workflowName, 'running', startedAt) });
    if (workflowApi) out('   status Running');
    for (const firing of run.firings.filter(isRunningCall)) await post(firing);
    // Argo records a node's end before the pod of its exit hook starts: the status first, then the calls.
    workflowApi?.apply(finished);
    if (workflowApi) out(`   status ${run.phase}: the status watcher reports at once the ${watcherOnly.length} fact(s) no hook reports${watcherOnly.length > 0 ? ` (${watcherOnly.map((f) => f.event.NodeName || f.event.EventType).join(', ')})` : ''}`);
    for (const firing of run.firings.filter((f) => !isRunningCall(f))) await post(firing);

    if (external) {
      out();
      out(`4. ${accepted} event(s) accepted by ${callbackUrl}: your callback delivers them to its subscribers (its log shows each delivery).`);
      return accepted > 0 ? EXIT_OK : EXIT_FAILURE;
    }
    // Every fact of the run (from a hook or the watcher, once) reaches team-webhook and legacy-handler;
    // run ends also reach run-completions, and the chat subscribers the failures and run ends.
    await waitFor(() => {
      const perSub = (s: string) => receiver.received.filter((r) => r.path === `/${s}`).length;
      const chatDue = receiver.received.filter((r) => r.path === '/legacy-handler' && CHAT_EVENT_TYPES.includes(String((JSON.parse(r.body) as { EventType?: unknown }).EventType))).length;
      const chatDone = perSub('slack-channel') >= chatDue && perSub('teams-channel') >= chatDue;
      return perSub('team-webhook') >= facts.length && perSub('legacy-handler') >= facts.length && perSub('run-completions') >= 1 && chatDone;
    }, 15_000);
    out();
    out(`4. Deliveries (${receiver.received.length}):`);
    for (const r of receiver.received) {
      const d = describe(r, signingSecret);
      out(`   ${d.subscriber.padEnd(16)} ${String(d.event.EventType).padEnd(38)} ${String(d.event.NodeName ?? '').padEnd(12)} ${d.note}`);
    }
    const sample = receiver.received.find((r) => r.path === '/legacy-handler' && r.body.includes('WorkflowNodeFailed')) ?? receiver.received[0];
    if (sample) {
      out();
      out(`One delivery, as ${sample.path.slice(1)} received it:`);
      out(JSON.stringify(JSON.parse(sample.body), null, 2));
    }
    for (const chat of ['slack-channel', 'teams-channel']) {
      const got = receiver.received.filter((r) => r.path === `/${chat}`).at(-1);
      if (got) out(`\nThe run's last message, as ${chat} received it:\n${JSON.stringify(JSON.parse(got.body), null, 2)}`);
    }
    out();
    out('Next: `npx kfp-notify serve` runs the same services until Ctrl-C; see the README.');
    return EXIT_OK;
  } finally {
    await webhook?.close();
    await callback?.close();
    await workflowApi?.close();
    await new Promise<void>((resolve) => receiver.server.close(() => resolve()));
    if (!flags.dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

export const command: Command = {
  name: 'demo',
  summary: 'admit a real KFP workflow, play its hook calls, print the deliveries',
  run: async (args, io) => {
    const parsed = parseOrExit('demo', USAGE, io, () => {
      const flags = parseFlags(args);
      if (flags !== 'help') checkFailTasks(loadDemoWorkflow(flags.file), flags.fail ?? []);
      return flags;
    });
    if ('exit' in parsed) return parsed.exit;
    const flags = parsed.flags;
    try {
      return await runDemo(flags, io);
    } catch (err) {
      io.stderr.write(`kfp-notify demo: ${errorMessage(err)}\n`);
      return EXIT_FAILURE;
    }
  },
};

/** The Slack and Teams subscribers the demo adds beside the others (issue 11: events where teams already look). */
const CHAT_EVENT_TYPES = ['WorkflowNodeFailed', 'WorkflowFailed', 'WorkflowSucceeded'];

function CHAT_SUBSCRIBERS(base: string): Record<string, unknown> {
  const eventTypes = CHAT_EVENT_TYPES;
  return { 'slack-channel': { url: `${base}/slack-channel`, format: 'slack', eventTypes }, 'teams-channel': { url: `${base}/teams-channel`, format: 'teams', eventTypes } };
}

/** A chat body's first line: Slack's fallback text, or the Teams card's headline. */
function chatHeadline(body: Record<string, unknown>): string {
  if (typeof body.text === 'string') return body.text.split(' <')[0] ?? '';
  const card = (body.attachments as { content?: { body?: { text?: string }[] } }[] | undefined)?.[0]?.content;
  return card?.body?.[0]?.text ?? '';
}
