import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { createEventRecorder } from '../../../callback/cluster/events.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { until } from './until.js';

describe('delivery trouble as Kubernetes Events, against a fake API server', () => {
  let fake: FakeKubeApi;
  beforeEach(async () => {
    fake = await startFakeKubeApi();
  });
  afterEach(() => fake.close());

  it('throttles dead letters to one Event per subscriber per interval, counting the ones it held back', async () => {
    let clock = 1_000_000;
    const record = createEventRecorder({ kubeConfig: fake.kubeConfig(), namespace: 'kfp-notify', configMapName: 'kfp-event-handler-config', log: silentLogger(), now: () => clock });
    const dead = (subscriber: string, n: number) => ({ kind: 'dead-lettered' as const, subscriber, eventId: `evt_${n}`, reason: 'HTTP 500' });
    for (let i = 0; i < 5; i++) record(dead('slack', i));
    record(dead('pagerduty', 9));
    await until('two Events', () => fake.createdEvents.length === 2 || undefined);
    clock += 61_000;
    record(dead('slack', 5));
    await until('the third Event', () => fake.createdEvents.length === 3 || undefined);
    await new Promise((r) => setTimeout(r, 100));
    const seen = fake.createdEvents.map((e) => `${String(e.reason)} ${(e.message as string).match(/subscriber (\w+)/)?.[1]} ${String(e.count)}`);
    expect(seen.sort()).toEqual(['DeliveryDeadLettered pagerduty 1', 'DeliveryDeadLettered slack 1', 'DeliveryDeadLettered slack 5']);
    expect(fake.createdEvents.find((e) => e.count === 5)?.message).toContain('(and 4 more since the last such Event)');
  });

  it('never throws when the API refuses: the notice is logged and dropped', async () => {
    fake.failNext(1, 403);
    const record = createEventRecorder({ kubeConfig: fake.kubeConfig(), namespace: 'kfp-notify', configMapName: 'cm', log: silentLogger() });
    expect(() => record({ kind: 'subscriber-disabled', subscriber: 's', eventId: 'evt_1', reason: 'HTTP 410' })).not.toThrow();
    await until('the refused request', () => fake.requests.find((r) => r.method === 'POST') ?? undefined);
    expect(fake.createdEvents).toHaveLength(0);
  });
});
