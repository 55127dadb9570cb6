import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../../common/logger.js';
import { startSubscriberConfigWatch, type SubscriberConfigWatch } from '../../../callback/cluster/config-watch.js';
import type { Subscriber } from '../../../callback/types.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { until } from './until.js';

const NS = 'kfp-notify';
const CM = 'kfp-event-handler-config';
const FAST_BACKOFF = { initialMs: 50, maxMs: 200 };

const whsec = () => `whsec_${randomBytes(32).toString('base64')}`;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function configMap(data: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CM, namespace: NS }, data };
}
function secret(name: string, data: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace: NS }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
}

describe('subscriber config from the cluster', () => {
  let fake: FakeKubeApi;
  let watch: SubscriberConfigWatch | undefined;
  let changes: { subscribers: Subscriber[]; errors: string[] }[];
  const latest = () => changes.at(-1);
  const byName = (name: string) => latest()?.subscribers.find((s) => s.name === name);
  const start = (log = silentLogger(), registry?: Registry) => {
    watch = startSubscriberConfigWatch({
      kubeConfig: fake.kubeConfig(),
      namespace: NS,
      configMapName: CM,
      onChange: (subscribers, errors) => changes.push({ subscribers, errors }),
      log,
      backoff: FAST_BACKOFF,
      ...(registry ? { registry } : {}),
    });
    return watch;
  };

  beforeEach(async () => {
    fake = await startFakeKubeApi();
    changes = [];
  });
  afterEach(async () => {
    await watch?.stop();
    watch = undefined;
    await fake.close();
  });

  it('reloads subscribers when the ConfigMap changes, keeping the last good version of a broken entry, against a fake API server', async () => {
    // microsoft/kfp-event-handler's ConfigMap, as is: `name: URI`.
    fake.apply(configMap({ legacy: 'http://receiver.example:8080/events' }));
    fake.apply(configMap({ legacy: 'http://receiver.example:8080/events' })); // a no-op update (new resourceVersion)
    const w = start();
    await until('the first load', () => w.ready());
    expect(latest()).toEqual({ subscribers: [expect.objectContaining({ name: 'legacy', type: 'http', url: 'http://receiver.example:8080/events', format: 'json' })], errors: [] });

    fake.apply(configMap({ legacy: 'http://receiver.example:8080/events', slack: 'url: https://hooks.example/abc\neventTypes: [WorkflowFailed]\n' }));
    await until('the added subscriber', () => byName('slack'));
    expect(byName('slack')?.eventTypes).toEqual(['WorkflowFailed']);
    expect(latest()?.errors).toEqual([]);

    // A typo in one entry: its previous version stays, the error names it, the other entry's edit applies.
    fake.apply(configMap({ legacy: 'http://receiver.example:9090/events', slack: 'url: https://hooks.example/abc\neventTypes: [WorkflowFailled]\n' }));
    await until('the rejected edit', () => (latest()?.errors.length ?? 0) > 0);
    expect(latest()?.errors.join('\n')).toMatch(/slack.*WorkflowFailled.*keeping the previous version of slack/s);
    expect(byName('slack')?.eventTypes).toEqual(['WorkflowFailed']);
    expect(byName('legacy')?.url).toBe('http://receiver.example:9090/events');

    // Removing an entry removes the subscriber.
    fake.apply(configMap({ legacy: 'http://receiver.example:9090/events' }));
    await until('the removal', () => latest()?.subscribers.length === 1 && latest()?.errors.length === 0);

    // A deleted ConfigMap keeps the last good config (onChange is not called with nothing).
    const calls = changes.length;
    fake.remove('ConfigMap', NS, CM);
    await new Promise((r) => setTimeout(r, 200));
    expect(changes.length).toBe(calls);
    fake.apply(configMap({ other: 'http://other.example/' }));
    await until('the re-created ConfigMap', () => byName('other'));
    expect(latest()?.subscribers.map((s) => s.name)).toEqual(['other']);
  });

  it('a ConfigMap deleted and put back unchanged logs that it is back (nothing else changes), against a fake API server', async () => {
    const lines: { msg: string; level: number }[] = [];
    const log = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as { msg: string; level: number }), cb()) }) });
    fake.apply(configMap({ legacy: 'http://receiver.example:8080/events' }));
    const w = start(log);
    await until('the first load', () => w.ready());
    const calls = changes.length;
    fake.remove('ConfigMap', NS, CM);
    await until('the deletion to be logged', () => lines.some((l) => l.msg.startsWith('subscriber ConfigMap deleted')));
    fake.apply(configMap({ legacy: 'http://receiver.example:8080/events' }));
    await until('the return to be logged', () => lines.some((l) => l.msg === 'subscriber ConfigMap back; loading it'));
    expect(lines.find((l) => l.msg === 'subscriber ConfigMap back; loading it')?.level).toBe(30);
    expect(changes.length).toBe(calls);
  });

  it('rotates a signing key when its Secret changes, and ignores other Secrets, against a fake API server', async () => {
    const k1 = whsec();
    const k2 = whsec();
    const sink: string[] = [];
    const log = createLogger({ level: 'debug', destination: new Writable({ write: (c: Buffer, _e, cb) => (sink.push(c.toString()), cb()) }) });
    const registry = new Registry();
    fake.apply(secret('receiver-signing', { key: k1 }));
    fake.apply(secret('unrelated', { token: 'not-ours' }));
    fake.apply(configMap({ signed: 'url: https://receiver.example/hook\nsigningKey:\n  secretKeyRef: { name: receiver-signing, key: key }\n' }));
    const w = start(log, registry);
    await until('the first load', () => w.ready());
    expect(byName('signed')).toMatchObject({ signingKeyRef: { name: 'receiver-signing', key: 'key' }, signingKeys: [k1] });

    // Rotation: the new key signs, the old one is still sent while receivers catch up.
    fake.apply(secret('receiver-signing', { key: `${k2} ${k1}` }));
    await until('the rotated key', () => byName('signed')?.signingKeys?.[0] === k2);
    expect(byName('signed')?.signingKeys).toEqual([k2, k1]);
    fake.apply(secret('receiver-signing', { key: k2 }));
    await until('the old key dropped', () => byName('signed')?.signingKeys?.length === 1);

    const calls = changes.length;
    fake.apply(secret('unrelated', { token: 'changed' }));
    // A broken key keeps the subscriber signing with the last good one.
    fake.apply(secret('receiver-signing', { key: 'not-a-whsec-key' }));
    await until('the rejected key', () => (latest()?.errors.length ?? 0) > 0);
    expect(changes.length).toBe(calls + 1);
    expect(byName('signed')?.signingKeys).toEqual([k2]);

    const reloads = await registry.getSingleMetric('kfp_notify_subscriber_config_reloads_total')?.get();
    expect(reloads?.values.find((v) => v.labels.result === 'rejected')?.value).toBe(1);
    const logs = sink.join('');
    expect(logs).toContain('subscriber config loaded');
    for (const k of [k1, k2]) {
      expect(logs).not.toContain(k);
      expect(logs).not.toContain(k.slice('whsec_'.length));
    }
  });

  it('reports a missing ConfigMap as no subscribers with a reason, and recovers from API errors, against a fake API server', async () => {
    fake.failNext(2, 503);
    const w = start();
    await until('the first load', () => w.ready());
    expect(latest()).toEqual({ subscribers: [], errors: [`ConfigMap ${NS}/${CM} not found: no subscribers`] });
    fake.apply(configMap({ a: 'http://a.example/' }));
    await until('the new ConfigMap', () => byName('a'));
    // Only the ConfigMap by name, and only Secrets of its own namespace, are ever read.
    expect(fake.requests.every((r) => r.path === `/api/v1/namespaces/${NS}/configmaps` || r.path === `/api/v1/namespaces/${NS}/secrets`)).toBe(true);
    expect(fake.requests.filter((r) => r.path.endsWith('/configmaps')).every((r) => r.query.fieldSelector === `metadata.name=${CM}`)).toBe(true);
  });
});
