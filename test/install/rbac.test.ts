import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NAMESPACE } from './helpers/install-model.js';
import { allows, ofKind, rulesOf, type ResourceRequest, type ServiceAccountRef } from './helpers/k8s-semantics.js';
import type { Deployment, Role, RoleBinding, ServiceAccount } from './helpers/k8s-types.js';
import { type K8sObject, MANIFESTS, parseObjects, type RenderedInstall, useRenderedInstalls } from './helpers/render.js';

const installs = useRenderedInstalls();

const CALLBACK: ServiceAccountRef = { namespace: NAMESPACE, name: 'kfp-notify-callback' };
const WEBHOOK: ServiceAccountRef = { namespace: NAMESPACE, name: 'kfp-notify-webhook' };
const PIPELINE_RUNNER: ServiceAccountRef = { namespace: 'kubeflow', name: 'pipeline-runner' };
const HTTP_HOOK_INSTALLS = ['http-hooks', 'combined'];

const req = (verb: string, resource: string, namespace: string, group = ''): ResourceRequest => ({ verb, group, resource, namespace });
const wf = (verb: string, namespace: string) => req(verb, 'workflows', namespace, 'argoproj.io');

function roles(objects: readonly K8sObject[]): Role[] {
  return [...ofKind<Role>(objects, 'Role'), ...ofKind<Role>(objects, 'ClusterRole')];
}

describe('RBAC limits, in every install', () => {
  it('no wildcard, no non-resource URL, no verb that grants more rights (escalate, bind, impersonate)', () => {
    for (const install of installs()) {
      for (const role of roles(install.objects)) {
        for (const rule of role.rules ?? []) {
          const where = `${install.name}: ${role.kind}/${role.metadata.name}`;
          expect([...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs], where).not.toContain('*');
          expect(rule.nonResourceURLs, where).toBeUndefined();
          for (const v of ['escalate', 'bind', 'impersonate']) expect(rule.verbs, where).not.toContain(v);
        }
      }
    }
  });

  it('nothing cluster-wide beyond get/list/watch on argoproj.io workflows', () => {
    for (const install of installs()) {
      for (const role of ofKind<Role>(install.objects, 'ClusterRole')) {
        for (const rule of role.rules ?? []) {
          expect(rule.apiGroups, role.metadata.name).toEqual(['argoproj.io']);
          expect(rule.resources, role.metadata.name).toEqual(['workflows']);
          for (const v of rule.verbs) expect(['get', 'list', 'watch']).toContain(v);
        }
      }
      // And no RoleBinding lends a ClusterRole's rights, ours or the cluster's (edit, admin, ...).
      for (const b of ofKind<RoleBinding>(install.objects, 'RoleBinding')) expect(b.roleRef.kind, b.metadata.name).toBe('Role');
    }
  });

  it('secrets are reachable only inside the kfp-notify namespace, read-only', () => {
    for (const install of installs()) {
      for (const role of roles(install.objects)) {
        if (!(role.rules ?? []).some((r) => r.resources?.includes('secrets'))) continue;
        expect(role.kind, role.metadata.name).toBe('Role');
        expect(role.metadata.namespace, role.metadata.name).toBe(NAMESPACE);
        for (const rule of (role.rules ?? []).filter((r) => r.resources?.includes('secrets'))) {
          for (const v of rule.verbs) expect(['get', 'list', 'watch']).toContain(v);
        }
      }
    }
  });

  it('every binding points at a role in the install (so nothing relies on a role outside it)', () => {
    for (const install of installs()) {
      for (const sa of ofKind<ServiceAccount>(install.objects, 'ServiceAccount')) {
        expect(() => rulesOf(install.objects, { namespace: sa.metadata.namespace ?? '', name: sa.metadata.name })).not.toThrow();
      }
      expect(() => rulesOf(install.objects, PIPELINE_RUNNER)).not.toThrow();
    }
  });
});

describe('the callback can do its job and nothing more', () => {
  it('in the ha overlay, creates its watcher Lease and reads and renews only that one, in its own namespace', () => {
    const lease = (verb: string, namespace: string, name?: string): ResourceRequest => ({ ...req(verb, 'leases', namespace, 'coordination.k8s.io'), ...(name ? { name } : {}) });
    for (const install of installs()) {
      const ha = install.name === 'ha';
      expect(allows(install.objects, CALLBACK, lease('create', NAMESPACE)), install.name).toBe(ha);
      for (const v of ['get', 'update']) expect(allows(install.objects, CALLBACK, lease(v, NAMESPACE, 'kfp-notify-watcher')), `${install.name} ${v}`).toBe(ha);
      expect(allows(install.objects, CALLBACK, lease('update', NAMESPACE, 'kube-controller-manager')), install.name).toBe(false);
      expect(allows(install.objects, CALLBACK, lease('delete', NAMESPACE, 'kfp-notify-watcher')), install.name).toBe(false);
      expect(allows(install.objects, CALLBACK, lease('create', 'kube-system')), install.name).toBe(false);
    }
  });

  it('reads Workflows in every namespace (status watcher, enrichment)', () => {
    for (const install of installs()) {
      for (const ns of ['kubeflow', 'team-a', 'default']) {
        for (const v of ['get', 'list', 'watch']) expect(allows(install.objects, CALLBACK, wf(v, ns)), `${install.name} ${v} ${ns}`).toBe(true);
      }
    }
  });

  it('reads its subscribers ConfigMap and signing-key Secrets, and writes Events, in its own namespace', () => {
    for (const install of installs()) {
      for (const v of ['get', 'list', 'watch']) {
        expect(allows(install.objects, CALLBACK, req(v, 'configmaps', NAMESPACE))).toBe(true);
        expect(allows(install.objects, CALLBACK, req(v, 'secrets', NAMESPACE))).toBe(true);
      }
      expect(allows(install.objects, CALLBACK, req('create', 'events', NAMESPACE))).toBe(true);
      expect(allows(install.objects, CALLBACK, req('create', 'events', NAMESPACE, 'events.k8s.io'))).toBe(true);
    }
  });

  it('cannot change Workflows, read other namespaces\u2019 Secrets or ConfigMaps, or touch pods', () => {
    for (const install of installs()) {
      for (const v of ['create', 'update', 'patch', 'delete', 'deletecollection']) expect(allows(install.objects, CALLBACK, wf(v, 'kubeflow')), v).toBe(false);
      for (const ns of ['kubeflow', 'kube-system', 'team-a']) {
        expect(allows(install.objects, CALLBACK, req('get', 'secrets', ns)), ns).toBe(false);
        expect(allows(install.objects, CALLBACK, req('list', 'configmaps', ns)), ns).toBe(false);
        expect(allows(install.objects, CALLBACK, req('create', 'events', ns)), ns).toBe(false);
      }
      expect(allows(install.objects, CALLBACK, req('update', 'secrets', NAMESPACE))).toBe(false);
      expect(allows(install.objects, CALLBACK, req('update', 'configmaps', NAMESPACE))).toBe(false);
      expect(allows(install.objects, CALLBACK, req('create', 'pods', NAMESPACE))).toBe(false);
      expect(allows(install.objects, CALLBACK, req('get', 'pods/log', 'kubeflow'))).toBe(false);
    }
  });
});

describe('the webhook has no Kubernetes API access at all', () => {
  it('holds no rule, mounts no token', () => {
    for (const install of installs()) {
      expect(rulesOf(install.objects, WEBHOOK), install.name).toEqual([]);
      const sa = ofKind<ServiceAccount>(install.objects, 'ServiceAccount').find((s) => s.metadata.name === WEBHOOK.name);
      expect(sa?.automountServiceAccountToken).toBe(false);
      const d = ofKind<Deployment>(install.objects, 'Deployment').find((x) => x.metadata.name === 'kfp-notify-webhook');
      expect(d?.spec.template.spec.serviceAccountName).toBe(WEBHOOK.name);
      expect(d?.spec.template.spec.automountServiceAccountToken).toBe(false);
    }
  });
});

describe('http hooks: the Argo agent Role for KFP runners', () => {
  const agentRequests = (ns: string): ResourceRequest[] => [
    req('list', 'workflowtasksets', ns, 'argoproj.io'),
    req('watch', 'workflowtasksets', ns, 'argoproj.io'),
    req('patch', 'workflowtasksets/status', ns, 'argoproj.io'),
  ];

  it('lets pipeline-runner in kubeflow run HTTP templates, only with the http-hooks component', () => {
    for (const install of installs()) {
      const expected = HTTP_HOOK_INSTALLS.includes(install.name);
      for (const r of agentRequests('kubeflow')) expect(allows(install.objects, PIPELINE_RUNNER, r), `${install.name} ${r.verb} ${r.resource}`).toBe(expected);
    }
  });

  it('grants exactly what the agent needs, in kubeflow only', () => {
    for (const install of installs().filter((i) => HTTP_HOOK_INSTALLS.includes(i.name))) {
      for (const r of agentRequests('team-a')) expect(allows(install.objects, PIPELINE_RUNNER, r)).toBe(false);
      expect(allows(install.objects, PIPELINE_RUNNER, req('patch', 'workflowtasksets', 'kubeflow', 'argoproj.io'))).toBe(false);
      expect(allows(install.objects, PIPELINE_RUNNER, req('get', 'secrets', 'kubeflow'))).toBe(false);
      expect(allows(install.objects, PIPELINE_RUNNER, wf('create', 'kubeflow'))).toBe(false);
    }
  });

  it('the per-profile file binds default-editor of whatever namespace it is applied to, and nothing else', () => {
    const file = join(MANIFESTS, 'per-namespace', 'http-hooks-agent-rbac.yaml');
    const objs = parseObjects(readFileSync(file, 'utf8'), file);
    for (const o of objs) expect(o.metadata.namespace, `${o.kind} must take its namespace from kubectl -n`).toBeUndefined();
    // What `kubectl apply -n team-a -f` creates:
    const applied = objs.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: 'team-a' } }));
    const editor = { namespace: 'team-a', name: 'default-editor' };
    for (const r of agentRequests('team-a')) expect(allows(applied, editor, r), `${r.verb} ${r.resource}`).toBe(true);
    for (const r of agentRequests('team-b')) expect(allows(applied, editor, r)).toBe(false);
    expect(allows(applied, { namespace: 'team-b', name: 'default-editor' }, agentRequests('team-a')[0] as ResourceRequest)).toBe(false);
    expect(allows(applied, editor, req('get', 'secrets', 'team-a'))).toBe(false);
  });
});
