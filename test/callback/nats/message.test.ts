import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { cloudEventData } from '../../../callback/formats/index.js';
import { natsMessage, renderSubject } from '../../../callback/nats/message.js';
import { subjectProblem } from '../../../callback/nats/subject.js';
import type { KfpEvent, PayloadFormat } from '../../../callback/types.js';
import { EXAMPLE_FACTS, NS, PIPELINE, RUN } from '../core/sample.js';

const EVENTS: KfpEvent[] = EXAMPLE_FACTS.map(buildEvent);
const byType = (t: KfpEvent['EventType']): KfpEvent => EVENTS.find((e) => e.EventType === t) as KfpEvent;

function message(e: KfpEvent, format: PayloadFormat, subject = 'kfp.events') {
  const m = natsMessage(e, { format, subject });
  if (!m.ok) throw new Error(m.error);
  return m.message;
}

describe('NATS subjects', () => {
  it('a template puts each field in one token: dots, spaces and wildcards in values become _', () => {
    const e = { ...byType('WorkflowFailed'), Namespace: 'team.a', PipelineName: 'Save Most > Frequent*' };
    expect(renderSubject('kfp.{{ Namespace }}.{{ PipelineName }}.{{ EventType }}', e)).toEqual({ ok: true, subject: 'kfp.team_a.Save_Most___Frequent_.WorkflowFailed' });
    // An empty value is one `_` token, never an empty token.
    expect(renderSubject('kfp.{{ PipelineName }}.x', { ...e, PipelineName: '' })).toEqual({ ok: true, subject: 'kfp._.x' });
    expect(renderSubject('kfp.fixed', e)).toEqual({ ok: true, subject: 'kfp.fixed' });
  });

  it('a rendered subject that cannot be published to is an error, not a message', () => {
    const e = byType('WorkflowSucceeded');
    const r = renderSubject('kfp.{% if NodeName != "" %}{{ NodeName }}{% endif %}.done', e);
    expect(r).toEqual({ ok: false, error: expect.stringContaining('empty token') });
  });

  it.each([
    ['kfp.events', undefined],
    ['', 'empty'],
    ['kfp..events', 'empty token'],
    ['.kfp', 'empty token'],
    ['kfp.', 'empty token'],
    ['kfp.*', 'wildcards'],
    ['kfp.>', 'wildcards'],
    ['kfp events', 'whitespace'],
    ['kfp\tevents', 'whitespace'],
    ['x'.repeat(1025), 'longer'],
  ])('subject %j → %s', (subject, problem) => {
    const got = subjectProblem(subject);
    if (problem === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(problem);
  });
});

describe('NATS messages per format', () => {
  it('every message carries Nats-Msg-Id = EventId, whatever the format', () => {
    for (const format of ['cloudevents-binary', 'cloudevents-structured', 'json', 'kfp-operator'] as const) {
      for (const e of EVENTS) expect(message(e, format).headers['Nats-Msg-Id']).toBe(e.EventId);
    }
  });

  it('cloudevents-binary: NATS binary mode, lower-case ce- headers, datacontenttype as ce-datacontenttype, data as the body', () => {
    const e = byType('WorkflowFailed');
    const m = message(e, 'cloudevents-binary');
    expect(m.headers).toEqual({
      'ce-id': e.EventId,
      'ce-time': e.Time,
      'ce-type': 'org.kubeflow.pipelines.run-completion',
      'ce-source': `/apis/argoproj.io/v1alpha1/namespaces/${NS}/workflows/${e.WorkflowName}`,
      'ce-specversion': '1.0',
      'ce-subject': RUN,
      'ce-datacontenttype': 'application/json',
      'ce-kfprunid': RUN,
      'ce-kfpnamespace': NS,
      'ce-kfpeventtype': 'WorkflowFailed',
      // A header value is percent-encoded where it is not printable ASCII or is a space (CloudEvents NATS binding).
      'ce-kfppipeline': PIPELINE.replace(/ /g, '%20'),
      'Nats-Msg-Id': e.EventId,
    });
    // No Content-Type: a NATS receiver reads its absence (or a non-cloudevents one) as binary mode.
    expect(Object.keys(m.headers).some((k) => k.toLowerCase() === 'content-type')).toBe(false);
    expect(JSON.parse(m.body)).toEqual(cloudEventData(e));
    expect(JSON.parse(m.body)).toMatchObject({ status: 'failed', pipelineName: `${NS}/${PIPELINE}` });
  });

  it('cloudevents-structured: the JSON event as the body, content-type application/cloudevents+json', () => {
    const e = byType('WorkflowSucceeded');
    const m = message(e, 'cloudevents-structured');
    expect(m.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
    expect(JSON.parse(m.body)).toMatchObject({ specversion: '1.0', id: e.EventId, type: 'org.kubeflow.pipelines.run-completion', data: { status: 'succeeded' } });
  });

  it('json: the documented event', () => {
    const e = byType('WorkflowNodeFailed');
    const m = message(e, 'json');
    expect(m.headers).toEqual({ 'content-type': 'application/json', 'Nats-Msg-Id': e.EventId });
    expect(JSON.parse(m.body)).toMatchObject({ KfpRunId: RUN, EventType: 'WorkflowNodeFailed', EventId: e.EventId });
  });

  it("kfp-operator: {\"data\": RunCompletionEvent}, kfp-operator's own fields, no header but Nats-Msg-Id", () => {
    const e = byType('WorkflowFailed');
    const m = message(e, 'kfp-operator');
    expect(m.headers).toEqual({ 'Nats-Msg-Id': e.EventId });
    const body = JSON.parse(m.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['data']);
    expect(body.data).toMatchObject({
      provider: 'kfp-notify',
      status: 'failed',
      pipelineName: `${NS}/${PIPELINE}`,
      runName: `${NS}/nightly-word-count`,
      runId: RUN,
      runEndTime: e.Time,
      artifacts: [],
    });
  });

  it('a step event has no status at all in its data (a run-completion filter on status cannot match it)', () => {
    for (const t of ['WorkflowNodeFailed', 'WorkflowNodeSucceeded'] as const) {
      const data = JSON.parse(message(byType(t), 'cloudevents-binary').body) as Record<string, unknown>;
      expect(data).not.toHaveProperty('status');
      expect(data.nodeStatus).toBe(t === 'WorkflowNodeFailed' ? 'failed' : 'succeeded');
    }
  });
});
