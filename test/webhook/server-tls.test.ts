import { statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import jsonpatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { defaultInjectOptions } from '../../webhook/inject/options.js';
import { startWebhookServer, type RunningWebhook } from '../../webhook/server.js';
import { ensureSelfSignedCert } from '../../webhook/self-signed.js';
import { readCertPair } from '../../webhook/tls-reload.js';
import { admittedWorkflow, httpsRequest, makeCert, reviewFor, writeSecretVolume, type TestCert } from '../helpers/tls.js';
import { cleanups as testCleanups } from '../helpers/cleanups.js';

const options = defaultInjectOptions({ hookKey: hookKeyFromSecret('tls-test-hook-key-0123456789') });
const cleanups = testCleanups('kfp-notify-webhook-tls-');
afterEach(cleanups.run);
const tempDir = cleanups.tempDir;

let first: TestCert;
let second: TestCert;
beforeAll(async () => {
  [first, second] = await Promise.all([makeCert('first.localhost'), makeCert('second.localhost')]);
});

interface Started {
  server: RunningWebhook;
  registry: Registry;
  logs: Record<string, unknown>[];
}

async function start(files: { certFile: string; keyFile: string }, certPollMs?: number, requestTimeoutMs?: number): Promise<Started> {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
  const registry = new Registry();
  const server = await startWebhookServer({
    host: '127.0.0.1',
    port: 0,
    ...files,
    logger,
    registry,
    getInjectOptions: () => options,
    certPollMs,
    ...(requestTimeoutMs !== undefined ? { requestTimeoutMs } : {}),
  });
  cleanups.push(() => server.close());
  return { server, registry, logs };
}

async function reloads(registry: Registry, result: string): Promise<number> {
  const { values } = await registry.getSingleMetric('kfp_notify_webhook_cert_reloads_total')!.get();
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

/** Polls until `probe` returns true; a rotation is noticed by a file watch, so this only waits on the OS. */
async function eventually(probe: () => Promise<boolean>, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting: ${what}`);
}

describe('startWebhookServer (HTTPS on 127.0.0.1)', () => {
  it('admits a real KFP Workflow over TLS with a certificate the client trusts', async () => {
    const { server } = await start(writeSecretVolume(tempDir(), first));
    expect(server.url).toBe(`https://127.0.0.1:${server.port}`);
    const wf = admittedWorkflow('kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml');
    const res = await httpsRequest(`${server.url}/mutate?timeout=5s`, {
      ca: first.cert,
      body: JSON.stringify(reviewFor(wf, { uid: 'tls-uid', namespace: 'team-b' })),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(res.peerFingerprint256).toBe(first.fingerprint256);
    const answer = JSON.parse(res.body) as { response: { uid: string; allowed: boolean; patchType: string; patch: string } };
    expect(answer.response).toMatchObject({ uid: 'tls-uid', allowed: true, patchType: 'JSONPatch' });
    const patch = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as jsonpatch.Operation[];
    const patched = jsonpatch.applyPatch(structuredClone(wf), patch, true, false).newDocument;
    expect(patched).toEqual(injectWorkflow(structuredClone(wf), { ...options, namespace: 'team-b' }).workflow);
  });

  it('serves /healthz, /readyz and /metrics over TLS', async () => {
    const { server } = await start(writeSecretVolume(tempDir(), first));
    expect(JSON.parse((await httpsRequest(`${server.url}/healthz`, { ca: first.cert })).body)).toEqual({ status: 'ok' });
    expect(JSON.parse((await httpsRequest(`${server.url}/readyz`, { ca: first.cert })).body)).toEqual({ status: 'ready' });
    const metrics = await httpsRequest(`${server.url}/metrics`, { ca: first.cert });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('kfp_notify_admission_requests_total');
  });

  it('refuses a TLS 1.1 client with a protocol-version alert and accepts TLS 1.2', async () => {
    const { server } = await start(writeSecretVolume(tempDir(), first));
    // SECLEVEL=0 lets this client offer TLS 1.1 at all; the refusal must come from the server.
    const attempt = (version: 'TLSv1.1' | 'TLSv1.2'): Promise<string> =>
      new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: server.port, ca: first.cert, servername: 'localhost', minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
          resolve(`connected ${socket.getProtocol()}`);
          socket.end();
        });
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(`refused ${err.code}`));
      });
    expect(await attempt('TLSv1.1')).toBe('refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    expect(await attempt('TLSv1.2')).toBe('connected TLSv1.2');
  });

  it('picks up a rotated Secret volume (..data symlink swap) on new connections, without a restart', async () => {
    const dir = tempDir();
    const files = writeSecretVolume(dir, first);
    const { server, registry, logs } = await start(files, 60_000);
    expect((await httpsRequest(`${server.url}/healthz`, { ca: first.cert })).peerFingerprint256).toBe(first.fingerprint256);

    writeSecretVolume(dir, second);
    await eventually(async () => (await reloads(registry, 'reloaded')) === 1, 'certificate reload');
    const after = await httpsRequest(`${server.url}/healthz`, { ca: second.cert });
    expect(after.peerFingerprint256).toBe(second.fingerprint256);
    expect(after.status).toBe(200);
    expect(logs.find((l) => l.msg === 'serving certificate reloaded')).toMatchObject({ fingerprint256: second.fingerprint256 });
    expect(await reloads(registry, 'rejected')).toBe(0);
  });

  it('picks up a change the directory watch cannot see (a symlink target elsewhere) through the stat fallback', async () => {
    const watched = tempDir();
    const elsewhere = tempDir();
    writeFileSync(join(elsewhere, 'real.crt'), first.cert);
    writeFileSync(join(elsewhere, 'real.key'), first.key);
    const certFile = join(watched, 'tls.crt');
    const keyFile = join(watched, 'tls.key');
    symlinkSync(join(elsewhere, 'real.crt'), certFile);
    symlinkSync(join(elsewhere, 'real.key'), keyFile);
    const { server, registry } = await start({ certFile, keyFile }, 50);
    writeFileSync(join(elsewhere, 'real.key'), second.key);
    writeFileSync(join(elsewhere, 'real.crt'), second.cert);
    const served = async (): Promise<string | undefined> => (await httpsRequest(`${server.url}/healthz`, { ca: second.cert }).catch(() => undefined))?.peerFingerprint256;
    await eventually(async () => (await served()) === second.fingerprint256, 'new certificate served');
    expect(await reloads(registry, 'reloaded')).toBeGreaterThanOrEqual(1);
  });

  it('keeps serving the old pair when the new one does not match, and says so', async () => {
    const dir = tempDir();
    const files = writeSecretVolume(dir, first);
    const { server, registry, logs } = await start(files, 60_000);
    writeSecretVolume(dir, { cert: second.cert, key: first.key });
    await eventually(async () => (await reloads(registry, 'rejected')) === 1, 'rejected reload');
    const res = await httpsRequest(`${server.url}/healthz`, { ca: first.cert });
    expect(res.peerFingerprint256).toBe(first.fingerprint256);
    const line = logs.find((l) => l.msg === 'new serving certificate rejected; keeping the old one');
    expect(line?.err).toContain('does not match the certificate');
    expect(await reloads(registry, 'reloaded')).toBe(0);
  });

  it('refuses to start on a key that does not match its certificate', async () => {
    const dir = tempDir();
    const files = writeSecretVolume(dir, { cert: first.cert, key: second.key });
    await expect(start(files)).rejects.toThrow(/does not match the certificate/);
  });

  it('answers 408 and closes a request whose body stalls (no socket held open by a slow client)', async () => {
    const { server } = await start(writeSecretVolume(tempDir(), first), undefined, 400);
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: first.cert, servername: 'localhost' });
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    // Declares 100 bytes, sends 5, then nothing.
    socket.write('POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"api');
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000);
      socket.once('close', () => (clearTimeout(timer), resolve(true)));
    });
    expect(closed).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('stops accepting connections after close()', async () => {
    const { server } = await start(writeSecretVolume(tempDir(), first));
    await server.close();
    await expect(httpsRequest(`${server.url}/healthz`, { ca: first.cert })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('ensureSelfSignedCert', () => {
  it('makes a key pair once, serves with it, and reuses it on the next call', async () => {
    const dir = join(tempDir(), 'data');
    const made = await ensureSelfSignedCert(dir);
    expect(made.created).toBe(true);
    expect(statSync(made.keyFile).mode & 0o777).toBe(0o600);
    const pair = readCertPair(made.certFile, made.keyFile);
    expect(pair.info.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');

    const again = await ensureSelfSignedCert(dir);
    expect(again).toEqual({ ...made, created: false });
    expect(readCertPair(again.certFile, again.keyFile).info.fingerprint256).toBe(pair.info.fingerprint256);

    const { server } = await start(made);
    const res = await httpsRequest(`${server.url}/healthz`, { ca: pair.cert });
    expect(res.status).toBe(200);
  });

  it('replaces a certificate that does not cover the hostnames asked for', async () => {
    const dir = tempDir();
    const made = await ensureSelfSignedCert(dir, ['localhost']);
    const wider = await ensureSelfSignedCert(dir, ['localhost', 'kfp-notify.local', '::1']);
    expect(wider.created).toBe(true);
    expect(readCertPair(wider.certFile, wider.keyFile).info.subjectAltName).toBe('DNS:localhost, DNS:kfp-notify.local, IP Address:0:0:0:0:0:0:0:1');
    expect(made.certFile).toBe(wider.certFile);
  });
});
