import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseDocuments } from '../../common/yaml-docs.js';

/** The shared, byte-for-byte upstream fixtures (see /work/shared/fixtures/SOURCES.md). */
export const FIXTURES_DIR = process.env.KFP_NOTIFY_FIXTURES ?? '/work/shared/fixtures';

const WORKFLOW_DIRS = [
  { dir: 'kfp-v1-compiler', flavour: 'v1' },
  { dir: 'kfp-v2-argocompiler-2.5.0', flavour: 'v2' },
  { dir: 'kfp-v2-compiled-workflows-master', flavour: 'v2' },
] as const;

export interface WorkflowFixture {
  /** `<dir>/<file>`, e.g. `kfp-v1-compiler/basic.yaml`. */
  name: string;
  path: string;
  /** Which KFP compiler made it (from the folder, not from the code under test). */
  flavour: 'v1' | 'v2';
}

/** Every Workflow fixture, sorted, so a new upstream file is picked up by every loop that uses this. */
export function workflowFixtures(): WorkflowFixture[] {
  return WORKFLOW_DIRS.flatMap(({ dir, flavour }) =>
    readdirSync(join(FIXTURES_DIR, dir))
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => ({ name: `${dir}/${f}`, path: join(FIXTURES_DIR, dir, f), flavour })),
  );
}

export const DEFAULT_RUN_ID = '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e';
export const DEFAULT_NAMESPACE = 'kubeflow-user-example-com';

type Obj = Record<string, unknown>;
const obj = (parent: Obj, key: string): Obj => {
  const v = parent[key];
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Obj;
  const fresh: Obj = {};
  parent[key] = fresh;
  return fresh;
};

/**
 * A fixture as the webhook receives it: with what the KFP API server adds just before it creates the
 * Workflow (argo-kfp.md §4.3, KFP `template/argo_template.go` and `v2_template.go`), and the namespace
 * the kube-apiserver fills in from the request URL before admission.
 */
export function admittedFixture(path: string, runId = DEFAULT_RUN_ID, opts: { namespace?: string; runName?: string } = {}): Obj {
  const [doc] = parseDocuments(readFileSync(path, 'utf8'), path);
  // ReplaceUID: strings.ReplaceAll over the serialized Workflow.
  const wf = JSON.parse(JSON.stringify(doc).replaceAll('{{workflow.uid}}', runId)) as Obj;
  const v1 = path.includes('kfp-v1-compiler');
  const metadata = obj(wf, 'metadata');
  metadata.namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  obj(metadata, 'labels')['pipeline/runid'] = runId;
  obj(metadata, 'annotations')['pipelines.kubeflow.org/run_name'] = opts.runName ?? `run of ${basename(path, '.yaml')}`;
  const spec = obj(wf, 'spec');
  obj(obj(spec, 'podMetadata'), 'labels')['pipeline/runid'] = runId;
  if (v1) {
    const templates = Array.isArray(spec.templates) ? (spec.templates as Obj[]) : [];
    for (const t of templates) {
      const meta = obj(t, 'metadata');
      obj(meta, 'labels')['pipelines.kubeflow.org/cache_enabled'] = 'true';
      const annotations = obj(meta, 'annotations');
      annotations['sidecar.istio.io/inject'] ??= 'false';
      // The API server marks the UI metadata and metrics artifacts optional.
      const outputs = t.outputs as Obj | undefined;
      const artifacts = Array.isArray(outputs?.artifacts) ? (outputs.artifacts as Obj[]) : [];
      for (const a of artifacts) if (a.name === 'mlpipeline-ui-metadata' || a.name === 'mlpipeline-metrics') a.optional = true;
    }
  }
  return wf;
}

/** A fixed hook key, so that tokens (and so golden files) are stable. Test data, never a real key. */
export const TEST_HOOK_KEY_SECRET = 'kfp-notify-test-hook-key-not-a-secret';

/** A temp dir holding a hook key file with TEST_HOOK_KEY_SECRET, for CLI runs; `cleanup()` removes it. */
export function tempKeyFile(prefix: string): { dir: string; keyFile: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const keyFile = join(dir, 'hook-key');
  writeFileSync(keyFile, `${TEST_HOOK_KEY_SECRET}\n`);
  return { dir, keyFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
