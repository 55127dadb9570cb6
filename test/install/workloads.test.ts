import { posix } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { DEFAULT_CALLBACK_URL, defaultInjectOptions } from '../../webhook/inject/options.js';
import { parseInjectorConfig } from '../../webhook/injector-config.js';
import { flag, NAMESPACE, onlyContainer, resolveServicePort, serviceOfHost } from './helpers/install-model.js';
import { matchesSelector, named, ofKind } from './helpers/k8s-semantics.js';
import type { Certificate, ConfigMap, Container, Deployment, PersistentVolumeClaim, PodDisruptionBudget, Secret, SecurityContext } from './helpers/k8s-types.js';
import { type K8sObject, type RenderedInstall, useRenderedInstalls } from './helpers/render.js';

const installs = useRenderedInstalls();

/** The Secrets the manifests do not carry: created at install (docs/install.md), keys `keys` and `token`. */
const HOOK_KEY_SECRET = 'kfp-notify-hook-key';
const ADMIN_TOKEN_SECRET = 'kfp-notify-admin-token';
const HTTP_HOOK_INSTALLS = ['http-hooks', 'combined'];
/** Installs whose callback keeps its queue in NATS JetStream (several replicas), not in SQLite. */
const HA_INSTALLS = ['ha'];
const sqliteInstalls = () => installs().filter((i) => !HA_INSTALLS.includes(i.name));
const haInstalls = () => installs().filter((i) => HA_INSTALLS.includes(i.name));

const deployments = (i: RenderedInstall) => ofKind<Deployment>(i.objects, 'Deployment');
const webhookOf = (i: RenderedInstall) => named<Deployment>(i.objects, 'Deployment', 'kfp-notify-webhook', NAMESPACE);
const callbackOf = (i: RenderedInstall) => named<Deployment>(i.objects, 'Deployment', 'kfp-notify-callback', NAMESPACE);

function allContainers(d: Deployment): Container[] {
  return [...(d.spec.template.spec.initContainers ?? []), ...d.spec.template.spec.containers];
}

/** CPU in millicores, memory in bytes: enough of the quantity grammar for these manifests. */
function quantity(q: string): number {
  const m = /^([0-9.]+)(m|Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`unexpected quantity ${q}`);
  const n = Number(m[1]);
  const unit = { m: 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? ''] ?? 1000;
  return n * unit;
}

describe('every container is locked down', () => {
  it('non-root numeric user, no privilege escalation, no capabilities, read-only root, RuntimeDefault seccomp', () => {
    for (const install of installs()) {
      for (const d of deployments(install)) {
        const pod = d.spec.template.spec;
        expect(pod.securityContext?.runAsNonRoot, d.metadata.name).toBe(true);
        for (const c of allContainers(d)) {
          const where = `${install.name}: ${d.metadata.name}/${c.name}`;
          const sc: SecurityContext = { ...pod.securityContext, ...c.securityContext };
          expect(sc.runAsNonRoot, where).toBe(true);
          expect(Number.isInteger(sc.runAsUser) && (sc.runAsUser ?? 0) > 0, `${where}: numeric non-zero runAsUser`).toBe(true);
          expect(Number.isInteger(sc.runAsGroup) && (sc.runAsGroup ?? 0) > 0, `${where}: numeric non-zero runAsGroup`).toBe(true);
          expect(sc.seccompProfile?.type, where).toBe('RuntimeDefault');
          expect(c.securityContext?.allowPrivilegeEscalation, where).toBe(false);
          expect(c.securityContext?.readOnlyRootFilesystem, where).toBe(true);
          expect(c.securityContext?.privileged ?? false, where).toBe(false);
          expect(c.securityContext?.capabilities?.drop, where).toContain('ALL');
          expect(c.securityContext?.capabilities?.add ?? [], where).toEqual([]);
        }
        expect([pod.hostNetwork, pod.hostPID, pod.hostIPC].some(Boolean), d.metadata.name).toBe(false);
        expect((pod.volumes ?? []).filter((v) => v.hostPath !== undefined), d.metadata.name).toEqual([]);
      }
    }
  });

  it('a read-only root still has a writable /tmp (emptyDir)', () => {
    for (const install of installs()) {
      for (const d of deployments(install)) {
        for (const c of allContainers(d)) {
          const mount = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
          const volume = d.spec.template.spec.volumes?.find((v) => v.name === mount?.name);
          expect(volume?.emptyDir, `${d.metadata.name}/${c.name}`).toBeDefined();
        }
      }
    }
  });

  it('requests and limits for CPU and memory, requests within limits; liveness and readiness probes', () => {
    for (const install of installs()) {
      for (const d of deployments(install)) {
        for (const c of allContainers(d)) {
          const where = `${d.metadata.name}/${c.name}`;
          for (const r of ['cpu', 'memory']) {
            const request = c.resources?.requests?.[r];
            const limit = c.resources?.limits?.[r];
            expect(request && limit, `${where} ${r}`).toBeTruthy();
            expect(quantity(request ?? '0'), `${where} ${r}`).toBeLessThanOrEqual(quantity(limit ?? '0'));
          }
          expect(c.livenessProbe?.httpGet?.path, where).toBe('/healthz');
          expect(c.readinessProbe?.httpGet?.path, where).toBe('/readyz');
        }
      }
    }
  });

  it('pods stay out of the Istio mesh (the API server and hook pods have no sidecar)', () => {
    for (const install of installs()) {
      for (const d of deployments(install)) expect(d.spec.template.metadata?.labels?.['sidecar.istio.io/inject'], d.metadata.name).toBe('false');
      expect(named<K8sObject>(install.objects, 'Namespace', NAMESPACE).metadata.labels?.['istio-injection']).toBe('disabled');
    }
  });
});

describe('every file a process is told to read is mounted from an object that has it', () => {
  /** `path` → which object and key feed it, following mounts and volumes. */
  function sourceOf(d: Deployment, c: Container, path: string): { kind: 'configMap' | 'secret' | 'pvc' | 'emptyDir'; name: string; key: string } {
    const mount = (c.volumeMounts ?? []).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    if (!mount) throw new Error(`${c.name}: nothing mounted at ${path}`);
    // Whole-directory mounts only: kubelet never updates a subPath mount, and the processes reload on change.
    expect(mount.subPath, `${c.name} ${mount.mountPath}`).toBeUndefined();
    const v = (d.spec.template.spec.volumes ?? []).find((x) => x.name === mount.name);
    const key = posix.relative(mount.mountPath, path);
    if (v?.configMap) return { kind: 'configMap', name: v.configMap.name, key };
    if (v?.secret) return { kind: 'secret', name: v.secret.secretName, key };
    if (v?.persistentVolumeClaim) return { kind: 'pvc', name: v.persistentVolumeClaim.claimName, key };
    if (v?.emptyDir) return { kind: 'emptyDir', name: v.name, key };
    throw new Error(`${c.name}: ${path} is on volume ${mount.name}, which is neither ConfigMap, Secret, PVC nor emptyDir`);
  }

  /** Keys the Secret will hold: rendered, written by a cert-manager Certificate, or the documented hook key. */
  function secretKeys(objects: readonly K8sObject[], name: string): string[] {
    const rendered = ofKind<Secret>(objects, 'Secret').find((s) => s.metadata.name === name && s.metadata.namespace === NAMESPACE);
    if (rendered) return Object.keys(rendered.data ?? {});
    if (ofKind<Certificate>(objects, 'Certificate').some((c) => c.spec.secretName === name && c.metadata.namespace === NAMESPACE)) return ['tls.crt', 'tls.key', 'ca.crt'];
    if (name === HOOK_KEY_SECRET) return ['keys'];
    if (name === ADMIN_TOKEN_SECRET) return ['token'];
    throw new Error(`Secret ${name} is neither rendered, issued by cert-manager, nor the documented hook key or admin token`);
  }

  it('webhook: certificate, key, injector settings and hook key', () => {
    for (const install of installs()) {
      const d = webhookOf(install);
      const c = onlyContainer(d);
      expect(c.args?.[0]).toBe('webhook');
      for (const f of ['--tls-cert', '--tls-key', '--config', '--hook-key-file']) {
        const path = flag(c, f);
        expect(path, f).toMatch(/^\//);
        const src = sourceOf(d, c, path ?? '');
        if (src.kind === 'configMap') expect(Object.keys(named<ConfigMap>(install.objects, 'ConfigMap', src.name, NAMESPACE).data ?? {}), f).toContain(src.key);
        else if (src.kind === 'secret') expect(secretKeys(install.objects, src.name), `${install.name} ${f}`).toContain(src.key);
        else throw new Error(`${f} must not come from a volume claim`);
      }
      expect(sourceOf(d, c, flag(c, '--config') ?? '').name).toBe('kfp-notify-injector');
    }
  });

  it('callback: data dir on the claim (on NATS: an emptyDir, no volume), hook key from the same Secret as the webhook', () => {
    for (const install of installs()) {
      const d = callbackOf(install);
      const c = onlyContainer(d);
      expect(c.args?.[0]).toBe('callback');
      const data = sourceOf(d, c, flag(c, '--data-dir') ?? '');
      if (HA_INSTALLS.includes(install.name)) {
        expect(data.kind).toBe('emptyDir');
        expect(ofKind<PersistentVolumeClaim>(install.objects, 'PersistentVolumeClaim')).toEqual([]);
      } else {
        expect(data.kind).toBe('pvc');
        expect(named<PersistentVolumeClaim>(install.objects, 'PersistentVolumeClaim', data.name, NAMESPACE).spec.accessModes).toEqual(['ReadWriteOnce']);
      }
      const hookKey = sourceOf(d, c, flag(c, '--hook-key-file') ?? '');
      const webhook = onlyContainer(webhookOf(install));
      expect(hookKey).toEqual(sourceOf(webhookOf(install), webhook, flag(webhook, '--hook-key-file') ?? ''));
      expect(hookKey).toEqual({ kind: 'secret', name: HOOK_KEY_SECRET, key: 'keys' });
    }
  });

  it('callback: the admin token from its own Secret, never from the data volume', () => {
    for (const install of installs()) {
      const d = callbackOf(install);
      const c = onlyContainer(d);
      const path = flag(c, '--admin-token-file');
      expect(path, install.name).toMatch(/^\//);
      const src = sourceOf(d, c, path ?? '');
      expect(src, install.name).toEqual({ kind: 'secret', name: ADMIN_TOKEN_SECRET, key: 'token' });
      expect(secretKeys(install.objects, src.name)).toContain(src.key);
    }
  });

  it('the hook key and the admin token are the only objects an admin creates by hand', () => {
    for (const install of installs()) {
      const external = new Set<string>();
      for (const d of deployments(install)) {
        for (const v of d.spec.template.spec.volumes ?? []) {
          const name = v.secret?.secretName;
          if (!name) continue;
          const rendered = install.objects.some((o) => o.kind === 'Secret' && o.metadata.name === name);
          const issued = ofKind<Certificate>(install.objects, 'Certificate').some((c) => c.spec.secretName === name);
          if (!rendered && !issued) external.add(name);
        }
      }
      expect([...external].sort(), install.name).toEqual([ADMIN_TOKEN_SECRET, HOOK_KEY_SECRET]);
    }
  });
});

describe('webhook Deployment: available through node drains', () => {
  it('two replicas, rolling without dropping below them, a PodDisruptionBudget that selects exactly its pods', () => {
    for (const install of installs()) {
      const d = webhookOf(install);
      expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
      expect(d.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
      const pdbs = ofKind<PodDisruptionBudget>(install.objects, 'PodDisruptionBudget');
      const podLabels = d.spec.template.metadata?.labels ?? {};
      const mine = pdbs.filter((p) => matchesSelector(p.spec.selector, podLabels));
      expect(mine).toHaveLength(1);
      const minAvailable = Number(mine[0]?.spec.minAvailable);
      expect(minAvailable).toBeGreaterThanOrEqual(1);
      expect(minAvailable).toBeLessThan(d.spec.replicas ?? 1);
      expect(matchesSelector(mine[0]?.spec.selector, callbackOf(install).spec.template.metadata?.labels ?? {})).toBe(false);
    }
  });
});

describe('callback Deployment: one SQLite writer', () => {
  it('one replica, Recreate (the old pod releases the database first), namespace from the downward API', () => {
    for (const install of sqliteInstalls()) {
      const d = callbackOf(install);
      expect(d.spec.replicas).toBe(1);
      expect(d.spec.strategy?.type).toBe('Recreate');
      expect(flag(onlyContainer(d), '--store')).toBeUndefined();
    }
    for (const install of installs()) {
      const c = onlyContainer(callbackOf(install));
      expect(flag(c, '--namespace')).toBe('$(POD_NAMESPACE)');
      expect(c.env?.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
      expect(flag(c, '--host')).toBe('0.0.0.0');
    }
  });

  it('reads the kfp-event-handler-config ConfigMap of its own namespace, shipped with no live subscriber', () => {
    for (const install of installs()) {
      const c = onlyContainer(callbackOf(install));
      const cm = named<ConfigMap>(install.objects, 'ConfigMap', flag(c, '--subscribers-configmap') ?? '', NAMESPACE);
      expect(cm.metadata.name).toBe('kfp-event-handler-config');
      expect(cm.data ?? {}).toEqual({});
    }
  });
});

describe('callback Deployment in the ha overlay: replicas on NATS JetStream', () => {
  it('three replicas rolling one at a time, spread over nodes and zones, a PodDisruptionBudget that keeps two', () => {
    expect(haInstalls().map((i) => i.name)).toEqual(HA_INSTALLS);
    for (const install of haInstalls()) {
      const d = callbackOf(install);
      expect(d.spec.replicas).toBe(3);
      expect(d.spec.strategy?.type).toBe('RollingUpdate');
      expect(d.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(1);
      const pod = d.spec.template.spec as typeof d.spec.template.spec & {
        affinity?: { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution?: { podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } } }[] } };
        topologySpreadConstraints?: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }[];
      };
      const podLabels = d.spec.template.metadata?.labels ?? {};
      const anti = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
      expect(anti.map((t) => t.podAffinityTerm.topologyKey)).toEqual(['kubernetes.io/hostname']);
      expect(anti.every((t) => matchesSelector(t.podAffinityTerm.labelSelector, podLabels))).toBe(true);
      expect(pod.topologySpreadConstraints?.map((t) => t.topologyKey)).toEqual(['topology.kubernetes.io/zone']);
      const mine = ofKind<PodDisruptionBudget>(install.objects, 'PodDisruptionBudget').filter((p) => matchesSelector(p.spec.selector, podLabels));
      expect(mine.map((p) => p.spec.minAvailable)).toEqual([2]);
    }
  });

  it('points at NATS, creates 3-replica buckets, elects the watcher with a Lease named by the pod', () => {
    for (const install of haInstalls()) {
      const c = onlyContainer(callbackOf(install));
      expect(flag(c, '--store')).toMatch(/^nats:\/\/[a-z0-9.-]+:4222$/);
      expect(flag(c, '--nats-replicas')).toBe('3');
      expect(flag(c, '--watch-lease')).toBe('kfp-notify-watcher');
      expect(c.env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    }
  });
});

describe('the injector settings point hooks at the callback', () => {
  function injectorSettings(install: RenderedInstall): Record<string, unknown> {
    const cm = named<ConfigMap>(install.objects, 'ConfigMap', 'kfp-notify-injector', NAMESPACE);
    const parsed = load(cm.data?.['config.yaml'] ?? '');
    if (typeof parsed !== 'object' || parsed === null) throw new Error('config.yaml is not a mapping');
    return parsed as Record<string, unknown>;
  }

  it("callbackUrl names the callback Service's name, namespace and port, which reach the port the callback listens on", () => {
    for (const install of installs()) {
      const url = new URL(String(injectorSettings(install).callbackUrl));
      expect(url.protocol).toBe('http:');
      const svc = serviceOfHost(url.hostname);
      expect(svc, url.hostname).toEqual({ name: 'kfp-notify-callback', namespace: NAMESPACE });
      const ep = resolveServicePort(install.objects, svc?.name ?? '', svc?.namespace ?? '', Number(url.port || 80));
      expect(ep.deployment.metadata.name).toBe('kfp-notify-callback');
      expect(flag(ep.container, '--port')).toBe(String(ep.containerPort));
    }
  });

  it("the webhook's own config loader accepts config.yaml as written, and the URL is the documented default", () => {
    const hookKey = hookKeyFromSecret('an-install-test-key-of-enough-bytes');
    for (const install of installs()) {
      const text = named<ConfigMap>(install.objects, 'ConfigMap', 'kfp-notify-injector', NAMESPACE).data?.['config.yaml'] ?? '';
      const options = defaultInjectOptions({ ...parseInjectorConfig(text, `${install.name}: config.yaml`), hookKey });
      expect(options).toMatchObject(injectorSettings(install));
      expect(options.callbackUrl).toBe(DEFAULT_CALLBACK_URL);
    }
  });

  it('http-hooks switches the mode and changes nothing else', () => {
    const base = injectorSettings(installs().find((i) => i.name === 'cert-manager') as RenderedInstall);
    expect(base.mode).toBe('container');
    for (const install of installs()) {
      const s = injectorSettings(install);
      expect({ ...s, mode: undefined }, install.name).toEqual({ ...base, mode: undefined });
      expect(s.mode, install.name).toBe(HTTP_HOOK_INSTALLS.includes(install.name) ? 'http' : 'container');
    }
  });
});

describe('uninstall by label', () => {
  it('every object carries app.kubernetes.io/part-of=kfp-notify', () => {
    for (const install of installs()) {
      const unlabelled = install.objects.filter((o) => o.metadata.labels?.['app.kubernetes.io/part-of'] !== 'kfp-notify').map((o) => `${o.kind}/${o.metadata.name}`);
      expect(unlabelled, install.name).toEqual([]);
    }
  });
});
