import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE } from '../../webhook/inject/options.js';
import { parseInjectorConfig } from '../../webhook/injector-config.js';
import { NAMESPACE } from './helpers/install-model.js';
import { named } from './helpers/k8s-semantics.js';
import type { ConfigMap } from './helpers/k8s-types.js';
import { copyWorkspace, kustomize, REPO, type K8sObject, type Workspace } from './helpers/render.js';

/**
 * docs/install.md "Air-gapped clusters": the kustomization it shows, rendered as written, moves every
 * image kfp-notify runs to the mirror (the Deployments' containers by `images:`, the notifier by the
 * injector settings), and the image names it tells the reader to mirror are the ones the install uses.
 */

const DOC = readFileSync(join(REPO, 'docs', 'install.md'), 'utf8');
const SECTION = DOC.slice(DOC.indexOf('## Air-gapped clusters'), DOC.indexOf('\n## ', DOC.indexOf('## Air-gapped clusters') + 1));
const MIRROR = 'registry.example.com/';

let ws: Workspace;
let objects: K8sObject[];
beforeAll(() => {
  const block = /```yaml\n([\s\S]*?)```/.exec(SECTION)?.[1];
  if (!block) throw new Error('docs/install.md: no yaml block under "## Air-gapped clusters"');
  ws = copyWorkspace();
  const dir = join(ws.manifests, 'overlays', 'my-cluster');
  mkdirSync(dir);
  writeFileSync(join(dir, 'kustomization.yaml'), block);
  objects = kustomize(dir);
});
afterAll(() => ws?.cleanup());

interface PodOwner extends K8sObject {
  spec: { template: { spec: { containers: { image: string }[]; initContainers?: { image: string }[] } } };
}

describe('the documented air-gapped kustomization', () => {
  it('renders, and every container of every workload pulls from the mirror', () => {
    const workloads = objects.filter((o): o is PodOwner => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind));
    expect(workloads.length).toBeGreaterThanOrEqual(2);
    const images = workloads.flatMap((w) => [...w.spec.template.spec.containers, ...(w.spec.template.spec.initContainers ?? [])].map((c) => c.image));
    expect([...new Set(images)]).toEqual([`${MIRROR}kfp-notify:0.1.0`]);
  });

  it("sets the notifier image in the injector settings the webhook reads, and the settings parse", () => {
    const cm = named<ConfigMap>(objects, 'ConfigMap', 'kfp-notify-injector', NAMESPACE);
    const settings = parseInjectorConfig(cm.data?.['config.yaml'] ?? '', 'config.yaml');
    expect(settings.image).toBe(`${MIRROR}curlimages/curl:8.11.1`);
  });

  it('names the images the install really runs: the notifier default and the product tag', () => {
    const base = kustomize(join(ws.manifests, 'overlays', 'cert-manager'));
    const shipped = parseInjectorConfig(named<ConfigMap>(base, 'ConfigMap', 'kfp-notify-injector', NAMESPACE).data?.['config.yaml'] ?? '', 'config.yaml');
    expect(shipped.image).toBe(DEFAULT_IMAGE);
    expect(SECTION).toContain(`\`${DEFAULT_IMAGE}\` (the notifier)`);
    const productImages = new Set(base.filter((o): o is PodOwner => o.kind === 'Deployment').flatMap((d) => d.spec.template.spec.containers.map((c) => c.image)));
    for (const image of productImages) expect(SECTION).toContain(`\`${image}\``);
  });
});
