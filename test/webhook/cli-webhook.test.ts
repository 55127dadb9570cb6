import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { admittedWorkflow, httpsRequest, makeCert, reviewFor, type TestCert } from '../helpers/tls.js';

const HOOK_KEY = 'cli-test-hook-key-0123456789abcdef';

let dir: string;
let cert: TestCert;
let files: { cert: string; key: string; config: string; keys: string; data: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kfp-notify-cli-webhook-'));
  cert = await makeCert();
  files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), config: join(dir, 'config.yaml'), keys: join(dir, 'keys'), data: join(dir, 'data') };
  writeFileSync(files.cert, cert.cert);
  writeFileSync(files.key, cert.key);
  writeFileSync(files.keys, `${HOOK_KEY}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baseArgs(port = '0'): string[] {
  return ['webhook', '--port', port, '--host', '127.0.0.1', '--tls-cert', files.cert, '--tls-key', files.key, '--hook-key-file', files.keys, '--data-dir', files.data];
}

describe('kfp-notify webhook: bad flags (process)', () => {
  // [ what, args after `webhook`, words on stderr ]
  it.each([
    ['no flags', () => [], '--port is required'],
    ['a port that is not a number', () => ['--port', 'https'], '--port must be a whole number from 0 to 65535, got "https"'],
    ['a port out of range', () => ['--port', '70000'], '--port must be a whole number from 0 to 65535'],
    ['no certificate', () => ['--port', '8443', '--tls-key', files.key], '--tls-cert is required'],
    ['a certificate file that does not exist', () => ['--port', '8443', '--tls-cert', join(dir, 'nope.crt'), '--tls-key', files.key], 'nope.crt'],
    ['a key that is not a key', () => ['--port', '8443', '--tls-cert', files.cert, '--tls-key', files.cert], 'is not a PEM private key'],
    ['an unknown flag', () => [...baseArgs().slice(1), '--tls-ca', 'x'], 'unknown option --tls-ca'],
    ['a bad mode', () => [...baseArgs().slice(1), '--mode', 'pod'], '--mode: must be "container" or "http", got "pod"'],
    ['a bad size limit', () => [...baseArgs().slice(1), '--size-limit', '1Mi'], '--size-limit: must be a positive whole number of bytes'],
    ['a callback URL with a path', () => [...baseArgs().slice(1), '--callback-url', 'http://cb:8080/v1/hooks'], '(callbackUrl from --callback-url)'],
    ['a bad log level', () => [...baseArgs().slice(1), '--log-level', 'loud'], '--log-level must be one of'],
    ['a thread count that is not a number', () => [...baseArgs().slice(1), '--inject-threads', 'two'], '--inject-threads must be a whole number from 0 to 16, got "two"'],
    ['too many threads', () => [...baseArgs().slice(1), '--inject-threads', '17'], '--inject-threads must be a whole number from 0 to 16, got "17"'],
    ['a config file that does not exist', () => [...baseArgs().slice(1), '--config', join(dir, 'missing.yaml')], 'cannot read config file'],
    ['a missing hook key file', () => [...baseArgs().slice(1), '--hook-key-file', join(dir, 'no-keys')], 'does not exist'],
  ])('exits 2 on %s, saying why', async (_what, args, words) => {
    const r = await runCli(['webhook', ...args()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`kfp-notify webhook: `);
    expect(r.stderr).toContain(words);
  });

  it('exits 2 on a config file key it does not know, naming the key', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'callbackUrl: http://cb:8080\nsizeLimit: 5\n');
    const r = await runCli([...baseArgs(), '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}: key "sizeLimit": unknown key`);
  });

  it('prints its usage with --help and exits 0', async () => {
    const r = await runCli(['webhook', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--port', '--tls-cert', '--tls-key', '--host', '--config', '--callback-url', '--argo-version', '--mode', '--size-limit', '--hook-key-file', '--data-dir', '--log-level', '--inject-threads']) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('exits 1 when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      const r = await runCli(baseArgs(String((blocker.address() as AddressInfo).port)));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('EADDRINUSE');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});

interface Running {
  child: ChildProcessWithoutNullStreams;
  url: string;
  logs: () => Record<string, unknown>[];
  exit: Promise<number | null>;
}

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Starts `kfp-notify webhook` as a real process and resolves once it logs where it listens. */
function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  const logs = (): Record<string, unknown>[] =>
    stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const listening = stdout.split('\n').find((l) => l.includes('"webhook listening"'));
      if (listening) resolve({ child, url: String((JSON.parse(listening) as { url: string }).url), logs, exit });
    });
    void exit.then((code) => reject(new Error(`exited ${code} before listening: ${stderr}`)));
  });
}

function hookUrlsIn(patchBase64: string | undefined): string[] {
  const text = Buffer.from(patchBase64 ?? '', 'base64').toString('utf8');
  return [...new Set(text.match(/http:\/\/[a-z.-]+:\d+\/v1\/hooks/g) ?? [])];
}

describe('kfp-notify webhook (process)', () => {
  it.each([
    ['on the event loop (the default)', []],
    ['on an inject worker thread', ['--inject-threads', '1']],
  ])('serves /mutate over TLS with the config file, applies a config change, and exits 0 on SIGTERM: %s', async (_where, threads) => {
    writeFileSync(files.config, 'callbackUrl: http://callback-one.test:8080\nargoVersion: "3.7.3"\n');
    const running = await startCli([...baseArgs(), '--config', files.config, ...threads]);
    expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const admit = async (): Promise<{ uid: string; allowed: boolean; patchType?: string; patch?: string }> => {
      const res = await httpsRequest(`${running.url}/mutate`, {
        ca: cert.cert,
        body: JSON.stringify(reviewFor(admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world_with_retry.yaml'), { uid: 'cli-uid' })),
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status).toBe(200);
      return (JSON.parse(res.body) as { response: { uid: string; allowed: boolean; patchType?: string; patch?: string } }).response;
    };
    const first = await admit();
    expect(first).toMatchObject({ uid: 'cli-uid', allowed: true, patchType: 'JSONPatch' });
    expect(hookUrlsIn(first.patch)).toEqual(['http://callback-one.test:8080/v1/hooks']);

    writeFileSync(files.config, 'callbackUrl: http://callback-two.test:8080\nargoVersion: "3.7.3"\n');
    const deadline = Date.now() + 10_000;
    let urls = hookUrlsIn(first.patch);
    while (urls[0] !== 'http://callback-two.test:8080/v1/hooks' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      urls = hookUrlsIn((await admit()).patch);
    }
    expect(urls).toEqual(['http://callback-two.test:8080/v1/hooks']);

    running.child.kill('SIGTERM');
    expect(await running.exit).toBe(0);
    const logs = running.logs();
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['webhook listening', 'hooks injected', 'injector settings reloaded', 'stopping webhook', 'webhook stopped']));
    expect(logs.find((l) => l.msg === 'stopping webhook')?.signal).toBe('SIGTERM');
    expect(JSON.stringify(logs)).not.toContain(HOOK_KEY);
  });

  it('exits 0 on SIGINT too', async () => {
    const running = await startCli(baseArgs());
    running.child.kill('SIGINT');
    expect(await running.exit).toBe(0);
    expect(running.logs().at(-1)?.msg).toBe('webhook stopped');
  });
});
