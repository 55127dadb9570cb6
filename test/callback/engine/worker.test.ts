import type { ServerResponse } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logger.js';
import { createSender, type Sender } from '../../../callback/sender.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import { startWorker } from '../../../callback/worker.js';
import type { DeliveryNotice, Subscriber } from '../../../callback/types.js';
import { makeEvent } from './events.js';
import { httpSubscriber, newSigningSecret, startEngine, type Engine } from './harness.js';
import { answer, startReceiver, until, type Receiver, type Respond } from './receiver.js';

/** Answers request n with the n-th responder; the last one repeats. */
function inTurn(...steps: Respond[]): Respond {
  return (got, res, req) => (steps[Math.min(got.n, steps.length) - 1] ?? answer(204))(got, res, req);
}

const hang: Respond = () => {};
const reset: Respond = (_got, _res, req) => req.socket.destroy();

async function outcomes(engine: Engine, subscriber: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await engine.metrics.deliveries.get()).values) if (v.labels.subscriber === subscriber) out[String(v.labels.outcome)] = v.value;
  return out;
}

describe('worker + sender against real subscriber servers on 127.0.0.1', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function receiver(respond?: Respond): Promise<Receiver> {
    const r = await startReceiver(respond);
    cleanups.push(r.close);
    return r;
  }
  function engine(subs: Subscriber[], opts: Parameters<typeof startEngine>[1] = {}): Engine {
    const e = startEngine(subs, opts);
    cleanups.push(e.close);
    return e;
  }

  it('success: one signed POST that the standardwebhooks package verifies, then nothing queued', async () => {
    const rx = await receiver(answer(204));
    const secret = newSigningSecret();
    const e = engine([httpSubscriber('ops', rx.url, { signingKeys: [secret], headers: { 'x-team': 'ml' } })]);
    const event = makeEvent({ seq: 1 });
    expect(await e.ingest([event])).toEqual({ eventIds: [event.EventId], duplicates: [] });
    await until(async () => (await outcomes(e, 'ops')).delivered === 1, 'the delivery');
    expect(rx.received).toHaveLength(1);
    const got = rx.received[0];
    const headers = got?.headers as Record<string, string>;
    const payload = new Webhook(secret).verify(got?.body ?? '', headers);
    expect(payload).toEqual(JSON.parse(JSON.stringify(event)));
    expect(headers['webhook-id']).toBe(event.EventId);
    expect(headers['content-type']).toBe('application/json');
    expect(headers['x-team']).toBe('ml');
    expect(() => new Webhook(newSigningSecret()).verify(got?.body ?? '', headers)).toThrow();
    expect(await e.store.queueDepth()).toEqual({});
    expect(await e.store.listDeadLetters()).toEqual([]);
  });

  it('a duplicate event (same EventId) is not delivered twice', async () => {
    const rx = await receiver(answer(200));
    const e = engine([httpSubscriber('ops', rx.url)]);
    const event = makeEvent({ seq: 2 });
    await e.ingest([event]);
    expect(await e.ingest([{ ...event, Source: 'watcher' }])).toEqual({ eventIds: [event.EventId], duplicates: [event.EventId] });
    await until(async () => (await outcomes(e, 'ops')).delivered === 1, 'the delivery');
    await e.ingest([event]);
    expect(rx.received).toHaveLength(1);
  });

  it('500 then success: retried with the same webhook-id and delivered on the second attempt', async () => {
    const rx = await receiver(inTurn(answer(500), answer(200)));
    const e = engine([httpSubscriber('ops', rx.url)]);
    const event = makeEvent({ seq: 3 });
    await e.ingest([event]);
    await until(async () => (await outcomes(e, 'ops')).delivered === 1, 'the second attempt');
    expect(rx.received.map((r) => r.headers['webhook-id'])).toEqual([event.EventId, event.EventId]);
    expect(await outcomes(e, 'ops')).toEqual({ retry: 1, delivered: 1 });
  });

  it('a failure on every attempt ends in the dead letters with the last outcome', async () => {
    const rx = await receiver(answer(502));
    const e = engine([httpSubscriber('ops', rx.url, { retry: { schedule: [0.01, 0.01], jitter: 0 } })]);
    const event = makeEvent({ seq: 4 });
    await e.ingest([event]);
    await until(async () => (await e.store.listDeadLetters()).length === 1, 'the dead letter');
    const [dead] = await e.store.listDeadLetters();
    expect(dead).toMatchObject({ subscriber: 'ops', eventId: event.EventId, attempts: 3, lastStatus: 502, lastError: 'HTTP 502' });
    expect(rx.received).toHaveLength(3);
    expect(await outcomes(e, 'ops')).toEqual({ retry: 2, dead: 1 });
  });

  it('410 disables the subscriber: no more attempts, later events go straight to the dead letters', async () => {
    const rx = await receiver(answer(410));
    const e = engine([httpSubscriber('gone', rx.url)]);
    await e.ingest([makeEvent({ seq: 5 })]);
    await until(async () => (await e.store.disabledSubscribers()).gone !== undefined, 'the subscriber to be disabled');
    await e.ingest([makeEvent({ seq: 6 })]);
    e.worker.notify(['gone']);
    expect(await e.store.queueDepth()).toEqual({});
    const dead = await e.store.listDeadLetters({ subscriber: 'gone' });
    expect(dead.map((d) => [d.lastStatus ?? null, d.lastError])).toEqual([
      [410, 'HTTP 410'],
      [null, 'subscriber disabled: HTTP 410 Gone'],
    ]);
    expect(rx.received).toHaveLength(1);
    expect(await outcomes(e, 'gone')).toEqual({ disabled: 1 });
  });

  it('a successful delivery is logged at info with what it was, and nothing secret', async () => {
    const rx = await receiver(answer(204));
    const secret = newSigningSecret();
    const e = engine([httpSubscriber('ops', `${rx.url}/hooks/T0KEN-in-path?sig=q5ecret`, { signingKeys: [secret], headers: { authorization: 'Bearer h3ader-secret' } })]);
    const event = makeEvent({ seq: 7 });
    await e.ingest([event]);
    await until(() => e.lines.some((l) => l.msg === 'delivered'), 'the delivered line');
    const line = e.lines.find((l) => l.msg === 'delivered');
    expect(line).toMatchObject({ level: 30, subscriber: 'ops', eventId: event.EventId, eventType: event.EventType, kfpRunId: event.KfpRunId, attempt: 1, status: 204 });
    const text = JSON.stringify(e.lines);
    for (const s of ['T0KEN-in-path', 'q5ecret', 'h3ader-secret', secret]) expect(text).not.toContain(s);
  });

  it('auto-disable: a subscriber failing without a success for disableAfterMs is disabled, with the reason logged, counted and noticed', async () => {
    let clock = 1_800_000_000_000;
    const notices: DeliveryNotice[] = [];
    let status = 500;
    const rx = await receiver((_g, res) => res.writeHead(status).end());
    const e = engine([httpSubscriber('flaky', rx.url, { retry: { schedule: [], jitter: 0 } })], { now: () => clock, disableAfterMs: 5 * 86_400_000, onNotice: (n) => notices.push(n) });
    const failing = async () => (await e.store.failingSince()).flaky;
    // The first failure sets the mark; a success clears it; the next failure sets a new one.
    await e.ingest([makeEvent({ seq: 1 })]);
    await until(async () => (await failing()) === clock, 'the failing mark');
    status = 200;
    clock += 1000;
    await e.ingest([makeEvent({ seq: 2 })]);
    await until(async () => (await failing()) === undefined, 'the success to clear the mark');
    status = 500;
    clock += 1000;
    const since = clock;
    await e.ingest([makeEvent({ seq: 3 })]);
    await until(async () => (await failing()) === since, 'a new mark');
    // Still failing four days later: not yet.
    clock += 4 * 86_400_000;
    await e.ingest([makeEvent({ seq: 4 })]);
    await until(async () => (await e.store.listDeadLetters()).length === 3, 'the fourth event to die');
    expect(await e.store.disabledSubscribers()).toEqual({});
    expect(await failing()).toBe(since);
    // Five days after the first failure of the streak: disabled, saying why.
    clock = since + 5 * 86_400_000;
    await e.ingest([makeEvent({ seq: 5 })]);
    await until(async () => (await e.store.disabledSubscribers()).flaky !== undefined, 'auto-disable');
    const reason = `no successful delivery for 5d (failing since ${new Date(since).toISOString()})`;
    expect((await e.store.disabledSubscribers()).flaky).toEqual({ since: clock, reason });
    const isWarn = (l: { level: number; msg: string }) => l.level === 40 && l.msg.startsWith('subscriber disabled: no successful delivery');
    await until(() => e.lines.some(isWarn), 'the warning line');
    expect(e.lines.find(isWarn)?.msg).toBe(`subscriber disabled: ${reason}; re-enable with: kfp-notify subscriber enable flaky`);
    expect(notices).toContainEqual(expect.objectContaining({ kind: 'subscriber-disabled', subscriber: 'flaky', reason }));
    expect((await e.metrics.subscriberDisables.get()).values).toEqual([expect.objectContaining({ labels: { subscriber: 'flaky', reason: 'failing' }, value: 1 })]);
    // New events wait in the dead letters; enable clears the mark, so one more failure does not disable it again.
    await e.ingest([makeEvent({ seq: 6 })]);
    expect(await e.store.queueDepth()).toEqual({});
    expect(await e.store.enable('flaky')).toBe(true);
    expect(await failing()).toBeUndefined();
    e.worker.notify(['flaky']);
    clock += 1000;
    const before = rx.received.length;
    await e.ingest([makeEvent({ seq: 7 })]);
    await until(() => rx.received.length === before + 1, 'a send after re-enabling');
    await until(async () => (await failing()) === clock, 'a fresh mark');
    expect(await e.store.disabledSubscribers()).toEqual({});
  });

  it('429 with Retry-After: the next attempt waits what the receiver asked, not the (shorter) schedule step', async () => {
    const rx = await receiver(inTurn(answer(429, { 'retry-after': '1' }), answer(200)));
    // A 50 ms first step: only honouring Retry-After can put a second between the attempts.
    const e = engine([httpSubscriber('busy', rx.url, { retry: { schedule: [0.05, 5], jitter: 0 } })]);
    await e.ingest([makeEvent({ seq: 7 })]);
    await until(async () => (await outcomes(e, 'busy')).delivered === 1, 'the second attempt');
    const [first, second] = rx.received;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(990);
  });

  it('a subscriber that does not answer in time is a failed attempt, then retried', async () => {
    const rx = await receiver(inTurn(hang, answer(200)));
    const e = engine([httpSubscriber('slow', rx.url, { timeoutMs: 200 })]);
    await e.ingest([makeEvent({ seq: 8 })]);
    await until(async () => (await outcomes(e, 'slow')).delivered === 1, 'the retry');
    expect(e.lines.some((l) => l.msg === 'delivery failed; will retry' && l.error === 'timeout after 200 ms')).toBe(true);
  });

  it('a connection reset is a failed attempt with the transport error recorded', async () => {
    const rx = await receiver(reset);
    const e = engine([httpSubscriber('flaky', rx.url, { retry: { schedule: [0.01], jitter: 0 } })]);
    await e.ingest([makeEvent({ seq: 9 })]);
    await until(async () => (await e.store.listDeadLetters()).length === 1, 'the dead letter');
    const [dead] = await e.store.listDeadLetters();
    expect(dead?.lastStatus).toBeUndefined();
    expect(dead?.lastError).toMatch(/UND_ERR_SOCKET|ECONNRESET|other side closed/);
    expect(rx.received).toHaveLength(2);
  });

  it('redirects are not followed: a 302 is a failure and its target is never called', async () => {
    const target = await receiver(answer(200));
    const rx = await receiver(answer(302, { location: target.url }));
    const e = engine([httpSubscriber('moved', rx.url, { retry: { schedule: [], jitter: 0 } })]);
    await e.ingest([makeEvent({ seq: 10 })]);
    await until(async () => (await e.store.listDeadLetters()).length === 1, 'the dead letter');
    expect((await e.store.listDeadLetters())[0]?.lastError).toBe('HTTP 302 (redirects are not followed)');
    expect(target.received).toHaveLength(0);
  });

  it('a request that cannot be built (a malformed signing secret) is a failed attempt, never a stuck delivery', async () => {
    const rx = await receiver(answer(200));
    const e = engine([httpSubscriber('bad-key', rx.url, { signingKeys: ['whsec_dG9vc2hvcnQ='], retry: { schedule: [], jitter: 0 } })]);
    await e.ingest([makeEvent({ seq: 14 })]);
    await until(async () => (await e.store.listDeadLetters()).length === 1, 'the dead letter');
    expect((await e.store.listDeadLetters())[0]?.lastError).toMatch(/^cannot build the request: a signing secret must decode to/);
    expect(rx.received).toHaveLength(0);
  });

  it('a slow subscriber does not delay a fast one', async () => {
    const held: ServerResponse[] = [];
    const slow = await receiver((_got, res) => void held.push(res));
    const fast = await receiver(answer(200));
    const e = engine([httpSubscriber('slow', slow.url, { maxConcurrency: 1, timeoutMs: 10_000 }), httpSubscriber('fast', fast.url, { maxConcurrency: 1 })]);
    const events = Array.from({ length: 10 }, (_, i) => makeEvent({ seq: 100 + i }));
    for (const ev of events) await e.ingest([ev]);
    await until(() => fast.received.length === 10, 'every event at the fast subscriber');
    // The fast one has everything while the slow one still holds its first request.
    expect(slow.received).toHaveLength(1);
    expect(fast.received.map((r) => r.headers['webhook-id'])).toEqual(events.map((ev) => ev.EventId));
    const release = async () => {
      while (slow.received.length < 10 || held.length > 0) {
        held.splice(0).forEach((res) => res.writeHead(200).end());
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await release();
    await until(async () => (await outcomes(e, 'slow')).delivered === 10, 'the slow subscriber to catch up');
  });

  it('a log subscriber writes each event as one structured log line', async () => {
    const e = engine([{ name: 'log', type: 'log', format: 'json', headers: {}, timeoutMs: 1000, maxConcurrency: 1, retry: { schedule: [], jitter: 0 } }]);
    const event = makeEvent({ seq: 11 });
    await e.ingest([event]);
    await until(async () => (await outcomes(e, 'log')).delivered === 1, 'the log line');
    const lines = e.lines.filter((l) => l.subscriber === 'log' && l.event !== undefined);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.event).toEqual(event);
    expect(lines[0]?.msg).toContain(event.EventType);
  });

  it('shutdown waits for in-flight sends up to the bound, then releases their leases', async () => {
    const rx = await receiver(hang);
    const e = startEngine([httpSubscriber('ops', rx.url, { timeoutMs: 10_000 })]);
    const event = makeEvent({ seq: 12 });
    await e.ingest([event]);
    await until(() => rx.received.length === 1, 'the send to start');
    await e.worker.stop({ graceMs: 50 });
    expect(e.worker.running()).toBe(false);
    const [c] = await e.store.claim('ops', { now: Date.now(), limit: 1, leaseMs: 1000 });
    expect([c?.event.EventId, c?.delivery.attempts]).toEqual([event.EventId, 0]);
    await e.close();
  });

  it('deliveries pending when the store closed are sent by the next worker on the same file', async () => {
    const rx = await receiver(answer(200));
    const first = startEngine([httpSubscriber('ops', rx.url)]);
    cleanups.push(first.close);
    await first.worker.stop();
    const event = makeEvent({ seq: 13 });
    await first.ingest([event]);
    await first.store.close();
    expect(rx.received).toHaveLength(0);

    const store = openSqliteStore({ file: first.file });
    const sender = createSender();
    const worker = startWorker({ store, send: sender.send, log: silentLogger() }, [httpSubscriber('ops', rx.url)]);
    cleanups.push(async () => {
      await worker.stop();
      await sender.close();
      await store.close();
    });
    await until(() => rx.received.length === 1, 'the pending delivery');
    expect(rx.received[0]?.headers['webhook-id']).toBe(event.EventId);
  });

  describe('the sender on its own: what a send resolves to, never a throw', () => {
    function sender(): Sender {
      const s = createSender();
      cleanups.push(() => s.close());
      return s;
    }
    const post = (url: string, over: { timeoutMs?: number; signal?: AbortSignal; headers?: Record<string, string> } = {}) => ({
      url,
      headers: { 'content-type': 'application/json', ...over.headers },
      body: '{"n":1}',
      timeoutMs: over.timeoutMs ?? 10_000,
      ...(over.signal ? { signal: over.signal } : {}),
    });

    it('posts the body and headers with its user agent, to the path and query of the URL', async () => {
      const rx = await receiver(answer(204));
      const r = await sender().send(post(`${rx.url}?team=ml`, { headers: { 'x-team': 'ml' } }));
      expect(r).toMatchObject({ ok: true, status: 204 });
      expect(rx.received.map((g) => [g.url, g.body, g.headers['user-agent'], g.headers['x-team']])).toEqual([['/hook?team=ml', '{"n":1}', 'kfp-notify', 'ml']]);
    });

    it('one shutdown signal ends every send it covers at once, and a send made after it ends without a request', async () => {
      const rx = await receiver(() => {}); // never answers
      const s = sender();
      const shutdown = new AbortController();
      const sends = [1, 2, 3].map(() => s.send(post(rx.url, { signal: shutdown.signal })));
      await until(() => rx.received.length === 3, 'three requests at the receiver');
      shutdown.abort(new Error('shutting down'));
      const results = await Promise.all(sends);
      expect(results.map((r) => [r.ok, r.status, r.error])).toEqual(Array(3).fill([false, undefined, 'shutting down']));
      expect(await s.send(post(rx.url, { signal: shutdown.signal }))).toMatchObject({ ok: false, error: 'shutting down' });
      expect(rx.received).toHaveLength(3);
    });

    it('a response body past the drain limit: the status is the answer and the connection is dropped, not read to the end', async () => {
      const big = Buffer.alloc(8 * 1024 * 1024, 'x');
      let closed = false;
      const rx = await receiver((_got, res) => {
        res.on('close', () => (closed = true));
        res.writeHead(200, { 'content-length': String(big.length) });
        res.end(big);
      });
      expect(await sender().send(post(rx.url))).toMatchObject({ ok: true, status: 200 });
      await until(() => closed, 'the receiver to see its connection dropped');
    });

    it('a header value the client refuses is a failed attempt, not an exception', async () => {
      const rx = await receiver(answer(204));
      const r = await sender().send(post(rx.url, { headers: { 'x-bad': 'a\r\nb' } }));
      expect(r.ok).toBe(false);
      expect(r.error).toBeTruthy();
      expect(rx.received).toHaveLength(0);
    });
  });
});
