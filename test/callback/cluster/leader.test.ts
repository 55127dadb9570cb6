import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { decide, microTime, startLeaderElection, type LeaderElection } from '../../../callback/cluster/leader.js';
import { startClusterServices } from '../../../callback/cluster/services.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../helpers/fake-kube-api.js';
import { until } from './until.js';

describe('leader election: the pure decision', () => {
  const LEASE = 10_000;
  it.each([
    ['no lease yet', undefined, 0, 0, 'create'],
    ['I hold it', { holderIdentity: 'me' }, 0, 0, 'renew'],
    ['handed back (empty holder)', { holderIdentity: '' }, 0, 0, 'takeover'],
    ['another holder, changed 9.999 s ago', { holderIdentity: 'b' }, 1, 10_000, 'wait'],
    ['another holder, unchanged for the lease duration', { holderIdentity: 'b' }, 0, 10_000, 'takeover'],
  ] as const)('%s → %s', (_what, record, since, now, action) => {
    expect(decide(record, 'me', since, now, LEASE)).toEqual({ action });
  });

  it('writes MicroTime with six fractional digits, as the API server expects', () => {
    expect(microTime(Date.UTC(2026, 11, 7, 18, 0, 0, 123))).toBe('2026-12-07T18:00:00.123000Z');
  });
});

/** An HTTP forwarder to the fake API that can be cut: what a replica losing the network (or dying) looks like to the others. */
async function cuttableProxy(target: string): Promise<{ kubeConfig: KubeConfig; cut(): void; close(): Promise<void> }> {
  let cut = false;
  const server: Server = createServer((req, res) => {
    if (cut) return req.socket.destroy();
    const up = request(`${target}${req.url ?? ''}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'p', server: url, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'p', cluster: 'p', user: 'u', namespace: 'kfp-notify' }],
    currentContext: 'p',
  });
  return {
    kubeConfig: kc,
    cut: () => {
      cut = true;
      server.closeAllConnections();
    },
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

describe('leader election against the fake Kubernetes API (coordination.k8s.io/v1 Lease)', () => {
  let fake: FakeKubeApi;
  const running: LeaderElection[] = [];
  const proxies: { close(): Promise<void> }[] = [];
  beforeEach(async () => {
    fake = await startFakeKubeApi();
  });
  afterEach(async () => {
    for (const e of running.splice(0)) await e.stop();
    for (const p of proxies.splice(0)) await p.close();
    await fake.close();
  });

  /** Three candidates, each through its own cuttable connection; `jobs` says who runs the job now. */
  async function candidates(n: number) {
    const jobs = new Set<string>();
    const overlaps: string[][] = [];
    const out = [];
    for (let i = 0; i < n; i++) {
      const identity = `replica-${i}`;
      const proxy = await cuttableProxy(fake.url);
      proxies.push(proxy);
      const election = startLeaderElection({
        kubeConfig: proxy.kubeConfig,
        namespace: 'kfp-notify',
        name: 'kfp-notify-watcher',
        identity,
        log: silentLogger(),
        leaseDurationMs: 600,
        retryMs: 100,
        onStartedLeading: () => {
          jobs.add(identity);
          if (jobs.size > 1) overlaps.push([...jobs]);
        },
        onStoppedLeading: () => void jobs.delete(identity),
      });
      running.push(election);
      out.push({ identity, election, proxy });
    }
    return { jobs, overlaps, all: out };
  }

  it('one candidate of three holds the lease; when it is cut off another takes over, never two at once', async () => {
    const { jobs, overlaps, all } = await candidates(3);
    const first = await until('a holder', () => (jobs.size === 1 ? [...jobs][0] : undefined));
    const lease = fake.get('Lease', 'kfp-notify', 'kfp-notify-watcher');
    expect(lease?.spec).toMatchObject({ holderIdentity: first, leaseDurationSeconds: 1, leaseTransitions: 0 });
    const holder = all.find((c) => c.identity === first);
    holder?.proxy.cut();
    // The cut-off holder stops its job when it cannot renew; another takes over after the lease lapses.
    const second = await until('a new holder', () => (jobs.size === 1 && !jobs.has(first ?? '') ? [...jobs][0] : undefined));
    expect(second).not.toBe(first);
    expect(holder?.election.leading()).toBe(false);
    expect(fake.get('Lease', 'kfp-notify', 'kfp-notify-watcher')?.spec).toMatchObject({ holderIdentity: second, leaseTransitions: 1 });
    expect(overlaps).toEqual([]);
  });

  it('a holder that shuts down hands the lease back (empty holderIdentity) and another takes it at its next try', async () => {
    const { jobs, all } = await candidates(2);
    const first = await until('a holder', () => (jobs.size === 1 ? [...jobs][0] : undefined));
    const holder = all.find((c) => c.identity === first);
    await holder?.election.stop();
    expect(jobs.has(first ?? '')).toBe(false);
    const second = await until('the other holds it', () => (jobs.size === 1 ? [...jobs][0] : undefined));
    expect(second).toBe(all.find((c) => c.identity !== first)?.identity);
  });

  it('a stale resourceVersion is refused with 409 by the fake, as by the API server', async () => {
    const { jobs } = await candidates(1);
    await until('a holder', () => jobs.size === 1);
    const lease = fake.get('Lease', 'kfp-notify', 'kfp-notify-watcher');
    const res = await fetch(`${fake.url}/apis/coordination.k8s.io/v1/namespaces/kfp-notify/leases/kfp-notify-watcher`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...lease, metadata: { ...lease?.metadata, resourceVersion: '1' } }),
    });
    expect(res.status).toBe(409);
  });
});

describe('the status watcher under the lease (startClusterServices with watchLease)', () => {
  it('only the holder watches Workflows; when it stops, the other replica starts watching', async () => {
    const fake = await startFakeKubeApi();
    const stops: (() => Promise<void>)[] = [];
    try {
      const replicas = await Promise.all(
        ['pod-a', 'pod-b'].map((identity) =>
          startClusterServices({
            kubeConfig: fake.kubeConfig(),
            log: silentLogger(),
            watchGraceMs: 1000,
            watchLease: { namespace: 'kfp-notify', name: 'kfp-notify-watcher', identity, leaseDurationMs: 600, retryMs: 100 },
          }),
        ),
      );
      const watchers = replicas.map((r) => r.watch(async () => undefined));
      for (const w of watchers) stops.push(() => w.stop());
      const workflowWatches = () => fake.openWatches();
      const holder = await until('a holder', () => fake.get('Lease', 'kfp-notify', 'kfp-notify-watcher')?.spec as { holderIdentity?: string } | undefined);
      await until('one Workflow watch open', () => workflowWatches() === 1);
      const first = holder.holderIdentity;
      const i = first === 'pod-a' ? 0 : 1;
      await watchers[i]?.stop();
      await until('the other replica holds the lease', () => (fake.get('Lease', 'kfp-notify', 'kfp-notify-watcher')?.spec as { holderIdentity?: string }).holderIdentity === (i === 0 ? 'pod-b' : 'pod-a'));
      await until('its Workflow watch open', () => workflowWatches() === 1);
      expect(workflowWatches()).toBe(1);
    } finally {
      for (const s of stops) await s();
      await fake.close();
    }
  });
});
