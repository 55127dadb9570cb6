import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jsonPatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKER_ANNOTATION } from '../../common/hook-contract.js';
import { loadHookKeys } from '../../common/data-dir.js';
import { verifyHookToken } from '../../common/hook-token.js';
import { parseDocuments, toYaml, toYamlStream } from '../../common/yaml-docs.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';
import { runCli } from '../helpers/cli.js';
import { admittedFixture, DEFAULT_NAMESPACE, DEFAULT_RUN_ID, FIXTURES_DIR, tempKeyFile, TEST_HOOK_KEY_SECRET, workflowFixtures } from '../helpers/fixtures.js';

let dir = '';
let keyFile = '';
let cleanup = () => {};
beforeAll(() => ({ dir, keyFile, cleanup } = tempKeyFile('kfp-notify-inject-cli-')));
afterAll(() => cleanup());

const v1 = () => admittedFixture(`${FIXTURES_DIR}/kfp-v1-compiler/basic.yaml`);
const v2 = () => admittedFixture(`${FIXTURES_DIR}/kfp-v2-argocompiler-2.5.0/hello_world.yaml`);
const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: 1 } };
const inject = (args: string[], input?: string) => runCli(['inject', '--hook-key-file', keyFile, ...args], { input });
const injectedMark = (o: unknown) => (o as Workflow).metadata?.annotations?.[MARKER_ANNOTATION];
const tokenOf = (o: unknown) => {
  const hook = (o as Workflow).spec?.templates?.find((t) => t.name === 'kfp-notify-hook');
  return (hook?.container as { env: { name: string; value?: string }[] }).env.find((e) => e.name === 'KFP_NOTIFY_TOKEN')?.value;
};
type List = { kind: string; items: unknown[] };

describe('kfp-notify inject (process)', () => {
  it('--help prints usage and exits 0', async () => {
    const r = await runCli(['inject', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: kfp-notify inject -f FILE|-');
    expect(r.stdout).toContain('--argo-version');
  });

  it.each([
    [['--bogus'], /unknown option --bogus/],
    [[], /missing -f FILE/],
    [['-f', '-', '-o', 'xml'], /-o must be one of yaml, json, patch/],
    [['-f', '-', '--mode', 'pigeon'], /--mode must be container or http/],
    [['-f', '-', '--size-limit', 'lots'], /--size-limit must be a whole number/],
    [['-f', '-', '--mode', 'http', '--argo-version', '3.4.17'], /mode: http needs Argo 3\.5\.11\+/],
    [['-f', '-', '--callback-url', 'http://cb:8080/v1/hooks'], /callbackUrl: .*without a path/],
    [['-f', '-', '--argo-version', 'latest'], /argoVersion: "latest" is not a version/],
    [['-f', '-', '--step-hooks', 'some'], /--step-hooks must be one of all, failed, none, got "some"/],
    [['-f', '-', '--step-hooks', 'failed', '--argo-version', '3.3.8'], /stepHooks: failed needs Argo 3\.4 or later/],
  ])('bad flags %j exit 2 with the reason and the usage', async (args, message) => {
    const r = await inject(args, toYaml(v2()));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('Usage: kfp-notify inject');
    expect(r.stdout).toBe('');
  });

  it('multi-document YAML in, multi-document YAML out; a non-KFP object is printed unchanged with a note', async () => {
    const r = await inject(['-f', '-'], toYamlStream([v1(), deployment, v2()]));
    expect(r.code).toBe(0);
    expect(r.stdout.split(/^---$/m)).toHaveLength(3);
    const [a, b, c] = parseDocuments(r.stdout);
    expect(injectedMark(a)).toBe('true');
    expect(b).toEqual(deployment);
    expect(injectedMark(c)).toBe('true');
    expect(r.stderr).toBe('kfp-notify inject: document 2 (Deployment web) printed unchanged: not an Argo Workflow: Deployment apps/v1\n');
  });

  it('reads JSON, and -o json prints JSON (several objects as a List)', async () => {
    const file = join(dir, 'wf.json');
    writeFileSync(file, JSON.stringify(v2()));
    const yaml = await inject(['-f', file]);
    expect(yaml.code).toBe(0);
    expect(injectedMark(parseDocuments(yaml.stdout)[0])).toBe('true');
    const json = await inject(['-f', file, '-o', 'json']);
    expect(JSON.parse(json.stdout)).toEqual(parseDocuments(yaml.stdout)[0]);
    const list = JSON.parse((await inject(['-f', '-', '-o', 'json'], toYamlStream([v2(), deployment]))).stdout) as List;
    expect(list.kind).toBe('List');
    expect(list.items[1]).toEqual(deployment);
  });

  it('-o patch prints one JSON Patch per document that turns each input into the injected output', async () => {
    const inputs = [v1(), deployment, v2()];
    const stream = toYamlStream(inputs);
    const patches = (await inject(['-f', '-', '-o', 'patch'], stream)).stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as jsonPatch.Operation[]);
    const outputs = (JSON.parse((await inject(['-f', '-', '-o', 'json'], stream)).stdout) as List).items;
    expect(patches).toHaveLength(3);
    expect(patches[1]).toEqual([]);
    inputs.forEach((input, i) => expect(jsonPatch.applyPatch(structuredClone(input), patches[i] ?? [], true, false).newDocument).toEqual(outputs[i]));
  });

  it.each([
    ['garbage', 'key: [unclosed', /stdin: not valid YAML or JSON/],
    ['a bare string', 'hello', /stdin: document 1 is a string, expected an object/],
    ['nothing', '', /stdin: empty input/],
  ])('input that is %s exits 2 with a clear message', async (_what, input, message) => {
    const r = await inject(['-f', '-'], input);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('a file that does not exist exits 2', async () => {
    const r = await inject(['-f', join(dir, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nope\.yaml: cannot read: ENOENT/);
  });

  it('a --hook-key-file that does not exist exits 2', async () => {
    const r = await runCli(['inject', '-f', '-', '--hook-key-file', join(dir, 'missing-key')], { input: toYaml(v2()) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/hook key: .*missing-key does not exist/);
  });

  it('without --hook-key-file, signs with <data dir>/hook-key (created on first use), as a local serve verifies', async () => {
    const dataDir = join(dir, 'data');
    const first = await runCli(['inject', '-f', '-', '--data-dir', dataDir], { input: toYaml(v2()) });
    expect(first.code).toBe(0);
    expect(existsSync(join(dataDir, 'hook-key'))).toBe(true);
    const token = tokenOf(parseDocuments(first.stdout)[0]);
    const keys = loadHookKeys({ dataDir, create: false });
    expect(verifyHookToken(keys, token, { namespace: DEFAULT_NAMESPACE, kfpRunId: DEFAULT_RUN_ID })).toEqual({ ok: true });
    // The same dir through the environment gives the same key, so the same token.
    const second = await runCli(['inject', '-f', '-'], { input: toYaml(v2()), env: { KFP_NOTIFY_DATA_DIR: dataDir } });
    expect(second.stdout).toBe(first.stdout);
    expect(readFileSync(join(dataDir, 'hook-key'), 'utf8')).not.toContain(TEST_HOOK_KEY_SECRET);
  });

  it('--namespace decides whose token is minted', async () => {
    const r = await inject(['-f', '-', '--namespace', 'team-b', '-o', 'json'], toYaml(v2()));
    const keys = loadHookKeys({ keyFile, dataDir: dir });
    expect(verifyHookToken(keys, tokenOf(JSON.parse(r.stdout)), { namespace: 'team-b', kfpRunId: DEFAULT_RUN_ID })).toEqual({ ok: true });
  });

  it('--size-limit too small prints the Workflow unchanged with the reason', async () => {
    const r = await inject(['-f', '-', '--size-limit', '1000'], toYaml(v2()));
    expect(r.code).toBe(0);
    expect(parseDocuments(r.stdout)[0]).toEqual(v2());
    expect(r.stderr).toMatch(/printed unchanged: too large after injection: \d+ bytes > size limit 1000 bytes/);
  });

  it('every shared fixture parses as shipped (printed unchanged: no run id yet) and injects once admitted', async () => {
    const fixtures = workflowFixtures();
    const raw = await inject(['-f', '-', '-o', 'json'], fixtures.map((f) => readFileSync(f.path, 'utf8')).join('\n---\n'));
    expect(raw.code).toBe(0);
    expect((JSON.parse(raw.stdout) as List).items).toHaveLength(fixtures.length);
    expect(raw.stderr.match(/printed unchanged: not a KFP workflow: label pipeline\/runid is missing/g)).toHaveLength(fixtures.length);
    const admitted = await inject(['-f', '-', '-o', 'json'], toYamlStream(fixtures.map((f) => admittedFixture(f.path))));
    expect(admitted.code).toBe(0);
    expect(admitted.stderr).toBe('');
    expect((JSON.parse(admitted.stdout) as List).items.map(injectedMark)).toEqual(fixtures.map(() => 'true'));
  });

  it('--kfp-run-id previews compiler output as the KFP API server would submit it: run id label, token for that run', async () => {
    const compiled = readFileSync(`${FIXTURES_DIR}/kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml`, 'utf8');
    const r = await inject(['-f', '-', '--kfp-run-id', 'run-preview-1', '--namespace', 'team-a', '-o', 'json'], compiled);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const wf = JSON.parse(r.stdout) as Workflow;
    expect(injectedMark(wf)).toBe('true');
    expect(wf.metadata?.labels?.['pipeline/runid']).toBe('run-preview-1');
    expect(wf.spec?.podMetadata?.labels?.['pipeline/runid']).toBe('run-preview-1');
    // ReplaceUID: the compiler's {{workflow.uid}} run-id placeholders now hold the run id; the only one
    // left is the notifier's own (the Kubernetes UID it reports as workflowUid).
    const others = (wf.spec?.templates ?? []).filter((t) => t.name !== 'kfp-notify-hook');
    expect(JSON.stringify(others)).not.toContain('{{workflow.uid}}');
    expect(JSON.stringify(others)).toContain('run-preview-1');
    const [key] = loadHookKeys({ keyFile, dataDir: dir });
    expect(verifyHookToken(key ? [key] : [], tokenOf(wf), { namespace: 'team-a', kfpRunId: 'run-preview-1' })).toEqual({ ok: true });
    const bad = await inject(['-f', '-', '--kfp-run-id', 'no spaces please'], compiled);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--kfp-run-id must be a label value');
  });

  it('a step left alone (it has its own exit hook) is reported on stderr', async () => {
    const wf = v2() as Workflow;
    const task = wf.spec?.templates?.find((t) => t.name === 'root')?.dag?.tasks?.find((t) => t.name === 'hello-world');
    if (!task) throw new Error('fixture changed');
    task.hooks = { exit: { template: 'system-container-driver' } };
    const r = await inject(['-f', '-'], toYaml(wf));
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('kfp-notify inject: document 1 (Workflow hello-world-): step root/hello-world not hooked: the task has its own hooks.exit\n');
  });
});
