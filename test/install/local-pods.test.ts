import { readdirSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOOK_PATH } from '../../common/hook-contract.js';
import { mintHookToken, parseHookKeys } from '../../common/hook-token.js';
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js';
import { admittedFixture, FIXTURES_DIR } from '../helpers/fixtures.js';
import { NAMESPACE, onlyContainer } from './helpers/install-model.js';
import { named } from './helpers/k8s-semantics.js';
import type { ConfigMap, Deployment } from './helpers/k8s-types.js';
import { startLocalPod, writeKubeconfig, type LocalPod } from './helpers/local-pod.js';
import { copyWorkspace, genSh, kustomize, type K8sObject, type Workspace } from './helpers/render.js';

/**
 * The rendered self-signed install's two Deployments, each run as a local process with its volumes
 * laid out as the kubelet would mount them (certificates from certs/gen.sh, the injector ConfigMap,
 * the hook key Secret as `kubectl create secret --from-file=keys=...` makes it). The callback's
 * Kubernetes API is a small local stand-in serving real-shaped responses (test/helpers/fake-kube-api.ts).
 */

const SERVICE_DNS = 'kfp-notify-webhook.kfp-notify.svc';
/** As `kubectl create secret generic kfp-notify-admin-token --from-literal=token=...` (docs/install.md) holds it. */
const ADMIN_TOKEN = 'install-test-admin-token-0123456789';

let ws: Workspace;
let objects: K8sObject[];
let generated: string;
let hookKeyFile: string;
const pods: LocalPod[] = [];
let kubeApi: FakeKubeApi | undefined;

beforeAll(() => {
  ws = copyWorkspace();
  const gen = genSh(['--hook-key'], ws.genSh);
  expect(gen.code, gen.stderr).toBe(0);
  generated = join(ws.manifests, 'overlays', 'self-signed', 'generated');
  hookKeyFile = readFileSync(join(generated, 'hook-key'), 'utf8');
  objects = kustomize(join(ws.manifests, 'overlays', 'self-signed'));
});
afterAll(async () => {
  await Promise.all(pods.map((p) => p.stop()));
  await kubeApi?.close();
  ws?.cleanup();
});

/** The named Deployment of the rendered install, started locally with the hook key Secret an admin creates. */
async function startDeployment(name: string, listeningMessage: string, env: NodeJS.ProcessEnv = {}): Promise<{ deployment: Deployment; pod: LocalPod }> {
  const deployment = named<Deployment>(objects, 'Deployment', name, NAMESPACE);
  const pod = await startLocalPod({
    objects,
    deployment,
    root: join(ws.root, name),
    externalSecrets: { 'kfp-notify-hook-key': { keys: hookKeyFile }, 'kfp-notify-admin-token': { token: `${ADMIN_TOKEN}\n` } },
    env,
    listeningMessage,
  });
  pods.push(pod);
  return { deployment, pod };
}

function probePath(d: Deployment): string {
  return d.spec.template.spec.containers[0]?.readinessProbe?.httpGet?.path ?? '';
}

/** HTTPS as the kube-apiserver calls a webhook: the Service DNS name as SNI, the caBundle as the only root. */
function apiServerCall(url: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const u = new URL(path, url);
  const ca = readFileSync(join(generated, 'ca-bundle.crt'));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: u.hostname, port: u.port, path: u.pathname, method: body === undefined ? 'GET' : 'POST', ca, servername: SERVICE_DNS, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('the webhook Deployment, run locally from its manifest', () => {
  let pod: LocalPod;
  let deployment: Deployment;

  beforeAll(async () => {
    ({ deployment, pod } = await startDeployment('kfp-notify-webhook', 'webhook listening'));
  });

  it('answers its readiness probe over TLS the caBundle vouches for', async () => {
    const r = await apiServerCall(pod.url, probePath(deployment));
    expect(r.status, pod.logs()).toBe(200);
  });

  it('admits a real KFP Workflow with hooks that call the callback Service named in the injector ConfigMap', async () => {
    const workflow = admittedFixture(join(FIXTURES_DIR, 'kfp-v2-argocompiler-2.5.0', 'hello_world.yaml'), undefined, { namespace: 'kubeflow' });
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: '6f1b0c4e-0d5e-4a59-9d1e-2b7f3c9a1e11',
        kind: { group: 'argoproj.io', version: 'v1alpha1', kind: 'Workflow' },
        resource: { group: 'argoproj.io', version: 'v1alpha1', resource: 'workflows' },
        namespace: 'kubeflow',
        operation: 'CREATE',
        object: workflow,
      },
    };
    const r = await apiServerCall(pod.url, '/mutate', review);
    expect(r.status, pod.logs()).toBe(200);
    const response = (JSON.parse(r.body) as { response: { uid: string; allowed: boolean; patch?: string } }).response;
    expect(response.uid).toBe(review.request.uid);
    expect(response.allowed).toBe(true);
    const patch = Buffer.from(response.patch ?? '', 'base64').toString('utf8');
    const settings = named<ConfigMap>(objects, 'ConfigMap', 'kfp-notify-injector', NAMESPACE).data?.['config.yaml'] ?? '';
    const callbackUrl = /callbackUrl: (\S+)/.exec(settings)?.[1] ?? '';
    expect(callbackUrl).not.toBe('');
    expect(patch).toContain(`${callbackUrl}${HOOK_PATH}`);
  });

  it('writes nothing outside its writable volumes (the image root is read-only)', () => {
    expect(readdirSync(pod.cwd)).toEqual([]);
  });
});

describe('the callback Deployment, run locally from its manifest (Kubernetes API: local stand-in)', () => {
  let pod: LocalPod;
  let deployment: Deployment;

  beforeAll(async () => {
    kubeApi = await startFakeKubeApi();
    // What `kubectl apply -k` would have created: the subscribers ConfigMap.
    kubeApi.apply(named<ConfigMap>(objects, 'ConfigMap', 'kfp-event-handler-config', NAMESPACE) as unknown as Record<string, unknown>);
    const kubeconfig = writeKubeconfig(join(ws.root, 'kubeconfig'), kubeApi.kubeConfig().exportConfig());
    ({ deployment, pod } = await startDeployment('kfp-notify-callback', 'callback listening', { KUBECONFIG: kubeconfig }));
  });

  it('becomes ready, having read its subscribers ConfigMap by the name and namespace its args give', async () => {
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await request(new URL(probePath(deployment), pod.url))).statusCode;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status, pod.logs()).toBe(200);
    expect(kubeApi?.requests.some((r) => r.path.startsWith(`/api/v1/namespaces/${NAMESPACE}/configmaps`))).toBe(true);
  });

  it('accepts a hook call signed with the hook key the webhook signs with (one Secret, both mounts)', async () => {
    const [key] = parseHookKeys(hookKeyFile);
    if (!key) throw new Error('no hook key');
    const fields = { v: '1', event: 'workflow-running', kfpRunId: 'run-install-test', namespace: 'kubeflow', workflowName: 'hello-abc12', workflowUid: 'uid-1' };
    const res = await request(new URL(HOOK_PATH, pod.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${mintHookToken(key, fields)}` },
      body: new URLSearchParams(fields).toString(),
    });
    expect(res.statusCode, await res.body.text()).toBe(202);
  });

  it('its admin API takes the token from the admin-token Secret, and none is minted on the data volume', async () => {
    const list = (token: string) => request(new URL('/v1/subscribers', pod.url), { headers: { authorization: `Bearer ${token}` } });
    const ok = await list(ADMIN_TOKEN);
    expect(ok.statusCode, await ok.body.text()).toBe(200);
    const wrong = await list('not-the-admin-token-at-all');
    await wrong.body.dump();
    expect(wrong.statusCode).toBe(403);
    const dataMount = onlyContainer(deployment).volumeMounts?.find((m) => m.name === 'data')?.mountPath ?? '';
    expect(dataMount).not.toBe('');
    expect(readdirSync(join(ws.root, 'kfp-notify-callback', dataMount))).not.toContain('admin-token');
  });

  it('writes nothing outside its writable volumes (the image root is read-only)', () => {
    expect(readdirSync(pod.cwd)).toEqual([]);
  });
});
