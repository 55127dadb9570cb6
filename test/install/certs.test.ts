import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHookKeys } from '../../common/hook-token.js';
import { NAMESPACE } from './helpers/install-model.js';
import { named } from './helpers/k8s-semantics.js';
import type { MutatingWebhookConfiguration, Secret } from './helpers/k8s-types.js';
import { copyWorkspace, genSh, kustomize, run } from './helpers/render.js';

const DNS_NAMES = ['kfp-notify-webhook.kfp-notify.svc', 'kfp-notify-webhook.kfp-notify.svc.cluster.local'];
const CERT_FILES = ['ca-bundle.crt', 'ca.crt', 'ca.key', 'cabundle-patch.yaml', 'tls.crt', 'tls.key'];

const scratch: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kfp-notify-certs-'));
  scratch.push(d);
  return d;
}
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

function opensslVerify(caFile: string, certFile: string) {
  return run('openssl', ['verify', '-CAfile', caFile, certFile]);
}

/** A TLS handshake as the kube-apiserver makes it: the Service DNS name as SNI, the caBundle as the only roots. */
async function handshake(server: Server, ca: string, servername: string): Promise<{ ok: true } | { ok: false; error: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: true }, () => {
      socket.end();
      resolve({ ok: true });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code ?? err.message }));
  });
}

describe('certs/gen.sh: a fresh run', () => {
  let out: string;
  let server: Server;

  beforeAll(async () => {
    out = join(tempDir(), 'generated');
    const r = genSh(['--out', out, '--hook-key']);
    expect(r.code, r.stderr).toBe(0);
    server = createServer({ cert: readFileSync(join(out, 'tls.crt')), key: readFileSync(join(out, 'tls.key')) }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('writes the CA, the serving pair, the bundle, the patch and the hook key; private keys are 0600', () => {
    expect(readdirSync(out).sort()).toEqual([...CERT_FILES, 'hook-key'].sort());
    for (const f of ['ca.key', 'tls.key', 'hook-key']) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
  });

  it('openssl verifies the serving certificate against the CA', () => {
    const r = opensslVerify(join(out, 'ca.crt'), join(out, 'tls.crt'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(': OK');
  });

  it('the serving certificate carries the Service DNS names as SANs, is a server leaf, and matches tls.key', () => {
    const san = run('openssl', ['x509', '-in', join(out, 'tls.crt'), '-noout', '-ext', 'subjectAltName']);
    expect(san.code).toBe(0);
    for (const name of DNS_NAMES) expect(san.stdout).toContain(`DNS:${name}`);

    const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
    const ca = new X509Certificate(readFileSync(join(out, 'ca.crt')));
    for (const name of DNS_NAMES) expect(cert.checkHost(name)).toBe(name);
    expect(cert.checkHost('kfp-notify-callback.kfp-notify.svc')).toBeUndefined();
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    expect(ca.ca).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    const certKey = cert.publicKey.export({ type: 'spki', format: 'pem' });
    expect(createPublicKey(readFileSync(join(out, 'tls.key'))).export({ type: 'spki', format: 'pem' })).toEqual(certKey);
  });

  it('a real TLS client that trusts only the bundle accepts the server for the Service name, and only for it', async () => {
    const bundle = readFileSync(join(out, 'ca-bundle.crt'), 'utf8');
    expect(await handshake(server, bundle, 'kfp-notify-webhook.kfp-notify.svc')).toEqual({ ok: true });
    expect(await handshake(server, bundle, 'kfp-notify-webhook.other.svc')).toEqual({ ok: false, error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const stranger = join(tempDir(), 'stranger');
    expect(genSh(['--out', stranger]).code).toBe(0);
    const other = await handshake(server, readFileSync(join(stranger, 'ca.crt'), 'utf8'), 'kfp-notify-webhook.kfp-notify.svc');
    expect(other.ok).toBe(false);
  });

  it('the patch carries the bundle, base64, for the webhook entry', () => {
    const patch = readFileSync(join(out, 'cabundle-patch.yaml'), 'utf8');
    const value = /value: (\S+)/.exec(patch)?.[1] ?? '';
    expect(patch).toContain('path: /webhooks/0/clientConfig/caBundle');
    expect(Buffer.from(value, 'base64').toString('utf8')).toBe(readFileSync(join(out, 'ca-bundle.crt'), 'utf8'));
  });

  it('the hook key is one the webhook and callback accept', () => {
    const keys = parseHookKeys(readFileSync(join(out, 'hook-key'), 'utf8'));
    expect(keys).toHaveLength(1);
    expect(keys[0]?.secret.length).toBeGreaterThanOrEqual(32);
  });
});

describe('certs/gen.sh: re-runs never clobber', () => {
  it('with everything in place: exits 0 and changes nothing (hook key included)', () => {
    const out = join(tempDir(), 'g');
    expect(genSh(['--out', out, '--hook-key']).code).toBe(0);
    const before = snapshot(out);
    const again = genSh(['--out', out, '--hook-key']);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('nothing to do');
    expect(snapshot(out)).toEqual(before);
  });

  it('refuses (exit 1, files untouched) when the certificate is for another Service, or files are missing', () => {
    const out = join(tempDir(), 'g');
    expect(genSh(['--out', out]).code).toBe(0);
    const before = snapshot(out);
    const other = genSh(['--out', out, '--service', 'other-webhook']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/not valid for other-webhook\.kfp-notify\.svc.*--renew/);
    expect(snapshot(out)).toEqual(before);

    unlinkSync(join(out, 'tls.key'));
    const partial = genSh(['--out', out]);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain('--force');
    const { ['tls.key']: _gone, ...rest } = before;
    expect(snapshot(out)).toEqual(rest);
  });

  it('usage errors exit 2 with a message', () => {
    for (const args of [['--bogus'], ['--days', 'soon'], ['--namespace', 'Not_A_Name'], ['--out'], ['--renew', '--force']]) {
      const r = genSh(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^gen\.sh: /);
    }
  });
});

describe('certs/gen.sh: rotation', () => {
  it('--renew: a new serving certificate from the same CA; the caBundle does not change', () => {
    const out = join(tempDir(), 'g');
    expect(genSh(['--out', out]).code).toBe(0);
    const before = snapshot(out);
    const r = genSh(['--out', out, '--renew']);
    expect(r.code, r.stderr).toBe(0);
    const after = snapshot(out);
    expect(after['tls.crt']).not.toBe(before['tls.crt']);
    expect(after['tls.key']).not.toBe(before['tls.key']);
    for (const f of ['ca.crt', 'ca.key', 'ca-bundle.crt', 'cabundle-patch.yaml']) expect(after[f], f).toBe(before[f]);
    expect(opensslVerify(join(out, 'ca-bundle.crt'), join(out, 'tls.crt')).code).toBe(0);
  });

  it('--force: a new CA; the bundle trusts old and new, so pods still serving the old certificate keep working', () => {
    const out = join(tempDir(), 'g');
    const keep = tempDir();
    expect(genSh(['--out', out]).code).toBe(0);
    const old = snapshot(out);
    expect(genSh(['--out', out, '--force']).code).toBe(0);
    const now = snapshot(out);
    expect(now['ca.crt']).not.toBe(old['ca.crt']);
    expect(now['ca-bundle.crt']).toBe(`${now['ca.crt']}${old['ca.crt']}`);

    // The previous certificate and CA, as a pod and the API server still hold them mid-rotation.
    const oldCert = join(keep, 'old-tls.crt');
    const oldCa = join(keep, 'old-ca.crt');
    writeFileSync(oldCert, old['tls.crt'] ?? '');
    writeFileSync(oldCa, old['ca.crt'] ?? '');
    expect(opensslVerify(join(out, 'ca-bundle.crt'), oldCert).code).toBe(0);
    expect(opensslVerify(join(out, 'ca-bundle.crt'), join(out, 'tls.crt')).code).toBe(0);
    expect(opensslVerify(oldCa, join(out, 'tls.crt')).code).not.toBe(0);
  });

  it('--renew without a CA is refused', () => {
    const r = genSh(['--out', join(tempDir(), 'empty'), '--renew']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('run without --renew first');
  });
});

describe('the self-signed overlay renders what gen.sh wrote', () => {
  it('gen.sh with no --out writes where the overlay reads; the Secret and caBundle carry those files', () => {
    const ws = copyWorkspace();
    scratch.push(ws.root);
    const r = genSh([], ws.genSh);
    expect(r.code, r.stderr).toBe(0);
    const generated = join(ws.manifests, 'overlays', 'self-signed', 'generated');
    const objects = kustomize(join(ws.manifests, 'overlays', 'self-signed'));

    const secret = named<Secret>(objects, 'Secret', 'kfp-notify-webhook-tls', NAMESPACE);
    expect(secret.type).toBe('kubernetes.io/tls');
    for (const f of ['tls.crt', 'tls.key']) {
      expect(Buffer.from(secret.data?.[f] ?? '', 'base64').toString('utf8'), f).toBe(readFileSync(join(generated, f), 'utf8'));
    }
    const mwc = named<MutatingWebhookConfiguration>(objects, 'MutatingWebhookConfiguration', 'kfp-notify');
    const bundle = Buffer.from(mwc.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8');
    expect(bundle).toBe(readFileSync(join(generated, 'ca-bundle.crt'), 'utf8'));
    expect(new X509Certificate(readFileSync(join(generated, 'tls.crt'))).checkIssued(new X509Certificate(bundle))).toBe(true);
  });

  it('without gen.sh the overlay does not render, and the error names the missing file', () => {
    const ws = copyWorkspace();
    scratch.push(ws.root);
    expect(() => kustomize(join(ws.manifests, 'overlays', 'self-signed'))).toThrow(/generated\/tls\.crt/);
  });
});
