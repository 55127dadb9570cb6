import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { IDLE_CLOSE_MS, natsConnections } from '../../../callback/nats/connections.js';
import { createNatsTransport } from '../../../callback/nats/transport.js';
import type { KfpEvent, Transport } from '../../../callback/types.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanups } from '../../helpers/cleanups.js';
import { makeCert } from '../../helpers/tls.js';
import { freePort, startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { EXAMPLE_FACTS, NS, PIPELINE } from '../core/sample.js';
import { capturingLogger } from '../engine/harness.js';
import { addStream, natsSubscriber, streamMessages, until } from './helpers.js';

/**
 * The nats transport against a real nats-server with JetStream on a free loopback port: what counts
 * as delivered (a JetStream ack, a duplicate ack, a flushed core publish), what a down server gives,
 * that the connection is shared and comes back on its own, and credentials.
 */

const EVENTS: KfpEvent[] = EXAMPLE_FACTS.map(buildEvent);
const byType = (t: KfpEvent['EventType']): KfpEvent => EVENTS.find((e) => e.EventType === t) as KfpEvent;
const c = cleanups('kfp-notify-nats-');
afterAll(() => c.run());

let server: NatsServer;
let monitor: number;
let client: NatsConnection;

beforeAll(async () => {
  monitor = await freePort();
  server = await startNatsServer({ extraArgs: ['-m', String(monitor)] });
  c.push(() => server.dispose());
  client = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  c.push(() => client.close());
});

function transport(): Transport {
  const t = createNatsTransport({ log: capturingLogger().log });
  c.push(() => t.close());
  return t;
}

const signal = new AbortController().signal;

/** Connections the server has from kfp-notify (the name the transport gives them). */
async function kfpNotifyConnections(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${monitor}/connz?limit=1024`);
  const body = (await res.json()) as { connections?: { name?: string }[] };
  return (body.connections ?? []).filter((x) => x.name === 'kfp-notify').length;
}

describe('type nats against a real nats-server', () => {
  it('a stream captures the subject: delivered on its ack, and one message per event however often it is sent', async () => {
    const jsm = await addStream(client, 'KFP_ONCE', ['once.>']);
    const t = transport();
    const sub = natsSubscriber('bus', { url: server.url, subject: 'once.{{ Namespace }}.{{ EventType }}' });
    for (let round = 0; round < 3; round++) {
      for (const e of EVENTS) expect(await t.deliver(sub, e, signal)).toMatchObject({ ok: true });
    }
    const stored = await streamMessages(jsm, 'KFP_ONCE');
    expect(stored.map((m) => m.headers['Nats-Msg-Id']?.[0])).toEqual(EVENTS.map((e) => e.EventId));
    const failed = stored.find((m) => m.subject === `once.${NS}.WorkflowFailed`);
    // Header names reach the server as written: lower-case ce-*, as Go consumers (Argo Events) will see them.
    expect(failed?.headers['ce-type']).toEqual(['org.kubeflow.pipelines.run-completion']);
    expect(failed?.headers['ce-datacontenttype']).toEqual(['application/json']);
    expect(JSON.parse(failed?.body ?? '{}')).toMatchObject({ status: 'failed', pipelineName: `${NS}/${PIPELINE}` });
  });

  it('no stream captures the subject: a core publish the server has confirmed (flush), seen by a plain subscriber', async () => {
    const got: { subject: string; id: string | undefined }[] = [];
    const s = client.subscribe('plain.>', { callback: (_err, m) => void got.push({ subject: m.subject, id: m.headers?.get('Nats-Msg-Id') }) });
    c.push(() => s.unsubscribe());
    await client.flush();
    const t = transport();
    const sub = natsSubscriber('plain', { url: server.url, subject: 'plain.events', format: 'json' });
    const e = byType('WorkflowSucceeded');
    expect(await t.deliver(sub, e, signal)).toMatchObject({ ok: true });
    await until(() => got.length === 1, 'the core message');
    expect(got).toEqual([{ subject: 'plain.events', id: e.EventId }]);
  });

  it('a JetStream error answer is a failed attempt with its status (a full stream that discards new messages)', async () => {
    await addStream(client, 'KFP_FULL', ['full.>'], { max_msgs: 1, discard: 'new' });
    const t = transport();
    const sub = natsSubscriber('full', { url: server.url, subject: 'full.events' });
    expect(await t.deliver(sub, byType('WorkflowRunning'), signal)).toMatchObject({ ok: true });
    const r = await t.deliver(sub, byType('WorkflowFailed'), signal);
    expect(r).toMatchObject({ ok: false, status: 503, error: expect.stringMatching(/^JetStream: maximum messages exceeded/) });
  });

  it('subscribers naming the same servers share one connection; another identity gets its own', async () => {
    const before = await kfpNotifyConnections();
    const t = transport();
    const a = natsSubscriber('a', { url: server.url, subject: 'share.a' });
    const b = natsSubscriber('b', { url: server.url, subject: 'share.b.{{ EventType }}', format: 'json' });
    const other = natsSubscriber('c', { url: `${server.url.replace('127.0.0.1', 'localhost')}`, subject: 'share.c' });
    for (const s of [a, b, a, b]) expect(await t.deliver(s, byType('WorkflowSucceeded'), signal)).toMatchObject({ ok: true });
    expect(await kfpNotifyConnections()).toBe(before + 1);
    expect(await t.deliver(other, byType('WorkflowSucceeded'), signal)).toMatchObject({ ok: true });
    expect(await kfpNotifyConnections()).toBe(before + 2);
  });
});

describe('type nats connections', () => {
  it('a connection no delivery used for IDLE_CLOSE_MS is closed at the next delivery to another server set (a removed subscriber keeps nothing open)', async () => {
    let clock = 1_000_000;
    const pool = natsConnections({ log: capturingLogger().log, now: () => clock });
    c.push(() => pool.close());
    const a = natsSubscriber('a', { url: server.url, subject: 'idle.a' }).nats;
    const b = natsSubscriber('b', { url: server.url.replace('127.0.0.1', 'localhost'), subject: 'idle.b' }).nats;
    if (!a || !b) throw new Error('no target');
    const first = await pool.get(a, 2000);
    if (!first.ok) throw new Error(first.error);
    clock += IDLE_CLOSE_MS - 1;
    expect((await pool.get(b, 2000)).ok).toBe(true);
    expect(first.nc.isClosed()).toBe(false);
    clock += IDLE_CLOSE_MS;
    expect((await pool.get(b, 2000)).ok).toBe(true);
    await until(() => first.nc.isClosed(), 'the idle connection to close');
    // Used again: a new connection.
    const again = await pool.get(a, 2000);
    expect(again.ok && again.nc !== first.nc).toBe(true);
  });
});

describe('type nats when the server is down', () => {
  it('a failed attempt with no status (the lane pauses like an unreachable endpoint); back up, the same transport publishes again and the stream kept everything', async () => {
    const own = await startNatsServer();
    c.push(() => own.dispose());
    const admin = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    c.push(() => admin.close());
    const jsm = await addStream(admin, 'KFP_DOWN', ['down.>'], { storage: 'file' });
    const t = transport();
    const sub = natsSubscriber('down', { url: own.url, subject: 'down.{{ EventType }}' });
    expect(await t.deliver(sub, byType('WorkflowRunning'), signal)).toMatchObject({ ok: true });

    await own.stop();
    const r = await t.deliver(sub, byType('WorkflowFailed'), signal);
    expect(r.ok).toBe(false);
    expect(r.status).toBeUndefined();
    // Whichever step noticed first (the connection's status, the stream lookup, the publish), it says why.
    expect(r.error).toMatch(/not connected|cannot tell whether a stream captures|no JetStream ack|connection|closed/i);

    await own.start();
    // The client reconnects by itself; the retry of the failed delivery then goes through.
    await until(async () => (await t.deliver(sub, byType('WorkflowFailed'), signal)).ok, 'a delivery after the restart');
    await until(() => !admin.isClosed() && admin.info !== undefined, 'the admin connection');
    const stored = await streamMessages(jsm, 'KFP_DOWN');
    expect(stored.map((m) => m.headers['Nats-Msg-Id']?.[0])).toEqual([byType('WorkflowRunning').EventId, byType('WorkflowFailed').EventId]);
  });

  it('a server that has never been up: each attempt fails with no status and tries again; it connects once the server is there', async () => {
    const port = await freePort();
    const t = transport();
    const sub = natsSubscriber('never', { url: `nats://127.0.0.1:${port}`, subject: 'never.events' });
    for (let i = 0; i < 2; i++) {
      const r = await t.deliver(sub, byType('WorkflowSucceeded'), signal);
      expect(r).toMatchObject({ ok: false, error: expect.stringContaining('cannot connect') });
      expect(r.status).toBeUndefined();
    }
  });
});

describe('type nats credentials', () => {
  it('TLS with a private CA from a Secret verifies the server; without it the system CAs refuse it', async () => {
    const pair = await makeCert('nats-test', ['127.0.0.1', 'localhost']);
    const dir = c.tempDir();
    writeFileSync(join(dir, 'tls.crt'), pair.cert);
    writeFileSync(join(dir, 'tls.key'), pair.key);
    const secured = await startNatsServer({ extraArgs: ['--tls', '--tlscert', join(dir, 'tls.crt'), '--tlskey', join(dir, 'tls.key')] });
    c.push(() => secured.dispose());
    const url = secured.url.replace('nats://', 'tls://');
    const t = transport();
    const trusted = natsSubscriber('tls-ca', { url, subject: 'tls.ok', tls: { ca: { secretKeyRef: { name: 'nats', key: 'ca.crt' } } } }, { nats: { 'ca.crt': pair.cert } });
    expect(await t.deliver(trusted, byType('WorkflowSucceeded'), signal)).toMatchObject({ ok: true });
    const untrusted = natsSubscriber('tls-system', { url, subject: 'tls.ok' });
    const r = await t.deliver(untrusted, byType('WorkflowSucceeded'), signal);
    expect(r.ok).toBe(false);
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/certificate/i);
  });

  it('user and password from a Secret authenticate; a wrong password fails without it in the error', async () => {
    const guarded = await startNatsServer({ extraArgs: ['--user', 'kfp', '--pass', 'pw-93b1d2'] });
    c.push(() => guarded.dispose());
    const t = transport();
    const keys = { url: guarded.url, subject: 'auth.user', user: 'kfp', password: { secretKeyRef: { name: 'nats', key: 'password' } } };
    expect(await t.deliver(natsSubscriber('good', keys, { nats: { password: 'pw-93b1d2' } }), byType('WorkflowSucceeded'), signal)).toMatchObject({ ok: true });
    const r = await t.deliver(natsSubscriber('bad', keys, { nats: { password: 'wrong-pw-5150' } }), byType('WorkflowSucceeded'), signal);
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/authorization/i) });
    expect(r.error).not.toContain('wrong-pw-5150');
  });

  it('a token from a Secret authenticates; a wrong one fails without the token in the error', async () => {
    const token = 'tok-7f3a9c1e5b';
    const guarded = await startNatsServer({ extraArgs: ['--auth', token] });
    c.push(() => guarded.dispose());
    const t = transport();
    const good = natsSubscriber('good', { url: guarded.url, subject: 'auth.ok', token: { secretKeyRef: { name: 'nats', key: 'token' } } }, { nats: { token } });
    expect(await t.deliver(good, byType('WorkflowSucceeded'), signal)).toMatchObject({ ok: true });
    const bad = natsSubscriber('bad', { url: guarded.url, subject: 'auth.ok', token: { secretKeyRef: { name: 'nats', key: 'token' } } }, { nats: { token: 'wrong-token-4242' } });
    const r = await t.deliver(bad, byType('WorkflowSucceeded'), signal);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/authorization/i);
    expect(r.error).not.toContain('wrong-token-4242');
    expect(r.error).not.toContain(token);
  });
});
