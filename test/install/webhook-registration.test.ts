import { describe, expect, it } from 'vitest';
import { flag, NAMESPACE, resolveServicePort } from './helpers/install-model.js';
import { matchesSelector, named, ofKind } from './helpers/k8s-semantics.js';
import type { Certificate, Deployment, Issuer, MutatingWebhook, MutatingWebhookConfiguration } from './helpers/k8s-types.js';
import { type RenderedInstall, useRenderedInstalls } from './helpers/render.js';

const installs = useRenderedInstalls();

function theWebhook(install: RenderedInstall): MutatingWebhook {
  const configs = ofKind<MutatingWebhookConfiguration>(install.objects, 'MutatingWebhookConfiguration');
  expect(configs, install.name).toHaveLength(1);
  const webhooks = configs[0]?.webhooks ?? [];
  expect(webhooks, install.name).toHaveLength(1);
  return webhooks[0] as MutatingWebhook;
}

const namespaceLabels = (name: string, extra: Record<string, string> = {}) => ({ 'kubernetes.io/metadata.name': name, ...extra });

describe('MutatingWebhookConfiguration: it can never block or loop a KFP run', () => {
  it('has the safety settings in every install', () => {
    for (const install of installs()) {
      const w = theWebhook(install);
      expect({ install: install.name, ...w }).toMatchObject({
        install: install.name,
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        reinvocationPolicy: 'Never',
        admissionReviewVersions: ['v1'],
        matchPolicy: 'Equivalent',
      });
      expect(w.timeoutSeconds).toBeGreaterThanOrEqual(1);
      expect(w.timeoutSeconds).toBeLessThanOrEqual(5);
      expect(w.clientConfig.service?.path).toBe('/mutate');
      expect(w.clientConfig.url).toBeUndefined();
    }
  });

  it('is called for CREATE of argoproj.io/v1alpha1 workflows only (no UPDATE, no status, no other kind)', () => {
    for (const install of installs()) {
      expect(theWebhook(install).rules).toEqual([
        { operations: ['CREATE'], apiGroups: ['argoproj.io'], apiVersions: ['v1alpha1'], resources: ['workflows'], scope: 'Namespaced' },
      ]);
    }
  });

  it('sees only Workflows that carry the KFP run id label', () => {
    const w = theWebhook(installs()[0] as RenderedInstall);
    expect(matchesSelector(w.objectSelector, { 'pipeline/runid': '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e' })).toBe(true);
    expect(matchesSelector(w.objectSelector, { 'pipeline/runid': '' })).toBe(true);
    expect(matchesSelector(w.objectSelector, { 'workflows.argoproj.io/phase': 'Running' })).toBe(false);
    expect(matchesSelector(w.objectSelector, {})).toBe(false);
  });

  it("skips kfp-notify's own namespace, kube-system and opted-out namespaces; covers kubeflow and profiles", () => {
    for (const install of installs()) {
      const sel = theWebhook(install).namespaceSelector;
      expect(matchesSelector(sel, namespaceLabels(NAMESPACE)), install.name).toBe(false);
      expect(matchesSelector(sel, namespaceLabels('kube-system')), install.name).toBe(false);
      expect(matchesSelector(sel, namespaceLabels('team-a', { 'kfp-notify.kubeflow.org/inject': 'false' })), install.name).toBe(false);
      expect(matchesSelector(sel, namespaceLabels('kubeflow')), install.name).toBe(true);
      expect(matchesSelector(sel, namespaceLabels('team-a', { 'istio-injection': 'enabled', 'app.kubernetes.io/part-of': 'kubeflow-profile' })), install.name).toBe(true);
      expect(matchesSelector(sel, namespaceLabels('team-b', { 'kfp-notify.kubeflow.org/inject': 'true' })), install.name).toBe(true);
    }
  });

  it('reaches the webhook process: Service port → pod port → the port the webhook listens on, over HTTPS', () => {
    for (const install of installs()) {
      const svc = theWebhook(install).clientConfig.service;
      expect(svc, install.name).toBeDefined();
      if (!svc) continue;
      const ep = resolveServicePort(install.objects, svc.name, svc.namespace, svc.port ?? 443);
      expect(ep.deployment.metadata.name).toBe('kfp-notify-webhook');
      expect(ep.container.args?.[0]).toBe('webhook');
      expect(flag(ep.container, '--port')).toBe(String(ep.containerPort));
      expect(ep.container.readinessProbe?.httpGet?.scheme).toBe('HTTPS');
    }
  });
});

describe('the API server can trust the webhook certificate', () => {
  const certManagerInstalls = ['cert-manager', 'http-hooks', 'network-policy', 'ha'];

  it('cert-manager installs: inject-ca-from names a Certificate for the Service DNS name, written to the Secret the webhook mounts', () => {
    for (const install of installs().filter((i) => certManagerInstalls.includes(i.name))) {
      const mwc = named<MutatingWebhookConfiguration>(install.objects, 'MutatingWebhookConfiguration', 'kfp-notify');
      const ref = mwc.metadata.annotations?.['cert-manager.io/inject-ca-from'] ?? '';
      const [ns, name] = ref.split('/');
      const cert = named<Certificate>(install.objects, 'Certificate', name ?? '', ns);
      const svc = theWebhook(install).clientConfig.service;
      expect(cert.spec.dnsNames).toContain(`${svc?.name}.${svc?.namespace}.svc`);
      expect(theWebhook(install).clientConfig.caBundle, 'cert-manager fills caBundle').toBeUndefined();

      const webhook = named<Deployment>(install.objects, 'Deployment', 'kfp-notify-webhook', NAMESPACE);
      const tlsVolume = webhook.spec.template.spec.volumes?.find((v) => v.name === 'tls');
      expect(tlsVolume?.secret?.secretName).toBe(cert.spec.secretName);

      // The serving certificate is signed by a CA issuer whose CA is itself a cert-manager Certificate,
      // so renewing the serving certificate never changes what the API server trusts.
      const caIssuer = named<Issuer>(install.objects, 'Issuer', cert.spec.issuerRef.name, ns);
      const caCert = ofKind<Certificate>(install.objects, 'Certificate').find((c) => c.spec.secretName === caIssuer.spec.ca?.secretName);
      expect(caCert?.spec.isCA).toBe(true);
      const root = named<Issuer>(install.objects, 'Issuer', caCert?.spec.issuerRef.name ?? '', ns);
      expect(root.spec.selfSigned).toBeDefined();
    }
  });

  it('self-signed installs: the caBundle is set and the TLS Secret has a fixed name the webhook mounts', () => {
    for (const install of installs().filter((i) => !certManagerInstalls.includes(i.name))) {
      expect(theWebhook(install).clientConfig.caBundle, install.name).toMatch(/^[A-Za-z0-9+/=]{100,}$/);
      const webhook = named<Deployment>(install.objects, 'Deployment', 'kfp-notify-webhook', NAMESPACE);
      const secretName = webhook.spec.template.spec.volumes?.find((v) => v.name === 'tls')?.secret?.secretName ?? '';
      expect(named<{ type: string }>(install.objects, 'Secret', secretName, NAMESPACE).type).toBe('kubernetes.io/tls');
    }
  });
});
