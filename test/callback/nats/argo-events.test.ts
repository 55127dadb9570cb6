import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../common/yaml-docs.js';
import { buildEvent } from '../../../callback/event-id.js';
import { createNatsTransport } from '../../../callback/nats/transport.js';
import { route } from '../../../callback/route.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { KfpEvent, Subscriber } from '../../../callback/types.js';
import { cleanups } from '../../helpers/cleanups.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { REPO } from '../../install/helpers/render.js';
import { EXAMPLE_FACTS, NS, PIPELINE } from '../core/sample.js';
import { capturingLogger } from '../engine/harness.js';
import { argoNatsEventSource, sensorFires, type DataFilter, type EventSourceStandIn } from './argo-events.js';
import { addStream, streamMessages, until } from './helpers.js';

/**
 * examples/argo-events/ as a user applies it: the subscribers ConfigMap goes through kfp-notify's own
 * parser and transport to a real nats-server; an Argo Events-shaped consumer (argo-events.ts) reads
 * the EventSource's subjects with jsonBody: true and evaluates the example Sensors' filters. They must
 * fire for run ends only, although a failed step of the same pipeline shares the subject.
 */

const EXAMPLES = join(REPO, 'examples', 'argo-events');
const IN_CLUSTER_URL = 'nats://nats.kfp-notify.svc.cluster.local:4222';
type Doc = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> };

function example(file: string): Doc {
  const [doc] = parseDocuments(readFileSync(join(EXAMPLES, file), 'utf8'), file);
  return doc as Doc;
}

const eventSource = example('eventsource.yaml');
const sensors = { binary: example('sensor.yaml'), kfpOperator: example('sensor-kfp-operator.yaml') };
const natsSources = eventSource.spec.nats as Record<string, { url: string; subject: string; jsonBody?: boolean }>;

interface Dependency {
  name: string;
  eventSourceName: string;
  eventName: string;
  filters: { data: DataFilter[] };
}
const dependency = (s: Doc): Dependency => (s.spec.dependencies as Dependency[])[0] as Dependency;

// Keys the argo-events v1.9 types accept (eventsource_types.go NATSEventsSource; sensor_types.go).
const NATS_SOURCE_KEYS = ['url', 'subject', 'jsonBody', 'connectionBackoff', 'tls', 'metadata', 'auth', 'filter', 'queue'];
const DATA_FILTER_KEYS = ['path', 'type', 'value', 'comparator', 'template'];

describe('examples/argo-events: the shape Argo Events v1.9 accepts (checked offline)', () => {
  it('the EventSource: kind, and each NATS source with a nats:// url, a subject and jsonBody: true', () => {
    expect(eventSource).toMatchObject({ apiVersion: 'argoproj.io/v1alpha1', kind: 'EventSource', metadata: { name: 'kfp-notify' } });
    expect(Object.keys(eventSource.spec)).toEqual(['nats']);
    expect(Object.keys(natsSources)).toEqual(['run-events', 'kfp-operator']);
    for (const [name, src] of Object.entries(natsSources)) {
      expect(Object.keys(src).filter((k) => !NATS_SOURCE_KEYS.includes(k)), name).toEqual([]);
      expect(src.url, name).toBe(IN_CLUSTER_URL);
      expect(src.jsonBody, name).toBe(true);
      expect(src.subject, name).toMatch(/^[^\s]+$/);
    }
  });

  it.each(Object.entries(sensors))('the %s Sensor: one dependency on a source the EventSource defines, string filters, a trigger', (_name, sensor) => {
    expect(sensor).toMatchObject({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Sensor' });
    const dep = dependency(sensor);
    expect(dep.eventSourceName).toBe(eventSource.metadata.name);
    expect(Object.keys(natsSources)).toContain(dep.eventName);
    for (const f of dep.filters.data) {
      expect(Object.keys(f).filter((k) => !DATA_FILTER_KEYS.includes(k))).toEqual([]);
      expect(f.type).toBe('string');
      // Sensor string filters are unanchored regexes: the examples anchor theirs.
      for (const v of f.value) expect(v).toMatch(/^\^.*\$$/);
    }
    const triggers = sensor.spec.triggers as { template: { name: string; log?: unknown } }[];
    expect(triggers.length).toBeGreaterThan(0);
    for (const t of triggers) expect(t.template.name).toMatch(/^[a-z0-9-]+$/);
  });
});

describe('examples/argo-events end to end: kfp-notify → real nats-server → an Argo Events-shaped consumer', () => {
  const c = cleanups('kfp-notify-argo-');
  let server: NatsServer;
  let nc: NatsConnection;
  let subscribers: Subscriber[];
  const sources: Record<string, EventSourceStandIn> = {};

  // One run of save-most-frequent that fails after a failed step, one that succeeds, and lookalikes:
  // another pipeline's failure and a pipeline whose name only starts the same.
  const run = EXAMPLE_FACTS.map(buildEvent);
  const others: KfpEvent[] = [
    { ...buildEvent({ ...(EXAMPLE_FACTS[3] as (typeof EXAMPLE_FACTS)[number]), kfpRunId: 'run-other' }), PipelineName: 'other-pipeline' },
    { ...buildEvent({ ...(EXAMPLE_FACTS[3] as (typeof EXAMPLE_FACTS)[number]), kfpRunId: 'run-v2' }), PipelineName: `${PIPELINE}-v2` },
  ];
  const all = [...run, ...others];
  const byType = (t: KfpEvent['EventType']) => run.find((e) => e.EventType === t) as KfpEvent;

  beforeAll(async () => {
    server = await startNatsServer();
    c.push(() => server.dispose());
    nc = await connect({ servers: server.url });
    c.push(() => nc.close());
    // A stream on the CloudEvents subjects (JetStream-acknowledged publishes); `events` has none (core).
    await addStream(nc, 'KFP_EVENTS', ['kfp.events.>']);
    for (const [name, src] of Object.entries(natsSources)) sources[name] = argoNatsEventSource(nc, src);
    await nc.flush();

    const cm = parseDocuments(readFileSync(join(EXAMPLES, 'subscribers.yaml'), 'utf8').replaceAll(IN_CLUSTER_URL, server.url), 'subscribers.yaml')[0] as { data: Record<string, string> };
    const parsed = parseSubscribers(cm.data, () => undefined);
    expect(parsed.errors).toEqual([]);
    subscribers = parsed.subscribers;
    const t = createNatsTransport({ log: capturingLogger().log });
    c.push(() => t.close());
    const signal = new AbortController().signal;
    for (const e of all) {
      for (const s of route(e, subscribers)) expect(await t.deliver(s, e, signal), `${s.name} ${e.EventType}`).toMatchObject({ ok: true });
    }
    await until(() => sources['run-events']?.events.length === all.length && sources['kfp-operator']?.events.length === 4, 'every message at the consumers');
  });
  afterAll(() => c.run());

  it('the consumer got every event on the CloudEvents subjects (none dropped as non-JSON), and the stream holds each once', async () => {
    const got = sources['run-events'];
    expect(got?.dropped).toBe(0);
    expect(got?.events.map((e) => e.subject)).toEqual(all.map((e) => `kfp.events.${NS}.${e.EventType}`));
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const stored = await streamMessages(await jetstreamManager(nc), 'KFP_EVENTS');
    expect(stored.map((m) => m.headers['Nats-Msg-Id']?.[0])).toEqual(all.map((e) => e.EventId));
  });

  it("the example Sensor (body.status, body.pipelineName) fires for the run's failure only, not for its failed step", () => {
    const events = sources['run-events']?.events ?? [];
    // The failed step is there, of the same pipeline, on the same subject tree: the filter must tell it apart.
    const step = events.find((e) => e.header?.['ce-kfpeventtype']?.[0] === 'WorkflowNodeFailed');
    expect(step?.body).toMatchObject({ nodeStatus: 'failed', pipelineName: `${NS}/${PIPELINE}` });
    const fired = events.filter((e) => sensorFires(dependency(sensors.binary).filters.data, e));
    expect(fired.map((e) => e.header?.['ce-id']?.[0])).toEqual([byType('WorkflowFailed').EventId]);
  });

  it('even unanchored filters (as kfp-operator users often write them) never match a step event', () => {
    const loose: DataFilter[] = [
      { path: 'body.status', type: 'string', value: ['failed'] },
      { path: 'body.pipelineName', type: 'string', value: [PIPELINE] },
    ];
    const fired = (sources['run-events']?.events ?? []).filter((e) => sensorFires(loose, e));
    expect(fired.map((e) => e.header?.['ce-kfpeventtype']?.[0])).toEqual(['WorkflowFailed', 'WorkflowFailed']);
    expect(fired.map((e) => (e.body as { pipelineName: string }).pipelineName)).toEqual([`${NS}/${PIPELINE}`, `${NS}/${PIPELINE}-v2`]);
    // A header filter on the CloudEvents type works too: run ends have their own type.
    const byHeader: DataFilter[] = [{ path: 'header.ce-type.0', type: 'string', value: ['^org\\.kubeflow\\.pipelines\\.run-completion$'] }];
    expect((sources['run-events']?.events ?? []).filter((e) => sensorFires(byHeader, e))).toHaveLength(4);
  });

  it("the kfp-operator Sensor (body.data.status) gets kfp-operator's envelope, run ends only, and fires for the success", () => {
    const events = sources['kfp-operator']?.events ?? [];
    expect(sources['kfp-operator']?.dropped).toBe(0);
    // Run ends only (format kfp-operator defaults eventTypes to them); no CloudEvents headers.
    expect(events.map((e) => (e.body as { data: { status: string } }).data.status)).toEqual(['failed', 'succeeded', 'failed', 'failed']);
    for (const e of events) expect(Object.keys(e.header ?? {})).toEqual(['Nats-Msg-Id']);
    const fired = events.filter((e) => sensorFires(dependency(sensors.kfpOperator).filters.data, e));
    expect(fired.map((e) => e.header?.['Nats-Msg-Id']?.[0])).toEqual([byType('WorkflowSucceeded').EventId]);
  });
});
