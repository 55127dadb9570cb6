import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { makeEvent } from './events.js';
import { httpSubscriber, startEngine, type Engine } from './harness.js';
import { until } from './receiver.js';

/**
 * A subscriber that refuses connections pauses its lane (callback/worker.ts): one failed attempt per
 * free slot, then nothing until the failed delivery's retry time, then the lane resumes by itself.
 * The subscriber is a real HTTP server on 127.0.0.1 that, while "down", destroys every connection
 * as it is accepted (a connection-level failure: no HTTP status).
 */

interface Flaky {
  url: string;
  /** Connections accepted so far (each one is one attempt). */
  connections: number;
  /** webhook-id of every request answered 204. */
  delivered: string[];
  down: boolean;
  close(): Promise<void>;
}

async function flakySubscriber(): Promise<Flaky> {
  const sockets = new Set<Socket>();
  const state = { connections: 0, delivered: [] as string[], down: true };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      state.delivered.push(String(req.headers['webhook-id']));
      res.writeHead(204).end();
    });
  });
  server.on('connection', (socket: Socket) => {
    state.connections++;
    if (state.down) socket.destroy();
    else {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

async function outcome(engine: Engine, name: string): Promise<number> {
  return (await engine.metrics.deliveries.get()).values.find((v) => v.labels.outcome === name)?.value ?? 0;
}

describe('lane pause after a connection-level failure (real HTTP server on 127.0.0.1, real SQLite, real worker)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('attempts only the deliveries in flight, waits for their retry time, then resumes and delivers everything', async () => {
    const rx = await flakySubscriber();
    cleanups.push(rx.close);
    // 1.5 s to the first retry: the pause the lane must keep.
    const e = startEngine([httpSubscriber('down', rx.url, { maxConcurrency: 4, retry: { schedule: [1.5, 1.5, 1.5], jitter: 0 } })]);
    cleanups.push(e.close);
    const events = Array.from({ length: 12 }, (_, i) => makeEvent({ seq: 300 + i }));
    await e.ingest(events);
    await until(async () => (await outcome(e, 'retry')) >= 1, 'the first failed attempt');

    // The lane is paused: whatever was in flight fails, nothing else is tried, not even new work.
    await new Promise((r) => setTimeout(r, 400));
    await e.ingest([makeEvent({ seq: 399 })]);
    await new Promise((r) => setTimeout(r, 100));
    expect(rx.connections).toBeLessThanOrEqual(4);
    expect(await outcome(e, 'retry')).toBe(rx.connections);
    expect(await e.store.queueDepth()).toEqual({ down: 13 });
    expect(e.lines.some((l) => l.msg === 'delivery failed; will retry' && typeof l.error === 'string' && l.retryInMs === 1500)).toBe(true);

    // The subscriber comes back: the lane resumes at the retry time, with no notice from outside.
    rx.down = false;
    await until(() => rx.delivered.length === 13, 'every delivery after the pause', 10_000);
    expect(new Set(rx.delivered)).toEqual(new Set([...events, makeEvent({ seq: 399 })].map((ev) => ev.EventId)));
    await until(async () => Object.keys(await e.store.queueDepth()).length === 0, 'an empty queue');
    expect(await e.store.listDeadLetters()).toEqual([]);
  });

  it('an HTTP error answer does not pause the lane: every delivery is attempted at once', async () => {
    let requests = 0;
    const server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => res.writeHead(500).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
    const { port } = server.address() as AddressInfo;
    const e = startEngine([httpSubscriber('erroring', `http://127.0.0.1:${port}/hook`, { maxConcurrency: 4, retry: { schedule: [60], jitter: 0 } })]);
    cleanups.push(e.close);
    await e.ingest(Array.from({ length: 12 }, (_, i) => makeEvent({ seq: 400 + i })));
    // The subscriber answers, so its lane goes on through the queue (each delivery then waits 60 s).
    await until(async () => (await outcome(e, 'retry')) === 12, 'one attempt of every delivery');
    expect(requests).toBe(12);
  });
});
