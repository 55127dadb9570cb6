import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { postHook as postHookAs } from '../../helpers/post-hook.js';
import { parseCallbackFlags } from '../../../cli/callback.js';
import { UsageError } from '../../../cli/io.js';
import { runCli, runCliInProcess } from '../../helpers/cli.js';
import { startFakeKubeApi } from '../../helpers/fake-kube-api.js';
import { newSigningSecret } from './harness.js';
import { startCallbackProcess, type CallbackProcess } from './process.js';
import { startReceiver, until, type Receiver, type Respond } from './receiver.js';

const root = mkdtempSync(join(tmpdir(), 'kfp-notify-cli-'));
let n = 0;
function newDir(): string {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}
afterAll(() => rmSync(root, { recursive: true, force: true }));

const FIELDS = {
  v: '1',
  event: 'workflow-exit',
  kfpRunId: 'run-cli',
  namespace: 'kubeflow-user',
  workflowName: 'hello-xyz',
  workflowUid: 'uid-cli',
  workflowStatus: 'Succeeded',
  exitHandlerStatus: '',
  failures: 'null',
  duration: '12',
  pipelineName: 'hello',
  runName: 'cli run',
};

const runInProcess = runCliInProcess;

/** What an injected hook does, with this file's fields unless given. */
const postHook = (url: string, dataDir: string, fields: Record<string, string> = FIELDS) => postHookAs(url, dataDir, fields);

function writeSubscribers(dir: string, url: string, extra = ''): { subscribers: string; secrets: string; secret: string } {
  const secret = newSigningSecret();
  const subscribers = join(dir, 'subscribers.yaml');
  const secrets = join(dir, 'secrets.json');
  writeFileSync(subscribers, `ops:\n  url: ${url}\n  signingKey: { secretKeyRef: { name: hooks, key: ops } }\n  retry: { schedule: [1000, 1000], jitter: 0 }\n${extra}`);
  writeFileSync(secrets, JSON.stringify({ hooks: { ops: secret } }));
  return { subscribers, secrets, secret };
}

describe('kfp-notify callback and dlq as real processes', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function receiver(respond: Respond): Promise<Receiver> {
    const r = await startReceiver(respond);
    cleanups.push(r.close);
    return r;
  }
  async function callback(args: string[]): Promise<CallbackProcess> {
    const p = await startCallbackProcess(args);
    cleanups.push(() => p.stop('SIGKILL'));
    return p;
  }

  it('accepts a hook call, delivers it signed, and stops cleanly on SIGTERM', async () => {
    const rx = await receiver((_g, res) => res.writeHead(204).end());
    const dataDir = newDir();
    const files = writeSubscribers(dataDir, rx.url);
    const cb = await callback(['--data-dir', dataDir, '--subscribers', files.subscribers, '--secrets', files.secrets]);
    const res = await postHook(cb.url, dataDir);
    expect(res.status).toBe(202);
    await until(() => rx.received.length === 1, 'the delivery');
    const got = rx.received[0];
    const payload = new Webhook(files.secret).verify(got?.body ?? '', got?.headers as Record<string, string>);
    expect(payload).toMatchObject({ KfpRunId: 'run-cli', EventType: 'WorkflowSucceeded', WorkflowName: 'hello-xyz' });
    expect(statSync(join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(await cb.stop('SIGTERM')).toBe(0);
    expect(cb.lines.some((l) => l.msg === 'callback stopped')).toBe(true);
  });

  it('without --subscribers, a default log subscriber prints each event', async () => {
    const dataDir = newDir();
    const cb = await callback(['--data-dir', dataDir]);
    expect((await postHook(cb.url, dataDir)).status).toBe(202);
    await until(() => cb.lines.some((l) => l.subscriber === 'log' && l.event !== undefined), 'the log line');
    const line = cb.lines.find((l) => l.subscriber === 'log' && l.event !== undefined);
    expect(line?.event).toMatchObject({ KfpRunId: 'run-cli', EventType: 'WorkflowSucceeded' });
  });

  it('a delivery in flight when the process is SIGKILLed is sent again, same webhook-id, after a restart', async () => {
    const held: ServerResponse[] = [];
    const rx = await receiver((got, res) => (got.n === 1 ? held.push(res) : res.writeHead(200).end()));
    const dataDir = newDir();
    const files = writeSubscribers(dataDir, rx.url);
    const args = ['--data-dir', dataDir, '--subscribers', files.subscribers, '--secrets', files.secrets];
    const first = await callback(args);
    expect((await postHook(first.url, dataDir)).status).toBe(202);
    await until(() => rx.received.length === 1, 'the first attempt to be in flight');
    expect(await first.stop('SIGKILL')).toBe(null);

    const second = await callback(args);
    await until(() => rx.received.length === 2, 'the redelivery after restart');
    expect(rx.received[1]?.headers['webhook-id']).toBe(rx.received[0]?.headers['webhook-id']);
    new Webhook(files.secret).verify(rx.received[1]?.body ?? '', rx.received[1]?.headers as Record<string, string>);
    // The event was kept once: the hook's retry after the restart is a duplicate.
    const again = await postHook(second.url, dataDir);
    expect(again.body).toMatchObject({ duplicates: [rx.received[0]?.headers['webhook-id']] });
  });

  it('dead letters are listed and replayed with kfp-notify dlq', async () => {
    let status = 500;
    const rx = await receiver((_g, res) => res.writeHead(status).end());
    const dataDir = newDir();
    const files = writeSubscribers(dataDir, rx.url);
    // --retry-scale 0.00001 turns the two 1000 s steps into 10 ms.
    const cb = await callback(['--data-dir', dataDir, '--subscribers', files.subscribers, '--secrets', files.secrets, '--retry-scale', '0.00001']);
    await postHook(cb.url, dataDir);
    const dlq = (...a: string[]) => runCli(['dlq', ...a, '--url', cb.url, '--data-dir', dataDir]);
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    await until(async () => {
      const res = await request(`${cb.url}/v1/dead-letters`, { headers: { authorization: `Bearer ${token}` } });
      return ((await res.body.json()) as { deadLetters: unknown[] }).deadLetters.length === 1;
    }, 'the dead letter');

    const listed = JSON.parse((await dlq('list', '-o', 'json', '--subscriber', 'ops')).stdout) as { id: number; attempts: number; lastStatus: number }[];
    expect(listed).toMatchObject([{ attempts: 3, lastStatus: 500 }]);
    const table = await dlq('list');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+SUBSCRIBER\s+EVENT/);
    expect(table.stdout).toContain('WorkflowSucceeded');

    status = 200;
    const replay = await dlq('replay', '--id', String(listed[0]?.id));
    expect(replay).toMatchObject({ code: 0, stdout: `replayed 1 dead letter: ${listed[0]?.id}\n` });
    await until(() => rx.received.length === 4, 'the replayed delivery');
    await until(async () => {
      const res = await request(`${cb.url}/v1/subscribers`, { headers: { authorization: `Bearer ${token}` } });
      return ((await res.body.json()) as { subscribers: { queueDepth: number }[] }).subscribers[0]?.queueDepth === 0;
    }, 'the replayed delivery to settle');
    expect((await dlq('list')).stdout).toBe('no dead letters\n');
    expect((await dlq('replay', '--all')).stdout).toBe('replayed 0 dead letters\n');
  });

  it('dlq filters by run and time; an id or subscriber that does not exist exits 2 and says so', async () => {
    let status = 500;
    const rx = await receiver((_g, res) => res.writeHead(status).end());
    const dataDir = newDir();
    const files = writeSubscribers(dataDir, rx.url);
    const cb = await callback(['--data-dir', dataDir, '--subscribers', files.subscribers, '--secrets', files.secrets, '--retry-scale', '0.00001']);
    for (const run of ['run-a', 'run-b']) expect((await postHook(cb.url, dataDir, { ...FIELDS, kfpRunId: run })).status).toBe(202);
    const dlq = (...a: string[]) => runCli(['dlq', ...a, '--url', cb.url, '--data-dir', dataDir]);
    const runs = async (...a: string[]) => {
      const r = await dlq('list', '-o', 'json', ...a);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { event: { KfpRunId: string } }[]).map((d) => d.event.KfpRunId).sort();
    };
    await until(async () => (await runs()).length === 2, 'both dead letters');
    expect(await runs('--run', 'run-a')).toEqual(['run-a']);
    expect(await runs('--since', '1h')).toEqual(['run-a', 'run-b']);
    expect(await runs('--until', '1h')).toEqual([]);
    expect(await runs('--since', '2020-01-01T00:00:00Z', '--until', '2999-01-01T00:00:00Z', '--subscriber', 'ops')).toEqual(['run-a', 'run-b']);

    const noId = await dlq('replay', '--id', '999999');
    expect(noId).toMatchObject({ code: 2, stdout: 'replayed 0 dead letters\n', stderr: 'kfp-notify dlq: no dead letter with id 999999\n' });
    for (const action of ['replay', 'list']) {
      const noSub = await dlq(action, '--subscriber', 'nope');
      expect(noSub.code).toBe(2);
      expect(noSub.stderr).toBe('kfp-notify dlq: no subscriber named "nope"\n');
    }
    const badTime = await dlq('list', '--since', 'yesterday');
    expect(badTime.code).toBe(2);
    expect(badTime.stderr).toContain('--since must be a duration ago (2h, 30m, 7d) or an ISO 8601 time, got "yesterday"');

    status = 200;
    const replay = await dlq('replay', '--run', 'run-b');
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/^replayed 1 dead letter: \d+\n$/);
    await until(() => rx.received.some((r) => r.body.includes('"run-b"') && rx.received.filter((x) => x.body.includes('"run-b"')).length === 4), 'the replayed run-b delivery');
    expect(await runs()).toEqual(['run-a']);
  });

  it('kfp-notify subscriber enable re-enables a subscriber disabled by a 410; an unknown name exits 2', async () => {
    let status = 410;
    const rx = await receiver((_g, res) => res.writeHead(status).end());
    const dataDir = newDir();
    const files = writeSubscribers(dataDir, rx.url);
    const cb = await callback(['--data-dir', dataDir, '--subscribers', files.subscribers, '--secrets', files.secrets]);
    const subscriber = (...a: string[]) => runCli(['subscriber', ...a, '--url', cb.url, '--data-dir', dataDir]);
    expect((await postHook(cb.url, dataDir)).status).toBe(202);
    const listed = async () => JSON.parse((await subscriber('list', '-o', 'json')).stdout) as { name: string; disabled: { reason: string } | null }[];
    await until(async () => (await listed())[0]?.disabled !== null, 'the subscriber to be disabled');
    expect((await listed())[0]).toMatchObject({ name: 'ops', disabled: { reason: 'HTTP 410 Gone' } });
    const table = await subscriber('list');
    expect(table.stdout).toMatch(/^NAME\s+TYPE\s+CONFIGURED\s+QUEUE\s+DISABLED SINCE\s+WHY\nops\s+http\s+yes\s+0\s+\S+\s+HTTP 410 Gone\n$/);

    status = 200;
    expect(await subscriber('enable', 'ops')).toMatchObject({ code: 0, stdout: 'enabled ops\n' });
    expect((await listed())[0]?.disabled).toBeNull();
    expect(await subscriber('enable', 'ops')).toMatchObject({ code: 0, stdout: 'ops was not disabled\n' });
    expect(await subscriber('enable', 'nope')).toMatchObject({ code: 2, stderr: 'kfp-notify subscriber: no subscriber named "nope"\n' });
    // Its dead letter is replayed as documented, and now arrives.
    expect((await runCli(['dlq', 'replay', '--subscriber', 'ops', '--url', cb.url, '--data-dir', dataDir])).code).toBe(0);
    await until(() => rx.received.length === 2, 'the replayed delivery');
  });

  it('with --subscribers-configmap, reads subscribers from a ConfigMap (served by a small local fake Kubernetes API server)', async () => {
    const fake = await startFakeKubeApi();
    cleanups.push(() => fake.close());
    const rx = await receiver((_g, res) => res.writeHead(200).end());
    fake.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kfp-event-handler-config', namespace: 'kfp-notify' }, data: { receiver: rx.url } });
    const dataDir = newDir();
    const kubeconfig = join(dataDir, 'kubeconfig');
    writeFileSync(kubeconfig, fake.kubeConfig().exportConfig());
    const cb = await startCallbackProcess(['--data-dir', dataDir, '--subscribers-configmap', 'kfp-event-handler-config', '--namespace', 'kfp-notify'], {
      KUBECONFIG: kubeconfig,
    }, { cluster: true });
    cleanups.push(() => cb.stop('SIGKILL'));
    expect((await postHook(cb.url, dataDir)).status).toBe(202);
    await until(() => rx.received.length === 1, 'the delivery to the ConfigMap subscriber');
    expect(JSON.parse(rx.received[0]?.body ?? '{}')).toMatchObject({ KfpRunId: 'run-cli', EventType: 'WorkflowSucceeded' });
    expect(fake.requests.some((r) => r.path.includes('/configmaps'))).toBe(true);
    expect(await cb.stop('SIGTERM')).toBe(0);
  });

  it('dlq with the wrong admin token, or no callback, fails with exit 1 and says why', async () => {
    const dataDir = newDir();
    const cb = await callback(['--data-dir', dataDir]);
    const wrong = join(dataDir, 'wrong-token');
    writeFileSync(wrong, 'this-is-not-the-admin-token\n');
    const denied = await runCli(['dlq', 'list', '--url', cb.url, '--admin-token-file', wrong]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('HTTP 403: wrong admin token');
    const down = await runCli(['dlq', 'list', '--url', 'http://127.0.0.1:9', '--data-dir', dataDir]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach the callback');
  });

  it.each([
    { args: ['callback', '--port', 'eighty'], msg: '--port must be a whole number from 0 to 65535, got "eighty"' },
    { args: ['callback', '--retry-scale', '0'], msg: '--retry-scale must be a positive number' },
    { args: ['callback', '--durability', 'never'], msg: '--durability must be one of fsync, write (got never)' },
    { args: ['serve', '--durability', 'FSYNC'], msg: '--durability must be one of fsync, write (got FSYNC)' },
    { args: ['callback', '--watch-grace', 'soon'], msg: '--watch-grace must be a duration' },
    { args: ['callback', '--secrets', 'x.json'], msg: '--secrets only applies with --subscribers' },
    { args: ['callback', '--frobnicate'], msg: 'unknown option --frobnicate' },
    { args: ['callback', '--subscribers', '/nonexistent/subscribers.yaml'], msg: 'cannot load subscribers' },
    { args: ['dlq'], msg: 'give an action: list or replay' },
    { args: ['dlq', 'purge'], msg: 'unknown action "purge"' },
    { args: ['dlq', 'replay'], msg: 'replay needs exactly one of --id, --all, or filters (--subscriber, --run, --since, --until)' },
    { args: ['dlq', 'replay', '--all', '--run', 'r'], msg: 'replay needs exactly one of' },
    { args: ['subscriber'], msg: 'give an action: list or enable' },
    { args: ['subscriber', 'enable'], msg: 'enable needs the subscriber NAME' },
    { args: ['subscriber', 'list', 'x'], msg: 'unexpected argument "x"' },
    { args: ['dlq', 'replay', '--id', '3', '--all'], msg: 'replay needs exactly one of' },
    { args: ['dlq', 'replay', '--id', 'x'], msg: '--id must be a positive integer' },
    { args: ['dlq', 'list', '-o', 'xml'], msg: '--output must be table or json' },
    { args: ['dlq', 'list', '--admin-token-file', '/nonexistent/token'], msg: 'does not exist' },
  ])('kfp-notify $args.0 with bad usage exits 2 (in process): $msg', async ({ args, msg }) => {
    const r = await runInProcess(args, { KFP_NOTIFY_DATA_DIR: newDir() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(msg);
  });

  it('--durability defaults to fsync, else $KFP_NOTIFY_DURABILITY; the flag wins; a bad value in either is a usage error', () => {
    const durability = (args: string[], env: NodeJS.ProcessEnv) => {
      const flags = parseCallbackFlags(['--no-cluster', ...args], env);
      return flags === 'help' ? flags : flags.durability;
    };
    expect(durability([], {})).toBe('fsync');
    expect(durability([], { KFP_NOTIFY_DURABILITY: 'write' })).toBe('write');
    expect(durability(['--durability', 'fsync'], { KFP_NOTIFY_DURABILITY: 'write' })).toBe('fsync');
    expect(() => durability([], { KFP_NOTIFY_DURABILITY: 'off' })).toThrow(new UsageError('--durability must be one of fsync, write (got off)'));
  });

  it('a subscribers file with errors is refused at start with every error named', async () => {
    const dir = newDir();
    const file = join(dir, 'subs.yaml');
    writeFileSync(file, 'ops:\n  url: ftp://example.com\nteam:\n  url: http://127.0.0.1:1/x\n  format: xml\n');
    const r = await runCli(['callback', '--no-cluster', '--data-dir', dir, '--subscribers', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('subscriber "ops"');
    expect(r.stderr).toContain('subscriber "team": format must be one of');
  });
});
