import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { kubeConfigSource, loadKubeConfig } from '../../../callback/cluster/kubeconfig.js';

function kubeconfig(server: string, context = 'dev'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `current-context: ${context}`,
    'clusters:',
    `- name: ${context}-cluster`,
    `  cluster: { server: "${server}" }`,
    'users:',
    `- name: ${context}-user`,
    '  user: { token: not-a-real-token }',
    'contexts:',
    `- name: ${context}`,
    `  context: { cluster: ${context}-cluster, user: ${context}-user, namespace: kubeflow }`,
    '',
  ].join('\n');
}

describe('loadKubeConfig', () => {
  let dir: string;
  const noServiceAccount = '/nonexistent/serviceaccount/token';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kfp-notify-kubeconfig-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is undefined when there is no kubeconfig and no in-cluster service account (never localhost:8080)', () => {
    const src = { env: {}, home: dir, serviceAccountToken: noServiceAccount };
    expect(kubeConfigSource(src)).toBeUndefined();
    expect(loadKubeConfig(src)).toBeUndefined();
  });

  it('reads $KUBECONFIG first (several files merge, the first current-context wins), then ~/.kube/config', () => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, kubeconfig('https://127.0.0.1:6443', 'first'));
    writeFileSync(b, kubeconfig('https://127.0.0.1:7443', 'second'));
    mkdirSync(join(dir, '.kube'));
    writeFileSync(join(dir, '.kube', 'config'), kubeconfig('https://127.0.0.1:8443', 'home'));

    const fromEnv = loadKubeConfig({ env: { KUBECONFIG: [a, b].join(delimiter) }, home: dir, serviceAccountToken: noServiceAccount });
    expect(fromEnv?.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(fromEnv?.getContexts().map((c) => c.name).sort()).toEqual(['first', 'second']);

    const src = { env: {}, home: dir, serviceAccountToken: noServiceAccount };
    expect(kubeConfigSource(src)).toBe('kubeconfig-home');
    expect(loadKubeConfig(src)?.getCurrentCluster()?.server).toBe('https://127.0.0.1:8443');
  });

  it('detects the in-cluster service account only with KUBERNETES_SERVICE_HOST set', () => {
    const token = join(dir, 'token');
    writeFileSync(token, 'eyJhbGciOi...');
    expect(kubeConfigSource({ env: {}, home: dir, serviceAccountToken: token })).toBeUndefined();
    expect(kubeConfigSource({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, home: dir, serviceAccountToken: token })).toBe('in-cluster');
  });

  it('throws a message naming the file when the kubeconfig cannot be read', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'clusters: [unclosed');
    expect(() => loadKubeConfig({ env: { KUBECONFIG: bad }, home: dir, serviceAccountToken: noServiceAccount })).toThrow(new RegExp(`cannot load the Kubernetes configuration from \\$KUBECONFIG \\(${bad.replaceAll('/', '\\/')}\\)`));
    const missing = join(dir, 'missing.yaml');
    expect(() => loadKubeConfig({ env: { KUBECONFIG: missing }, home: dir, serviceAccountToken: noServiceAccount })).toThrow(/missing\.yaml/);
  });
});
