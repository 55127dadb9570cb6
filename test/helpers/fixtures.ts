import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocuments } from '../../common/yaml-docs.js';
import { asCreatedByKfp } from '../../cli/demo/kfp-api-server.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';

/**
 * The shared, byte-for-byte upstream fixtures (see ../shared/fixtures/SOURCES.md): `shared/` sits beside
 * the checkout, on developers' machines and in CI alike.
 */
export const FIXTURES_DIR = process.env.KFP_NOTIFY_FIXTURES ?? fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));

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
  return asCreatedByKfp(doc as Workflow, {
    runId,
    runName: opts.runName ?? `run of ${basename(path, '.yaml')}`,
    namespace: opts.namespace ?? DEFAULT_NAMESPACE,
  }) as Obj;
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
