import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanups } from '../helpers/cleanups.js';
import { freePort, NATS_SERVER_BIN } from '../helpers/nats-server.js';
import { createK8sValidator } from './helpers/k8s-schema.js';
import { ingressAllowed, named, type Peer } from './helpers/k8s-semantics.js';
import { copyWorkspace, kustomize, run, type K8sObject, type Workspace } from './helpers/render.js';

/**
 * manifests/components/nats: an in-cluster NATS with JetStream for `type: nats` subscribers. Rendered
 * with the network-policy install (kubectl kustomize), validated against Kubernetes 1.32's schemas, its
 * Service is the address the docs and examples use, its policy lets clients in from any namespace, and
 * its nats.conf is accepted by the real nats-server, which then serves JetStream with it.
 */

const c = cleanups('kfp-notify-nats-manifest-');
afterAll(() => c.run());
let ws: Workspace;
let objects: K8sObject[];

beforeAll(() => {
  ws = copyWorkspace();
  c.push(() => ws.cleanup());
  const overlay = join(ws.manifests, 'overlays', 'with-nats');
  mkdirSync(overlay);
  writeFileSync(join(overlay, 'kustomization.yaml'), 'resources:\n  - ../network-policy\ncomponents:\n  - ../../components/nats\n');
  objects = kustomize(overlay);
});

interface ConfigMap {
  data: Record<string, string>;
}
interface StatefulSet {
  spec: { template: { metadata: { labels: Record<string, string> } } };
}
interface Service {
  spec: { ports: { port: number }[] };
}

describe('manifests/components/nats', () => {
  it('renders with an install, and every object validates against the Kubernetes 1.32 schemas', () => {
    const validator = createK8sValidator();
    const mine = objects.filter((o) => o.metadata.labels?.['app.kubernetes.io/name'] === 'nats');
    expect(mine.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['ConfigMap/kfp-notify-nats', 'NetworkPolicy/kfp-notify-nats', 'Service/nats', 'StatefulSet/nats']);
    for (const o of mine) expect(validator.validate(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
    // Still a whole install: the callback is there with it.
    expect(named(objects, 'Deployment', 'kfp-notify-callback', 'kfp-notify')).toBeDefined();
  });

  it('is the address the docs and examples use: nats.kfp-notify.svc.cluster.local:4222, open to pods in any namespace', () => {
    const svc = named<Service>(objects, 'Service', 'nats', 'kfp-notify');
    expect(svc.spec.ports.map((p) => p.port)).toEqual([4222]);
    const labels = named<StatefulSet>(objects, 'StatefulSet', 'nats', 'kfp-notify').spec.template.metadata.labels;
    const pod = { namespace: 'kfp-notify', labels };
    const from = (namespace: string): Peer => ({ namespace, namespaceLabels: { 'kubernetes.io/metadata.name': namespace }, podLabels: { app: 'eventsource' } });
    expect(ingressAllowed(objects, pod, from('argo-events'), 4222)).toBe(true);
    expect(ingressAllowed(objects, pod, from('kfp-notify'), 4222)).toBe(true);
    expect(ingressAllowed(objects, pod, from('argo-events'), 8222)).toBe(false);
    expect(ingressAllowed(objects, pod, { ip: '203.0.113.7' }, 4222)).toBe(false);
  });

  it('its nats.conf is accepted by the real nats-server, which serves JetStream with it', async () => {
    const conf = named<ConfigMap>(objects, 'ConfigMap', 'kfp-notify-nats', 'kfp-notify').data['nats.conf'] ?? '';
    const dir = c.tempDir();
    const port = await freePort();
    const monitor = await freePort();
    // Only what cannot be the same outside a pod: the ports and the volume path.
    const local = conf.replace('port: 4222', `port: ${port}`).replace('http_port: 8222', `http_port: ${monitor}`).replace('/data/jetstream', join(dir, 'js'));
    expect(local).not.toBe(conf);
    const file = join(dir, 'nats.conf');
    writeFileSync(file, local);
    const check = run(NATS_SERVER_BIN, ['-c', file, '-t']);
    expect(check.code, check.stderr + check.stdout).toBe(0);

    const proc = spawn(NATS_SERVER_BIN, ['-c', file, '-a', '127.0.0.1'], { stdio: 'ignore' });
    c.push(() => new Promise<void>((resolve) => (proc.exitCode !== null ? resolve() : (proc.once('exit', () => resolve()), proc.kill('SIGTERM')))));
    let nc: Awaited<ReturnType<typeof connect>> | undefined;
    for (let i = 0; i < 100 && !nc; i++) {
      nc = await connect({ servers: `nats://127.0.0.1:${port}` }).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    if (!nc) throw new Error('nats-server did not start with the component configuration');
    c.push(() => nc?.close());
    expect(nc.info?.jetstream).toBe(true);
  });
});
