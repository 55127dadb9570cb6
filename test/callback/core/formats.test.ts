import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HTTP } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { formatDelivery } from '../../../callback/formats/index.js';
import { percentEncodeHeaderValue } from '../../../callback/formats/cloudevents.js';
import type { KfpEvent, PayloadFormat } from '../../../callback/types.js';
import { EXAMPLE_FACTS, NS, PIPELINE, RUN, UID, WF, exampleEvent } from './sample.js';

const FORMATS: PayloadFormat[] = ['json', 'cloudevents-structured', 'cloudevents-binary', 'slack', 'teams', 'github'];
const EVENTS: KfpEvent[] = EXAMPLE_FACTS.map(exampleEvent);
const byType = (t: KfpEvent['EventType']): KfpEvent => EVENTS.find((e) => e.EventType === t) as KfpEvent;

function render(format: PayloadFormat, e: KfpEvent): string {
  const d = formatDelivery(e, { format });
  const headers = Object.entries(d.headers).map(([k, v]) => `${k}: ${v}`);
  return [`### ${format} ${e.EventType}`, ...headers, '', d.body, ''].join('\n');
}

describe('every EventType in every format, byte for byte', () => {
  // Golden file reviewed by hand; REFRESH_GOLDEN=1 rewrites it after an intended change.
  const golden = fileURLToPath(new URL('./golden/deliveries.txt', import.meta.url));
  const actual = FORMATS.flatMap((f) => EVENTS.map((e) => render(f, e))).join('\n');
  it('matches golden/deliveries.txt', () => {
    if (process.env.REFRESH_GOLDEN === '1') writeFileSync(golden, actual);
    expect(existsSync(golden), `${golden} is missing: run with REFRESH_GOLDEN=1 and review it`).toBe(true);
    expect(actual).toBe(readFileSync(golden, 'utf8'));
  });
});

describe('json', () => {
  it('is exactly the KfpEvent, kfp-event-handler fields first, whatever order the object came in', () => {
    const e = byType('WorkflowNodeFailed');
    const shuffled = Object.fromEntries(Object.entries(e).reverse()) as unknown as KfpEvent;
    const d = formatDelivery(shuffled, { format: 'json' });
    expect(d.headers).toEqual({ 'content-type': 'application/json' });
    expect(d.body.startsWith(`{"KfpRunId":"${RUN}","WorkflowName":"${WF}","NodeName":"save","EventType":"WorkflowNodeFailed","Message":"Failed node ${WF}.exit-handler-1.save: save: Error (exit code 1)","EventId":"evt_`)).toBe(true);
    expect(JSON.parse(d.body)).toEqual(e);
  });
});

describe('CloudEvents', () => {
  it.each(['cloudevents-structured', 'cloudevents-binary'] as const)('%s parses back with HTTP.toEvent to the same attributes and data', (format) => {
    for (const e of EVENTS) {
      const d = formatDelivery(e, { format });
      const ce = HTTP.toEvent({ headers: d.headers, body: d.body });
      if (Array.isArray(ce)) throw new Error('a batch was not expected');
      expect(ce.id).toBe(e.EventId);
      expect(ce.specversion).toBe('1.0');
      expect(ce.source).toBe(`/apis/argoproj.io/v1alpha1/namespaces/${NS}/workflows/${WF}`);
      expect(ce.time).toBe(e.Time);
      expect(ce.datacontenttype).toBe('application/json');
      expect(ce.kfprunid).toBe(RUN);
      expect(ce.kfpeventtype).toBe(e.EventType);
      expect(ce.data).toMatchObject({ runId: RUN, eventType: e.EventType, message: e.Message, workflowUid: UID });
    }
  });

  it.each([
    // [EventType, type, subject, status, nodeStatus]: a step's outcome is never `status` (a
    // kfp-operator consumer filtering status=failed would take a failed step for a failed run).
    ['WorkflowRunning', 'org.kubeflow.pipelines.run-running', RUN, 'running', undefined],
    ['WorkflowSucceeded', 'org.kubeflow.pipelines.run-completion', RUN, 'succeeded', undefined],
    ['WorkflowFailed', 'org.kubeflow.pipelines.run-completion', RUN, 'failed', undefined],
    ['WorkflowNodeSucceeded', 'org.kubeflow.pipelines.node-completion', `${WF}.exit-handler-1.get-frequent`, undefined, 'succeeded'],
    ['WorkflowNodeFailed', 'org.kubeflow.pipelines.node-completion', `${WF}.exit-handler-1.save`, undefined, 'failed'],
  ] as const)('%s → type %s, subject %s, status %s, nodeStatus %s', (eventType, type, subject, status, nodeStatus) => {
    const d = formatDelivery(byType(eventType), { format: 'cloudevents-binary' });
    expect(d.headers['ce-type']).toBe(type);
    expect(d.headers['ce-subject']).toBe(subject);
    const data = JSON.parse(d.body) as Record<string, unknown>;
    expect(data.status).toBe(status);
    expect(data.nodeStatus).toBe(nodeStatus);
    expect('status' in data).toBe(status !== undefined);
  });

  it("run-completion data carries kfp-operator's RunCompletionEvent fields, in its shapes", () => {
    const d = formatDelivery(byType('WorkflowFailed'), { format: 'cloudevents-structured' });
    expect(d.headers).toEqual({ 'content-type': 'application/cloudevents+json; charset=utf-8' });
    const data = JSON.parse(d.body).data;
    expect(data).toMatchObject({
      provider: 'kfp-notify',
      status: 'failed',
      pipelineName: `${NS}/${PIPELINE}`,
      runName: `${NS}/nightly-word-count`,
      runId: RUN,
      runEndTime: '2025-03-01T11:58:31.000Z',
      artifacts: [],
      servingModelArtifacts: [],
    });
    expect(data).not.toHaveProperty('runStartTime');
  });

  it('binary header values are percent-encoded, so any display name can travel in a header', () => {
    const e = { ...byType('WorkflowNodeFailed'), ArgoNodeName: `${WF}.训练 "step" 100%` };
    const d = formatDelivery(e, { format: 'cloudevents-binary' });
    expect(d.headers['ce-subject']).toBe(`${WF}.%E8%AE%AD%E7%BB%83%20%22step%22%20100%25`);
    expect(decodeURIComponent(d.headers['ce-subject'] as string)).toBe(e.ArgoNodeName);
    for (const v of Object.values(d.headers)) expect(v).toMatch(/^[\x21-\x7e ;=/]*$/);
  });

  it('percentEncodeHeaderValue leaves printable ASCII alone', () => {
    expect(percentEncodeHeaderValue('org.kubeflow.pipelines/run-completion:1')).toBe('org.kubeflow.pipelines/run-completion:1');
  });
});
