import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../../helpers/tls.js';
import { openJetStreamStore, type JetStreamStore, type JetStreamStoreOptions } from '../../../callback/store/jetstream/index.js';
import { StoreUnavailableError } from '../../../callback/store/types.js';
import { makeEvent } from './events.js';
import { until } from './receiver.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { storeContract } from './store.contract.js';

// A real nats-server with JetStream (file storage) on a free port; each store gets its own buckets.
let nats: NatsServer;
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.dispose();
});

let n = 0;
storeContract({ name: 'jetstream (real nats-server, file storage)', open: () => openJetStreamStore({ servers: [nats.url], prefix: `contract-${n++}` }) });

describe('JetStream store: several replicas on the same buckets', () => {
  const T0 = 1_800_000_000_000;
  const LEASE = 30_000;
  const opened: JetStreamStore[] = [];
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });
  /** Two replicas sharing one prefix, as two callback pods would. */
  async function replicas(count: number, opts: Partial<JetStreamStoreOptions> = {}): Promise<JetStreamStore[]> {
    const prefix = `replicas-${n++}`;
    const out: JetStreamStore[] = [];
    for (let i = 0; i < count; i++) out.push(await openJetStreamStore({ servers: [nats.url], prefix, ...opts }));
    opened.push(...out);
    return out;
  }

  it('an event id accepted by one replica is a duplicate on another', async () => {
    const [a, b] = await replicas(2);
    const e = makeEvent({ seq: 1 });
    const [first, second] = await Promise.all([a!.accept([{ event: e, subscribers: ['s'] }], T0), b!.accept([{ event: e, subscribers: ['s'] }], T0)]);
    expect([first[0]?.duplicate, second[0]?.duplicate].sort()).toEqual([false, true]);
    await until(async () => (await b!.queueDepth()).s === 1, 'replica b sees the delivery');
    expect(await a!.queueDepth()).toEqual({ s: 1 });
  });

  it('a claim is exclusive across replicas; after the lease the other replica gets the same delivery', async () => {
    const [a, b] = await replicas(2);
    await a!.accept([{ event: makeEvent({ seq: 2 }), subscribers: ['s'] }], T0);
    await until(async () => (await b!.queueDepth()).s === 1, 'replica b sees the delivery');
    const [c] = await a!.claim('s', { now: T0, limit: 10, leaseMs: LEASE });
    await until(async () => (await b!.nextDueAt('s')) === T0 + LEASE, 'replica b sees the lease');
    expect(await b!.claim('s', { now: T0 + LEASE - 1, limit: 10, leaseMs: LEASE })).toEqual([]);
    const again = await b!.claim('s', { now: T0 + LEASE, limit: 10, leaseMs: LEASE });
    expect(again.map((x) => [x.delivery.id, x.delivery.attempts])).toEqual([[c?.delivery.id, 0]]);
  });

  it('a lease longer than the configured one is cut to it (what a dead replica holds comes free after leaseMs)', async () => {
    const [a, b] = await replicas(2, { leaseMs: 5_000 });
    await a!.accept([{ event: makeEvent({ seq: 3 }), subscribers: ['s'] }], T0);
    await a!.claim('s', { now: T0, limit: 1, leaseMs: 3_600_000 });
    await until(async () => (await b!.nextDueAt('s')) === T0 + 5_000, 'replica b sees the 5 s lease');
    expect(await b!.claim('s', { now: T0 + 5_000, limit: 1, leaseMs: LEASE })).toHaveLength(1);
  });

  it("maxConcurrency caps the live leases of a subscriber over all replicas, and a settled one frees a slot for any", async () => {
    const [a, b] = await replicas(2, { maxLeased: () => 2 });
    for (const seq of [4, 5, 6, 7]) await a!.accept([{ event: makeEvent({ seq }), subscribers: ['s'] }], T0);
    await until(async () => (await b!.queueDepth()).s === 4, 'replica b sees the deliveries');
    const got = await a!.claim('s', { now: T0, limit: 10, leaseMs: LEASE });
    expect(got).toHaveLength(2);
    expect(await b!.claim('s', { now: T0, limit: 10, leaseMs: LEASE })).toEqual([]);
    const woken: string[][] = [];
    b!.onWork((subs) => woken.push(subs));
    await a!.markDelivered(got[0]?.delivery.id ?? -1, { now: T0 + 1, status: 200 });
    await until(() => woken.some((s) => s.includes('s')), 'replica b told a slot is free');
    const third = await b!.claim('s', { now: T0 + 2, limit: 10, leaseMs: LEASE });
    expect(third).toHaveLength(1);
    expect(new Set([...got, ...third].map((c) => c.delivery.id)).size).toBe(3);
  });

  it('a replica is told of deliveries another replica accepted or replayed', async () => {
    const [a, b] = await replicas(2);
    const woken: string[] = [];
    b!.onWork((subs) => woken.push(...subs));
    await a!.accept([{ event: makeEvent({ seq: 8 }), subscribers: ['s', 't'] }], T0);
    await until(() => woken.includes('s') && woken.includes('t'), 'replica b woken for s and t');
  });

  it('dead letters, disable and enable work from any replica', async () => {
    const [a, b] = await replicas(2);
    const e = makeEvent({ seq: 9 });
    await a!.accept([{ event: e, subscribers: ['s'] }], T0);
    const [c] = await a!.claim('s', { now: T0, limit: 1, leaseMs: LEASE });
    await a!.deadLetter(c?.delivery.id ?? -1, { now: T0 + 1, status: 500, error: 'HTTP 500' });
    await until(async () => (await b!.listDeadLetters()).length === 1, 'replica b lists the dead letter');
    expect((await b!.listDeadLetters())[0]).toMatchObject({ id: c?.delivery.id, subscriber: 's', lastStatus: 500, event: e });
    expect(await b!.replayDeadLetters({ subscriber: 's' }, T0 + 2)).toEqual([c?.delivery.id]);
    await until(async () => (await a!.queueDepth()).s === 1, 'replica a sees the replayed delivery');
    const [again] = await a!.claim('s', { now: T0 + 2, limit: 1, leaseMs: LEASE });
    expect([again?.delivery.id, again?.delivery.attempts]).toEqual([c?.delivery.id, 0]);

    expect(await b!.disable('t', 'HTTP 410 Gone', T0 + 3)).toBe(0);
    await until(async () => 't' in (await a!.disabledSubscribers()), 'replica a sees t disabled');
    await a!.accept([{ event: makeEvent({ seq: 10 }), subscribers: ['t'] }], T0 + 4);
    expect((await a!.listDeadLetters({ subscriber: 't' })).map((d) => d.lastError)).toEqual(['subscriber disabled: HTTP 410 Gone']);
    expect(await a!.enable('t')).toBe(true);
    await until(async () => !('t' in (await b!.disabledSubscribers())), 'replica b sees t enabled');
    expect(await b!.enable('t')).toBe(false);
  });

  it('a failing mark is shared: the first one stays whichever replica marks later, and a clear on one is seen by the other', async () => {
    const [a, b] = await replicas(2);
    await a!.markFailing('s', T0);
    // b may not have seen a's mark yet: the compare-and-set keeps the earlier one all the same.
    await b!.markFailing('s', T0 + 500);
    expect(await b!.failingSince()).toEqual({ s: T0 });
    await until(async () => (await a!.failingSince()).s === T0, 'replica a keeps its mark');
    await b!.clearFailing('s');
    await until(async () => Object.keys(await a!.failingSince()).length === 0, 'replica a sees the mark cleared');
    await a!.markFailing('s', T0 + 900);
    await until(async () => (await b!.failingSince()).s === T0 + 900, 'replica b sees the new mark');
  });

  it("the attempt log, events search and stats of one replica's deliveries are seen by another", async () => {
    const [a, b] = await replicas(2);
    const e = makeEvent({ seq: 12, KfpRunId: 'run-shared' });
    await a!.accept([{ event: e, subscribers: ['s'] }], T0);
    const [c] = await a!.claim('s', { now: T0, limit: 1, leaseMs: LEASE });
    const attempt = { startedAt: T0, durationMs: 4, outcome: 'delivered' as const, status: 200, request: { url: 'https://hooks.example', headers: {}, body: '{}' } };
    await a!.markDelivered(c?.delivery.id ?? -1, { now: T0 + 4, status: 200, attempt });
    await until(async () => (await b!.listEvents({ limit: 10, runId: 'run-shared' })).events[0]?.deliveries[0]?.state === 'delivered', 'replica b finds the delivered event');
    expect(await b!.listAttempts(c?.delivery.id ?? -1)).toEqual([{ ...attempt, id: 1, deliveryId: c?.delivery.id, subscriber: 's' }]);
    expect((await b!.subscriberStats(T0 + 10)).s?.hour).toEqual({ delivered: 1, failed: 0, dead: 0, p50Ms: 4, p95Ms: 4 });
  });

  it('a replica reopened on the buckets finds the queue, dead letters and disabled state', async () => {
    const [a] = await replicas(1, { prefix: 'reopen' });
    await a!.accept([{ event: makeEvent({ seq: 11 }), subscribers: ['s', 'u'] }], T0);
    const [c] = await a!.claim('u', { now: T0, limit: 1, leaseMs: LEASE });
    await a!.deadLetter(c?.delivery.id ?? -1, { now: T0 + 1, error: 'timeout' });
    await a!.disable('v', 'HTTP 410 Gone', T0 + 2);
    await a!.markFailing('w', T0 + 3);
    await a!.close();
    const b = await openJetStreamStore({ servers: [nats.url], prefix: 'reopen' });
    opened.push(b);
    expect(await b.queueDepth()).toEqual({ s: 1 });
    expect((await b.listDeadLetters()).map((d) => d.id)).toEqual([c?.delivery.id]);
    expect(Object.keys(await b.disabledSubscribers())).toEqual(['v']);
    expect(await b.failingSince()).toEqual({ w: T0 + 3 });
    expect((await b.listEvents({ limit: 10 })).events.map((x) => x.event.EventId)).toEqual([makeEvent({ seq: 11 }).EventId]);
  });
});

describe('JetStream store: NATS unreachable', () => {
  it('accept and reads fail with StoreUnavailableError while the server is down, and work again once it is back', async () => {
    const own = await startNatsServer();
    const s = await openJetStreamStore({ servers: [own.url], prefix: 'outage' });
    try {
      await s.accept([{ event: makeEvent({ seq: 1 }), subscribers: ['s'] }], 1);
      await own.kill();
      await until(async () => {
        try {
          await s.getEvent('evt_x');
          return false;
        } catch (err) {
          return err instanceof StoreUnavailableError;
        }
      }, 'the store to notice the server is gone');
      await expect(s.accept([{ event: makeEvent({ seq: 2 }), subscribers: ['s'] }], 2)).rejects.toBeInstanceOf(StoreUnavailableError);
      await own.start();
      await until(async () => s.accept([{ event: makeEvent({ seq: 2 }), subscribers: ['s'] }], 3).then(() => true, () => false), 'accept to work again', 30_000);
      expect(await s.getEvent(makeEvent({ seq: 1 }).EventId)).toEqual(makeEvent({ seq: 1 }));
      expect(await s.queueDepth()).toEqual({ s: 2 });
    } finally {
      await s.close();
      await own.dispose();
    }
  }, 60_000);
});

describe('JetStream store: credentials and TLS from files', () => {
  it('connects over TLS (CA from a file) with a token from a file; a wrong token is refused with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-nats-tls-'));
    const cert = await makeCert();
    const certFile = join(dir, 'server.crt');
    const keyFile = join(dir, 'server.key');
    writeFileSync(certFile, cert.cert);
    writeFileSync(keyFile, cert.key);
    const token = 'nats-token-0123456789abcdef';
    writeFileSync(join(dir, 'token'), `${token}\n`);
    writeFileSync(join(dir, 'wrong'), 'not-the-token\n');
    const own = await startNatsServer({ extraArgs: ['--auth', token, '--tls', '--tlscert', certFile, '--tlskey', keyFile] });
    try {
      const servers = [own.url.replace('nats://', 'tls://')];
      const s = await openJetStreamStore({ servers, prefix: 'tls', tokenFile: join(dir, 'token'), tlsCaFile: certFile });
      const e = makeEvent({ seq: 1 });
      expect(await s.accept([{ event: e, subscribers: ['a'] }], 1)).toEqual([{ eventId: e.EventId, duplicate: false }]);
      expect(await s.getEvent(e.EventId)).toEqual(e);
      await s.close();
      const refused = await openJetStreamStore({ servers, prefix: 'tls', tokenFile: join(dir, 'wrong'), tlsCaFile: certFile }).then(
        (x) => x.close().then(() => 'connected'),
        (err: unknown) => String(err),
      );
      expect(refused).toMatch(/StoreUnavailableError: NATS JetStream: .*(Authorization|authorization)/);
      expect(refused).not.toContain('not-the-token');
    } finally {
      await own.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
