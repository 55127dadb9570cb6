import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_KFP_TOKEN_FILE } from '../../callback/kfp-run/token-file.js';
import { HOOK_PATH } from '../../common/hook-contract.js';
import { mintHookToken, parseHookKeys } from '../../common/hook-token.js';
import { until } from '../callback/cluster/until.js';
import { cleanups } from '../helpers/cleanups.js';
import { startFakeKfpApi, type FakeKfpApi } from '../helpers/fake-kfp-api.js';
import { startFakeKubeApi } from '../helpers/fake-kube-api.js';
import { NAMESPACE } from './helpers/install-model.js';
import { createK8sValidator } from './helpers/k8s-schema.js';
import { allows, named, ofKind, type ServiceAccountRef } from './helpers/k8s-semantics.js';
import type { ConfigMap, Deployment, Role, RoleBinding } from './helpers/k8s-types.js';
import { startLocalPod, writeAtomically, writeKubeconfig, type LocalPod } from './helpers/local-pod.js';
import { copyWorkspace, genSh, kustomize, MANIFESTS, parseObjects, REPO, type K8sObject, type Workspace } from './helpers/render.js';

/**
 * manifests/components/kfp-trigger: the projected KFP token for `type: kfp-run` subscribers. The
 * kustomization docs/kfp-trigger.md shows is rendered (kubectl kustomize) and validated against the
 * Kubernetes 1.32 schemas; the token lands at the path the trigger reads by default; the per-namespace
 * RBAC grants what KFP's SubjectAccessReview checks. Then the rendered callback runs as a local process
 * with the token laid out as the kubelet writes it, and starts a KFP run with it, before and after a
 * rotation. KFP and the Kubernetes API are FAKE local servers (test/helpers/fake-kfp-api.ts,
 * fake-kube-api.ts): neither can run here.
 */

const AUDIENCE = 'pipelines.kubeflow.org';
const CALLBACK: ServiceAccountRef = { namespace: NAMESPACE, name: 'kfp-notify-callback' };
const RBAC_FILE = join(MANIFESTS, 'per-namespace', 'kfp-trigger-rbac.yaml');

/** The kustomization under "<!-- example: kustomization kfp-trigger -->" in docs/kfp-trigger.md (a list item, so indented). */
function kustomizationFromDocs(): string {
  const doc = readFileSync(join(REPO, 'docs', 'kfp-trigger.md'), 'utf8');
  const m = /<!-- example: kustomization kfp-trigger -->\n( *)```yaml\n([\s\S]*?)\n *```/.exec(doc);
  if (!m?.[2]) throw new Error('docs/kfp-trigger.md: no "example: kustomization kfp-trigger" yaml block');
  const indent = m[1]?.length ?? 0;
  return `${m[2].split('\n').map((l) => l.slice(indent)).join('\n')}\n`;
}

/** The RBAC file as `kubectl apply -n <namespace> -f` creates it. */
function rbacIn(namespace: string): K8sObject[] {
  return parseObjects(readFileSync(RBAC_FILE, 'utf8'), RBAC_FILE).map((o) => ({ ...o, metadata: { ...o.metadata, namespace } }));
}

const c = cleanups('kfp-notify-kfp-trigger-manifest-');
afterAll(() => c.run());
let ws: Workspace;
let objects: K8sObject[];
let without: K8sObject[];

beforeAll(() => {
  ws = copyWorkspace();
  c.push(() => ws.cleanup());
  const gen = genSh(['--hook-key'], ws.genSh);
  expect(gen.code, gen.stderr).toBe(0);
  const overlay = join(ws.manifests, 'overlays', 'my-cluster');
  mkdirSync(overlay);
  writeFileSync(join(overlay, 'kustomization.yaml'), kustomizationFromDocs());
  objects = kustomize(overlay);
  without = kustomize(join(ws.manifests, 'overlays', 'self-signed'));
});

const callbackOf = (objs: readonly K8sObject[]): Deployment => named<Deployment>(objs, 'Deployment', 'kfp-notify-callback', NAMESPACE);

describe('manifests/components/kfp-trigger, rendered from the kustomization in docs/kfp-trigger.md', () => {
  it('renders a whole install, every object valid against the Kubernetes 1.32 schemas', () => {
    const validator = createK8sValidator();
    expect(objects.flatMap((o) => validator.validate(o).map((p) => `${o.kind}/${o.metadata.name}: ${p}`))).toEqual([]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(without.map((o) => `${o.kind}/${o.metadata.name}`).sort());
  });

  it('mounts a projected token of audience pipelines.kubeflow.org, 7200 s, read-only, at the path the trigger reads by default', () => {
    const pod = callbackOf(objects).spec.template.spec;
    const volume = pod.volumes?.find((v) => v.projected?.sources.some((s) => s.serviceAccountToken));
    expect(volume?.projected?.sources).toEqual([{ serviceAccountToken: { audience: AUDIENCE, expirationSeconds: 7200, path: 'token' } }]);
    const [container] = pod.containers;
    const mount = container?.volumeMounts?.find((m) => m.name === volume?.name);
    expect(mount?.readOnly).toBe(true);
    expect(posix.join(mount?.mountPath ?? '', 'token')).toBe(DEFAULT_KFP_TOKEN_FILE);
    expect(container?.env?.find((e) => e.name === 'KF_PIPELINES_SA_TOKEN_PATH')?.value).toBe(DEFAULT_KFP_TOKEN_FILE);
    // Added to the callback's own mounts, not in place of them.
    const before = callbackOf(without).spec.template.spec;
    expect(pod.volumes?.map((v) => v.name).sort()).toEqual([...(before.volumes ?? []).map((v) => v.name), volume?.name].sort());
    expect(container?.volumeMounts?.length).toBe((before.containers[0]?.volumeMounts?.length ?? 0) + 1);
  });

  it('is optional: without it the callback has no KFP token, and the webhook never gets one', () => {
    const hasToken = (d: Deployment): boolean => (d.spec.template.spec.volumes ?? []).some((v) => v.projected !== undefined);
    expect(hasToken(callbackOf(without))).toBe(false);
    expect(hasToken(named<Deployment>(objects, 'Deployment', 'kfp-notify-webhook', NAMESPACE))).toBe(false);
  });
});

describe('manifests/per-namespace/kfp-trigger-rbac.yaml', () => {
  it('validates, and is a Role bound to the callback ServiceAccount (no ClusterRole rights lent)', () => {
    const validator = createK8sValidator();
    const objs = rbacIn('team-a');
    expect(objs.map((o) => o.kind)).toEqual(['Role', 'RoleBinding']);
    expect(objs.flatMap((o) => validator.validate(o))).toEqual([]);
    expect(ofKind<RoleBinding>(objs, 'RoleBinding')[0]?.roleRef.kind).toBe('Role');
  });

  it('grants what multi-user KFP checks for a trigger in that namespace, and nothing elsewhere or beyond', () => {
    const cluster = [...objects, ...rbacIn('team-a')];
    const kfp = (verb: string, resource: string, namespace: string) => allows(cluster, CALLBACK, { verb, group: AUDIENCE, resource, namespace });
    for (const v of ['create', 'list', 'get']) expect(kfp(v, 'runs', 'team-a'), `runs ${v}`).toBe(true);
    for (const r of ['pipelines', 'experiments']) for (const v of ['get', 'list']) expect(kfp(v, r, 'team-a'), `${r} ${v}`).toBe(true);
    expect(kfp('create', 'runs', 'team-b')).toBe(false);
    for (const v of ['delete', 'update']) expect(kfp(v, 'runs', 'team-a')).toBe(false);
    expect(kfp('create', 'pipelines', 'team-a')).toBe(false);
    // Only KFP's virtual group: nothing on the Kubernetes API itself.
    const groups = ofKind<Role>(cluster, 'Role').filter((r) => r.metadata.name === 'kfp-notify-kfp-trigger').flatMap((r) => (r.rules ?? []).flatMap((x) => x.apiGroups ?? []));
    expect(new Set(groups)).toEqual(new Set([AUDIENCE]));
    // Without the file, the install alone grants none of it.
    expect(allows(objects, CALLBACK, { verb: 'create', group: AUDIENCE, resource: 'runs', namespace: 'team-a' })).toBe(false);
  });
});

describe('the rendered callback, run locally with the token laid out as the kubelet does (KFP and Kubernetes API: FAKE local servers)', () => {
  const TOKEN_1 = 'eyJhbGciOiJSUzI1NiJ9.first-issued.sig';
  const TOKEN_2 = 'eyJhbGciOiJSUzI1NiJ9.rotated.sig';
  let pod: LocalPod;
  let kfp: FakeKfpApi;
  let hookKey: string;
  let train: { pipelineId: string; versionId: string };
  let evaluate: { pipelineId: string; versionId: string };

  beforeAll(async () => {
    kfp = await startFakeKfpApi({ tokens: [TOKEN_1] });
    c.push(() => kfp.close());
    train = kfp.addPipeline({ displayName: 'train' });
    evaluate = kfp.addPipeline({ displayName: 'evaluate', params: { upstream_run_id: 'STRING' } });
    const kubeApi = await startFakeKubeApi();
    c.push(() => kubeApi.close());
    // The shipped subscribers ConfigMap plus a trigger that names no tokenFile: the default path it is.
    const cm = named<ConfigMap>(objects, 'ConfigMap', 'kfp-event-handler-config', NAMESPACE);
    const trigger = ['type: kfp-run', `url: ${kfp.url}`, 'eventTypes: [WorkflowSucceeded]', 'pipelines: [train]', 'pipeline: evaluate', 'parameters: { upstream_run_id: "{{ KfpRunId }}" }', ''].join('\n');
    kubeApi.apply({ ...cm, data: { ...cm.data, 'evaluate-after-train': trigger } } as unknown as Record<string, unknown>);
    const kubeconfig = writeKubeconfig(join(ws.root, 'kubeconfig'), kubeApi.kubeConfig().exportConfig());
    hookKey = readFileSync(join(ws.manifests, 'overlays', 'self-signed', 'generated', 'hook-key'), 'utf8');
    pod = await startLocalPod({
      objects,
      deployment: callbackOf(objects),
      root: join(ws.root, 'callback'),
      externalSecrets: { 'kfp-notify-hook-key': { keys: hookKey }, 'kfp-notify-admin-token': { token: 'kfp-trigger-test-admin-token\n' } },
      serviceAccountTokens: { [AUDIENCE]: TOKEN_1 },
      env: { KUBECONFIG: kubeconfig },
      listeningMessage: 'callback listening',
    });
    c.push(() => pod.stop());
  });

  async function trainSucceeded(runName: string): Promise<string> {
    const runId = kfp.addRun({ pipelineId: train.pipelineId, versionId: train.versionId, displayName: runName });
    const [key] = parseHookKeys(hookKey);
    if (!key) throw new Error('no hook key');
    const fields = { v: '1', event: 'workflow-exit', kfpRunId: runId, namespace: 'team-a', workflowName: `train-${runId.slice(0, 5)}`, workflowUid: runId, workflowStatus: 'Succeeded', exitHandlerStatus: '', failures: 'null', duration: '12', pipelineName: 'train', runName };
    const res = await request(new URL(HOOK_PATH, pod.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${mintHookToken(key, fields)}` },
      body: new URLSearchParams(fields).toString(),
    });
    expect(res.statusCode, await res.body.text()).toBe(202);
    return runId;
  }

  const startedAfter = (runId: string) => kfp.runs().find((r) => r.pipelineId === evaluate.pipelineId && r.parameters.upstream_run_id === runId);

  it('reads the token at the SDK path and starts the run with it', async () => {
    const file = join(pod.root, DEFAULT_KFP_TOKEN_FILE);
    expect(readFileSync(file, 'utf8')).toBe(TOKEN_1);
    const upstream = await trainSucceeded('train 1');
    await until('KFP to start evaluate', () => startedAfter(upstream), 20_000);
    expect(kfp.authorizations.every((a) => a === `Bearer ${TOKEN_1}`)).toBe(true);
    expect(kfp.authorizations.length).toBeGreaterThan(0);
  });

  it('after the kubelet rotates the token (a ..data swap), sends the new one without a restart', async () => {
    writeAtomically(dirname(join(pod.root, DEFAULT_KFP_TOKEN_FILE)), { token: TOKEN_2 });
    kfp.setTokens([TOKEN_2]);
    const seen = kfp.authorizations.length;
    const upstream = await trainSucceeded('train 2');
    await until('KFP to start evaluate with the rotated token', () => startedAfter(upstream), 20_000);
    expect(new Set(kfp.authorizations.slice(seen))).toEqual(new Set([`Bearer ${TOKEN_2}`]));
  });

  it('never logs a token', () => {
    expect(pod.logs()).not.toContain('first-issued');
    expect(pod.logs()).not.toContain('rotated.sig');
  });
});
