import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { dockerignoreExcludes, parseCopy, parseDockerfile, type Stage } from './helpers/dockerfile.js';
import { flag, onlyContainer } from './helpers/install-model.js';
import { named } from './helpers/k8s-semantics.js';
import type { Deployment } from './helpers/k8s-types.js';
import { kustomize, MANIFESTS, REPO } from './helpers/render.js';

const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(REPO, '.dockerignore'), 'utf8');
const stages = parseDockerfile(dockerfile);
const build = stages[0] as Stage;
const final = stages.at(-1) as Stage;

const runs = (s: Stage) => s.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
const copies = (s: Stage) => s.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD').map((i) => parseCopy(i.args));

describe('Dockerfile', () => {
  it('is multi-stage: a named build stage, a separate final stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(build.name).toBeTruthy();
  });

  it('runs on a Node LTS slim image, the same base the native addon was built on', () => {
    const m = /^node:(\d+)-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/.exec(final.base);
    expect(m, final.base).not.toBeNull();
    const major = Number(m?.[1]);
    expect(major % 2, 'LTS lines are the even majors').toBe(0);
    expect(major).toBeGreaterThanOrEqual(20);
    // package.json's dependency cloudevents declares node <= 24.
    expect(major).toBeLessThanOrEqual(24);
    expect(build.base).toBe(final.base);
  });

  it('the build stage compiles: build tools for better-sqlite3, npm ci, the TypeScript build, dev dependencies pruned', () => {
    const script = runs(build).join('\n');
    for (const tool of ['python3', 'make', 'g++']) expect(script).toContain(tool);
    expect(script).toMatch(/\bnpm ci\b/);
    expect(script).toMatch(/\bnpm run build\b/);
    const prunedHere = /\bnpm prune\b[^\n]*--omit=dev/.test(script);
    const cleanInstallLater = runs(final).some((r) => /\bnpm ci\b[^\n]*--omit=dev/.test(r));
    expect(prunedHere || cleanInstallLater).toBe(true);
  });

  it('the final stage takes only package.json, production node_modules, dist and bin from the build stage', () => {
    const allowed = ['package.json', 'node_modules', 'dist', 'bin'];
    const finalCopies = copies(final);
    expect(finalCopies.length).toBeGreaterThan(0);
    for (const c of finalCopies) {
      expect(c.from, `COPY ${c.sources.join(' ')} must come from the build stage`).toBe(build.name);
      for (const s of c.sources) expect(allowed, s).toContain(s.replace(/^\/app\//, '').replace(/\/$/, ''));
    }
    expect(finalCopies.flatMap((c) => c.sources.map((s) => s.replace(/^\/app\//, ''))).sort()).toEqual([...allowed].sort());
    // No compiler, package manager run or source in the image.
    expect(runs(final)).toEqual([]);
  });

  it('runs as a numeric non-root user, with the documented entrypoint', () => {
    const user = final.instructions.filter((i) => i.op === 'USER').at(-1)?.args ?? '';
    const m = /^(\d+)(?::(\d+))?$/.exec(user);
    expect(m, `USER ${user}`).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(0);
    expect(final.instructions.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["node", "/app/bin/kfp-notify.mjs"]');
  });

  it('the manifests run that user, and the entrypoint with the commands the image serves', () => {
    const objects = kustomize(join(MANIFESTS, 'base'));
    const [uid, gid] = (final.instructions.filter((i) => i.op === 'USER').at(-1)?.args ?? '').split(':').map(Number);
    for (const name of ['kfp-notify-webhook', 'kfp-notify-callback']) {
      const d = named<Deployment>(objects, 'Deployment', name, 'kfp-notify');
      const c = onlyContainer(d);
      expect(c.image).toMatch(/^kfp-notify:/);
      expect(c.securityContext?.runAsUser ?? d.spec.template.spec.securityContext?.runAsUser).toBe(uid);
      expect(c.securityContext?.runAsGroup ?? d.spec.template.spec.securityContext?.runAsGroup).toBe(gid);
      expect(flag(c, '--port')).toMatch(/^\d+$/);
    }
  });
});

describe('build context (.dockerignore)', () => {
  it('the filter tests itself: a pattern re-included later wins, a later exclusion wins again', () => {
    const rules = '*\n!src/\n**/*.test.ts\n';
    expect(dockerignoreExcludes(rules, 'src/a.ts')).toBe(false);
    expect(dockerignoreExcludes(rules, 'src/a.test.ts')).toBe(true);
    expect(dockerignoreExcludes(rules, 'other/a.ts')).toBe(true);
  });

  it('keeps out node_modules, tests, .git, build output, and the private keys certs/gen.sh writes', () => {
    for (const p of [
      'node_modules/fastify/package.json',
      'test/install/certs.test.ts',
      '.git/HEAD',
      'dist/cli/main.js',
      'certs/gen.sh',
      'manifests/overlays/self-signed/generated/tls.key',
      'cli/node_modules/x/index.js',
      'webhook/inject/index.test.ts',
      '.kfp-notify/kfp-notify.db',
      'docs/install.md',
    ]) {
      expect(dockerignoreExcludes(dockerignore, p), p).toBe(true);
    }
  });

  it('sends everything the build stage copies from the context', () => {
    const fromContext = copies(build).filter((c) => c.from === undefined);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const c of fromContext) {
      for (const s of c.sources) {
        expect(existsSync(join(REPO, s)), `${s} exists`).toBe(true);
        expect(dockerignoreExcludes(dockerignore, s), `${s} is in the build context`).toBe(false);
      }
    }
    for (const p of ['cli/main.ts', 'common/hook-token.ts', 'bin/kfp-notify.mjs', 'package-lock.json']) expect(dockerignoreExcludes(dockerignore, p), p).toBe(false);
  });

  it('copies every directory the TypeScript build compiles', () => {
    const tsconfig = JSON.parse(readFileSync(join(REPO, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    const copied = copies(build).flatMap((c) => c.sources.map((s) => s.replace(/\/$/, '')));
    for (const dir of tsconfig.include) expect(copied, dir).toContain(dir);
  });
});

describe('the image command line', () => {
  // What `CMD ["--help"]` runs in the image: the launcher in bin/ and the compiled dist/.
  let help: Awaited<ReturnType<typeof runCli>>;
  beforeAll(async () => {
    help = await runCli(['--help']);
  });

  it('the default command prints usage and exits 0, listing the commands the Deployments run', () => {
    expect(final.instructions.find((i) => i.op === 'CMD')?.args).toBe('["--help"]');
    expect(help.code).toBe(0);
    for (const c of ['webhook', 'callback', 'dlq']) expect(help.stdout).toContain(`  ${c} `);
  });
});
