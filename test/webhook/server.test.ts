import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import jsonpatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import request from 'supertest';
import { pino } from 'pino';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { injectWorkflow, type InjectResult } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import { buildWebhookApp, type Injector, type WebhookApp, type WebhookDeps } from '../../webhook/server.js';
import { admittedWorkflow, reviewFor } from '../helpers/tls.js';

const HOOK_SECRET = 'test-hook-key-0123456789abcdef';

interface Harness {
  app: WebhookApp;
  registry: Registry;
  logs: Record<string, unknown>[];
  options: InjectOptions;
}

const apps: WebhookApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function harness(over: Partial<WebhookDeps> = {}): Promise<Harness> {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const registry = new Registry();
  const options = defaultInjectOptions({ hookKey: hookKeyFromSecret(HOOK_SECRET) });
  const app = buildWebhookApp({ logger, registry, getInjectOptions: () => options, ...over });
  apps.push(app);
  await app.ready();
  return { app, registry, logs, options };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want) && !('le' in v.labels));
  return hit?.value ?? 0;
}

function decodePatch(b64: string): jsonpatch.Operation[] {
  return JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as jsonpatch.Operation[];
}

describe('POST /mutate (app, no TLS)', () => {
  it('answers a real KFP v2 Workflow with its uid and a JSONPatch that yields the injector output', async () => {
    const h = await harness();
    const wf = admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
    const review = reviewFor(wf, { uid: 'uid-v2', namespace: 'team-a' });
    const res = await request(h.app.server).post('/mutate').send(review).expect(200);
    expect(res.body.apiVersion).toBe('admission.k8s.io/v1');
    expect(res.body.kind).toBe('AdmissionReview');
    expect(res.body.response.uid).toBe('uid-v2');
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.patchType).toBe('JSONPatch');
    const patched = jsonpatch.applyPatch(structuredClone(wf), decodePatch(res.body.response.patch), true, false).newDocument;
    const direct = injectWorkflow(structuredClone(wf), { ...h.options, namespace: 'team-a' });
    expect(direct.outcome).toBe('injected');
    expect(patched).toEqual(direct.workflow);
    expect(await metric(h.registry, 'kfp_notify_admission_requests_total', { outcome: 'injected' })).toBe(1);
    const line = h.logs.find((l) => l.msg === 'hooks injected');
    expect(line).toMatchObject({ uid: 'uid-v2', namespace: 'team-a', outcome: 'injected' });
    expect(line?.kfpRunId).toBe((wf.metadata as { labels: Record<string, string> }).labels['pipeline/runid']);
  });

  it('does the same for a KFP v1 pipeline with an exit handler', async () => {
    const h = await harness();
    const wf = admittedWorkflow('kfp-v1-compiler/basic.yaml');
    const res = await request(h.app.server).post('/mutate').send(reviewFor(wf, { namespace: 'kubeflow-user' })).expect(200);
    const patched = jsonpatch.applyPatch(structuredClone(wf), decodePatch(res.body.response.patch), true, false).newDocument;
    expect(patched).toEqual(injectWorkflow(structuredClone(wf), { ...h.options, namespace: 'kubeflow-user' }).workflow);
  });

  it('passes the request namespace and the current options to the injector on every request', async () => {
    const seen: InjectOptions[] = [];
    let callbackUrl = 'http://one.example:8080';
    const base = defaultInjectOptions({ hookKey: hookKeyFromSecret(HOOK_SECRET) });
    const spy: Injector = (input, opts) => {
      seen.push(opts);
      return injectWorkflow(input, opts);
    };
    const h = await harness({ inject: spy, getInjectOptions: () => ({ ...base, callbackUrl }) });
    const wf = admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
    await request(h.app.server).post('/mutate').send(reviewFor(wf, { namespace: 'ns-one' })).expect(200);
    callbackUrl = 'http://two.example:8080';
    await request(h.app.server).post('/mutate').send(reviewFor(wf, { namespace: 'ns-two' })).expect(200);
    expect(seen.map((o) => [o.namespace, o.callbackUrl])).toEqual([
      ['ns-one', 'http://one.example:8080'],
      ['ns-two', 'http://two.example:8080'],
    ]);
  });

  it('admits a Workflow that is not a KFP run unchanged, quietly, and counts the skip', async () => {
    const h = await harness();
    const wf = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow', metadata: { generateName: 'plain-' }, spec: { entrypoint: 'main', templates: [{ name: 'main', container: { image: 'alpine' } }] } };
    const res = await request(h.app.server).post('/mutate').send(reviewFor(wf, { uid: 'uid-plain' })).expect(200);
    expect(res.body.response).toEqual({ uid: 'uid-plain', allowed: true });
    expect(await metric(h.registry, 'kfp_notify_admission_requests_total', { outcome: 'skipped' })).toBe(1);
    expect(await metric(h.registry, 'kfp_notify_admission_skips_total', { reason: 'not_kfp' })).toBe(1);
    const line = h.logs.find((l) => l.msg === 'admitted without hooks (skipped)');
    expect(line).toMatchObject({ uid: 'uid-plain', name: 'plain-*', reasonClass: 'not_kfp' });
    expect(String(line?.reason)).not.toBe('');
  });

  it('warns about a skip that costs the submitter their notifications', async () => {
    const base = defaultInjectOptions({ hookKey: hookKeyFromSecret(HOOK_SECRET) });
    const h = await harness({ getInjectOptions: () => ({ ...base, sizeLimitBytes: 1000 }) });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'))).expect(200);
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.patch).toBeUndefined();
    expect(res.body.response.warnings).toEqual([expect.stringMatching(/^kfp-notify: hooks not injected: too large after injection: \d+ bytes > size limit 1000 bytes/)]);
    expect(await metric(h.registry, 'kfp_notify_admission_skips_total', { reason: 'size_limit' })).toBe(1);
  });

  it('skips an UPDATE without calling the injector', async () => {
    let calls = 0;
    const h = await harness({ inject: (input, opts) => (calls++, injectWorkflow(input, opts)) });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'), { operation: 'UPDATE' })).expect(200);
    expect(res.body.response.patch).toBeUndefined();
    expect(calls).toBe(0);
    expect(await metric(h.registry, 'kfp_notify_admission_skips_total', { reason: 'not_create' })).toBe(1);
  });

  it('fails open when the injector throws: allowed, no patch, a warning, a log line, a metric', async () => {
    const boom: Injector = () => {
      throw new TypeError('cannot read properties of undefined');
    };
    const h = await harness({ inject: boom });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'), { uid: 'uid-boom' })).expect(200);
    expect(res.body.response.uid).toBe('uid-boom');
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.patch).toBeUndefined();
    expect(res.body.response.patchType).toBeUndefined();
    expect(res.body.response.warnings).toEqual(['kfp-notify: hooks not injected: internal error (see webhook logs)']);
    expect(await metric(h.registry, 'kfp_notify_admission_requests_total', { outcome: 'failed_open' })).toBe(1);
    expect(await metric(h.registry, 'kfp_notify_admission_failed_open_total', { cause: 'error' })).toBe(1);
    const line = h.logs.find((l) => l.msg === 'admitted without hooks (failed open)');
    expect(line).toMatchObject({ level: 50, uid: 'uid-boom', cause: 'error', err: 'cannot read properties of undefined' });
  });

  it('fails open when the injector reports that it caught its own crash', async () => {
    const caught: Injector = (input) => ({ outcome: 'skipped', reason: 'internal error: x is not iterable', workflow: input, patch: [] });
    const h = await harness({ inject: caught });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'))).expect(200);
    expect(res.body.response.patch).toBeUndefined();
    expect(res.body.response.warnings).toEqual(['kfp-notify: hooks not injected: internal error (see webhook logs)']);
    expect(await metric(h.registry, 'kfp_notify_admission_failed_open_total', { cause: 'error' })).toBe(1);
    expect(await metric(h.registry, 'kfp_notify_admission_skips_total', { reason: 'internal_error' })).toBe(0);
    expect(h.logs.find((l) => l.msg === 'admitted without hooks (failed open)')?.err).toBe('internal error: x is not iterable');
  });

  it('fails open when options cannot be loaded', async () => {
    const h = await harness({
      getInjectOptions: () => {
        throw new Error('hook key file vanished');
      },
    });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'))).expect(200);
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.patch).toBeUndefined();
    expect(await metric(h.registry, 'kfp_notify_admission_failed_open_total', { cause: 'error' })).toBe(1);
    const ready = await request(h.app.server).get('/readyz').expect(503);
    expect(ready.body.failing['injector-config']).toBe('hook key file vanished');
  });

  it('fails open when the injector runs past the time budget', async () => {
    let release: () => void = () => undefined;
    const stalled = new Promise<void>((r) => (release = r));
    const slow: Injector = async (input) => {
      await stalled;
      return { outcome: 'injected', workflow: input, patch: [{ op: 'add', path: '/metadata/annotations', value: {} }] } satisfies InjectResult;
    };
    const h = await harness({ inject: slow, timeBudgetMs: 50 });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'), { uid: 'uid-slow' })).expect(200);
    release();
    expect(res.body.response).toEqual({ uid: 'uid-slow', allowed: true, warnings: ['kfp-notify: hooks not injected: injection took longer than 50 ms'] });
    expect(await metric(h.registry, 'kfp_notify_admission_failed_open_total', { cause: 'timeout' })).toBe(1);
    expect(h.logs.find((l) => l.msg === 'admitted without hooks (failed open)')).toMatchObject({ cause: 'timeout', budgetMs: 50 });
  });

  it('drops the patch of a synchronous injector that finishes past the time budget', async () => {
    const busy: Injector = (input) => {
      const until = Date.now() + 80;
      while (Date.now() < until) {
        // a synchronous injector cannot be raced: it only returns when done
      }
      return { outcome: 'injected', workflow: input, patch: [{ op: 'add', path: '/metadata/annotations', value: {} }] } satisfies InjectResult;
    };
    const h = await harness({ inject: busy, timeBudgetMs: 20 });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'), { uid: 'uid-busy' })).expect(200);
    expect(res.body.response).toEqual({ uid: 'uid-busy', allowed: true, warnings: ['kfp-notify: hooks not injected: injection took longer than 20 ms'] });
    expect(await metric(h.registry, 'kfp_notify_admission_failed_open_total', { cause: 'timeout' })).toBe(1);
  });

  it('fails open when the injector returns something that is not a result', async () => {
    const h = await harness({ inject: () => ({ outcome: 'injected', workflow: {} }) as unknown as InjectResult });
    const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'))).expect(200);
    expect(res.body.response.patch).toBeUndefined();
    expect(res.body.response.warnings).toHaveLength(1);
  });
});

describe('POST /mutate with bad bodies', () => {
  // [ what, content type, body, words in the message ]
  it.each([
    ['not JSON', 'application/json', '{"apiVersion": "admission.k8s.io/v1", ', 'not valid JSON'],
    ['an empty JSON body', 'application/json', '', 'body is empty'],
    ['YAML', 'application/yaml', 'apiVersion: admission.k8s.io/v1\n', 'content-type must be application/json, got "application/yaml"'],
    ['plain text', 'text/plain', 'hello', 'content-type must be application/json'],
    ['a JSON list', 'application/json', '[]', 'body must be a JSON object'],
    ['a Pod', 'application/json', JSON.stringify({ apiVersion: 'v1', kind: 'Pod' }), 'kind must be "AdmissionReview"'],
    ['a v1beta1 review', 'application/json', JSON.stringify({ ...reviewFor({}), apiVersion: 'admission.k8s.io/v1beta1' }), 'admissionReviewVersions'],
    ['a review without uid', 'application/json', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } }), 'request.uid'],
    ['a __proto__ key', 'application/json', '{"apiVersion":"admission.k8s.io/v1","__proto__":{"polluted":true}}', 'not valid JSON'],
  ])('answers %s with 400 and the reason', async (_what, contentType, body, words) => {
    const h = await harness();
    // The apiserver appends its timeout to the webhook URL.
    const res = await request(h.app.server).post('/mutate?timeout=5s').set('content-type', contentType).send(body);
    expect(res.status).toBe(400);
    expect(res.body.message).toContain(words);
    expect(await metric(h.registry, 'kfp_notify_admission_requests_total', { outcome: 'invalid' })).toBe(1);
  });

  it('answers a body without a content type with 400 and the reason', async () => {
    const h = await harness();
    const res = await h.app.inject({ method: 'POST', url: '/mutate', payload: Buffer.from(JSON.stringify(reviewFor({}))), headers: { 'content-type': '' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ statusCode: 400, error: 'Bad Request', message: 'content-type must be application/json, got none' });
  });

  it('answers 413 past the body limit, naming the limit', async () => {
    const h = await harness({ bodyLimitBytes: 4096 });
    const wf = admittedWorkflow('kfp-v1-compiler/parallelfor_item_argument_resolving.yaml');
    const res = await request(h.app.server).post('/mutate').send(reviewFor(wf));
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ statusCode: 413, error: 'Payload Too Large', message: 'body is larger than the 4096-byte limit' });
  });

  it('does not route GET /mutate', async () => {
    const h = await harness();
    await request(h.app.server).get('/mutate').expect(404);
  });
});

describe('ops routes', () => {
  it('serves /healthz, /readyz and /metrics with the admission metrics', async () => {
    const h = await harness();
    await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v2-compiled-workflows-master/pipeline_with_loops.yaml'))).expect(200);
    expect((await request(h.app.server).get('/healthz').expect(200)).body).toEqual({ status: 'ok' });
    expect((await request(h.app.server).get('/readyz').expect(200)).body).toEqual({ status: 'ready' });
    const text = (await request(h.app.server).get('/metrics').expect(200)).text;
    expect(text).toContain('kfp_notify_admission_requests_total{outcome="injected"} 1');
    expect(text).toMatch(/kfp_notify_admission_duration_seconds_count\{outcome="injected"\} 1/);
    expect(text).toMatch(/kfp_notify_admission_patch_bytes_count 1/);
    expect(text).toContain('# TYPE kfp_notify_webhook_cert_reloads_total counter');
  });

  it('can share one registry with a second app (as `serve` does)', async () => {
    const registry = new Registry();
    await harness({ registry });
    await expect(harness({ registry })).resolves.toBeDefined();
  });

  it('never writes the hook key to its logs', async () => {
    const h = await harness();
    await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v2-argocompiler-2.5.0/exit_handler.yaml'))).expect(200);
    expect(h.logs.length).toBeGreaterThan(0);
    const all = JSON.stringify(h.logs);
    expect(all).not.toContain(HOOK_SECRET);
    expect(all).not.toContain(h.options.hookKey.secret.toString('base64'));
  });
});

// The CLI's default: parse and inject on a worker thread (the compiled one: test/global-setup.ts builds dist/).
describe('POST /mutate on an inject worker thread (real worker thread)', () => {
  const onThread = { injectThreads: 1, injectWorkerUrl: new URL('../../dist/webhook/admit-worker.js', import.meta.url) };

  it('answers a real KFP v2 Workflow with the patch the injector makes, logged and counted as on the event loop', async () => {
    const h = await harness(onThread);
    const wf = admittedWorkflow('kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml');
    const res = await request(h.app.server).post('/mutate?timeout=5s').send(reviewFor(wf, { uid: 'uid-thread', namespace: 'team-b' })).expect(200);
    expect(res.body.response).toMatchObject({ uid: 'uid-thread', allowed: true, patchType: 'JSONPatch' });
    const patched = jsonpatch.applyPatch(structuredClone(wf), decodePatch(res.body.response.patch), true, false).newDocument;
    expect(patched).toEqual(injectWorkflow(structuredClone(wf), { ...h.options, namespace: 'team-b' }).workflow);
    expect(h.logs.find((l) => l.msg === 'hooks injected')).toMatchObject({ uid: 'uid-thread', namespace: 'team-b', outcome: 'injected' });
    expect(await metric(h.registry, 'kfp_notify_admission_requests_total', { outcome: 'injected' })).toBe(1);
  });

  it.each([
    ['not JSON', '{"apiVersion": "admission.k8s.io/v1", ', 'not valid JSON'],
    ['an empty JSON body', '', 'body is empty'],
    ['a __proto__ key', '{"apiVersion":"admission.k8s.io/v1","__proto__":{"polluted":true}}', 'not valid JSON'],
    ['a Pod', JSON.stringify({ apiVersion: 'v1', kind: 'Pod' }), 'kind must be "AdmissionReview"'],
  ])('answers %s with 400 and the reason', async (_what, body, words) => {
    const h = await harness(onThread);
    const res = await request(h.app.server).post('/mutate').set('content-type', 'application/json').send(body);
    expect(res.status).toBe(400);
    expect(res.body.message).toContain(words);
    expect(await metric(h.registry, 'kfp_notify_admission_requests_total', { outcome: 'invalid' })).toBe(1);
  });

  it('fails open what a dying worker held and counts the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-dying-worker-'));
    try {
      const file = join(dir, 'dies.mjs');
      writeFileSync(file, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => { if (m.type === 'admit') process.exit(7); });\nparentPort.postMessage({ type: 'ready' });\n");
      const h = await harness({ injectThreads: 1, injectWorkerUrl: pathToFileURL(file) });
      const res = await request(h.app.server).post('/mutate').send(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'), { uid: 'uid-dies' })).expect(200);
      expect(res.body.response).toEqual({ uid: 'uid-dies', allowed: true, warnings: ['kfp-notify: hooks not injected: internal error (see webhook logs)'] });
      expect(await metric(h.registry, 'kfp_notify_inject_worker_restarts_total', { reason: 'exit' })).toBe(1);
      expect(await metric(h.registry, 'kfp_notify_admission_failed_open_total', { cause: 'error' })).toBe(1);
      expect(h.logs.find((l) => l.msg === 'admitted without hooks (failed open)')).toMatchObject({ uid: 'uid-dies', err: 'inject worker exited (code 7)' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a stand-in injector: only the real one runs on a thread', async () => {
    await expect(harness({ ...onThread, inject: injectWorkflow })).rejects.toThrow('a stand-in injector cannot run on inject worker threads');
  });
});
