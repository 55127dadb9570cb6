import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { hookKeyFromSecret, mintHookToken, newHookKeySecret, type HookKey } from '../../../common/hook-token.js';
import { silentLogger } from '../../../common/logger.js';
import { buildApp } from '../../../callback/app.js';
import { eventId } from '../../../callback/event-id.js';
import type { Subscriber, WorkflowSnapshot } from '../../../callback/types.js';
import { httpSubscriber, newSigningSecret, startEngine, type Engine } from './harness.js';
import { answer, startReceiver, until, type Receiver } from './receiver.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const KEY: HookKey = hookKeyFromSecret(newHookKeySecret());

/** What an injected node-exit hook sends for a step that succeeded. */
function nodeExit(over: Record<string, string> = {}): Record<string, string> {
  return {
    v: '1',
    event: 'node-exit',
    kfpRunId: 'run-1',
    namespace: 'kubeflow-user',
    workflowName: 'hello-abc',
    workflowUid: 'uid-1',
    hookNodeName: 'hello-abc.train.onExit',
    nodeTask: 'train',
    nodeDisplayName: 'train',
    nodePhase: 'Succeeded',
    pipelineName: 'hello',
    runName: 'run one',
    ...over,
  };
}

function tokenFor(fields: Record<string, string>, key: HookKey = KEY): string {
  return mintHookToken(key, { namespace: fields.namespace ?? '', kfpRunId: fields.kfpRunId ?? '' });
}

function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

describe('callback app: POST /v1/hooks and the admin API (real SQLite store, real worker, real subscriber)', () => {
  let rx: Receiver;
  let engine: Engine;
  let app: FastifyInstance;
  let subscribers: Subscriber[];
  let enrich: ((ns: string, name: string) => Promise<WorkflowSnapshot | undefined>) | undefined;
  /** What the subscriber answers right now. */
  let status: number;
  const secret = newSigningSecret();

  beforeEach(async () => {
    status = 200;
    rx = await startReceiver((_got, res) => res.writeHead(status).end());
    subscribers = [httpSubscriber('ops', rx.url, { signingKeys: [secret], headers: { authorization: 'Bearer subscriber-secret' } })];
    engine = startEngine(subscribers);
    enrich = undefined;
    app = buildApp({
      log: silentLogger(),
      hookKeys: [KEY],
      adminToken: ADMIN,
      ingest: engine.ingest,
      store: engine.store,
      subscribers: () => subscribers,
      notify: (names) => engine.worker.notify(names),
      enrich: (ns, name) => (enrich ? enrich(ns, name) : Promise.resolve(undefined)),
      registry: engine.registry,
      metrics: engine.metrics,
      readiness: [{ name: 'worker', check: () => (engine.worker.running() ? undefined : 'stopped') }],
    });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
    await engine.close();
    await rx.close();
  });

  function hook(fields: Record<string, string>, opts: { token?: string | null; body?: string; type?: string } = {}) {
    const token = opts.token === undefined ? tokenFor(fields) : opts.token;
    return app.inject({
      method: 'POST',
      url: HOOK_PATH,
      headers: { 'content-type': opts.type ?? 'application/x-www-form-urlencoded', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      payload: opts.body ?? form(fields),
    });
  }
  const admin = (method: 'GET' | 'POST', url: string, payload?: unknown, token: string | null = ADMIN) =>
    app.inject({ method, url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });

  it('a form-encoded hook call is kept, answered 202 with its event id, and delivered', async () => {
    const res = await hook(nodeExit());
    expect(res.statusCode).toBe(202);
    const id = eventId({ kfpRunId: 'run-1', argoNodeName: 'hello-abc.train', eventType: 'WorkflowNodeSucceeded' });
    expect(res.json()).toEqual({ eventIds: [id], duplicates: [] });
    await until(() => rx.received.length === 1, 'the delivery');
    expect(rx.received[0]?.headers['webhook-id']).toBe(id);
    expect(JSON.parse(rx.received[0]?.body ?? '{}')).toMatchObject({ KfpRunId: 'run-1', NodeName: 'train', EventType: 'WorkflowNodeSucceeded' });
  });

  it('the same call again (a retried hook) is a duplicate: 202, no second delivery', async () => {
    const first = await hook(nodeExit());
    const again = await hook(nodeExit());
    expect(again.statusCode).toBe(202);
    expect(again.json().duplicates).toEqual(first.json().eventIds);
    await until(async () => Object.keys(await engine.store.queueDepth()).length === 0, 'the delivery to settle');
    expect(rx.received).toHaveLength(1);
  });

  it('the same fields as JSON are accepted', async () => {
    const fields = nodeExit({ kfpRunId: 'run-json' });
    const res = await hook(fields, { type: 'application/json', body: JSON.stringify(fields) });
    expect(res.statusCode).toBe(202);
    expect(res.json().eventIds).toHaveLength(1);
  });

  it.each([
    { what: 'no token', token: null, status: 401, reason: 'missing bearer token' },
    { what: 'a malformed token', token: 'not-a-token', status: 401, reason: 'malformed hook token' },
    { what: 'a token from another key (forged)', token: tokenFor(nodeExit(), hookKeyFromSecret(newHookKeySecret())), status: 403, reason: 'unknown key' },
    { what: 'a forged MAC under our key id', token: `kn1.${KEY.kid}.${'A'.repeat(43)}`, status: 403, reason: 'does not match' },
    { what: 'another run’s token', token: tokenFor(nodeExit({ kfpRunId: 'run-2' })), status: 403, reason: 'does not match this namespace and run id' },
    { what: 'another namespace’s token', token: tokenFor(nodeExit({ namespace: 'other' })), status: 403, reason: 'does not match' },
  ])('refuses $what with $status and a reason, and keeps nothing', async ({ token, status, reason }) => {
    const res = await hook(nodeExit(), { token });
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toContain(reason);
    expect(await engine.store.queueDepth()).toEqual({});
  });

  it.each([
    { what: 'an unsupported content type', opts: { type: 'text/plain', body: 'hello' }, status: 415, reason: 'unsupported content type' },
    { what: 'invalid JSON', opts: { type: 'application/json', body: '{"v":' }, status: 400, reason: 'JSON' },
    { what: 'a JSON list', opts: { type: 'application/json', body: '[1,2]' }, status: 400, reason: 'body must be a JSON object' },
    { what: 'a field given twice', opts: { body: `${form(nodeExit())}&event=node-exit` }, status: 400, reason: 'field event appears more than once' },
    { what: 'a body over 1 MiB', opts: { body: `${form(nodeExit())}&pad=${'x'.repeat(1024 * 1024)}` }, status: 413, reason: 'body larger than' },
  ])('answers $what with $status and a reason', async ({ opts, status, reason }) => {
    const res = await hook(nodeExit(), opts);
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toContain(reason);
  });

  it('passes on the normalizer’s 400 and 422 reasons', async () => {
    const bad = await hook(nodeExit({ event: 'node-started' }));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toContain('event must be one of');
    const unknowable = await hook(nodeExit({ nodePhase: '' }));
    expect(unknowable.statusCode).toBe(422);
    expect(unknowable.json().error).toContain('nodePhase empty');
  });

  it('fetches the Workflow when the call lacks the node phase, and uses it', async () => {
    const asked: string[] = [];
    enrich = async (ns, name) => {
      asked.push(`${ns}/${name}`);
      return { uid: 'uid-1', nodes: { 'hello-abc.train': { phase: 'Failed', message: 'OOMKilled' } }, annotations: {}, labels: {}, terminated: false };
    };
    const res = await hook(nodeExit({ nodePhase: '' }));
    expect(res.statusCode).toBe(202);
    expect(asked).toEqual(['kubeflow-user/hello-abc']);
    await until(() => rx.received.length === 1, 'the delivery');
    expect(JSON.parse(rx.received[0]?.body ?? '{}')).toMatchObject({ EventType: 'WorkflowNodeFailed', Message: 'Failed node hello-abc.train: train: OOMKilled' });
  });

  it('a failing Workflow lookup does not fail a call whose fields suffice', async () => {
    enrich = async () => {
      throw new Error('apiserver down');
    };
    expect((await hook(nodeExit({ nodePhase: 'Failed' }))).statusCode).toBe(202);
  });

  it('a store that cannot keep the event answers 503 (so the hook retries), never 2xx', async () => {
    await engine.store.close();
    const res = await hook(nodeExit());
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json().error).toContain('store unavailable');
  });

  it('admin routes need the admin token', async () => {
    expect((await admin('GET', '/v1/dead-letters', undefined, null)).statusCode).toBe(401);
    expect((await admin('GET', '/v1/dead-letters', undefined, 'wrong-token')).statusCode).toBe(403);
    expect((await admin('POST', '/v1/subscribers/ops/enable', undefined, 'wrong-token')).statusCode).toBe(403);
    expect((await admin('GET', '/v1/subscribers', undefined, tokenFor(nodeExit()))).statusCode).toBe(403);
  });

  it('dead letters are listed and replayed through the API', async () => {
    subscribers[0] = httpSubscriber('ops', rx.url, { retry: { schedule: [], jitter: 0 } });
    engine.worker.setSubscribers(subscribers);
    status = 500;
    await hook(nodeExit());
    await until(async () => (await engine.store.listDeadLetters()).length === 1, 'the dead letter');

    const list = await admin('GET', '/v1/dead-letters?subscriber=ops');
    expect(list.statusCode).toBe(200);
    const [dl] = list.json().deadLetters;
    expect(dl).toMatchObject({ subscriber: 'ops', attempts: 1, lastStatus: 500, event: { KfpRunId: 'run-1' } });
    // A name neither configured nor holding dead letters is a 404 with the reason, not an empty list.
    const nobody = await admin('GET', '/v1/dead-letters?subscriber=nobody');
    expect([nobody.statusCode, nobody.json()]).toEqual([404, { error: 'no subscriber named "nobody"' }]);
    // Filters: by run, by the time it died (ISO 8601 or ms), all at once.
    const count = async (query: string) => (await admin('GET', `/v1/dead-letters?${query}`)).json().deadLetters.length;
    expect(await count('run=run-1')).toBe(1);
    expect(await count('run=run-2')).toBe(0);
    expect(await count(`since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}&subscriber=ops`)).toBe(1);
    expect(await count(`until=${Date.now() - 60_000}`)).toBe(0);
    expect((await admin('GET', '/v1/dead-letters?since=yesterday')).json()).toEqual({ error: 'since must be an ISO 8601 time or milliseconds since the epoch' });
    expect((await admin('POST', '/v1/dead-letters/replay', { filter: {} })).statusCode).toBe(400);
    expect((await admin('POST', '/v1/dead-letters/replay', { filter: { run: 'run-2' } })).json()).toEqual({ replayed: 0, ids: [], notFound: [] });
    expect((await admin('POST', '/v1/dead-letters/replay', { subscriber: 'nobody' })).statusCode).toBe(404);
    expect((await admin('POST', '/v1/dead-letters/replay', { ids: [424242] })).json()).toEqual({ replayed: 0, ids: [], notFound: [424242] });

    expect((await admin('POST', '/v1/dead-letters/replay', {})).statusCode).toBe(400);
    expect((await admin('POST', '/v1/dead-letters/replay', { ids: [dl.id], all: true })).statusCode).toBe(400);
    expect((await admin('POST', '/v1/dead-letters/replay', { ids: ['x'] })).statusCode).toBe(400);
    status = 200;
    const replay = await admin('POST', '/v1/dead-letters/replay', { ids: [dl.id] });
    expect(replay.json()).toEqual({ replayed: 1, ids: [dl.id], notFound: [] });
    await until(() => rx.received.length === 2, 'the replayed delivery');
    expect(rx.received.map((r) => r.headers['webhook-id'])).toEqual([dl.eventId, dl.eventId]);
    expect((await admin('GET', '/v1/dead-letters')).json().deadLetters).toEqual([]);
  });

  it('lists subscribers with filters and disabled state but never their secrets', async () => {
    await engine.store.disable('ops', 'HTTP 410 Gone', Date.now());
    const res = await admin('GET', '/v1/subscribers');
    expect(res.statusCode).toBe(200);
    const [ops] = res.json().subscribers;
    expect(ops).toMatchObject({ name: 'ops', type: 'http', endpoint: new URL(rx.url).origin, signed: true, disabled: { reason: 'HTTP 410 Gone' } });
    expect(res.body).not.toContain(secret);
    expect(res.body).not.toContain('subscriber-secret');
    expect(res.body).not.toContain('/hook');
  });

  it('re-enabling a disabled subscriber resumes its deliveries', async () => {
    await engine.store.disable('ops', 'HTTP 410 Gone', Date.now());
    await hook(nodeExit({ kfpRunId: 'run-while-disabled' }));
    expect(await engine.store.listDeadLetters({ subscriber: 'ops' })).toHaveLength(1);
    const res = await admin('POST', '/v1/subscribers/ops/enable');
    expect(res.json()).toEqual({ name: 'ops', enabled: true, wasDisabled: true });
    expect((await admin('POST', '/v1/subscribers/nobody/enable')).statusCode).toBe(404);
    await hook(nodeExit({ kfpRunId: 'run-after' }));
    await until(() => rx.received.length === 1, 'the delivery after enabling');
    expect(JSON.parse(rx.received[0]?.body ?? '{}').KfpRunId).toBe('run-after');
  });

  it('serves /healthz, /readyz and /metrics with the callback counters', async () => {
    await hook(nodeExit());
    await hook(nodeExit());
    await hook(nodeExit(), { token: null });
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    // The queue gauge is sampled when scraped: wait for the delivery (and its mark) to settle first.
    await until(() => rx.received.length === 1, 'the delivery');
    let text = '';
    await until(async () => {
      text = (await app.inject({ url: '/metrics' })).body;
      return text.includes('kfp_notify_queue_depth{subscriber="ops"} 0');
    }, 'an empty queue');
    expect(text).toContain('kfp_notify_events_received_total{type="WorkflowNodeSucceeded",source="hook"} 1');
    expect(text).toContain('kfp_notify_event_duplicates_total{source="hook"} 1');
    expect(text).toContain('kfp_notify_hook_calls_total{code="202"} 2');
    expect(text).toContain('kfp_notify_hook_calls_total{code="401"} 1');
    expect(text).toContain('kfp_notify_queue_depth{subscriber="ops"} 0');
    expect(text).toContain('kfp_notify_subscriber_disabled{subscriber="ops"} 0');
    await engine.worker.stop();
    const ready = await app.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().failing).toEqual({ worker: 'stopped' });
  });
});
