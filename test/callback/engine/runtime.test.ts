import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadHookKeys } from '../../../common/data-dir.js';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { hookKeyFromSecret, mintHookToken } from '../../../common/hook-token.js';
import { silentLogger } from '../../../common/logger.js';
import { startCallback, type CallbackRuntime, type SubscriberSource } from '../../../callback/runtime.js';
import type { Ingest } from '../../../callback/ingest.js';
import type { Subscriber } from '../../../callback/types.js';
import { makeEvent } from './events.js';
import { httpSubscriber } from './harness.js';
import { answer, startReceiver, until, type Receiver } from './receiver.js';

/** A subscriber source the test can change, as a watched file or ConfigMap would. */
function manualSource(initial: Subscriber[]): SubscriberSource & { set(list: Subscriber[]): void } {
  let current = initial;
  const listeners = new Set<(s: readonly Subscriber[]) => void>();
  return {
    current: () => current,
    onChange: (l) => (listeners.add(l), () => listeners.delete(l)),
    close: () => listeners.clear(),
    set(list) {
      current = list;
      for (const l of listeners) l(list);
    },
  };
}

describe('startCallback wires a whole callback process (real SQLite, real HTTP on 127.0.0.1)', () => {
  let dataDir: string;
  let rx: Receiver;
  const runtimes: CallbackRuntime[] = [];
  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'kfp-notify-runtime-'));
    rx = await startReceiver(answer(200));
  });
  afterEach(async () => {
    for (const r of runtimes.splice(0)) await r.close();
    await rx.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  async function start(opts: Partial<Parameters<typeof startCallback>[0]> = {}): Promise<CallbackRuntime> {
    const r = await startCallback({ dataDir, log: silentLogger(), listen: { host: '127.0.0.1', port: 0 }, ...opts });
    runtimes.push(r);
    return r;
  }

  it('creates the hook key and admin token (0600) and answers a hook call over HTTP', async () => {
    const rt = await start({ subscribers: manualSource([httpSubscriber('ops', rx.url)]) });
    expect(statSync(join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'hook-key')).mode & 0o777).toBe(0o600);
    const [key] = loadHookKeys({ dataDir, create: false });
    if (!key) throw new Error('no hook key');
    const fields = { v: '1', event: 'workflow-running', kfpRunId: 'r1', namespace: 'ns', workflowName: 'wf' };
    const res = await request(`${rt.url}${HOOK_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${mintHookToken(key, { namespace: 'ns', kfpRunId: 'r1' })}` },
      body: JSON.stringify(fields),
    });
    expect(res.statusCode).toBe(202);
    await res.body.dump();
    await until(() => rx.received.length === 1, 'the delivery');
    expect(JSON.parse(rx.received[0]?.body ?? '{}')).toMatchObject({ EventType: 'WorkflowRunning', KfpRunId: 'r1' });
  });

  it('rotates hook keys without a restart: a token from a newly added key is accepted, one from a removed key is refused', async () => {
    const keyFile = join(dataDir, 'keys');
    const oldSecret = 'old-hook-key-0123456789abcdef';
    const newSecret = 'new-hook-key-0123456789abcdef';
    writeFileSync(keyFile, `${oldSecret}\n`);
    const rt = await start({ hookKeyFile: keyFile, keyPollMs: 50, subscribers: manualSource([httpSubscriber('ops', rx.url)]) });
    const call = async (secret: string, runId: string): Promise<number> => {
      const token = mintHookToken(hookKeyFromSecret(secret), { namespace: 'ns', kfpRunId: runId });
      const res = await request(`${rt.url}${HOOK_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ v: '1', event: 'workflow-running', kfpRunId: runId, namespace: 'ns', workflowName: 'wf' }),
      });
      await res.body.dump();
      return res.statusCode;
    };
    expect(await call(oldSecret, 'r-old')).toBe(202);
    expect(await call(newSecret, 'r-new-early')).toBe(403);
    // Rotation step 1: the new key signs, the old one still verifies.
    writeFileSync(keyFile, `${newSecret}\n${oldSecret}\n`);
    await until(async () => (await call(newSecret, 'r-new')) === 202, 'the new key to be accepted');
    expect(await call(oldSecret, 'r-old-2')).toBe(202);
    // Rotation step 2: the old key is dropped.
    writeFileSync(keyFile, `${newSecret}\n`);
    await until(async () => (await call(oldSecret, 'r-old-3')) === 403, 'the old key to be refused');
    // An unreadable file keeps the keys in force.
    writeFileSync(keyFile, '# no keys\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(await call(newSecret, 'r-new-2')).toBe(202);
  });

  it('answers 408 and closes a hook call whose body stalls, so slow clients cannot hold sockets', async () => {
    const rt = await start({ requestTimeoutMs: 300 });
    const socket = connect(Number(new URL(rt.url ?? '').port), '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.write(`POST ${HOOK_PATH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"v"`);
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000);
      socket.once('close', () => (clearTimeout(timer), resolve(true)));
    });
    socket.destroy();
    expect(closed).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('hands the cluster seam an ingest whose events are delivered once, even when the hook reports them too', async () => {
    let watcherIngest: Ingest | undefined;
    let stopped = false;
    await start({
      subscribers: manualSource([httpSubscriber('ops', rx.url)]),
      cluster: {
        watch: (ingest) => {
          watcherIngest = ingest;
          return { stop: async () => void (stopped = true) };
        },
      },
    });
    const event = { ...makeEvent({ seq: 1 }), Source: 'watcher' as const };
    expect(await watcherIngest?.([event])).toEqual({ eventIds: [event.EventId], duplicates: [] });
    expect(await watcherIngest?.([{ ...event, Source: 'hook' }])).toEqual({ eventIds: [event.EventId], duplicates: [event.EventId] });
    await until(() => rx.received.length === 1, 'the delivery');
    await runtimes.pop()?.close();
    expect(stopped).toBe(true);
    expect(rx.received).toHaveLength(1);
  });

  it('a changed subscriber set applies to the next events without a restart', async () => {
    const other = await startReceiver(answer(200));
    try {
      const source = manualSource([httpSubscriber('a', rx.url)]);
      const rt = await start({ subscribers: source });
      await rt.ingest([makeEvent({ seq: 2 })]);
      await until(() => rx.received.length === 1, 'delivery to a');
      source.set([httpSubscriber('b', other.url)]);
      await rt.ingest([makeEvent({ seq: 3 })]);
      await until(() => other.received.length === 1, 'delivery to b');
      expect(rx.received).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it('one data dir, one process: a second runtime is refused while the first runs, and starts once it closed', async () => {
    const first = await start();
    await expect(startCallback({ dataDir, log: silentLogger() })).rejects.toThrow(/in use by another process/);
    await first.close();
    runtimes.splice(runtimes.indexOf(first), 1);
    await start();
  });

  it('a port already taken fails the start and leaves the data dir usable', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startCallback({ dataDir, log: silentLogger(), listen: { host: '127.0.0.1', port } })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
    await start();
  });
});
