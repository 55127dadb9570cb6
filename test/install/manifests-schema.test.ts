import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createK8sValidator, type K8sValidator } from './helpers/k8s-schema.js';
import { certManagerProblems, isCertManager } from './helpers/cert-manager-shape.js';
import { isPrometheusOperator, prometheusOperatorProblems } from './helpers/prometheus-operator-shape.js';
import { kustomize, MANIFESTS, parseObjects, useRenderedInstalls, type K8sObject } from './helpers/render.js';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

let validator: K8sValidator;
beforeAll(() => {
  validator = createK8sValidator();
});
const installs = useRenderedInstalls();

/** Every problem with one rendered object: schema errors, or the minimal cert-manager shape check. */
function problems(obj: K8sObject): string[] {
  if (isCertManager(obj)) return certManagerProblems(obj);
  if (isPrometheusOperator(obj)) return prometheusOperatorProblems(obj);
  if (!validator.knows(obj)) return [`${obj.apiVersion} ${obj.kind} is not a Kubernetes 1.32 kind (nor cert-manager)`];
  const found = validator.validate(obj);
  if (!DNS_SUBDOMAIN.test(obj.metadata.name) || obj.metadata.name.length > 253) found.push(`metadata.name ${obj.metadata.name} is not a DNS subdomain`);
  for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
    if (v.length > 63 || !LABEL_VALUE.test(v)) found.push(`label ${k}=${v} has an invalid value`);
  }
  return found;
}

describe('the schema check itself', () => {
  it('rejects a misspelt field, a wrong type and a duplicate container name, as the API server would', () => {
    const deployment = (spec: unknown): K8sObject => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec });
    const pod = (containers: unknown[]) => ({ selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers } } });
    expect(validator.validate(deployment(pod([{ name: 'c', image: 'i' }])))).toEqual([]);
    expect(validator.validate(deployment(pod([{ name: 'c', image: 'i', securityContext: { readOnlyRootFileSystem: true } }])))).toEqual([
      expect.stringContaining('readOnlyRootFileSystem'),
    ]);
    expect(validator.validate(deployment({ ...pod([{ name: 'c', image: 'i' }]), replicas: 'two' }))).not.toEqual([]);
    expect(validator.validate(deployment(pod([{ name: 'c', image: 'i' }, { name: 'c', image: 'j' }])))).not.toEqual([]);
    expect(validator.validate(deployment(pod([{ image: 'i' }])))).toEqual([expect.stringContaining("must have required property 'name'")]);
  });

  it('knows the API groups the manifests use and nothing it was not given', () => {
    expect(validator.knows({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' })).toBe(true);
    expect(validator.knows({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow' })).toBe(false);
  });
});

describe('rendered installs validate against the Kubernetes 1.32 OpenAPI schemas', () => {
  it('every overlay and the documented combination renders a complete install', () => {
    const required = [
      ['Namespace', 'kfp-notify'],
      ['ServiceAccount', 'kfp-notify-webhook'],
      ['ServiceAccount', 'kfp-notify-callback'],
      ['Deployment', 'kfp-notify-webhook'],
      ['Deployment', 'kfp-notify-callback'],
      ['Service', 'kfp-notify-webhook'],
      ['Service', 'kfp-notify-callback'],
      ['PodDisruptionBudget', 'kfp-notify-webhook'],
      ['ConfigMap', 'kfp-notify-injector'],
      ['ConfigMap', 'kfp-event-handler-config'],
      ['MutatingWebhookConfiguration', 'kfp-notify'],
    ];
    expect(installs().map((i) => i.name)).toEqual(['cert-manager', 'self-signed', 'http-hooks', 'network-policy', 'ha', 'combined']);
    for (const i of installs()) {
      // The SQLite volume, except in `ha`, where the queue lives in NATS JetStream; a PDB for its 3 callbacks instead.
      const extra = i.name === 'ha' ? [['PodDisruptionBudget', 'kfp-notify-callback']] : [['PersistentVolumeClaim', 'kfp-notify-data']];
      const missing = [...required, ...extra].filter(([kind, name]) => !i.objects.some((o) => o.kind === kind && o.metadata.name === name));
      expect(missing, i.name).toEqual([]);
      // The serving certificate: issued by cert-manager, or a Secret from certs/gen.sh.
      expect(i.objects.some((o) => (o.kind === 'Certificate' || o.kind === 'Secret') && o.metadata.name.startsWith('kfp-notify-webhook')), i.name).toBe(true);
    }
  });

  it('every object of every install is valid', () => {
    const report: Record<string, string[]> = {};
    for (const install of installs()) {
      for (const obj of install.objects) {
        const p = problems(obj);
        if (p.length > 0) report[`${install.name}: ${obj.kind}/${obj.metadata.name}`] = p;
      }
    }
    expect(report).toEqual({});
  });

  it('the base renders and validates on its own', () => {
    const base = kustomize(join(MANIFESTS, 'base'));
    expect(base.flatMap((o) => problems(o).map((p) => `${o.kind}/${o.metadata.name}: ${p}`))).toEqual([]);
  });

  it('the per-namespace http-hooks RBAC file validates', () => {
    const file = join(MANIFESTS, 'per-namespace', 'http-hooks-agent-rbac.yaml');
    const objs = parseObjects(readFileSync(file, 'utf8'), file);
    expect(objs.map((o) => o.kind)).toEqual(['Role', 'RoleBinding']);
    expect(objs.flatMap(problems)).toEqual([]);
  });
});
