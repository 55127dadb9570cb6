import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Agent, request, type Dispatcher } from 'undici';
import { createLogger } from '../../common/logger.js';
import { callbackMetrics } from '../../callback/metrics.js';
import { createSender, type SendRequest } from '../../callback/sender.js';
import { openSqliteStore } from '../../callback/store/sqlite.js';
import type { DeliveryStore } from '../../callback/store/types.js';
import { parseSubscribers } from '../../callback/subscribers/parse.js';
import type { Subscriber } from '../../callback/types.js';
import { deliveryRequest, startWorker } from '../../callback/worker.js';
import { nodeEvents } from '../lib/hook-calls.js';
import { childConfig, serveRpc } from '../lib/rpc.js';

/**
 * Fan-out, both ways, in one process (not the receivers'): `product` stores `events` events for every
 * subscriber (untimed), then times the real worker (SQLite store, undici sender, default subscriber
 * settings) until every delivery is marked delivered; `baseline` times a bare undici client posting
 * the same bodies and headers to the same receivers, as many at once per receiver as the worker may;
 * `sender` (a diagnostic) does the same through the product's sender, without queue or worker, and
 * `bareDispatch` (a diagnostic) through undici's dispatch API with a minimal handler.
 */

export interface FanoutRun {
  urls: string[];
  events: number;
}

export interface FanoutResult {
  deliveries: number;
  seconds: number;
  failed: number;
}

const cfg = childConfig<{ dir: string }>();
const log = createLogger({ level: 'info', destination: pino.destination({ dest: join(cfg.dir, 'engine.log'), sync: false }) });
let runNo = 0;

function subscribersFor(urls: readonly string[]): Subscriber[] {
  const { subscribers, errors } = parseSubscribers(Object.fromEntries(urls.map((u, i) => [`sub-${String(i).padStart(3, '0')}`, u])), () => undefined);
  if (errors.length > 0) throw new Error(errors.join('; '));
  return subscribers;
}

async function product({ urls, events }: FanoutRun): Promise<FanoutResult> {
  const subscribers = subscribersFor(urls);
  const file = join(cfg.dir, `fanout-${++runNo}.db`);
  const store = openSqliteStore({ file });
  const names = subscribers.map((s) => s.name);
  await store.accept(nodeEvents(events, `run${runNo}-step`).map((event) => ({ event, subscribers: names })), Date.now());
  const total = events * subscribers.length;
  let delivered = 0;
  let failed = 0;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  // The real store, counting: the run ends when the last delivery is recorded as delivered.
  const counting: DeliveryStore = {
    ...store,
    markDelivered: async (id, note) => {
      await store.markDelivered(id, note);
      if (++delivered === total) finish();
    },
    scheduleRetry: async (id, dueAt, note) => {
      failed++;
      await store.scheduleRetry(id, dueAt, note);
    },
  };
  const sender = createSender();
  const metrics = callbackMetrics(new Registry());
  const started = performance.now();
  const worker = startWorker({ store: counting, send: sender.send, log, metrics }, subscribers);
  const timer = setTimeout(finish, 120_000);
  await done;
  const seconds = (performance.now() - started) / 1000;
  clearTimeout(timer);
  await worker.stop({ graceMs: 1000 });
  await sender.close();
  await store.close();
  rmSync(file, { force: true });
  if (delivered !== total) throw new Error(`the worker delivered ${delivered} of ${total} in 120 s (${failed} failed attempts)`);
  return { deliveries: delivered, seconds, failed };
}

/** Runs `work` over `items` with at most `width` at once. */
async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

type Post = (r: Omit<SendRequest, 'signal'>) => Promise<boolean>;

/** Posts every subscriber's bodies with `post`, as many at once per subscriber as the worker may. */
async function postAll({ urls, events }: FanoutRun, post: Post): Promise<FanoutResult> {
  const subscribers = subscribersFor(urls);
  const list = nodeEvents(events, `base${++runNo}-step`);
  const now = Date.now();
  const perSubscriber = subscribers.map((sub) => ({ sub, reqs: list.map((e) => deliveryRequest(e, sub, now)) }));
  let failed = 0;
  let deliveries = 0;
  const started = performance.now();
  await Promise.all(
    perSubscriber.map(({ sub, reqs }) =>
      pool(reqs, sub.maxConcurrency, async (r) => {
        if (await post(r)) deliveries++;
        else failed++;
      }),
    ),
  );
  return { deliveries, seconds: (performance.now() - started) / 1000, failed };
}

/** The bare client: undici with the sender's connection settings, nothing else. */
async function baseline(run: FanoutRun): Promise<FanoutResult> {
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
  try {
    return await postAll(run, async (r) => {
      const res = await request(r.url, { method: 'POST', headers: { 'user-agent': 'kfp-notify', ...r.headers }, body: r.body, dispatcher: agent });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 300;
    });
  } finally {
    await agent.close();
  }
}

/**
 * A second bare client, at undici's lowest level: `dispatch` with a handler that keeps the status and
 * drops the body (no response stream, no promise per phase), the API the product's sender uses. A
 * diagnostic, so that the worker is also compared with the cheapest bare client, not only `request`.
 */
async function bareDispatch(run: FanoutRun): Promise<FanoutResult> {
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
  const origins = new Map<string, URL>();
  try {
    return await postAll(run, (r) => {
      let u = origins.get(r.url);
      if (!u) origins.set(r.url, (u = new URL(r.url)));
      const { origin, pathname } = u;
      return new Promise<boolean>((resolve) => {
        let status = 0;
        const handler: Dispatcher.DispatchHandler = {
          onRequestStart: () => undefined, // marks the handler as undici 7's kind
          onResponseStart: (_c, statusCode) => void (status = statusCode),
          onResponseEnd: () => resolve(status >= 200 && status < 300),
          onResponseError: () => resolve(false),
        };
        agent.dispatch({ origin, path: pathname, method: 'POST', headers: { 'user-agent': 'kfp-notify', ...r.headers }, body: r.body }, handler);
      });
    });
  } finally {
    await agent.close();
  }
}

/** A diagnostic: the product's sender (callback/sender.ts) alone, without the queue or the worker. */
async function senderOnly(run: FanoutRun): Promise<FanoutResult> {
  const sender = createSender();
  try {
    return await postAll(run, async (r) => (await sender.send(r)).ok);
  } finally {
    await sender.close();
  }
}

/**
 * A diagnostic: the store's bookkeeping as the worker does it (every lane claims for its 4 slots in
 * one pass, the outcomes of one turn are marked together), with no HTTP at all; µs per delivery.
 */
async function storeOnly({ subscribers, events }: { subscribers: number; events: number }): Promise<number> {
  const file = join(cfg.dir, `store-${++runNo}.db`);
  const store = openSqliteStore({ file });
  const names = Array.from({ length: subscribers }, (_, i) => `sub-${i}`);
  await store.accept(nodeEvents(events, `store${runNo}-step`).map((event) => ({ event, subscribers: names })), Date.now());
  let n = 0;
  const started = performance.now();
  for (let more = true; more; ) {
    const claimed = (await store.claimMany(names.map((subscriber) => ({ subscriber, limit: 4, leaseMs: 45_000 })), Date.now())).flat();
    await Promise.all(claimed.map((c) => store.markDelivered(c.delivery.id, { now: Date.now(), status: 204 })));
    n += claimed.length;
    more = claimed.length > 0;
  }
  const us = ((performance.now() - started) * 1000) / n;
  await store.close();
  rmSync(file, { force: true });
  return us;
}

serveRpc({
  ready: () => ({ pid: process.pid }),
  product: (arg) => product(arg as FanoutRun),
  baseline: (arg) => baseline(arg as FanoutRun),
  sender: (arg) => senderOnly(arg as FanoutRun),
  bareDispatch: (arg) => bareDispatch(arg as FanoutRun),
  store: (arg) => storeOnly(arg as { subscribers: number; events: number }),
});
