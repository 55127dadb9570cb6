import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { parseDocuments } from '../../../common/yaml-docs.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const MANIFESTS = join(REPO, 'manifests');
export const GEN_SH = join(REPO, 'certs', 'gen.sh');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

function isK8sObject(v: unknown): v is K8sObject {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const meta = o.metadata as Record<string, unknown> | undefined;
  return typeof o.apiVersion === 'string' && typeof o.kind === 'string' && typeof meta?.name === 'string';
}

/** Objects out of YAML text; anything without apiVersion, kind and metadata.name is an error. */
export function parseObjects(text: string, source: string): K8sObject[] {
  return parseDocuments(text, source).map((doc, i) => {
    if (!isK8sObject(doc)) throw new Error(`${source}: document ${i + 1} is not a Kubernetes object (apiVersion, kind, metadata.name)`);
    return doc;
  });
}

/**
 * `kubectl kustomize <dir>`. A missing kubectl is a failure, never a skip: these tests are the only
 * thing that renders the manifests before a cluster does.
 */
export function kustomize(dir: string): K8sObject[] {
  let out: string;
  try {
    out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error('kubectl is not on PATH: the install tests need `kubectl kustomize` (kubectl 1.27 or later). Install kubectl; these tests never skip.');
    }
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr ?? e.message}`);
  }
  return parseObjects(out, `kubectl kustomize ${dir}`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; a non-zero exit is a result, not an exception. */
export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, timeout: 60_000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export function genSh(args: string[], script = GEN_SH): RunResult {
  return run('bash', [script, ...args]);
}

/** A scratch copy of manifests/ and certs/ (the layout gen.sh's default --out relies on). */
export interface Workspace {
  root: string;
  manifests: string;
  genSh: string;
  cleanup(): void;
}

export function copyWorkspace(): Workspace {
  const root = mkdtempSync(join(tmpdir(), 'kfp-notify-install-'));
  cpSync(MANIFESTS, join(root, 'manifests'), { recursive: true, filter: (src) => !src.includes(`${join('self-signed', 'generated')}`) });
  mkdirSync(join(root, 'certs'));
  cpSync(GEN_SH, join(root, 'certs', 'gen.sh'));
  return {
    root,
    manifests: join(root, 'manifests'),
    genSh: join(root, 'certs', 'gen.sh'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * The kustomization docs/install.md shows under "Combining options" (the self-signed install plus both
 * components), read from the doc so the doc cannot drift from what the tests render.
 */
export function combinedKustomizationFromDocs(): string {
  const doc = readFileSync(join(REPO, 'docs', 'install.md'), 'utf8');
  const section = doc.indexOf('### Combining options');
  const m = section >= 0 ? /```yaml\n([\s\S]*?)```/.exec(doc.slice(section)) : null;
  if (!m?.[1]) throw new Error('docs/install.md: no yaml block under "### Combining options"');
  return m[1];
}

export interface RenderedInstall {
  name: string;
  objects: K8sObject[];
}

/**
 * Every way to install: the five overlays, plus self-signed combined with both components. The
 * self-signed ones need certs/gen.sh to have run, so they render in a workspace.
 */
export function renderAllInstalls(ws: Workspace): RenderedInstall[] {
  const gen = genSh([], ws.genSh);
  if (gen.code !== 0) throw new Error(`certs/gen.sh failed (${gen.code}): ${gen.stderr}`);
  mkdirSync(join(ws.manifests, 'overlays', 'combined'));
  writeFileSync(join(ws.manifests, 'overlays', 'combined', 'kustomization.yaml'), combinedKustomizationFromDocs());
  return ['cert-manager', 'self-signed', 'http-hooks', 'network-policy', 'ha', 'combined'].map((name) => ({
    name,
    objects: kustomize(join(ws.manifests, 'overlays', name)),
  }));
}

/** For a test file: renders every install once before its tests, removes the workspace after them. */
export function useRenderedInstalls(): () => RenderedInstall[] {
  let ws: Workspace | undefined;
  let installs: RenderedInstall[] = [];
  beforeAll(() => {
    ws = copyWorkspace();
    installs = renderAllInstalls(ws);
  });
  afterAll(() => ws?.cleanup());
  return () => installs;
}
