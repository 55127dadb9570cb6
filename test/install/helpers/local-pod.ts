import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BIN } from '../../helpers/cli.js';
import { named } from './k8s-semantics.js';
import type { ConfigMap, Container, Deployment, Secret } from './k8s-types.js';
import type { K8sObject } from './render.js';

/**
 * A Deployment's container run as a local process, the way the kubelet would start it: every volume
 * laid out at its mountPath (under a scratch root), the env, `$(VAR)` expanded in args. Paths under a
 * mount, in args and env values, point into the scratch root. Only the listen address changes:
 * 127.0.0.1 and a free port, so tests never bind a fixed port.
 */

export interface LocalPod {
  /** Base URL from the process's "listening" log line. */
  url: string;
  /** Where `/etc/...` of the container lives on this machine. */
  root: string;
  /** The working directory, standing in for the image's read-only /app: it must stay empty. */
  cwd: string;
  logs(): string;
  stop(): Promise<void>;
}

export interface LocalPodOptions {
  objects: readonly K8sObject[];
  deployment: Deployment;
  root: string;
  /** Files of Secrets the manifests do not carry (created at install): secret name → key → content. */
  externalSecrets?: Record<string, Record<string, string>>;
  env?: NodeJS.ProcessEnv;
  /** The message of the log line that carries `url` once the server listens. */
  listeningMessage: string;
  /** Projected ServiceAccount tokens, audience → token: what the TokenRequest API would issue. */
  serviceAccountTokens?: Record<string, string>;
}

/**
 * Files as the kubelet's AtomicWriter writes projected, Secret and ConfigMap volumes: the files in a
 * timestamped `..<ts>` directory, `..data` a symlink to it, each name a symlink through `..data`. A
 * rewrite (a rotated token) makes a new directory and swaps `..data` by rename, so readers never see
 * half a file and a watcher sees the swap, not a write to `token`.
 */
export function writeAtomically(dir: string, files: Record<string, string>, mode = 0o600): void {
  const data = join(dir, '..data');
  const old = existsSync(data) ? readlinkSync(data) : undefined;
  const ts = `..${new Date().toISOString().replace(/[-:.TZ]/g, '_')}${process.hrtime.bigint()}`;
  mkdirSync(join(dir, ts), { recursive: true });
  for (const [k, text] of Object.entries(files)) writeFileSync(join(dir, ts, k), text, { mode });
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), data);
  for (const k of Object.keys(files)) if (!existsSync(join(dir, k))) symlinkSync(join('..data', k), join(dir, k));
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

function layOutVolumes(o: LocalPodOptions, c: Container): void {
  const ns = o.deployment.metadata.namespace ?? 'default';
  for (const m of c.volumeMounts ?? []) {
    const dir = join(o.root, m.mountPath);
    mkdirSync(dir, { recursive: true });
    const v = (o.deployment.spec.template.spec.volumes ?? []).find((x) => x.name === m.name);
    let files: Record<string, string> = {};
    if (v?.projected) {
      const tokens: Record<string, string> = {};
      for (const src of v.projected.sources) {
        const t = src.serviceAccountToken;
        if (!t) throw new Error(`volume ${v.name}: only serviceAccountToken projections are modelled`);
        const token = o.serviceAccountTokens?.[t.audience ?? ''];
        if (token === undefined) throw new Error(`volume ${v.name}: no token given for audience ${t.audience ?? '(the API server)'}`);
        tokens[t.path] = token;
      }
      writeAtomically(dir, tokens);
      continue;
    }
    if (v?.configMap) files = named<ConfigMap>(o.objects, 'ConfigMap', v.configMap.name, ns).data ?? {};
    else if (v?.secret) {
      const name = v.secret.secretName;
      const rendered = o.objects.find((x) => x.kind === 'Secret' && x.metadata.name === name && x.metadata.namespace === ns) as Secret | undefined;
      files = rendered
        ? Object.fromEntries(Object.entries(rendered.data ?? {}).map(([k, b64]) => [k, Buffer.from(b64.replace(/\s/g, ''), 'base64').toString('utf8')]))
        : (o.externalSecrets?.[name] ?? {});
      if (!rendered && !o.externalSecrets?.[name]) throw new Error(`Secret ${name} is neither rendered nor given`);
    }
    for (const [k, text] of Object.entries(files)) writeFileSync(join(dir, k), text, { mode: 0o600 });
  }
}

/** A path inside the container that lies on a mount → the same file under the scratch root. */
function localPath(value: string, c: Container, root: string): string {
  const mounts = (c.volumeMounts ?? []).map((m) => m.mountPath);
  return mounts.some((m) => value === m || value.startsWith(`${m}/`)) ? join(root, value) : value;
}

function containerEnv(d: Deployment, c: Container, root: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = localPath(e.value, c, root);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = d.metadata.namespace ?? 'default';
    else throw new Error(`env ${e.name}: only values and metadata.namespace are modelled`);
  }
  return env;
}

function localArgs(c: Container, env: Record<string, string>, root: string): string[] {
  const args = (c.args ?? []).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--port' || a === '--host') {
      i++;
      continue;
    }
    out.push(localPath(a, c, root));
  }
  return [...out, '--port', '0', '--host', '127.0.0.1'];
}

export async function startLocalPod(o: LocalPodOptions): Promise<LocalPod> {
  const [c] = o.deployment.spec.template.spec.containers;
  if (!c) throw new Error(`${o.deployment.metadata.name} has no container`);
  layOutVolumes(o, c);
  const env = containerEnv(o.deployment, c, o.root);
  const cwd = join(o.root, 'app');
  mkdirSync(cwd, { recursive: true });
  const child: ChildProcess = spawn(process.execPath, [BIN, ...localArgs(c, env, o.root)], {
    cwd,
    env: { ...process.env, ...o.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${o.deployment.metadata.name} did not log "${o.listeningMessage}" in 15 s:\n${output}`)), 15_000);
    const onData = (d: Buffer): void => {
      output += d.toString();
      for (const line of output.split('\n')) {
        if (!line.includes(o.listeningMessage)) continue;
        try {
          const rec = JSON.parse(line) as { url?: unknown };
          if (typeof rec.url === 'string') {
            clearTimeout(timer);
            resolve(rec.url);
          }
        } catch {
          // a partial line; the next chunk completes it
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${o.deployment.metadata.name} exited ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    root: o.root,
    cwd,
    logs: () => output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const hard = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(hard);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Writes a kubeconfig file (for $KUBECONFIG) from client-node's exported JSON. */
export function writeKubeconfig(path: string, exported: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, exported, { mode: 0o600 });
  return path;
}
