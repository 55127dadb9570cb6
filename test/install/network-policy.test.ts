import { describe, expect, it } from 'vitest';
import { NAMESPACE } from './helpers/install-model.js';
import { egressAllowed, ingressAllowed, named, type Peer, type PodRef } from './helpers/k8s-semantics.js';
import type { Deployment } from './helpers/k8s-types.js';
import { type RenderedInstall, useRenderedInstalls } from './helpers/render.js';

const installs = useRenderedInstalls();

const WITH_POLICIES = ['network-policy', 'combined'];

function podOf(install: RenderedInstall, deployment: string): PodRef {
  const d = named<Deployment>(install.objects, 'Deployment', deployment, NAMESPACE);
  return { namespace: NAMESPACE, labels: d.spec.template.metadata?.labels ?? {} };
}

const pod = (namespace: string, podLabels: Record<string, string> = {}): Peer => ({
  namespace,
  namespaceLabels: { 'kubernetes.io/metadata.name': namespace },
  podLabels,
});
// A hook pod as Argo creates it in a KFP namespace.
const HOOK_POD_KUBEFLOW = pod('kubeflow', { 'workflows.argoproj.io/workflow': 'hello-abc12', 'pipeline/runid': 'r1' });
const HOOK_POD_PROFILE = pod('team-a', { 'workflows.argoproj.io/workflow': 'hello-def34', 'pipeline/runid': 'r2' });
const API_SERVER: Peer = { ip: '10.0.0.1' };
const OUTSIDE: Peer = { ip: '203.0.113.7' };

describe('network-policy component, evaluated as a CNI would (policies rendered with kubectl kustomize)', () => {
  it('callback: port 8080 from pods in any namespace; nothing from outside pods, nothing on other ports', () => {
    for (const install of installs().filter((i) => WITH_POLICIES.includes(i.name))) {
      const callback = podOf(install, 'kfp-notify-callback');
      expect(ingressAllowed(install.objects, callback, HOOK_POD_KUBEFLOW, 8080)).toBe(true);
      expect(ingressAllowed(install.objects, callback, HOOK_POD_PROFILE, 8080)).toBe(true);
      expect(ingressAllowed(install.objects, callback, pod('monitoring', { app: 'prometheus' }), 8080)).toBe(true);
      expect(ingressAllowed(install.objects, callback, OUTSIDE, 8080)).toBe(false);
      expect(ingressAllowed(install.objects, callback, HOOK_POD_KUBEFLOW, 8443)).toBe(false);
      expect(ingressAllowed(install.objects, callback, HOOK_POD_KUBEFLOW, 22)).toBe(false);
    }
  });

  it('webhook: 8443 from the API server wherever it runs; no other port; no egress at all', () => {
    for (const install of installs().filter((i) => WITH_POLICIES.includes(i.name))) {
      const webhook = podOf(install, 'kfp-notify-webhook');
      expect(ingressAllowed(install.objects, webhook, API_SERVER, 8443)).toBe(true);
      expect(ingressAllowed(install.objects, webhook, HOOK_POD_KUBEFLOW, 8080)).toBe(false);
      expect(ingressAllowed(install.objects, webhook, API_SERVER, 9090)).toBe(false);
      expect(egressAllowed(install.objects, webhook, API_SERVER, 443)).toBe(false);
      expect(egressAllowed(install.objects, webhook, pod('kube-system', { 'k8s-app': 'kube-dns' }), 53)).toBe(false);
    }
  });

  it('callback egress stays open: the API server, DNS and subscribers anywhere', () => {
    for (const install of installs().filter((i) => WITH_POLICIES.includes(i.name))) {
      const callback = podOf(install, 'kfp-notify-callback');
      expect(egressAllowed(install.objects, callback, API_SERVER, 443)).toBe(true);
      expect(egressAllowed(install.objects, callback, pod('kube-system', { 'k8s-app': 'kube-dns' }), 53)).toBe(true);
      expect(egressAllowed(install.objects, callback, OUTSIDE, 8443)).toBe(true);
    }
  });

  it('any other pod in the namespace gets no ingress (default deny)', () => {
    for (const install of installs().filter((i) => WITH_POLICIES.includes(i.name))) {
      const stray: PodRef = { namespace: NAMESPACE, labels: { app: 'debug' } };
      expect(ingressAllowed(install.objects, stray, HOOK_POD_KUBEFLOW, 8080)).toBe(false);
    }
  });

  it('without the component nothing is isolated', () => {
    for (const install of installs().filter((i) => !WITH_POLICIES.includes(i.name))) {
      expect(ingressAllowed(install.objects, podOf(install, 'kfp-notify-webhook'), OUTSIDE, 9090)).toBe(true);
    }
  });
});
