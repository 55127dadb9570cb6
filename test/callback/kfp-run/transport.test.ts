import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseOrigin } from '../../../callback/kfp-run/origin.js';
import { createKfpRunTransport } from '../../../callback/kfp-run/transport.js';
import { fixedSubscribers, startCallback, type CallbackRuntime } from '../../../callback/runtime.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { KfpEvent } from '../../../callback/types.js';
import { loadAdminToken } from '../../../common/data-dir.js';
import { cleanups } from '../../helpers/cleanups.js';
import { startFakeKfpApi, type FakeKfpApi } from '../../helpers/fake-kfp-api.js';
import { until } from '../../callback/cluster/until.js';
import { capturingLogger, type LogLine } from '../engine/harness.js';
import { makeEvent } from '../engine/events.js';

// The kfp-run transport inside a real callback runtime (SQLite store, worker, retries, dead letters,
// admin API), against the FAKE KFP API server of test/helpers/fake-kfp-api.ts.

const c = cleanups('kfp-notify-kfp-run-');
afterEach(() => c.run());

interface Setup {
  kfp: FakeKfpApi;
  rt: CallbackRuntime;
  lines: LogLine[];
  dataDir: string;
}

async function setup(kfp: FakeKfpApi, data: Record<string, unknown>, secrets: Record<string, Record<string, string>> = {}): Promise<Setup> {
  const parsed = parseSubscribers(data, (ref) => secrets[ref.name]?.[ref.key]);
  expect(parsed.errors).toEqual([]);
  const dataDir = c.tempDir();
  const { log, lines } = capturingLogger();
  const rt = await startCallback({ dataDir, log, subscribers: fixedSubscribers(parsed.subscribers), shutdownGraceMs: 100 });
  c.push(() => rt.close());
  return { kfp, rt, lines, dataDir };
}

async function fakeKfp(opts: { tokens?: string[] } = {}): Promise<FakeKfpApi> {
  const kfp = await startFakeKfpApi(opts);
  c.push(() => kfp.close());
  return kfp;
}

/** The trigger subscriber: evaluate after train, short retries. */
function evaluateAfterTrain(url: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'kfp-run',
    url,
    eventTypes: ['WorkflowSucceeded'],
    pipelines: ['train'],
    pipeline: 'evaluate',
    experiment: 'chains',
    runName: 'evaluate {{ RunName }}',
    parameters: { upstream_run_id: '{{ KfpRunId }}', epochs: 3 },
    timeout: '2s',
    retry: { schedule: ['20ms', '20ms', '20ms'], jitter: 0 },
    ...over,
  };
}

function trainSucceeded(runId: string, over: Partial<KfpEvent> = {}): KfpEvent {
  return makeEvent({ KfpRunId: runId, EventType: 'WorkflowSucceeded', ArgoNodeName: '', NodeName: '', PipelineName: 'train', RunName: 'train 7', Phase: 'Succeeded', ...over });
}

/** Waits until nothing is queued for anyone: every delivery is delivered or dead. */
async function settled(rt: CallbackRuntime): Promise<void> {
  await until('deliveries to settle', async () => Object.keys(await rt.store.queueDepth()).length === 0);
}

function trainAndEvaluate(kfp: FakeKfpApi) {
  const train = kfp.addPipeline({ displayName: 'train', params: {} });
  const evaluate = kfp.addPipeline({ displayName: 'evaluate', params: { upstream_run_id: 'STRING', epochs: 'NUMBER_INTEGER' } });
  const experimentId = kfp.addExperiment('chains');
  const trainRun = kfp.addRun({ pipelineId: train.pipelineId, versionId: train.versionId, displayName: 'train 7' });
  return { train, evaluate, experimentId, trainRun };
}

describe('kfp-run: a train run that succeeds starts evaluate', () => {
  it('starts exactly one run, named by runName, with the upstream run id, in the newest version, its origin in the description', async () => {
    const kfp = await fakeKfp();
    const { train, evaluate, experimentId, trainRun } = trainAndEvaluate(kfp);
    const newest = kfp.addVersion(evaluate.pipelineId, { displayName: 'evaluate-v2', params: { upstream_run_id: 'STRING', epochs: 'NUMBER_INTEGER' } });
    const { rt } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url) });
    const event = trainSucceeded(trainRun);
    // A step event and another pipeline's success start nothing: the filters decide.
    await rt.ingest([event, trainSucceeded(trainRun, { EventType: 'WorkflowNodeSucceeded', ArgoNodeName: 'x.y', NodeName: 'y' }), trainSucceeded('other', { PipelineName: 'other' })]);
    await settled(rt);
    const started = kfp.runs().filter((r) => r.id !== trainRun);
    expect(started).toHaveLength(1);
    const run = started[0];
    expect(run).toMatchObject({ displayName: 'evaluate train 7', pipelineId: evaluate.pipelineId, versionId: newest, experimentId, parameters: { upstream_run_id: trainRun, epochs: 3 } });
    expect(parseOrigin(run?.description)).toMatchObject({ event: event.EventId, upstreamRun: trainRun, rootRun: trainRun, chain: [train.pipelineId, evaluate.pipelineId] });
    expect(await rt.store.listDeadLetters()).toEqual([]);
  });

  it('uses the named version and finds names that hold + and % (the filter is decoded twice by KFP)', async () => {
    const kfp = await fakeKfp();
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    const odd = kfp.addPipeline({ displayName: 'eval+uate 100%', params: {} });
    kfp.addVersion(evaluate.pipelineId, { displayName: 'later', params: {} });
    const { rt } = await setup(kfp, {
      pinned: evaluateAfterTrain(kfp.url, { pipelineVersion: 'evaluate-v1' }),
      odd: evaluateAfterTrain(kfp.url, { pipeline: 'eval+uate 100%', parameters: {} }),
    });
    await rt.ingest([trainSucceeded(trainRun)]);
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().find((r) => r.pipelineId === evaluate.pipelineId)?.versionId).toBe(evaluate.versionId);
    expect(kfp.runs().filter((r) => r.pipelineId === odd.pipelineId)).toHaveLength(1);
  });

  it('counts a create that timed out after KFP made the run as delivered on the retry: still one run', async () => {
    const kfp = await fakeKfp();
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    kfp.hangNextCreates(1);
    const { rt, lines } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { timeout: '300ms' }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    await until('the retry to find the run', () => lines.some((l) => l.msg === 'KFP run for this event already exists; counted as delivered'));
    await settled(rt);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
    expect(kfp.requests.filter((r) => r === 'POST /apis/v2beta1/runs')).toHaveLength(1);
    expect(await rt.store.listDeadLetters()).toEqual([]);
  });

  it('does not start a second run when a dead letter whose run KFP did make is replayed', async () => {
    const kfp = await fakeKfp();
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    kfp.hangNextCreates(1);
    const { rt, dataDir } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { timeout: '300ms', retry: { schedule: 'none' } }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    const [dead] = await until('the dead letter', async () => {
      const d = await rt.store.listDeadLetters();
      return d.length > 0 && d;
    });
    expect(dead?.lastError).toMatch(/timeout/i);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
    // Replayed through the admin API, as `kfp-notify dlq replay --all` does.
    const res = await rt.app.inject({ method: 'POST', url: '/v1/dead-letters/replay', headers: { authorization: `Bearer ${loadAdminToken({ dataDir })}` }, payload: { all: true } });
    expect(res.json()).toMatchObject({ replayed: 1 });
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
  });

  it('retries KFP 5xx answers and then starts the run', async () => {
    const kfp = await fakeKfp();
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    kfp.failNext(2, 503);
    const { rt } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url) });
    await rt.ingest([trainSucceeded(trainRun)]);
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
  });
});

describe('kfp-run: what retrying cannot fix is dead-lettered at once, with the reason', () => {
  async function deadLetterOf(rt: CallbackRuntime) {
    const [dead] = await until('the dead letter', async () => {
      const d = await rt.store.listDeadLetters();
      return d.length > 0 && d;
    });
    return dead;
  }

  it('refuses a chain that comes back to a pipeline it already ran (train -> evaluate -> train)', async () => {
    const kfp = await fakeKfp();
    const { train, evaluate, trainRun } = trainAndEvaluate(kfp);
    const { rt, lines } = await setup(kfp, {
      evaluate: evaluateAfterTrain(kfp.url),
      retrain: evaluateAfterTrain(kfp.url, { pipelines: ['evaluate'], pipeline: 'train', parameters: {}, runName: 'train again' }),
    });
    await rt.ingest([trainSucceeded(trainRun)]);
    await settled(rt);
    const evalRun = kfp.runs().find((r) => r.pipelineId === evaluate.pipelineId);
    expect(evalRun).toBeDefined();
    await rt.ingest([trainSucceeded(evalRun?.id ?? '', { PipelineName: 'evaluate', RunName: 'evaluate train 7' })]);
    const dead = await deadLetterOf(rt);
    expect(dead).toMatchObject({ subscriber: 'retrain', attempts: 1 });
    expect(dead?.lastError).toBe(`trigger loop: pipeline ${train.pipelineId} already ran in the chain started by run ${trainRun} (chain ${train.pipelineId} -> ${evaluate.pipelineId}); not starting it again`);
    expect(kfp.runs()).toHaveLength(2);
    expect(lines.some((l) => l.msg === 'delivery failed for the last time; moved to the dead letters')).toBe(true);
  });

  it('passes on KFP refusing a parameter the pipeline does not declare', async () => {
    const kfp = await fakeKfp();
    const { trainRun } = trainAndEvaluate(kfp);
    const { rt } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { parameters: { upstream_run_id: '{{ KfpRunId }}', learning_rate: 0.1 } }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    const dead = await deadLetterOf(rt);
    expect(dead).toMatchObject({ attempts: 1, lastStatus: 400 });
    expect(dead?.lastError).toBe('KFP POST /apis/v2beta1/runs: Invalid input error: parameter(s) provided are not required by pipeline: learning_rate');
    expect(kfp.runs()).toHaveLength(1);
  });

  it('names a pipeline KFP does not have', async () => {
    const kfp = await fakeKfp();
    const { trainRun } = trainAndEvaluate(kfp);
    const { rt } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { pipeline: 'evaluat' }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    const dead = await deadLetterOf(rt);
    expect(dead).toMatchObject({ attempts: 1, lastStatus: 404, lastError: 'pipeline "evaluat" not found in KFP' });
  });
});

describe('kfp-run: auth', () => {
  it('sends the projected token file as a bearer token and re-reads it when the kubelet rotates it; tokens never reach the logs', async () => {
    const kfp = await fakeKfp({ tokens: ['token-one-secret'] });
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    const dir = c.tempDir();
    // A projected volume: the token is reached through a `..data` symlink swapped on rotation; a
    // rename over the file is the same change as far as readers go.
    const file = join(dir, 'token');
    writeFileSync(file, 'token-one-secret\n');
    const { rt, lines } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { tokenFile: file }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    await settled(rt);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);

    writeFileSync(join(dir, 'token.new'), 'token-two-secret\n');
    renameSync(join(dir, 'token.new'), file);
    kfp.setTokens(['token-two-secret']);
    await rt.ingest([trainSucceeded(trainRun, { EventType: 'WorkflowSucceeded', KfpRunId: trainRun, Time: 'later', EventId: 'evt_second' })]);
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(2);
    expect(new Set(kfp.authorizations)).toEqual(new Set(['Bearer token-one-secret', 'Bearer token-two-secret']));
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  it('retries while the token file is missing, naming the file and never a token', async () => {
    const kfp = await fakeKfp({ tokens: ['late-secret'] });
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    const file = join(c.tempDir(), 'token');
    const { rt, lines } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { tokenFile: file, retry: { schedule: ['20ms', '50ms', '100ms', '200ms', '400ms', '800ms'], jitter: 0 } }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    const retry = await until('a failed attempt', () => lines.find((l) => l.msg === 'delivery failed; will retry'));
    expect(retry.error).toMatch(/^token file .*token cannot be read: .*no such file/);
    expect(kfp.requests).toEqual([]);
    writeFileSync(file, 'late-secret');
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
  });

  it('sends a static Authorization header from a Secret instead, and a 401 is retried, not dead-lettered', async () => {
    const kfp = await fakeKfp({ tokens: ['static-secret'] });
    const { evaluate, trainRun } = trainAndEvaluate(kfp);
    kfp.setTokens(['not-yet']);
    const { rt } = await setup(
      kfp,
      { evaluate: evaluateAfterTrain(kfp.url, { headers: { Authorization: { secretKeyRef: { name: 'kfp', key: 'auth' } } }, retry: { schedule: ['20ms', '50ms', '100ms', '200ms', '400ms'], jitter: 0 } }) },
      { kfp: { auth: 'Bearer static-secret' } },
    );
    await rt.ingest([trainSucceeded(trainRun)]);
    await until('a refused attempt', () => kfp.requests.length > 0);
    kfp.setTokens(['static-secret']);
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
    expect(new Set(kfp.authorizations)).toEqual(new Set(['Bearer static-secret']));
  });
});

describe('kfp-run: finding its own run', () => {
  it('pages through a listing that was not filtered and matches only its own trigger id', async () => {
    const kfp = await fakeKfp();
    const { train, evaluate, experimentId, trainRun } = trainAndEvaluate(kfp);
    const sub = parseSubscribers({ evaluate: evaluateAfterTrain(kfp.url) }, () => undefined).subscribers[0];
    if (!sub) throw new Error('no subscriber');
    const { log } = capturingLogger();
    const transport = createKfpRunTransport({ log, env: {} });
    c.push(() => transport.close());
    const event = trainSucceeded(trainRun);
    const signal = new AbortController().signal;
    expect(await transport.deliver(sub, event, signal)).toMatchObject({ ok: true });
    // 250 runs in the same experiment, some mentioning other triggers: the marker is on one page of three.
    for (let i = 0; i < 250; i++) kfp.addRun({ pipelineId: train.pipelineId, versionId: train.versionId, experimentId, description: `kfp-notify-origin: trigger=trg_${String(i).padStart(32, '0')}` });
    kfp.ignoreFilters(true);
    const before = kfp.requests.length;
    expect(await transport.deliver(sub, event, signal)).toMatchObject({ ok: true });
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(1);
    expect(kfp.requests.slice(before).filter((r) => r === 'GET /apis/v2beta1/runs').length).toBeGreaterThan(0);
    // Another event is not mistaken for this one: all 252 runs are read, 100 a page, before it creates.
    const mark = kfp.requests.length;
    expect(await transport.deliver(sub, trainSucceeded(trainRun, { EventId: 'evt_other' }), signal)).toMatchObject({ ok: true });
    expect(kfp.requests.slice(mark).filter((r) => r === 'GET /apis/v2beta1/runs')).toHaveLength(3);
    expect(kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId)).toHaveLength(2);
  });
});

describe('kfp-run: multi-user KFP', () => {
  it('finds the pipeline and experiment in the profile namespace, and runs there', async () => {
    const kfp = await fakeKfp();
    const { trainRun } = trainAndEvaluate(kfp);
    const shared = kfp.addPipeline({ displayName: 'score', params: {} });
    const own = kfp.addPipeline({ displayName: 'score', namespace: 'team-a', params: { upstream_run_id: 'STRING' } });
    const experimentId = kfp.addExperiment('chains', 'team-a');
    const { rt } = await setup(kfp, { score: evaluateAfterTrain(kfp.url, { pipeline: 'score', namespace: 'team-a', parameters: { upstream_run_id: '{{ KfpRunId }}' } }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    expect(kfp.runs().filter((r) => r.pipelineId === shared.pipelineId)).toHaveLength(0);
    expect(kfp.runs().filter((r) => r.pipelineId === own.pipelineId)).toMatchObject([{ experimentId, namespace: 'team-a' }]);
  });
});

describe('kfp-run: apiVersion v1beta1 (KFP 1.8 backends)', () => {
  it('starts one run through /apis/v1beta1 with string parameters, and finds it again rather than starting another', async () => {
    const kfp = await fakeKfp();
    const { evaluate, experimentId, trainRun } = trainAndEvaluate(kfp);
    kfp.hangNextCreates(1);
    const { rt } = await setup(kfp, { evaluate: evaluateAfterTrain(kfp.url, { apiVersion: 'v1beta1', timeout: '300ms' }) });
    await rt.ingest([trainSucceeded(trainRun)]);
    await settled(rt);
    expect(await rt.store.listDeadLetters()).toEqual([]);
    const runs = kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ apiVersion: 'v1beta1', displayName: 'evaluate train 7', experimentId, parameters: { upstream_run_id: trainRun, epochs: '3' } });
    expect(kfp.requests.filter((r) => r.startsWith('POST'))).toEqual(['POST /apis/v1beta1/runs']);
  });
});
