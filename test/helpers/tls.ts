import { X509Certificate, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { parseDocuments } from '../../common/yaml-docs.js';
import { generateSelfSigned } from '../../webhook/self-signed.js';
import { FIXTURES_DIR } from './fixtures.js';

export interface TestCert {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as a peer certificate reports it. */
  fingerprint256: string;
}

/** A fresh self-signed certificate for 127.0.0.1 and localhost (the same generator `serve` uses). */
export async function makeCert(commonName = 'localhost', hostnames: readonly string[] = ['localhost', '127.0.0.1']): Promise<TestCert> {
  const { cert, key } = await generateSelfSigned(hostnames, { commonName });
  return { cert, key, fingerprint256: new X509Certificate(cert).fingerprint256 };
}

/**
 * Lays the pair out the way the kubelet mounts a Secret: `tls.crt -> ..data/tls.crt`, `..data -> ..<ts>`.
 * Returns the paths a server is pointed at.
 */
export function writeSecretVolume(dir: string, pair: { cert: string; key: string }): { certFile: string; keyFile: string } {
  mkdirSync(dir, { recursive: true });
  const version = `..${Date.now()}_${Math.random().toString(36).slice(2)}`;
  mkdirSync(join(dir, version));
  writeFileSync(join(dir, version, 'tls.crt'), pair.cert);
  writeFileSync(join(dir, version, 'tls.key'), pair.key);
  let previous: string | undefined;
  try {
    previous = readlinkSync(join(dir, '..data'));
  } catch {
    symlinkSync(join('..data', 'tls.crt'), join(dir, 'tls.crt'));
    symlinkSync(join('..data', 'tls.key'), join(dir, 'tls.key'));
  }
  // The kubelet's atomic writer: point a temp link at the new version, then rename it over `..data`.
  symlinkSync(version, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  if (previous) rmSync(join(dir, previous), { recursive: true, force: true });
  return { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
}

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The certificate the server presented on this connection. */
  peerFingerprint256: string;
}

/**
 * One request on a new TLS connection (no agent, so no reuse: each call sees the server's current
 * certificate). `ca` is the certificate to trust; other TLS options pass through.
 */
export function httpsRequest(
  url: string,
  opts: { ca: string; method?: string; body?: string; headers?: Record<string, string> } & Pick<RequestOptions, 'minVersion' | 'maxVersion' | 'ciphers'>,
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const { body, ...rest } = opts;
    const req = request(url, { ...rest, method: opts.method ?? (body === undefined ? 'GET' : 'POST'), agent: false }, (res) => {
      const socket = res.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peerFingerprint256: peer.fingerprint256 }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ---- What the kube-apiserver sends: bodies for the webhook tests (server, TLS and CLI). ----

const FIXTURES = FIXTURES_DIR;

/**
 * A compiled KFP pipeline from the shared fixtures as the KFP API server creates it: the fixture plus the
 * run-id label, run-name annotation and pod-metadata label the API server adds (argo-kfp.md §4.3).
 */
export function admittedWorkflow(fixture: string, runId: string = randomUUID()): Record<string, unknown> {
  const [doc] = parseDocuments(readFileSync(join(FIXTURES, fixture), 'utf8'), fixture);
  const wf = structuredClone(doc) as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
  wf.metadata.labels = { ...(wf.metadata.labels as object), 'pipeline/runid': runId };
  wf.metadata.annotations = { ...(wf.metadata.annotations as object), 'pipelines.kubeflow.org/run_name': 'nightly run' };
  const pm = (wf.spec.podMetadata ?? {}) as { labels?: Record<string, string> };
  wf.spec.podMetadata = { ...pm, labels: { ...pm.labels, 'pipeline/runid': runId } };
  return wf;
}

/** An AdmissionReview v1 for a Workflow CREATE (or `operation`), as the apiserver sends it. */
export function reviewFor(object: unknown, opts: { uid?: string; namespace?: string; operation?: string } = {}): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: opts.uid ?? randomUUID(),
      kind: { group: 'argoproj.io', version: 'v1alpha1', kind: 'Workflow' },
      resource: { group: 'argoproj.io', version: 'v1alpha1', resource: 'workflows' },
      namespace: opts.namespace ?? 'team-a',
      operation: opts.operation ?? 'CREATE',
      userInfo: { username: 'system:serviceaccount:kubeflow:ml-pipeline' },
      object,
      oldObject: null,
      dryRun: false,
    },
  };
}
