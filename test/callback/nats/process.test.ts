import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadHookKeys } from '../../../common/data-dir.js';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { mintHookToken } from '../../../common/hook-token.js';
import { cleanups } from '../../helpers/cleanups.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { startCallbackProcess, type CallbackProcess } from '../engine/process.js';
import { addStream, streamMessages, until } from './helpers.js';

/**
 * A real `kfp-notify callback` process (compiled dist/) with a nats subscriber, against a real
 * nats-server with JetStream: the server goes down and comes back (nothing lost, other subscribers
 * not held up), and acks are lost while the callback is killed and restarted (every event is sent
 * again, and the stream still holds each event exactly once, by Nats-Msg-Id).
 */

const c = cleanups('kfp-notify-nats-proc-');
const procs: CallbackProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop('SIGKILL');
});
afterAll(() => c.run());

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  server = await startNatsServer();
  c.push(() => server.dispose());
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  c.push(() => nc.close());
  jsm = await addStream(nc, 'KFP_EVENTS', ['kfp.events.>'], { storage: 'file' });
});

const NS = 'kubeflow-user';

/** What an injected exit hook does at the end of a run: POST the form with a token from the data dir's key. */
async function postRunEnd(url: string, dataDir: string, run: string): Promise<string[]> {
  const [key] = loadHookKeys({ dataDir, create: false });
  if (!key) throw new Error('no hook key');
  const fields = {
    v: '1',
    event: 'workflow-exit',
    kfpRunId: run,
    namespace: NS,
    workflowName: `${run}-wf`,
    workflowUid: `uid-${run}`,
    workflowStatus: 'Succeeded',
    exitHandlerStatus: '',
    failures: 'null',
    duration: '12',
    pipelineName: 'hello',
    runName: `${run} run`,
  };
  const res = await request(`${url}${HOOK_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${mintHookToken(key, { namespace: NS, kfpRunId: run })}` },
    body: new URLSearchParams(fields).toString(),
  });
  const body = (await res.body.json()) as { events?: { EventId?: string }[]; eventIds?: string[] };
  expect(res.statusCode).toBe(202);
  return body.eventIds ?? (body.events ?? []).map((e) => e.EventId ?? '');
}

function subscribersFile(dir: string): string {
  const file = join(dir, 'subscribers.yaml');
  writeFileSync(
    file,
    [
      'bus: |',
      '  type: nats',
      `  url: ${server.url}`,
      '  subject: kfp.events.{{ Namespace }}.{{ EventType }}',
      '  timeout: 1s',
      '  maxConcurrency: 16',
      '  retry: { schedule: [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], jitter: 0 }',
      'audit: |',
      '  type: log',
      '',
    ].join('\n'),
  );
  return file;
}

async function callback(dataDir: string, file: string): Promise<CallbackProcess> {
  const p = await startCallbackProcess(['--data-dir', dataDir, '--subscribers', file], { LOG_LEVEL: 'debug' });
  procs.push(p);
  return p;
}

const idsIn = (p: CallbackProcess, msg: string, subscriber = 'bus') =>
  new Set(p.lines.filter((l) => l.msg === msg && l.subscriber === subscriber).map((l) => String(l.eventId)));

async function storedIds(): Promise<string[]> {
  return (await streamMessages(jsm, 'KFP_EVENTS')).map((m) => m.headers['Nats-Msg-Id']?.[0] ?? '');
}

describe('a real callback process publishing to a real nats-server', () => {
  it('the server down, then back: every event is delivered once, and a log subscriber was never held up', async () => {
    const dataDir = c.tempDir();
    const cb = await callback(dataDir, subscribersFile(dataDir));
    const before = new Set(await storedIds());
    const warm = await postRunEnd(cb.url, dataDir, 'down-0');
    await until(() => warm.every((id) => idsIn(cb, 'delivered').has(id)), 'the first delivery');
    // The admin API shows the subscriber with its servers as the endpoint.
    const admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const listed = await request(`${cb.url}/v1/subscribers`, { headers: { authorization: `Bearer ${admin}` } });
    const views = (await listed.body.json()) as { subscribers?: { name: string }[] } | { name: string }[];
    const list = Array.isArray(views) ? views : (views.subscribers ?? []);
    expect(list.find((v) => v.name === 'bus')).toMatchObject({ type: 'nats', endpoint: server.url, format: 'cloudevents-binary' });

    await server.stop();
    const ids: string[] = [];
    for (let i = 1; i <= 6; i++) ids.push(...(await postRunEnd(cb.url, dataDir, `down-${i}`)));
    // The nats lane fails and retries (no status: the lane pauses); the log subscriber has them all meanwhile.
    await until(() => idsIn(cb, 'delivery failed; will retry').size > 0, 'a failed attempt while the server is down');
    await until(() => ids.every((id) => cb.lines.some((l) => l.subscriber === 'audit' && (l.event as { EventId?: string } | undefined)?.EventId === id)), 'the log subscriber');
    expect(ids.filter((id) => idsIn(cb, 'delivered').has(id))).toEqual([]);

    await server.start();
    await until(() => ids.every((id) => idsIn(cb, 'delivered').has(id)), 'every delivery after the server came back', 30_000);
    const stored = (await storedIds()).filter((id) => !before.has(id));
    expect(stored.sort()).toEqual([...warm, ...ids].sort());
  });

  it('acks lost and the callback killed and restarted: every event is published again, and the stream holds each once', async () => {
    const dataDir = c.tempDir();
    const file = subscribersFile(dataDir);
    const first = await callback(dataDir, file);
    const before = new Set(await storedIds());
    // Connected, and the subject's stream lookup done, before the server hangs.
    const warm = await postRunEnd(first.url, dataDir, 'lost-0');
    await until(() => warm.every((id) => idsIn(first, 'delivered').has(id)), 'the first delivery');

    // A hung server: publishes reach its socket, no ack comes back; each attempt times out and is rescheduled.
    server.pause();
    const ids: string[] = [];
    try {
      for (let i = 1; i <= 8; i++) ids.push(...(await postRunEnd(first.url, dataDir, `lost-${i}`)));
      await until(() => ids.every((id) => idsIn(first, 'delivery failed; will retry').has(id)), 'an unacknowledged attempt of every event', 30_000);
      await first.stop('SIGKILL');
    } finally {
      server.resume();
    }
    // The server now reads what was published before the kill and stores it (the acks go nowhere).
    await until(async () => (await storedIds()).some((id) => ids.includes(id)), 'the publishes the server had buffered');
    const storedBeforeRestart = (await storedIds()).filter((id) => ids.includes(id));

    const second = await callback(dataDir, file);
    await until(() => ids.every((id) => idsIn(second, 'delivered').has(id)), 'every delivery after the restart', 30_000);
    // Those the stream already had were sent again and acknowledged as duplicates...
    const duplicates = idsIn(second, 'NATS: the stream already had this event (duplicate ack)');
    expect(storedBeforeRestart.length).toBeGreaterThan(0);
    for (const id of storedBeforeRestart) expect(duplicates.has(id), id).toBe(true);
    // ...and the stream holds every event exactly once.
    const stored = (await storedIds()).filter((id) => !before.has(id));
    expect(stored.sort()).toEqual([...warm, ...ids].sort());
  });
});
