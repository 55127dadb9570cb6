import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngest } from '../../../callback/ingest.js';
import { createNatsTransport } from '../../../callback/nats/transport.js';
import { createSender } from '../../../callback/sender.js';
import { openSqliteStore } from '../../../callback/store/sqlite.js';
import { startWorker } from '../../../callback/worker.js';
import { cleanups } from '../../helpers/cleanups.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { capturingLogger } from '../engine/harness.js';
import { makeEvent } from '../engine/events.js';
import { addStream, natsSubscriber, streamMessages, until } from './helpers.js';

/**
 * The worker's machinery, unchanged, for a nats subscriber (real SQLite store, real worker, real
 * nats-server): a stream that refuses messages makes deliveries fail with its status and go to the
 * dead letters after the schedule; once the stream takes messages again, a replay delivers each of
 * them once.
 */

const c = cleanups('kfp-notify-nats-worker-');
afterAll(() => c.run());
let server: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNatsServer();
  c.push(() => server.dispose());
  nc = await connect({ servers: server.url });
  c.push(() => nc.close());
});

describe('a nats subscriber in the worker', () => {
  it('JetStream refusals are retried by the schedule, then dead-lettered; a replay delivers them once', async () => {
    // Holds one message and refuses the rest (503 "maximum messages exceeded").
    const jsm = await addStream(nc, 'KFP_SMALL', ['small.>'], { max_msgs: 1, discard: 'new' });
    const store = openSqliteStore({ file: join(c.tempDir(), 'callback.db') });
    c.push(() => store.close());
    const { log } = capturingLogger();
    const nats = createNatsTransport({ log });
    c.push(() => nats.close());
    const sender = createSender();
    c.push(() => sender.close());
    const sub = natsSubscriber('bus', { url: server.url, subject: 'small.{{ EventType }}', retry: { schedule: [0.02, 0.02], jitter: 0 } });
    const worker = startWorker({ store, send: sender.send, log, transports: { nats } }, [sub]);
    c.push(() => worker.stop({ graceMs: 100 }));
    const ingest = createIngest({ store, subscribers: () => [sub], onQueued: (n) => worker.notify(n) });

    const events = [0, 1, 2].map((seq) => makeEvent({ seq, EventType: 'WorkflowFailed' }));
    await ingest(events);
    await until(async () => (await store.listDeadLetters({ subscriber: 'bus' })).length === 2, 'two dead letters');
    const dead = await store.listDeadLetters({ subscriber: 'bus' });
    for (const d of dead) expect(d).toMatchObject({ attempts: 3, lastStatus: 503, lastError: expect.stringMatching(/^JetStream: maximum messages exceeded/) });

    await jsm.streams.update('KFP_SMALL', { subjects: ['small.>'], max_msgs: -1 });
    await store.replayDeadLetters({ subscriber: 'bus' }, Date.now());
    worker.notify(['bus']);
    await until(async () => (await streamMessages(jsm, 'KFP_SMALL')).length === 3, 'the replayed deliveries');
    expect(await store.listDeadLetters({ subscriber: 'bus' })).toEqual([]);
    const ids = (await streamMessages(jsm, 'KFP_SMALL')).map((m) => m.headers['Nats-Msg-Id']?.[0]).sort();
    expect(ids).toEqual(events.map((e) => e.EventId).sort());
  });
});
