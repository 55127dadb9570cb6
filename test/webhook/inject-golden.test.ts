import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsonPatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { parseDocuments, toYaml } from '../../common/yaml-docs.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import { runCli } from '../helpers/cli.js';
import { tempKeyFile, TEST_HOOK_KEY_SECRET } from '../helpers/fixtures.js';

/**
 * Golden files: test/golden/inject/<name>.yaml (an admitted Workflow; its `# flags:` line holds the
 * `kfp-notify inject` flags for the case) → <name>.injected.yaml. Every case is checked three ways,
 * against the same golden: the CLI process (text), the webhook path (the patch applied to the input),
 * and re-admission (already injected: skipped, empty patch). REFRESH_GOLDEN=1 rewrites the goldens.
 */
const DIR = fileURLToPath(new URL('../golden/inject/', import.meta.url));
const REFRESH = process.env.REFRESH_GOLDEN === '1';
const GOLDEN_SUFFIX = '.injected.yaml';

const files = readdirSync(DIR).sort();
const inputs = files.filter((f) => f.endsWith('.yaml') && !f.endsWith(GOLDEN_SUFFIX));
const goldenOf = (input: string) => join(DIR, input.replace(/\.yaml$/, GOLDEN_SUFFIX));

function flagsOf(text: string): string[] {
  const m = /^# flags:(.*)$/m.exec(text);
  return m?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}

/** The same options the CLI builds from these flags (only the flags the goldens use). */
function optionsOf(flags: string[]): InjectOptions {
  const value = (name: string) => {
    const i = flags.indexOf(name);
    return i >= 0 ? flags[i + 1] : undefined;
  };
  const known = new Set(['--argo-version', '--mode', '--step-hooks']);
  for (let i = 0; i < flags.length; i += 2) if (!known.has(flags[i] ?? '')) throw new Error(`golden flag ${flags[i]} is not mapped in optionsOf`);
  const mode = value('--mode');
  const stepHooks = value('--step-hooks');
  return defaultInjectOptions({
    ...(stepHooks === 'all' || stepHooks === 'failed' || stepHooks === 'none' ? { stepHooks } : {}),
    hookKey: hookKeyFromSecret(TEST_HOOK_KEY_SECRET),
    ...(value('--argo-version') ? { argoVersion: value('--argo-version') } : {}),
    ...(mode === 'http' || mode === 'container' ? { mode } : {}),
  });
}


function readGolden(input: string): string {
  const path = goldenOf(input);
  if (!existsSync(path)) throw new Error(`missing golden ${path}: run REFRESH_GOLDEN=1 npx vitest run test/webhook/inject-golden.test.ts`);
  return readFileSync(path, 'utf8');
}

let keyFile = '';
let cleanup = () => {};
beforeAll(() => ({ keyFile, cleanup } = tempKeyFile('kfp-notify-golden-')));
afterAll(() => cleanup());

describe('golden folder test/golden/inject', () => {
  it('has cases, and no golden without an input (stale)', () => {
    expect(inputs.length).toBeGreaterThanOrEqual(8);
    const stale = files.filter((f) => f.endsWith(GOLDEN_SUFFIX) && !inputs.includes(f.replace(GOLDEN_SUFFIX, '.yaml')));
    expect(stale, 'stale golden files: delete them or add their inputs').toEqual([]);
  });

  describe.each(inputs)('%s', (input) => {
    const text = readFileSync(join(DIR, input), 'utf8');
    const flags = flagsOf(text);

    it('kfp-notify inject (a real process) prints exactly the golden', async () => {
      const r = await runCli(['inject', '-f', join(DIR, input), '--hook-key-file', keyFile, ...flags]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      if (REFRESH) writeFileSync(goldenOf(input), r.stdout);
      expect(r.stdout).toBe(readGolden(input));
    });

    it('the webhook patch applied to the input gives the golden', () => {
      const [wf] = parseDocuments(text, input);
      const result = injectWorkflow(wf, optionsOf(flags));
      expect(result.outcome).toBe('injected');
      const patched = jsonPatch.applyPatch(structuredClone(wf), result.patch, true, false).newDocument;
      const [golden] = parseDocuments(readGolden(input), goldenOf(input));
      expect(patched).toEqual(golden);
      // And the CLI text is just this object printed: one injector behind both doors.
      expect(toYaml(result.workflow)).toBe(readGolden(input));
    });

    it('re-injecting the golden (KFP Retry resubmits it) changes nothing', () => {
      const [golden] = parseDocuments(readGolden(input), goldenOf(input));
      const again = injectWorkflow(golden, optionsOf(flags));
      expect(again.outcome).toBe('skipped');
      expect(again.reason).toMatch(/^already injected/);
      expect(again.patch).toEqual([]);
      expect(again.workflow).toBe(golden);
    });
  });
});
